package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/batonhq/baton/nodeagent/protocol"
)

// ExecIO is a client's side of a command run by Exec.
type ExecIO struct {
	Stdin          io.Reader // nil: no input
	Stdout, Stderr io.Writer
	Resize         <-chan [2]uint16 // rows, cols: the client's terminal changed size
}

// Exec runs req's command on node (baton exec): it sends Stdin, writes the
// command's output to Stdout and Stderr, and returns its exit code. The
// connection must be an admin's (the node refuses others).
func Exec(ctx context.Context, nc *nats.Conn, node string, req protocol.ExecRequest, cio ExecIO) (int, error) {
	req.Version = protocol.Version
	req.Inbox = nc.NewInbox()
	req.Stdin = cio.Stdin != nil
	if err := req.Validate(); err != nil {
		return -1, err
	}
	outputs := make(chan *nats.Msg, 4096)
	sub, err := nc.ChanSubscribe(req.Inbox, outputs)
	if err != nil {
		return -1, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(protocol.ExecSubject(node), req.Inbox, protocol.Encode(req)); err != nil {
		return -1, err
	}
	send := func(in protocol.ExecInput) {
		in.Version = protocol.Version
		_ = nc.Publish(req.Inbox+".stdin", protocol.Encode(in))
	}
	started := false
	keepAlive := time.NewTicker(protocol.ExecKeepAlive)
	defer keepAlive.Stop()
	answer := time.NewTimer(10 * time.Second)
	defer answer.Stop()
	for {
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-answer.C:
			if !started {
				return -1, fmt.Errorf("node %s did not answer within 10s (is its agent running?)", node)
			}
		case <-keepAlive.C:
			send(protocol.ExecInput{})
		case size := <-cio.Resize:
			send(protocol.ExecInput{Rows: size[0], Cols: size[1]})
		case m := <-outputs:
			if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
				return -1, fmt.Errorf("node %s did not answer: no agent listens for it (is its agent running?)", node)
			}
			var out protocol.ExecOutput
			if err := protocol.Decode(m.Data, &out); err != nil {
				return -1, fmt.Errorf("bad answer from %s: %w", node, err)
			}
			switch {
			case out.Error != "":
				return -1, errors.New(out.Error)
			case out.Exited:
				return out.ExitCode, nil
			case out.Started && !started:
				started = true
				if cio.Stdin != nil {
					go forwardInput(ctx, cio.Stdin, send)
				}
			case out.Stream == protocol.Stderr && cio.Stderr != nil:
				_, _ = cio.Stderr.Write(out.Data)
			case out.Stream == protocol.Stdout && cio.Stdout != nil:
				_, _ = cio.Stdout.Write(out.Data)
			}
		}
	}
}

// forwardInput sends r to the command in chunks, then its end.
func forwardInput(ctx context.Context, r io.Reader, send func(protocol.ExecInput)) {
	buf := make([]byte, protocol.MaxExecChunk)
	for ctx.Err() == nil {
		n, err := r.Read(buf)
		if n > 0 {
			send(protocol.ExecInput{Data: append([]byte(nil), buf[:n]...)})
		}
		if err != nil {
			send(protocol.ExecInput{EOF: true})
			return
		}
	}
}
