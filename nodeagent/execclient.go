package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/batonhq/baton/nodeagent/protocol"
)

// ExecIO is a client's side of a command run by Exec.
type ExecIO struct {
	Stdin          io.Reader // nil: no input
	Stdout, Stderr io.Writer
	Resize         <-chan [2]uint16 // rows, cols: the client's terminal changed size
}

// Exec runs req's command on node (baton exec): it sends Stdin (at most
// protocol.ExecWindow chunks ahead of the node), writes the command's
// output to Stdout and Stderr, and returns its exit code. A message lost
// on the way, or a node not heard from in three keep-alives, ends it with
// an error rather than a part. The connection must be an admin's.
func Exec(ctx context.Context, nc *nats.Conn, node string, req protocol.ExecRequest, eio ExecIO) (int, error) {
	req.Version = protocol.Version
	req.Inbox = nc.NewInbox()
	req.Session = nuid.Next()
	req.Stdin = eio.Stdin != nil
	if err := req.Validate(); err != nil {
		return -1, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	outputs := make(chan *nats.Msg, 64)
	sub, err := nc.Subscribe(req.Inbox, func(m *nats.Msg) {
		select { // the client's pace: the subscription holds the rest
		case outputs <- m:
		case <-ctx.Done():
		}
	})
	if err != nil {
		return -1, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = sub.SetPendingLimits(-1, 256<<20)
	if err := nc.PublishRequest(protocol.ExecSubject(node), req.Inbox, protocol.Encode(req)); err != nil {
		return -1, err
	}
	input := protocol.ExecInputSubject(node, req.Session)
	send := func(in protocol.ExecInput) {
		in.Version = protocol.Version
		_ = nc.Publish(input, protocol.Encode(in))
	}
	credits := make(chan struct{}, protocol.ExecWindow)
	started, next := false, uint64(1)
	keepAlive := time.NewTicker(protocol.ExecKeepAlive)
	defer keepAlive.Stop()
	heard := time.Now()
	for {
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-keepAlive.C:
			send(protocol.ExecInput{})
			switch {
			case !started && time.Since(heard) > 10*time.Second:
				return -1, fmt.Errorf("node %s did not answer within 10s (is its agent running?)", node)
			case started && time.Since(heard) > 3*protocol.ExecKeepAlive:
				return -1, fmt.Errorf("node %s stopped answering (its agent stopped, or the connection is cut)", node)
			}
		case size := <-eio.Resize:
			send(protocol.ExecInput{Rows: size[0], Cols: size[1]})
		case m := <-outputs:
			heard = time.Now()
			if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
				return -1, fmt.Errorf("node %s did not answer: no agent listens for it (is its agent running?)", node)
			}
			var out protocol.ExecOutput
			if err := protocol.Decode(m.Data, &out); err != nil {
				return -1, fmt.Errorf("bad answer from %s: %w", node, err)
			}
			if out.Seq != next {
				return -1, fmt.Errorf("output from %s lost: message %d came where %d was due", node, out.Seq, next)
			}
			next++
			for range out.Ack {
				select {
				case <-credits:
				default:
				}
			}
			switch {
			case out.Error != "":
				return -1, errors.New(out.Error)
			case out.Exited:
				return out.ExitCode, nil
			case out.Started && !started:
				started = true
				if eio.Stdin != nil {
					go forwardInput(ctx, eio.Stdin, credits, send)
				}
			case out.Stream == protocol.Stderr && eio.Stderr != nil:
				_, _ = eio.Stderr.Write(out.Data)
			case out.Stream == protocol.Stdout && eio.Stdout != nil:
				_, _ = eio.Stdout.Write(out.Data)
			}
		}
	}
}

// forwardInput sends r to the command in numbered chunks, each taking a
// credit the node's acknowledgement gives back, then its end.
func forwardInput(ctx context.Context, r io.Reader, credits chan struct{}, send func(protocol.ExecInput)) {
	buf := make([]byte, protocol.MaxExecChunk)
	seq := uint64(0)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			select {
			case credits <- struct{}{}:
			case <-ctx.Done():
				return
			}
			seq++
			send(protocol.ExecInput{Seq: seq, Data: append([]byte(nil), buf[:n]...)})
		}
		if err != nil {
			send(protocol.ExecInput{EOF: true})
			return
		}
	}
}
