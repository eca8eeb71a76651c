package backup

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Version is the snapshot format's version.
const Version = 1

// MaxBytes bounds a snapshot, compressed and not.
const MaxBytes = 256 << 20

// Entry is one key of a bucket.
type Entry struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

// Snapshot is the state of a cluster at one time.
type Snapshot struct {
	Version int       `json:"version"`
	Taken   time.Time `json:"taken"`
	// Identity is the cluster identity's files (every key of the cluster).
	Identity map[string][]byte `json:"identity"`
	// Buckets are the KV buckets' keys, by bucket.
	Buckets map[string][]Entry `json:"buckets"`
}

// Take reads every key of buckets (a bucket that does not exist is left
// out) into a snapshot with identity.
func Take(ctx context.Context, js jetstream.JetStream, identity map[string][]byte, buckets ...string) (*Snapshot, error) {
	s := &Snapshot{Version: Version, Taken: time.Now().UTC(), Identity: identity, Buckets: map[string][]Entry{}}
	for _, b := range buckets {
		kv, err := js.KeyValue(ctx, b)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("bucket %s: %w", b, err)
		}
		lister, err := kv.ListKeys(ctx)
		if err != nil {
			return nil, fmt.Errorf("bucket %s: %w", b, err)
		}
		entries := []Entry{}
		for k := range lister.Keys() {
			e, err := kv.Get(ctx, k)
			if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
				continue // deleted meanwhile
			}
			if err != nil {
				return nil, fmt.Errorf("bucket %s key %s: %w", b, k, err)
			}
			entries = append(entries, Entry{Key: k, Value: e.Value()})
		}
		s.Buckets[b] = entries
	}
	return s, nil
}

// Write writes s to w, gzipped.
func (s *Snapshot) Write(w io.Writer) error {
	zw := gzip.NewWriter(w)
	if err := json.NewEncoder(zw).Encode(s); err != nil {
		return err
	}
	return zw.Close()
}

// Read reads a snapshot Write wrote, refusing one of another version or
// larger than MaxBytes.
func Read(r io.Reader) (*Snapshot, error) {
	zr, err := gzip.NewReader(io.LimitReader(r, MaxBytes))
	if err != nil {
		return nil, fmt.Errorf("not a baton backup (gzip): %w", err)
	}
	var s Snapshot
	dec := json.NewDecoder(io.LimitReader(zr, MaxBytes))
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("not a baton backup: %w", err)
	}
	if s.Version != Version {
		return nil, fmt.Errorf("backup format version %d; this baton reads %d", s.Version, Version)
	}
	return &s, nil
}

// ErrNotEmpty is a restore into a bucket that holds keys already.
var ErrNotEmpty = errors.New("bucket not empty")

// Apply writes the snapshot's buckets into a cluster's buckets, making
// those that do not exist yet with replicas copies; a bucket that holds keys already is refused
// (a restore never mixes two clusters' states). It returns how many keys
// it wrote.
func (s *Snapshot) Apply(ctx context.Context, js jetstream.JetStream, replicas int) (int, error) {
	n := 0
	for b, entries := range s.Buckets {
		// A bucket its owner made already is used as it is.
		kv, err := js.KeyValue(ctx, b)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: b, Replicas: replicas, History: 1})
		}
		if err != nil {
			return n, fmt.Errorf("bucket %s: %w", b, err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			return n, fmt.Errorf("bucket %s: %w", b, err)
		}
		if st.Values() > 0 {
			return n, fmt.Errorf("%w: %s holds %d values", ErrNotEmpty, b, st.Values())
		}
		for _, e := range entries {
			if _, err := kv.Put(ctx, e.Key, e.Value); err != nil {
				return n, fmt.Errorf("bucket %s key %s: %w", b, e.Key, err)
			}
			n++
		}
	}
	return n, nil
}
