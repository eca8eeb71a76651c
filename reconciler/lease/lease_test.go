package lease

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/batonhq/baton/internal/testenv"
)

func openLease(t testing.TB, js jetstream.JetStream, id string, ttl time.Duration) *Lease {
	t.Helper()
	l, err := Open(context.Background(), js, id, ttl, 1)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLease: one holder at a time; a released lease passes on at once; a
// holder that stops renewing loses it after the TTL, to a newer term, and
// finds out when it tries to renew.
func TestLease(t *testing.T) {
	js, err := jetstream.New(testenv.NATS(t))
	if err != nil {
		t.Fatal(err)
	}
	const ttl = 2 * time.Second
	a, b := openLease(t, js, "a", ttl), openLease(t, js, "b", ttl)
	ctx := context.Background()

	termA, err := a.Acquire(ctx)
	if err != nil || termA == 0 {
		t.Fatalf("a: term %d, %v", termA, err)
	}
	if li, ok, err := b.Leader(ctx); err != nil || !ok || li.ID != "a" || li.Term != termA {
		t.Fatalf("leader seen by b: %+v %v %v", li, ok, err)
	}
	// b stands by while a holds (and renews) the lease.
	holdCtx, stopHold := context.WithCancel(ctx)
	held := make(chan error, 1)
	go func() { held <- a.Hold(holdCtx) }()
	short, cancel := context.WithTimeout(ctx, 2*ttl)
	if _, err := b.Acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("b acquired while a renewed: %v", err)
	}
	cancel()

	// a releases: b takes over at once, in a newer term.
	stopHold()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	termB, err := b.Acquire(ctx)
	if err != nil || termB <= termA {
		t.Fatalf("b: term %d (a had %d), %v", termB, termA, err)
	}
	if d := time.Since(start); d > ttl {
		t.Fatalf("takeover after a release took %s", d)
	}

	// b dies without releasing: a takes over after the TTL.
	start = time.Now()
	termA2, err := a.Acquire(ctx)
	if err != nil || termA2 <= termB {
		t.Fatalf("a again: term %d (b had %d), %v", termA2, termB, err)
	}
	if d := time.Since(start); d < ttl/2 || d > 3*ttl {
		t.Fatalf("takeover after b died took %s (TTL %s)", d, ttl)
	}
	t.Logf("takeover after the holder died: %s (TTL %s)", time.Since(start).Round(10*time.Millisecond), ttl)
	// b wakes up and tries to renew: it learns it lost.
	if err := b.Hold(ctx); !errors.Is(err, ErrLost) {
		t.Fatalf("b's renewal: %v, want ErrLost", err)
	}
}

// BenchmarkLeaseTakeover: how long a standby needs to lead after the leader
// dies (stops renewing) and after it hands over (Release), with a 2 s TTL.
//
//	go test -run '^$' -bench LeaseTakeover -benchtime 5x ./reconciler
func BenchmarkLeaseTakeover(b *testing.B) {
	js, err := jetstream.New(testenv.NATS(b))
	if err != nil {
		b.Fatal(err)
	}
	const ttl = 2 * time.Second
	ctx := context.Background()
	for _, release := range []bool{false, true} {
		name := "leader-died"
		if release {
			name = "leader-released"
		}
		b.Run(name, func(b *testing.B) {
			var total time.Duration
			for range b.N {
				leader, standby := openLease(b, js, "leader", ttl), openLease(b, js, "standby", ttl)
				if _, err := leader.Acquire(ctx); err != nil {
					b.Fatal(err)
				}
				if release {
					if err := leader.Release(ctx); err != nil {
						b.Fatal(err)
					}
				}
				start := time.Now()
				if _, err := standby.Acquire(ctx); err != nil {
					b.Fatal(err)
				}
				total += time.Since(start)
				if err := standby.Release(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-to-lead")
		})
	}
}
