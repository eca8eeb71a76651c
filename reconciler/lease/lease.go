package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Bucket holds the leader lease. Its entries expire after the lease's
// TTL on the NATS server's clock, so a leader that stops renewing loses the
// lease without any server's clock having to agree with another's.
const Bucket = "baton-leader"

const leaderKey = "leader"

// ErrLost is returned by Hold when another server took the lease, or
// when it could not be renewed before it would expire.
var ErrLost = errors.New("leader lease lost")

// Info names the holder of the lease.
type Info struct {
	ID   string    `json:"id"`
	Term uint64    `json:"term"`
	At   time.Time `json:"acquiredAt"`
}

// Lease elects one leader among the servers sharing a NATS cluster. The term
// of a leadership is the KV revision at which its holder created the lease
// entry: it grows with every new leader, and agents refuse commands of a
// term older than one they have seen.
type Lease struct {
	kv  jetstream.KeyValue
	id  string
	ttl time.Duration

	rev  uint64 // revision of our last write
	term uint64
}

// Open opens (creating if needed) the lease bucket with the given TTL.
// id names this server in the lease.
func Open(ctx context.Context, js jetstream.JetStream, id string, ttl time.Duration, replicas int) (*Lease, error) {
	if ttl < time.Second {
		return nil, fmt.Errorf("lease TTL %s: must be at least 1s", ttl)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Baton leader lease",
		History:     1,
		TTL:         ttl,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("open key-value bucket %q: %w", Bucket, err)
	}
	return &Lease{kv: kv, id: id, ttl: ttl}, nil
}

// Term is the term of the leadership held (0 before Acquire).
func (l *Lease) Term() uint64 { return l.term }

// Leader returns the current holder, if any.
func (l *Lease) Leader(ctx context.Context) (Info, bool, error) {
	e, err := l.kv.Get(ctx, leaderKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Info{}, false, nil
	}
	if err != nil {
		return Info{}, false, fmt.Errorf("read leader lease: %w", err)
	}
	var li Info
	if err := json.Unmarshal(e.Value(), &li); err != nil {
		return Info{}, false, fmt.Errorf("decode leader lease: %w", err)
	}
	return li, true, nil
}

// Acquire blocks until this server holds the lease, or ctx ends. It returns
// the term of the new leadership.
func (l *Lease) Acquire(ctx context.Context) (uint64, error) {
	log := zerolog.Ctx(ctx)
	every := min(l.ttl/5, time.Second)
	var lastSeen string
	for {
		li := Info{ID: l.id, At: time.Now().UTC()}
		b, _ := json.Marshal(li)
		rev, err := l.kv.Create(ctx, leaderKey, b)
		if err == nil {
			// The term is the creating revision; record it in the entry too,
			// so standbys and status can show it.
			li.Term = rev
			b, _ = json.Marshal(li)
			if rev2, err := l.kv.Update(ctx, leaderKey, b, rev); err == nil {
				l.rev, l.term = rev2, rev
				log.Info().Uint64("term", rev).Msg("leader lease acquired")
				return rev, nil
			}
			// Lost it already (expired in between): try again.
			continue
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
			log.Warn().Err(err).Msg("leader lease: create")
		}
		if cur, ok, _ := l.Leader(ctx); ok && cur.ID != lastSeen {
			lastSeen = cur.ID
			log.Info().Str("leader", cur.ID).Uint64("term", cur.Term).Msg("standing by")
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(every):
		}
	}
}

// Hold renews the lease every TTL/3 until ctx ends (it then returns nil) or
// the lease is lost (ErrLost). Leadership ends 2/3 of the TTL after
// the last successful renewal even while a renewal hangs, well before the
// server could expire the key, so two leaders never act at once (unless
// this process is paused for longer than a third of the TTL, which the
// agents' term check and the KV compare-and-set then catch).
func (l *Lease) Hold(ctx context.Context) error {
	li := Info{ID: l.id, Term: l.term, At: time.Now().UTC()}
	b, _ := json.Marshal(li)
	every := l.ttl / 3
	renewed := time.Now()
	t := time.NewTicker(every / 4)
	defer t.Stop()
	for {
		// Leadership ends 2/3 of the TTL after the last renewal, whatever
		// a renewal in flight does: the server expires the key at the TTL.
		deadline := renewed.Add(2 * l.ttl / 3)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(deadline)):
			return fmt.Errorf("%w: not renewed for %s", ErrLost, 2*l.ttl/3)
		case <-t.C:
		}
		if time.Since(renewed) < every {
			continue
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		rev, err := l.kv.Update(rctx, leaderKey, b, l.rev)
		cancel()
		switch {
		case err == nil:
			l.rev, renewed = rev, time.Now()
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyNotFound):
			return fmt.Errorf("%w: another server holds it", ErrLost)
		case ctx.Err() != nil:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("%w: cannot renew: %v", ErrLost, err)
		default:
			zerolog.Ctx(ctx).Warn().Err(err).Msg("renew leader lease")
		}
	}
}

// Release gives the lease up at once, so a standby takes over without
// waiting for it to expire.
func (l *Lease) Release(ctx context.Context) error {
	if l.rev == 0 {
		return nil
	}
	err := l.kv.Delete(ctx, leaderKey, jetstream.LastRevision(l.rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		// A renewal cancelled in flight may still have been applied: delete
		// the entry if it is still ours, at its current revision.
		if e, gerr := l.kv.Get(ctx, leaderKey); gerr == nil {
			var li Info
			if json.Unmarshal(e.Value(), &li) == nil && li.ID == l.id && li.Term == l.term {
				err = l.kv.Delete(ctx, leaderKey, jetstream.LastRevision(e.Revision()))
			}
		}
	}
	l.rev = 0
	if err != nil {
		return fmt.Errorf("release leader lease: %w", err)
	}
	return nil
}
