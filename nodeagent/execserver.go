package nodeagent

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/nodeagent/protocol"
)

// maxExecs bounds the commands a node runs for baton exec at once.
const maxExecs = 16

// adminInbox is the inbox prefix of admins' connections
// (identity.InboxPrefix): only they may exec, whatever reached the subject.
const adminInbox = "_I.admin."

// execServer runs baton exec's commands on this node.
type execServer struct {
	nc      *nats.Conn
	rt      Runtime
	running atomic.Int32
}

// serve starts a request's command in the background; what it prints, and
// how it ended, go to the request's inbox.
func (s *execServer) serve(ctx context.Context, m *nats.Msg) {
	log := zerolog.Ctx(ctx)
	var req protocol.ExecRequest
	if err := protocol.Decode(m.Data, &req); err != nil {
		log.Warn().Err(err).Msg("exec request rejected")
		return
	}
	fail := func(msg string) {
		_ = s.nc.Publish(m.Reply, protocol.Encode(protocol.ExecOutput{Version: protocol.Version, Error: msg}))
	}
	if m.Reply == "" || req.Inbox != m.Reply {
		log.Warn().Msg("exec request rejected: its inbox is not its reply subject")
		return
	}
	if !strings.HasPrefix(m.Reply, adminInbox) {
		log.Warn().Str("inbox", m.Reply).Msg("exec request refused: not an admin's")
		fail("exec is for admins")
		return
	}
	if err := req.Validate(); err != nil {
		fail(err.Error())
		return
	}
	ex, ok := s.rt.(Execer)
	if !ok {
		fail("this node's runtime cannot run commands in containers")
		return
	}
	if s.running.Add(1) > maxExecs {
		s.running.Add(-1)
		fail("too many commands running on this node: try again shortly")
		return
	}
	go func() {
		defer s.running.Add(-1)
		s.run(ctx, ex, req)
	}()
}

// outputWriter publishes what a command writes on one stream.
type outputWriter struct {
	nc     *nats.Conn
	inbox  string
	stream int
}

func (w outputWriter) Write(b []byte) (int, error) {
	for off := 0; off < len(b); off += protocol.MaxExecChunk {
		chunk := b[off:min(len(b), off+protocol.MaxExecChunk)]
		if err := w.nc.Publish(w.inbox, protocol.Encode(protocol.ExecOutput{Version: protocol.Version, Stream: w.stream, Data: chunk})); err != nil {
			return off, err
		}
	}
	return len(b), nil
}

func (s *execServer) run(ctx context.Context, ex Execer, req protocol.ExecRequest) {
	log := zerolog.Ctx(ctx).With().Str("replica", req.Replica).Str("container", req.Container).Logger()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	inputs := make(chan *nats.Msg, 64)
	sub, err := s.nc.ChanSubscribe(req.Inbox+".stdin", inputs)
	if err != nil {
		_ = s.nc.Publish(req.Inbox, protocol.Encode(protocol.ExecOutput{Version: protocol.Version, Error: "listen for input: " + err.Error()}))
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	pr, pw := io.Pipe()
	defer pr.Close()
	resize := make(chan [2]uint16, 1)
	// The client's input, and its keep-alives: a client not heard from
	// in 3 of them is gone, and its command is killed.
	go func() {
		defer pw.Close()
		idle := time.NewTimer(3 * protocol.ExecKeepAlive)
		defer idle.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-idle.C:
				log.Info().Msg("exec client gone: killing its command")
				cancel()
				return
			case m := <-inputs:
				idle.Reset(3 * protocol.ExecKeepAlive)
				var in protocol.ExecInput
				if err := protocol.Decode(m.Data, &in); err != nil || len(in.Data) > protocol.MaxExecChunk {
					continue
				}
				if in.Rows > 0 && in.Cols > 0 {
					select {
					case resize <- [2]uint16{in.Rows, in.Cols}:
					default:
					}
				}
				if len(in.Data) > 0 && req.Stdin {
					if _, err := pw.Write(in.Data); err != nil {
						return
					}
				}
				if in.EOF {
					_ = pw.Close()
				}
			}
		}
	}()
	spec := ExecSpec{Command: req.Command, TTY: req.TTY, Rows: req.Rows, Cols: req.Cols, Resize: resize,
		Stdout: outputWriter{s.nc, req.Inbox, protocol.Stdout}, Stderr: outputWriter{s.nc, req.Inbox, protocol.Stderr}}
	if req.Stdin {
		spec.Stdin = pr
	}
	_ = s.nc.Publish(req.Inbox, protocol.Encode(protocol.ExecOutput{Version: protocol.Version, Started: true}))
	log.Info().Strs("command", req.Command).Bool("tty", req.TTY).Msg("exec")
	code, err := ex.Exec(ctx, req.Replica, req.Container, spec)
	out := protocol.ExecOutput{Version: protocol.Version, Exited: err == nil, ExitCode: code}
	if err != nil {
		out.Error = err.Error()
		if errors.Is(err, context.Canceled) {
			out.Error = "the command was killed: its client was gone or the agent stopped"
		}
	}
	_ = s.nc.Publish(req.Inbox, protocol.Encode(out))
	log.Info().Int("exitCode", code).Err(err).Msg("exec ended")
}
