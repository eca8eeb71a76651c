// Command kv is the small key-value service of the examples/counter
// application: counters kept in memory, one per key.
//
//	POST /incr/KEY  adds one to KEY and answers the new value
//	GET  /get/KEY   answers KEY's value
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("listen", ":6379", "address to listen on")
	flag.Parse()
	var (
		mu     sync.Mutex
		counts = map[string]int{}
	)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /incr/{key}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		counts[r.PathValue("key")]++
		n := counts[r.PathValue("key")]
		mu.Unlock()
		fmt.Fprintln(w, n)
	})
	mux.HandleFunc("GET /get/{key}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n := counts[r.PathValue("key")]
		mu.Unlock()
		fmt.Fprintln(w, n)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("kv listening on %s", *addr)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
