package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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

// SyncedRevision is the last revision whose desired state the reconciler applied.
type SyncedRevision struct {
	Revision string    `json:"revision"`
	Time     time.Time `json:"time"`
}

// Store keeps the reconciler's state in a JetStream KV bucket, so a restarted
// reconciler resumes where it stopped.
type Store struct {
	kv jetstream.KeyValue
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
	return &Store{kv: kv}, nil
}

// Synced returns the last synced revision, or a zero value if there is none.
func (s *Store) Synced(ctx context.Context) (SyncedRevision, error) {
	var sr SyncedRevision
	e, err := s.kv.Get(ctx, keySynced)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return sr, nil
	}
	if err != nil {
		return sr, fmt.Errorf("get %s: %w", keySynced, err)
	}
	if err := json.Unmarshal(e.Value(), &sr); err != nil {
		return sr, fmt.Errorf("decode %s: %w", keySynced, err)
	}
	return sr, nil
}

// SetSynced records rev as the last synced revision.
func (s *Store) SetSynced(ctx context.Context, sr SyncedRevision) error {
	b, _ := json.Marshal(sr)
	if _, err := s.kv.Put(ctx, keySynced, b); err != nil {
		return fmt.Errorf("put %s: %w", keySynced, err)
	}
	return nil
}

// Assignments loads every recorded assignment.
func (s *Store) Assignments(ctx context.Context) (map[string]Assignment, error) {
	out := map[string]Assignment{}
	lister, err := s.kv.ListKeysFiltered(ctx, assignmentPrefix+">")
	if err != nil {
		return nil, fmt.Errorf("list assignments: %w", err)
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
		var a Assignment
		if err := json.Unmarshal(e.Value(), &a); err != nil || a.ReplicaID != strings.TrimPrefix(key, assignmentPrefix) {
			// A damaged record must not stop the reconciler: the replica, if it
			// runs, is adopted from its node's report.
			continue
		}
		out[a.ReplicaID] = a
	}
	return out, nil
}

// PutAssignment records a.
func (s *Store) PutAssignment(ctx context.Context, a Assignment) error {
	b, _ := json.Marshal(a)
	if _, err := s.kv.Put(ctx, assignmentPrefix+a.ReplicaID, b); err != nil {
		return fmt.Errorf("put assignment %s: %w", a.ReplicaID, err)
	}
	return nil
}

// DeleteAssignment removes the assignment of a replica.
func (s *Store) DeleteAssignment(ctx context.Context, id string) error {
	if err := s.kv.Purge(ctx, assignmentPrefix+id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete assignment %s: %w", id, err)
	}
	return nil
}

// Rollouts loads the rollout record of every workload.
func (s *Store) Rollouts(ctx context.Context) (map[string]Rollout, error) {
	out := map[string]Rollout{}
	lister, err := s.kv.ListKeysFiltered(ctx, rolloutPrefix+">")
	if err != nil {
		return nil, fmt.Errorf("list rollouts: %w", err)
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
		var ro Rollout
		if err := json.Unmarshal(e.Value(), &ro); err != nil || ro.Workload != strings.TrimPrefix(key, rolloutPrefix) {
			continue // damaged: the rollout starts over, from what runs
		}
		out[ro.Workload] = ro
	}
	return out, nil
}

// PutRollout records a workload's rollout.
func (s *Store) PutRollout(ctx context.Context, ro Rollout) error {
	b, _ := json.Marshal(ro)
	if _, err := s.kv.Put(ctx, rolloutPrefix+ro.Workload, b); err != nil {
		return fmt.Errorf("put rollout %s: %w", ro.Workload, err)
	}
	return nil
}

// Autoscalers loads the state of every autoscaler, by target workload.
func (s *Store) Autoscalers(ctx context.Context) (map[string]HPAState, error) {
	out := map[string]HPAState{}
	lister, err := s.kv.ListKeysFiltered(ctx, hpaPrefix+">")
	if err != nil {
		return nil, fmt.Errorf("list autoscalers: %w", err)
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
		var st HPAState
		if err := json.Unmarshal(e.Value(), &st); err != nil {
			continue // damaged: the autoscaler starts from the live count
		}
		out[strings.TrimPrefix(key, hpaPrefix)] = st
	}
	return out, nil
}

// PutAutoscaler records the autoscaler state of a workload.
func (s *Store) PutAutoscaler(ctx context.Context, workload string, st HPAState) error {
	b, _ := json.Marshal(st)
	if _, err := s.kv.Put(ctx, hpaPrefix+workload, b); err != nil {
		return fmt.Errorf("put autoscaler %s: %w", workload, err)
	}
	return nil
}

// Crons loads the state of every CronJob, by name.
func (s *Store) Crons(ctx context.Context) (map[string]CronState, error) {
	out := map[string]CronState{}
	lister, err := s.kv.ListKeysFiltered(ctx, cronPrefix+">")
	if err != nil {
		return nil, fmt.Errorf("list cronjobs: %w", err)
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
		var st CronState
		if err := json.Unmarshal(e.Value(), &st); err != nil {
			continue // damaged: the CronJob starts over from now
		}
		out[strings.TrimPrefix(key, cronPrefix)] = st
	}
	return out, nil
}

// PutCron records a CronJob's state.
func (s *Store) PutCron(ctx context.Context, name string, st CronState) error {
	b, _ := json.Marshal(st)
	if _, err := s.kv.Put(ctx, cronPrefix+name, b); err != nil {
		return fmt.Errorf("put cronjob %s: %w", name, err)
	}
	return nil
}
