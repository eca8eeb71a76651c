package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/batonhq/baton/nodeagent/protocol"
)

// StreamLogs asks node for a replica's logs and calls out with each chunk
// until the stream ends (or, with Follow, until ctx ends). idle bounds the
// wait for a chunk when not following.
func StreamLogs(ctx context.Context, nc *nats.Conn, node string, req protocol.LogsRequest, idle time.Duration, out func(protocol.LogChunk)) error {
	req.Version = protocol.Version
	req.Inbox = nc.NewRespInbox()
	req.Session = nuid.Next()
	chunks := make(chan *nats.Msg, 256)
	sub, err := nc.ChanSubscribe(req.Inbox, chunks)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	// The inbox is also the request's reply subject: an agent's credential
	// lets it answer requests (allow_responses), not publish anywhere.
	if err := nc.PublishRequest(protocol.LogsSubject(node), req.Inbox, protocol.Encode(req)); err != nil {
		return err
	}
	keepAlive := time.NewTicker(protocol.LogsKeepAlive)
	defer keepAlive.Stop()
	for {
		var timeout <-chan time.Time
		if !req.Follow {
			timeout = time.After(idle)
		}
		select {
		case <-ctx.Done():
			if req.Follow {
				return nil
			}
			return ctx.Err()
		case <-keepAlive.C:
			if req.Follow {
				_ = nc.Publish(protocol.LogsAliveSubject(node, req.Session), nil)
			}
		case <-timeout:
			return fmt.Errorf("node %s did not answer within %s (is its agent running?)", node, idle)
		case m := <-chunks:
			if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
				return fmt.Errorf("node %s did not answer: no agent listens for it (is its agent running?)", node)
			}
			var c protocol.LogChunk
			if err := protocol.Decode(m.Data, &c); err != nil {
				return fmt.Errorf("bad log chunk from %s: %w", node, err)
			}
			if c.Error != "" {
				return errors.New(c.Error)
			}
			if len(c.Data) > 0 {
				out(c)
			}
			if c.EOF {
				return nil
			}
		}
	}
}
