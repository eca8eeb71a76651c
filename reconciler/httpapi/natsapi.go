package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/internal/identity"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler/store"
)

// Answer is the reply to an operator's request over NATS: Value under its
// key, or Error (with Code, as the HTTP API's status would be).
type Answer struct {
	Value json.RawMessage `json:"value,omitempty"`
	Error string          `json:"error,omitempty"`
	Code  int             `json:"code,omitempty"`
}

// EventsRequest is the body of protocol.EventsSubject.
type EventsRequest struct {
	Tail int `json:"tail"`
}

// Handler answers one kind of operator request: its body in, the answer's
// value out. An *AnswerError's code is the answer's.
type Handler func(ctx context.Context, body []byte) (any, error)

// ServeNATS answers operators' requests on NATS (events, history, the pin,
// and joining when SetJoining was called) from this server's view of the
// state, in the servers' queue group: the CLI reads and changes the control
// plane through the servers, never the state's KV directly. stop ends it.
func (s *Server) ServeNATS(ctx context.Context, nc *nats.Conn) (stop func(), err error) {
	handlers := map[string]Handler{
		protocol.EventsSubject: func(ctx context.Context, body []byte) (any, error) {
			req := EventsRequest{Tail: 200}
			if len(body) > 0 {
				if err := json.Unmarshal(body, &req); err != nil || req.Tail < 0 {
					return nil, badRequest("events: want {\"tail\": N ≥ 0}")
				}
			}
			events, err := store.Recent(ctx, s.js, req.Tail)
			return newestThatFit(events), err
		},
		protocol.HistorySubject: func(ctx context.Context, _ []byte) (any, error) {
			h, err := store.ReadHistory(ctx, s.js)
			return store.WithoutChanges(h), err
		},
		protocol.PinReadSubject: func(ctx context.Context, _ []byte) (any, error) { return store.ReadPin(ctx, s.js) },
		protocol.PinSubject: func(ctx context.Context, body []byte) (any, error) {
			var req PinRequest
			if err := json.Unmarshal(body, &req); err != nil || req.Revision == "" {
				return nil, badRequest(`pin: want {"revision": "COMMIT", "reason": "..."}`)
			}
			return store.PinRevision(ctx, s.js, req.Revision, req.By, req.Reason)
		},
		protocol.UnpinSubject: func(ctx context.Context, _ []byte) (any, error) { return nil, store.ClearPin(ctx, s.js) },
		protocol.NodeControlSubject: func(ctx context.Context, body []byte) (any, error) {
			var c store.NodeControl
			if err := json.Unmarshal(body, &c); err != nil || !identity.ValidName(c.Node) {
				return nil, badRequest(`node control: want {"node": NAME, "cordoned": bool, "draining": bool}`)
			}
			return s.setNodeControl(ctx, c)
		},
	}
	s.mu.Lock()
	maps.Copy(handlers, s.joining)
	s.mu.Unlock()
	var subs []*nats.Subscription
	stop = func() {
		for _, sub := range subs {
			_ = sub.Unsubscribe()
		}
	}
	for subject, h := range handlers {
		sub, err := nc.QueueSubscribe(subject, protocol.APIQueue, func(m *nats.Msg) {
			if !protocol.IsInbox(m.Reply) {
				// Never answer onto another subject with the server's
				// permissions (a reply naming baton.api.admin.unpin, or a
				// KV key).
				zerolog.Ctx(ctx).Warn().Str("subject", m.Subject).Str("reply", m.Reply).Msg("operator request refused: its reply is not an inbox")
				return
			}
			if len(m.Data) > protocol.MaxMessageBytes {
				s.respond(ctx, m, nil, badRequest("request too large"))
				return
			}
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			v, err := h(rctx, m.Data)
			s.respond(ctx, m, v, err)
		})
		if err != nil {
			stop()
			return nil, fmt.Errorf("subscribe %s: %w", subject, err)
		}
		subs = append(subs, sub)
	}
	return stop, nil
}

// maxAnswerBytes bounds an answer over NATS (the server's payload limit,
// less room for the headers).
const maxAnswerBytes = protocol.MaxMessageBytes - 4<<10

// newestThatFit keeps the newest events whose JSON fits in an answer.
func newestThatFit(events []string) []string {
	size := 64
	for i := len(events) - 1; i >= 0; i-- {
		size += len(events[i]) + 16 // quotes, comma, escapes (most)
		if size > maxAnswerBytes*3/4 {
			return events[i+1:]
		}
	}
	return events
}

// requestError is an error the requester caused.
type requestError string

func (e requestError) Error() string { return string(e) }

func badRequest(msg string) error { return requestError(msg) }

func (s *Server) respond(ctx context.Context, m *nats.Msg, v any, err error) {
	var a Answer
	if err != nil {
		a.Error, a.Code = err.Error(), statusOf(err)
	} else {
		b, merr := json.Marshal(v)
		if merr != nil {
			a.Error, a.Code = merr.Error(), 500
		} else {
			a.Value = b
		}
	}
	out, _ := json.Marshal(a)
	if len(out) > maxAnswerBytes {
		out, _ = json.Marshal(Answer{Error: fmt.Sprintf("the answer is %d bytes, more than a NATS message carries (%d): ask for less (a smaller --tail), or use the HTTP API", len(out), maxAnswerBytes), Code: 413})
	}
	if err := m.Respond(out); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("subject", m.Subject).Msg("answer an operator's request")
	}
}

// Ask makes an operator's request to the servers over NATS and decodes the
// answer's value into out (when not nil).
func Ask(ctx context.Context, nc *nats.Conn, subject string, body, out any) error {
	var data []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		data = b
	}
	m, err := nc.RequestWithContext(ctx, subject, data)
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("%s: no server answers (is baton up or baton server running?)", subject)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	var a Answer
	if err := json.Unmarshal(m.Data, &a); err != nil {
		return fmt.Errorf("%s: bad answer: %w", subject, err)
	}
	if a.Error != "" {
		return &AnswerError{Code: a.Code, Msg: a.Error}
	}
	if out == nil || len(a.Value) == 0 {
		return nil
	}
	if err := json.Unmarshal(a.Value, out); err != nil {
		return fmt.Errorf("%s: bad answer: %w", subject, err)
	}
	return nil
}

// AnswerError is a server's refusal of an operator's request.
type AnswerError struct {
	Code int
	Msg  string
}

func (e *AnswerError) Error() string { return e.Msg }
