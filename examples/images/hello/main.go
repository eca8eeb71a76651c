// Command hello is the tiny HTTP server of the examples/hello workload. It
// answers every request with its message, hostname and the environment
// variable GREETING, and exits cleanly on SIGTERM.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/examples/images/internal/serve"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// ballast keeps -alloc-mb memory reachable.
var ballast []byte

func main() {
	addr := flag.String("listen", ":8080", "address to listen on")
	message := flag.String("message", "hello from baton", "message to answer with")
	allocMB := flag.Int("alloc-mb", 0, "allocate and touch this many MiB at start (to test memory limits)")
	tick := flag.Duration("tick", 0, "print a numbered line at this interval (to test logs)")
	burn := flag.Bool("burn", false, "keep one CPU busy (to test CPU limits and usage)")
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM (to test grace periods)")
	exitAfter := flag.Duration("exit-after", 0, "exit with -exit-code after this long (to test Jobs)")
	exitCode := flag.Int("exit-code", 0, "exit code for -exit-after")
	cat := flag.Bool("cat", false, "copy standard input to standard output, then exit (to test baton exec -i)")
	ttySize := flag.Bool("tty-size", false, "print standard input's terminal size, and again after SIGWINCH, then exit (to test baton exec -t)")
	grpcAddr := flag.String("grpc-listen", "", "serve the gRPC health service here too (to test gRPC probes): SERVING, NOT_SERVING between /unready and /reready")
	flag.Parse()
	if *cat {
		n, err := io.Copy(os.Stdout, os.Stdin)
		fmt.Fprintf(os.Stderr, "copied %d bytes\n", n)
		if err != nil {
			os.Exit(1)
		}
		return
	}
	if *ttySize {
		printSize := func() {
			ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
			if err != nil {
				fmt.Printf("no terminal: %v\n", err)
				os.Exit(1)
			}
			fmt.Printf("tty %dx%d\n", ws.Row, ws.Col)
		}
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		printSize()
		select {
		case <-winch:
			printSize()
		case <-time.After(30 * time.Second):
		}
		return
	}
	if *exitAfter > 0 {
		time.Sleep(*exitAfter)
		fmt.Printf("%s: done, exit %d\n", *message, *exitCode)
		os.Exit(*exitCode)
	}
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		for { // serve nothing; only SIGKILL ends it
			time.Sleep(time.Hour)
		}
	}
	if *burn {
		go func() {
			for n := 0; ; n++ {
				_ = n * n
			}
		}()
	}
	if *tick > 0 {
		go func() {
			for i := 1; ; i++ {
				time.Sleep(*tick)
				fmt.Printf("tick %d\n", i)
			}
		}()
	}
	if *allocMB > 0 {
		ballast = make([]byte, *allocMB<<20)
		for i := 0; i < len(ballast); i += 4096 {
			ballast[i] = 1
		}
		log.Printf("hello: allocated %d MiB", *allocMB)
	}

	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s (pod %s, GREETING=%q)\n", *message, host, os.Getenv("GREETING"))
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	// /ready answers 200, or 503 between /unready and /reready (to test
	// readiness probes and Services' endpoints).
	var unready atomic.Bool
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		if unready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	hs := grpcHealth(*grpcAddr)
	mux.HandleFunc("/unready", func(w http.ResponseWriter, r *http.Request) {
		unready.Store(true)
		hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
		fmt.Fprintln(w, "not ready from now on")
	})
	mux.HandleFunc("/reready", func(w http.ResponseWriter, r *http.Request) {
		unready.Store(false)
		hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		fmt.Fprintln(w, "ready again")
	})
	// The caller's address as this pod sees it (no masquerade between pods).
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprintln(w, host)
	})
	// /bytes?n=N answers N bytes (at most 16 MiB): larger than a packet,
	// to test paths whose MTU is smaller than the pods'.
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 0 || n > 16<<20 {
			http.Error(w, "want n=0..16777216", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(n))
		_, _ = w.Write(bytes.Repeat([]byte{'x'}, n))
	})
	log.Printf("hello: %q listening on %s", *message, *addr)
	serve.Run(*addr, mux)
}

// grpcHealth serves the gRPC health service on addr ("": not served; the
// status is still kept).
func grpcHealth(addr string) *health.Server {
	h := health.NewServer()
	if addr == "" {
		return h
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatalf("hello: gRPC: %v", err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, h)
	go func() { _ = srv.Serve(ln) }()
	log.Printf("hello: gRPC health on %s", addr)
	return h
}
