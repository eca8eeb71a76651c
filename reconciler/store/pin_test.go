package store

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/batonhq/baton/internal/testenv"
	"github.com/nats-io/nats.go/jetstream"
)

// TestPinRevision: a pin names one revision applied before, by a prefix of
// 7 hex digits or more; an ambiguous or short prefix is refused.
func TestPinRevision(t *testing.T) {
	nc := testenv.NATS(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := Open(context.Background(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	revs := []string{"abcdef1111111111111111111111111111111111", "abcdef2222222222222222222222222222222222", "1234567333333333333333333333333333333333"}
	for i, rev := range append(revs, revs[2]) { // applied twice: still one revision
		if err := kv.Put(ctx, HistoryKey(uint64(i+1)), HistoryEntry{Revision: rev, Seq: uint64(i + 1), Outcome: OutcomeConverged}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		rev  string
		want error
	}{
		{"abcdef", ErrBadPin},    // too short
		{"abcdef1", nil},         // unique
		{"ABCDEF2", nil},         // case does not matter
		{"abcdef12x", ErrBadPin}, // not hex
		{"1234567", nil},         // applied twice, one revision
		{"7654321", ErrNeverApplied},
	} {
		_, err := PinRevision(ctx, js, tt.rev, "me", strings.Repeat("x", 5000))
		if !errors.Is(err, tt.want) {
			t.Errorf("PinRevision(%q): %v, want %v", tt.rev, err, tt.want)
		}
	}
	p, err := ReadPin(ctx, js)
	if err != nil || p == nil || p.Revision != revs[2] || len(p.Reason) != MaxPinText {
		t.Fatalf("pin %+v %v", p, err)
	}
	if err := kv.Put(ctx, HistoryKey(9), HistoryEntry{Revision: "abcdef1999999999999999999999999999999999", Seq: 9}); err != nil {
		t.Fatal(err)
	}
	if _, err := PinRevision(ctx, js, "abcdef1", "", ""); !errors.Is(err, ErrBadPin) || !strings.Contains(err.Error(), "give more digits") {
		t.Fatalf("ambiguous prefix: %v", err)
	}
}
