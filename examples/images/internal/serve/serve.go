// Package serve runs the example images' HTTP servers: until SIGTERM or
// SIGINT, then a clean shutdown within 5 s (what a pod's stop grace gives).
package serve

import (
	"context"
	"log"
	"net/http"
	"os/signal"
	"syscall"
	"time"
)

// Run serves h on addr until the process is told to stop.
func Run(addr string, h http.Handler) {
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
