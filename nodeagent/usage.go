package nodeagent

import (
	"context"
	"sync"
	"time"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/typeurl/v2"

	"github.com/batonhq/baton/nodeagent/protocol"
)

// usageEvery is how often a pod's cgroups are sampled.
const usageEvery = 5 * time.Second

// sample is a container's cumulative CPU time and working set at a time.
type sample struct {
	at      time.Time
	cpuNano uint64
	memory  int64
}

// usageTracker turns cumulative CPU counters into rates, per replica.
type usageTracker struct {
	mu   sync.Mutex
	prev map[string]sample // by replica
	last map[string]*protocol.Usage
}

func newUsageTracker() *usageTracker {
	return &usageTracker{prev: map[string]sample{}, last: map[string]*protocol.Usage{}}
}

// cpuMilli is the CPU used between two samples, in thousandths of a core.
func cpuMilli(a, b sample) int64 {
	dt := b.at.Sub(a.at)
	if dt <= 0 || b.cpuNano < a.cpuNano {
		return 0
	}
	return int64(float64(b.cpuNano-a.cpuNano) / float64(dt.Nanoseconds()) * 1000)
}

// observe records a replica's summed sample and returns its usage; between
// samples it returns the last usage.
func (u *usageTracker) observe(replica string, s sample) *protocol.Usage {
	u.mu.Lock()
	defer u.mu.Unlock()
	prev, ok := u.prev[replica]
	if ok && s.at.Sub(prev.at) < usageEvery {
		return u.last[replica]
	}
	u.prev[replica] = s
	if !ok {
		return nil
	}
	us := &protocol.Usage{CPUMilli: cpuMilli(prev, s), MemoryBytes: s.memory, SampledAt: s.at.UTC()}
	u.last[replica] = us
	return us
}

func (u *usageTracker) lastFor(replica string) *protocol.Usage {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last[replica]
}

func (u *usageTracker) due(replica string, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	prev, ok := u.prev[replica]
	return !ok || now.Sub(prev.at) >= usageEvery
}

func (u *usageTracker) forget(keep map[string]bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for id := range u.prev {
		if !keep[id] {
			delete(u.prev, id)
			delete(u.last, id)
		}
	}
}

// containerUsage reads a running task's cgroup metrics.
func containerUsage(ctx context.Context, t client.Task) (cpuNano uint64, memory int64, ok bool) {
	m, err := t.Metrics(ctx)
	if err != nil || m == nil || m.Data == nil {
		return 0, 0, false
	}
	v, err := typeurl.UnmarshalAny(m.Data)
	if err != nil {
		return 0, 0, false
	}
	switch s := v.(type) {
	case *v1.Metrics:
		if s.CPU != nil && s.CPU.Usage != nil {
			cpuNano = s.CPU.Usage.Total
		}
		if s.Memory != nil && s.Memory.Usage != nil {
			memory = int64(s.Memory.Usage.Usage) - int64(s.Memory.TotalInactiveFile)
		}
	case *v2.Metrics:
		if s.CPU != nil {
			cpuNano = s.CPU.UsageUsec * 1000
		}
		if s.Memory != nil {
			memory = int64(s.Memory.Usage) - int64(s.Memory.InactiveFile)
		}
	default:
		return 0, 0, false
	}
	return cpuNano, max(memory, 0), true
}
