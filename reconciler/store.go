package reconciler

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

const (
	keySynced        = "revision.synced"
	assignmentPrefix = "assign."
	rolloutPrefix    = "rollout."
	hpaPrefix        = "hpa."
	cronPrefix       = "cron."
)

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

// OpenStore creates the bucket if needed. replicas is the bucket's replication
// factor (1 on a single server, 3 on a cluster).
func OpenStore(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
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

// forget drops the revisions seen: a reconciler that starts reads
// everything again.
func (s *Store) forget() {
	s.mu.Lock()
	s.revs = map[string]uint64{}
	s.mu.Unlock()
}

func (s *Store) seen(key string, rev uint64) {
	s.mu.Lock()
	s.revs[key] = rev
	s.mu.Unlock()
}

// put writes v at key with a compare-and-set.
func (s *Store) put(ctx context.Context, key string, v any) error {
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

// del deletes key with a compare-and-set; a key never seen is not there.
func (s *Store) del(ctx context.Context, key string) error {
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

// get reads one key into v; found is false when it is absent.
func (s *Store) get(ctx context.Context, key string, v any) (bool, error) {
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

// list reads every key under prefix. A damaged record (not JSON, or refused
// by valid) is skipped: the state it held is rebuilt from what runs.
func list[T any](ctx context.Context, s *Store, prefix string, valid func(name string, v T) bool) (map[string]T, error) {
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
	_, err := s.get(ctx, keySynced, &sr)
	return sr, err
}

// SetSynced records rev as the last synced revision.
func (s *Store) SetSynced(ctx context.Context, sr SyncedRevision) error {
	return s.put(ctx, keySynced, sr)
}

// Assignments loads every recorded assignment.
func (s *Store) Assignments(ctx context.Context) (map[string]Assignment, error) {
	return list(ctx, s, assignmentPrefix, func(id string, a Assignment) bool { return a.ReplicaID == id })
}

// PutAssignment records a.
func (s *Store) PutAssignment(ctx context.Context, a Assignment) error {
	return s.put(ctx, assignmentPrefix+a.ReplicaID, a)
}

// DeleteAssignment removes the assignment of a replica.
func (s *Store) DeleteAssignment(ctx context.Context, id string) error {
	return s.del(ctx, assignmentPrefix+id)
}

// Rollouts loads the rollout record of every workload.
func (s *Store) Rollouts(ctx context.Context) (map[string]Rollout, error) {
	return list(ctx, s, rolloutPrefix, func(w string, ro Rollout) bool { return ro.Workload == w })
}

// PutRollout records a workload's rollout.
func (s *Store) PutRollout(ctx context.Context, ro Rollout) error {
	return s.put(ctx, rolloutPrefix+ro.Workload, ro)
}

// Autoscalers loads the state of every autoscaler, by target workload.
func (s *Store) Autoscalers(ctx context.Context) (map[string]HPAState, error) {
	return list[HPAState](ctx, s, hpaPrefix, nil)
}

// PutAutoscaler records the autoscaler state of a workload.
func (s *Store) PutAutoscaler(ctx context.Context, workload string, st HPAState) error {
	return s.put(ctx, hpaPrefix+workload, st)
}

// Crons loads the state of every CronJob, by name.
func (s *Store) Crons(ctx context.Context) (map[string]CronState, error) {
	return list[CronState](ctx, s, cronPrefix, nil)
}

// PutCron records a CronJob's state.
func (s *Store) PutCron(ctx context.Context, name string, st CronState) error {
	return s.put(ctx, cronPrefix+name, st)
}
