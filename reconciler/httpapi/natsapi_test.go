package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler/httpapi"
	"github.com/batonhq/baton/reconciler/store"
)

// TestOperatorRequestsOverNATS: the CLI's reads and changes over NATS go
// through a server (which alone touches the state's KV), with the same
// answers and refusals as the HTTP API.
func TestOperatorRequestsOverNATS(t *testing.T) {
	nc := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := httpapi.Ask(ctx, nc, protocol.HistorySubject, nil, nil); err == nil || !strings.Contains(err.Error(), "no server answers") {
		t.Fatalf("without a server: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	events, err := store.OpenEventLog(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Append("2026-12-01T00:00:00Z start hello/1 on n1: scale up"); err != nil {
		t.Fatal(err)
	}
	stop, err := httpapi.New(httpapi.Config{JS: js, ID: "s1", Tokens: nil, Log: zerolog.Nop()}).ServeNATS(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	testenv.WaitFor(t, 10*time.Second, "the event in the log", func() (bool, string) {
		var got []string
		err := httpapi.Ask(ctx, nc, protocol.EventsSubject, httpapi.EventsRequest{Tail: 10}, &got)
		return err == nil && len(got) == 1 && strings.Contains(got[0], "start hello/1"), strings.Join(got, "; ")
	})
	var h []store.HistoryEntry
	if err := httpapi.Ask(ctx, nc, protocol.HistorySubject, nil, &h); err != nil || len(h) != 0 {
		t.Fatalf("history: %v %v", h, err)
	}
	for _, c := range []struct {
		subject string
		body    any
		code    int
		msg     string
	}{
		{protocol.PinSubject, httpapi.PinRequest{Revision: "abc"}, 400, "7 hex digits"},
		{protocol.PinSubject, httpapi.PinRequest{Revision: "abcdef0"}, 404, "never applied"},
		{protocol.PinSubject, map[string]int{"revision": 1}, 400, "want {"},
		{protocol.EventsSubject, httpapi.EventsRequest{Tail: -1}, 400, "tail"},
	} {
		var ae *httpapi.AnswerError
		if err := httpapi.Ask(ctx, nc, c.subject, c.body, nil); !errors.As(err, &ae) || ae.Code != c.code || !strings.Contains(ae.Msg, c.msg) {
			t.Fatalf("%s %v: %v, want %d %q", c.subject, c.body, err, c.code, c.msg)
		}
	}
	if err := httpapi.Ask(ctx, nc, protocol.UnpinSubject, nil, nil); err != nil {
		t.Fatal(err)
	}

	// A request whose reply names another subject is not answered there
	// (with the server's permissions it could be an admin request or a KV
	// key): the requests on one subscription are handled in order, so
	// once a later request is answered the first was handled.
	target, err := nc.SubscribeSync("baton.api.admin.unpin")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest(protocol.HistorySubject, "baton.api.admin.unpin", nil); err != nil {
		t.Fatal(err)
	}
	if err := httpapi.Ask(ctx, nc, protocol.HistorySubject, nil, nil); err != nil {
		t.Fatal(err)
	}
	if m, err := target.NextMsg(50 * time.Millisecond); err == nil {
		t.Fatalf("the server answered onto %s: %s", m.Subject, m.Data)
	}

	// Events past what a NATS message carries: the newest that fit.
	big := strings.Repeat("x", 3000)
	for i := range 500 {
		if err := events.Append(fmt.Sprintf("event %03d %s", i, big)); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 10*time.Second, "the newest events that fit", func() (bool, string) {
		var got []string
		if err := httpapi.Ask(ctx, nc, protocol.EventsSubject, httpapi.EventsRequest{Tail: 0}, &got); err != nil {
			return false, err.Error()
		}
		ok := len(got) > 100 && len(got) < 500 && strings.HasPrefix(got[len(got)-1], "event 499")
		return ok, fmt.Sprintf("%d events", len(got))
	})
	var pin *store.Pin
	if err := httpapi.Ask(ctx, nc, protocol.PinReadSubject, nil, &pin); err != nil || pin != nil {
		t.Fatalf("pin after unpin: %+v %v", pin, err)
	}
}
