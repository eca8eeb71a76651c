// Command kv is the small key-value service of the examples/counter
// application: counters kept in memory, one per key.
//
//	POST /incr/KEY  adds one to KEY and answers the new value
//	GET  /get/KEY   answers KEY's value
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"sync"

	"github.com/batonhq/baton/examples/images/internal/serve"
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
	log.Printf("kv listening on %s", *addr)
	serve.Run(*addr, mux)
}
