package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
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
	node    string
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
		_ = s.nc.Publish(m.Reply, protocol.Encode(protocol.ExecOutput{Version: protocol.Version, Seq: 1, Error: msg}))
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

// session is one command's messages to its client, numbered in order.
type session struct {
	nc    *nats.Conn
	inbox string
	mu    sync.Mutex
	seq   uint64
}

func (s *session) send(out protocol.ExecOutput) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	out.Version, out.Seq = protocol.Version, s.seq
	return s.nc.Publish(s.inbox, protocol.Encode(out))
}

// streamWriter sends what a command writes on one stream.
type streamWriter struct {
	s      *session
	stream int
}

func (w streamWriter) Write(b []byte) (int, error) {
	for off := 0; off < len(b); off += protocol.MaxExecChunk {
		if err := w.s.send(protocol.ExecOutput{Stream: w.stream, Data: b[off:min(len(b), off+protocol.MaxExecChunk)]}); err != nil {
			return off, err
		}
	}
	return len(b), nil
}

func (s *execServer) run(ctx context.Context, ex Execer, req protocol.ExecRequest) {
	// The command's line may hold secrets: its name only, but at debug.
	log := zerolog.Ctx(ctx).With().Str("replica", req.Replica).Str("container", req.Container).Logger()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	out := &session{nc: s.nc, inbox: req.Inbox}
	// The client's input: numbered chunks, at most ExecWindow unacknowledged
	// (more is a client that does not follow the protocol), sizes, its end,
	// and keep-alives; a client not heard from in 3 of them is gone.
	inputs := make(chan protocol.ExecInput, 2*protocol.ExecWindow+8)
	sub, err := s.nc.Subscribe(protocol.ExecInputSubject(s.node, req.Session), func(m *nats.Msg) {
		var in protocol.ExecInput
		if err := protocol.Decode(m.Data, &in); err != nil || len(in.Data) > protocol.MaxExecChunk {
			cancel(errors.New("a malformed input"))
			return
		}
		select {
		case inputs <- in:
		default:
			cancel(errors.New("more input than the window allows"))
		}
	})
	if err != nil {
		_ = out.send(protocol.ExecOutput{Error: "listen for input: " + err.Error()})
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	pr, pw := io.Pipe()
	defer pr.Close()
	data := make(chan []byte, protocol.ExecWindow)
	resize := make(chan [2]uint16, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	go func() { // writes input to the command, acknowledging each chunk
		defer wg.Done()
		defer pw.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case b, ok := <-data:
				if !ok {
					return // its end: the command reads EOF
				}
				if _, err := pw.Write(b); err != nil {
					return
				}
				_ = out.send(protocol.ExecOutput{Ack: 1})
			}
		}
	}()
	go func() {
		defer wg.Done()
		idle := time.NewTimer(3 * protocol.ExecKeepAlive)
		defer idle.Stop()
		keepAlive := time.NewTicker(protocol.ExecKeepAlive)
		defer keepAlive.Stop()
		next, ended := uint64(1), false
		for {
			select {
			case <-ctx.Done():
				return
			case <-keepAlive.C:
				_ = out.send(protocol.ExecOutput{})
			case <-idle.C:
				cancel(errors.New("its client is gone"))
				return
			case in := <-inputs:
				idle.Reset(3 * protocol.ExecKeepAlive)
				if in.Rows > 0 && in.Cols > 0 {
					select {
					case resize <- [2]uint16{in.Rows, in.Cols}:
					default:
					}
				}
				if len(in.Data) > 0 && req.Stdin && !ended {
					if in.Seq != next {
						cancel(fmt.Errorf("input lost: chunk %d came where %d was due", in.Seq, next))
						return
					}
					next++
					select {
					case data <- in.Data:
					default:
						cancel(errors.New("more input than the window allows"))
						return
					}
				}
				if in.EOF && !ended {
					ended = true
					close(data)
				}
			}
		}
	}()
	spec := ExecSpec{Command: req.Command, TTY: req.TTY, Rows: req.Rows, Cols: req.Cols, Resize: resize,
		Stdout: streamWriter{out, protocol.Stdout}, Stderr: streamWriter{out, protocol.Stderr}}
	if req.Stdin {
		spec.Stdin = pr
	}
	_ = out.send(protocol.ExecOutput{Started: true})
	log.Info().Str("command", req.Command[0]).Bool("tty", req.TTY).Msg("exec")
	log.Debug().Strs("args", req.Command[1:]).Msg("exec arguments")
	code, err := ex.Exec(ctx, req.Replica, req.Container, spec)
	end := protocol.ExecOutput{Exited: err == nil, ExitCode: code}
	if err != nil {
		end.Error = err.Error()
		if cause := context.Cause(ctx); ctx.Err() != nil && cause != nil {
			end.Error = "the command was killed: " + cause.Error()
		}
	}
	_ = out.send(end)
	cancel(nil)
	log.Info().Int("exitCode", code).Err(err).Msg("exec ended")
}
