package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Pin holds the cluster on one revision while the Git host is down or an
// incident is handled: the server applies it from its cache and stops
// following the branch until it is removed.
type Pin struct {
	Revision string    `json:"revision"`
	By       string    `json:"by,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
}

// KeyPin holds the Pin.
const KeyPin = "pin"

// SetPin pins the cluster to p.Revision (a full commit hash).
func SetPin(ctx context.Context, js jetstream.JetStream, p Pin) error {
	kv, err := openBucket(ctx, js)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(p)
	if _, err := kv.Put(ctx, KeyPin, b); err != nil {
		return fmt.Errorf("pin: %w", err)
	}
	return nil
}

// PinRevision pins the cluster to rev, a full commit or a prefix of at
// least 7 hex digits naming one revision the cluster applied before (the
// servers' cache holds only those), and returns its latest history entry.
// by and reason are cut to MaxPinText bytes.
func PinRevision(ctx context.Context, js jetstream.JetStream, rev, by, reason string) (HistoryEntry, error) {
	if len(rev) < 7 || len(rev) > 40 || strings.Trim(strings.ToLower(rev), "0123456789abcdef") != "" {
		return HistoryEntry{}, fmt.Errorf("%w: revision %q: want a commit hash or a prefix of 7 hex digits or more", ErrBadPin, rev)
	}
	rev = strings.ToLower(rev)
	h, err := ReadHistory(ctx, js)
	if err != nil {
		return HistoryEntry{}, err
	}
	var found *HistoryEntry
	for i := len(h) - 1; i >= 0; i-- {
		if !strings.HasPrefix(h[i].Revision, rev) {
			continue
		}
		if found != nil && found.Revision != h[i].Revision {
			return HistoryEntry{}, fmt.Errorf("%w: %q names %s and %s: give more digits", ErrBadPin, rev, Short12(found.Revision), Short12(h[i].Revision))
		}
		if found == nil {
			found = &h[i]
		}
	}
	if found == nil {
		return HistoryEntry{}, fmt.Errorf("%w: %q (see baton history): only those are in the servers' cache", ErrNeverApplied, rev)
	}
	p := Pin{Revision: found.Revision, By: cut(by, MaxPinText), Reason: cut(reason, MaxPinText), At: time.Now().UTC()}
	return *found, SetPin(ctx, js, p)
}

// MaxPinText bounds a pin's by and reason.
const MaxPinText = 1024

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// ErrBadPin: a pin's revision is malformed or ambiguous.
var ErrBadPin = errors.New("bad pin")

// ErrNeverApplied: a pin names a revision the cluster never applied.
var ErrNeverApplied = errors.New("revision was never applied")

// ClearPin removes the pin: the servers follow the branch again.
func ClearPin(ctx context.Context, js jetstream.JetStream) error {
	kv, err := openBucket(ctx, js)
	if err != nil {
		return err
	}
	if err := kv.Delete(ctx, KeyPin); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("unpin: %w", err)
	}
	return nil
}

// ReadPin returns the pin, or nil when there is none.
func ReadPin(ctx context.Context, js jetstream.JetStream) (*Pin, error) {
	kv, err := openBucket(ctx, js)
	if err != nil {
		return nil, err
	}
	e, err := kv.Get(ctx, KeyPin)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pin: %w", err)
	}
	var p Pin
	if err := json.Unmarshal(e.Value(), &p); err != nil {
		return nil, fmt.Errorf("read pin: %w", err)
	}
	return &p, nil
}

// WatchPin calls onChange with the pin (nil when there is none) now and at
// each change, until ctx ends; it returns then (nil), or when the watch
// cannot be set up or breaks.
func WatchPin(ctx context.Context, js jetstream.JetStream, onChange func(*Pin)) error {
	kv, err := openBucket(ctx, js)
	if err != nil {
		return err
	}
	w, err := kv.Watch(ctx, KeyPin)
	if err != nil {
		return fmt.Errorf("watch pin: %w", err)
	}
	defer func() { _ = w.Stop() }()
	seenInitial := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("watch pin: the watch ended")
			}
			if e == nil { // end of the initial values
				if !seenInitial {
					seenInitial = true
					onChange(nil)
				}
				continue
			}
			seenInitial = true
			if e.Operation() != jetstream.KeyValuePut {
				onChange(nil)
				continue
			}
			var p Pin
			if err := json.Unmarshal(e.Value(), &p); err != nil {
				zerolog.Ctx(ctx).Warn().Err(err).Msg("pin record damaged: ignored")
				continue
			}
			onChange(&p)
		}
	}
}
