package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/batonhq/baton/internal/testenv"
)

func open(t *testing.T, js jetstream.JetStream) *Store {
	t.Helper()
	s, err := Open(context.Background(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type record struct {
	Node string `json:"node"`
}

// TestStore: what one store writes, another on the same bucket reads (as a
// restarted reconciler does), skipping damaged records.
func TestStore(t *testing.T) {
	ctx := context.Background()
	js, err := jetstream.New(testenv.NATS(t))
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, js)
	if sr, err := s.Synced(ctx); err != nil || sr.Revision != "" {
		t.Fatalf("empty store: %+v %v", sr, err)
	}
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, w := range []struct {
		key string
		v   any
	}{{"assign.web-1", record{"n1"}}, {"assign.web-2", record{"n2"}}, {KeySynced, SyncedRevision{Revision: "deadbeef", Time: t0}}} {
		if err := s.Put(ctx, w.key, w.v); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "assign.web-2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "assign.never-there"); err != nil {
		t.Fatal(err)
	}
	kv, _ := js.KeyValue(ctx, Bucket)
	if _, err := kv.Put(ctx, "assign.damaged", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, js)
	as, err := List[record](ctx, s2, "assign.", nil)
	if err != nil || len(as) != 1 || as["web-1"].Node != "n1" {
		t.Fatalf("records %+v %v", as, err)
	}
	if sr, _ := s2.Synced(ctx); sr.Revision != "deadbeef" || !sr.Time.Equal(t0) {
		t.Fatalf("synced %+v", sr)
	}
}

// TestStoreCompareAndSet: a store whose view of a key is stale cannot
// overwrite or delete it: another reconciler wrote it.
func TestStoreCompareAndSet(t *testing.T) {
	ctx := context.Background()
	js, err := jetstream.New(testenv.NATS(t))
	if err != nil {
		t.Fatal(err)
	}
	old, cur := open(t, js), open(t, js)
	if err := old.Put(ctx, "assign.web-1", record{"n1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := List[record](ctx, cur, "assign.", nil); err != nil { // the new leader reads...
		t.Fatal(err)
	}
	if err := cur.Put(ctx, "assign.web-1", record{"n2"}); err != nil { // ...and writes
		t.Fatal(err)
	}
	if err := old.Put(ctx, "assign.web-1", record{"n3"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale put: %v, want ErrConflict", err)
	}
	if err := old.Delete(ctx, "assign.web-1"); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale delete: %v, want ErrConflict", err)
	}
	// A key the stale store never saw, written by the other: create conflicts.
	if err := cur.Put(ctx, KeySynced, SyncedRevision{Revision: "r2"}); err != nil {
		t.Fatal(err)
	}
	if err := old.Put(ctx, KeySynced, SyncedRevision{Revision: "r1"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale create: %v, want ErrConflict", err)
	}
	// The current store deletes, then creates again.
	if err := cur.Delete(ctx, "assign.web-1"); err != nil {
		t.Fatal(err)
	}
	if err := cur.Put(ctx, "assign.web-1", record{"n4"}); err != nil {
		t.Fatalf("create after delete: %v", err)
	}
}
