package main

import (
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"

	"github.com/batonhq/baton/internal/natsserver"
)

// startNATS starts an embedded NATS server with JetStream, storing under dir
// and listening on listen (host:port; port 0 picks a free one).
func startNATS(listen, dir string) (*server.Server, error) {
	return natsserver.Start(natsserver.Config{Listen: listen, StoreDir: dir})
}

// connectNATS connects to url, reconnecting forever.
func connectNATS(url, name string, opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(500 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats at %s: %w", url, err)
	}
	return nc, nil
}

// defaultNATS is where the operator commands find NATS by default.
const defaultNATS = "nats://127.0.0.1:4222"

// natsFlag registers the --nats flag of an operator command.
func natsFlag(f *pflag.FlagSet, url *string) {
	f.StringVar(url, "nats", defaultNATS, "NATS server URL")
}

// dialCLI connects a short-lived operator command to NATS.
func dialCLI(url, name string) (*nats.Conn, error) {
	nc, err := nats.Connect(url, nats.Name(name), nats.Timeout(3*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to nats at %s (is baton up or baton server running?): %w", url, err)
	}
	return nc, nil
}
