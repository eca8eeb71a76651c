package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Events stream: every decision of every leader, newest kept, oldest
// dropped past the bounds, so `baton events` shows them across takeovers.
const (
	EventStream      = "BATON_EVENTS"
	EventSubject     = "baton.events"
	MaxStoredEvents  = 10_000
	maxEventLogBytes = 16 << 20
	maxEventBytes    = 4 << 10
)

// EventLog appends events to the JetStream stream.
type EventLog struct {
	js jetstream.JetStream
}

// OpenEventLog creates the events stream if needed.
func OpenEventLog(ctx context.Context, js jetstream.JetStream, replicas int) (*EventLog, error) {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        EventStream,
		Description: "Baton reconciler decisions",
		Subjects:    []string{EventSubject},
		MaxMsgs:     MaxStoredEvents,
		MaxBytes:    maxEventLogBytes,
		MaxMsgSize:  maxEventBytes,
		Discard:     jetstream.DiscardOld,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", EventStream, err)
	}
	return &EventLog{js: js}, nil
}

// Append publishes one event line without waiting for the acknowledgement:
// events must never slow the reconciler down.
func (l *EventLog) Append(line string) error {
	if len(line) > maxEventBytes {
		line = line[:maxEventBytes-3] + "..."
	}
	_, err := l.js.PublishAsync(EventSubject, []byte(line))
	return err
}

// Recent returns the newest n events of the log's stream, oldest first.
func (l *EventLog) Recent(ctx context.Context, n int) ([]string, error) {
	return Recent(ctx, l.js, n)
}

// Recent returns the newest n events, oldest first.
func Recent(ctx context.Context, js jetstream.JetStream, n int) ([]string, error) {
	s, err := js.Stream(ctx, EventStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("events stream: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("events stream: %w", err)
	}
	if info.State.Msgs == 0 {
		return nil, nil
	}
	first := info.State.FirstSeq
	if n > 0 && info.State.LastSeq-first+1 > uint64(n) {
		first = info.State.LastSeq - uint64(n) + 1
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: first})
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	var out []string
	for uint64(len(out)) < info.State.LastSeq-first+1 {
		batch, err := c.Fetch(min(int(info.State.LastSeq-first+1)-len(out), 500), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return out, fmt.Errorf("read events: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			out = append(out, string(m.Data()))
			got++
		}
		if got == 0 {
			break // the rest was dropped meanwhile
		}
	}
	return out, nil
}
