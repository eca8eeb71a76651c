package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the JetStream key-value bucket holding the reconciler's state.
const Bucket = "baton"

// KeySynced holds the SyncedRevision.
const KeySynced = "revision.synced"

// ErrConflict is returned by a write when the key changed since this store
// last read or wrote it: another reconciler writes the bucket, so this one
// is no longer the leader.
var ErrConflict = errors.New("state changed by another writer")

// SyncedRevision is the last revision whose desired state the reconciler applied.
type SyncedRevision struct {
	Revision string    `json:"revision"`
	Time     time.Time `json:"time"`
}

// Store keeps the reconciler's state in a JetStream KV bucket, so a restarted
// reconciler resumes where it stopped. Every write is a compare-and-set on
// the revision of the key this store last saw (a create for a key it saw
// absent).
type Store struct {
	kv jetstream.KeyValue

	mu   sync.Mutex
	revs map[string]uint64 // last revision seen per key; 0: absent or deleted
}

// Open creates the bucket if needed. replicas is the bucket's replication
// factor (1 on a single server, 3 on a cluster).
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Baton reconciler state",
		History:     5,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("open key-value bucket %q: %w", Bucket, err)
	}
	return &Store{kv: kv, revs: map[string]uint64{}}, nil
}

// openBucket opens the state bucket for a reader that runs no reconciler
// (the CLI, the API of any server).
func openBucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if err != nil {
		return nil, fmt.Errorf("open key-value bucket %q (is a baton server running?): %w", Bucket, err)
	}
	return kv, nil
}

// Reset drops the revisions seen: a reconciler that starts to lead reads
// everything again.
func (s *Store) Reset() {
	s.mu.Lock()
	s.revs = map[string]uint64{}
	s.mu.Unlock()
}

func (s *Store) seen(key string, rev uint64) {
	s.mu.Lock()
	s.revs[key] = rev
	s.mu.Unlock()
}

// Put writes v at key with a compare-and-set.
func (s *Store) Put(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	s.mu.Lock()
	rev := s.revs[key]
	s.mu.Unlock()
	var next uint64
	if rev == 0 {
		next, err = s.kv.Create(ctx, key, b)
	} else {
		next, err = s.kv.Update(ctx, key, b, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("put %s: %w", key, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	s.seen(key, next)
	return nil
}

// Delete deletes key with a compare-and-set; a key never seen is not there.
func (s *Store) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	rev := s.revs[key]
	s.mu.Unlock()
	if rev == 0 {
		return nil
	}
	err := s.kv.Delete(ctx, key, jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("delete %s: %w", key, ErrConflict)
	}
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	s.seen(key, 0)
	return nil
}

// Get reads one key into v; found is false when it is absent.
func (s *Store) Get(ctx context.Context, key string, v any) (bool, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		s.seen(key, 0)
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get %s: %w", key, err)
	}
	s.seen(key, e.Revision())
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return false, fmt.Errorf("decode %s: %w", key, err)
	}
	return true, nil
}

// List reads every key under prefix, by the rest of the key. A damaged
// record (not JSON, or refused by valid) is skipped: the state it held is
// rebuilt from what runs.
func List[T any](ctx context.Context, s *Store, prefix string, valid func(name string, v T) bool) (map[string]T, error) {
	out := map[string]T{}
	lister, err := s.kv.ListKeysFiltered(ctx, prefix+">")
	if err != nil {
		return nil, fmt.Errorf("list %s*: %w", prefix, err)
	}
	defer lister.Stop()
	for key := range lister.Keys() {
		e, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get %s: %w", key, err)
		}
		s.seen(key, e.Revision())
		var v T
		name := strings.TrimPrefix(key, prefix)
		if json.Unmarshal(e.Value(), &v) != nil || (valid != nil && !valid(name, v)) {
			continue
		}
		out[name] = v
	}
	return out, nil
}

// Synced returns the last synced revision, or a zero value if there is none.
func (s *Store) Synced(ctx context.Context) (SyncedRevision, error) {
	var sr SyncedRevision
	_, err := s.Get(ctx, KeySynced, &sr)
	return sr, err
}

// Short12 is a commit as messages show it.
func Short12(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
