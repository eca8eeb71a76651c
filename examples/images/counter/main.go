// Command counter is the web tier of the examples/counter application: it
// counts its visits in the kv service, reached by its Service name, and
// says which pod answered.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/batonhq/baton/examples/images/internal/serve"
)

func main() {
	addr := flag.String("listen", ":8080", "address to listen on")
	kv := flag.String("kv", "http://kv:6379", "the kv service (its Service name)")
	flag.Parse()
	host, _ := os.Hostname()
	client := &http.Client{Timeout: 3 * time.Second}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		resp, err := client.Post(*kv+"/incr/visits", "text/plain", nil)
		if err != nil {
			http.Error(w, "kv: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
		fmt.Fprintf(w, "visits: %s (pod %s)\n", strings.TrimSpace(string(b)), host)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	log.Printf("counter listening on %s, kv at %s", *addr, *kv)
	serve.Run(*addr, mux)
}
