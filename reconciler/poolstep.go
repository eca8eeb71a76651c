package reconciler

import (
	"fmt"
	"sort"
	"time"

	"github.com/batonhq/baton/desired"
)

// PoolLabel is the node label that names a node's NodePool: the machines a
// provisioner makes join with it (baton agent --label baton.dev/pool=NAME).
const PoolLabel = "baton.dev/pool"

// PoolMachine is a machine a pool asked its provisioner for: the node name
// it joins as, when it was asked for, the provisioner's ID for it, and
// whether it joined (a node of that name was seen ready).
type PoolMachine struct {
	Name     string    `json:"name"`
	ID       string    `json:"id,omitempty"`
	Asked    time.Time `json:"asked"`
	Joined   bool      `json:"joined,omitempty"`
	Draining bool      `json:"draining,omitempty"`
}

// PoolRecord is what the leader keeps of a pool (KV pool.<name>): a new
// leader resumes from it and never asks for the same machines twice.
type PoolRecord struct {
	Pool     string        `json:"pool"`
	Machines []PoolMachine `json:"machines,omitempty"`
	// PendingSince is since when replicas wait that a machine of the pool
	// would take (zero: none wait).
	PendingSince time.Time `json:"pendingSince,omitzero"`
	// Unneeded are the pool's nodes under the utilization threshold whose
	// replicas fit elsewhere, and since when.
	Unneeded    map[string]time.Time `json:"unneeded,omitempty"`
	LastScaleUp time.Time            `json:"lastScaleUp,omitzero"`
	// Failures counts machines in a row that did not join in time;
	// RetryAt is when the pool may ask again.
	Failures int       `json:"failures,omitempty"`
	RetryAt  time.Time `json:"retryAt,omitzero"`
	// Last is the last decision, said.
	Last string `json:"last,omitempty"`
}

// PoolNode is a node of the cluster as the pool step sees it.
type PoolNode struct {
	Name  string
	Pool  string // its PoolLabel ("" for none)
	Ready bool
	// Utilization is the larger of its requested cpu and memory shares of
	// its capacity; FitsElsewhere whether its replicas fit on the other
	// nodes; Empty whether it runs no replica but DaemonSets' (drained).
	Utilization   float64
	FitsElsewhere bool
	Empty         bool
}

// PoolAction is what a pass asks of a pool, done off the loop: machines to
// create (node names), to cordon and drain, and to delete (through the
// provisioner, then their credentials revoked).
type PoolAction struct {
	Pool   string
	Create []string
	Drain  []string
	Delete []PoolMachine
}

// Back-off after machines that never joined: 30 s doubling, at most 10 min.
const (
	poolBackoffBase = 30 * time.Second
	poolBackoffMax  = 10 * time.Minute
)

func poolBackoff(failures int) time.Duration {
	d := poolBackoffBase
	for i := 1; i < failures && d < poolBackoffMax; i++ {
		d *= 2
	}
	return min(d, poolBackoffMax)
}

// PoolsStep is one pass of every pool's decisions (issue 18; pure, clock
// injected, not wired to the loop yet): from the records, the pools of
// the revision, the nodes, and what pending replicas need of each pool
// (SizePools), it returns the new records, the actions, and events.
//
//   - A machine asked for and not joined within JoinTimeout is deleted and
//     counted as a failure: the pool waits a back-off before asking again.
//   - Replicas pending for PendingFor that a pool would take make it ask
//     for the machines they need, within max (machines joined and asked
//     for count); a pool under min asks for the rest at once.
//   - A joined node under UtilizationThreshold whose replicas fit
//     elsewhere for UnneededFor, not within DelayAfterAdd of a scale-up,
//     is drained, one a pass a pool, never below min; once it runs nothing
//     but DaemonSets it is deleted.
func PoolsStep(records map[string]PoolRecord, pools []desired.NodePool, nodes []PoolNode, needs []PoolNeed, now time.Time) (map[string]PoolRecord, []PoolAction, []string) {
	out := map[string]PoolRecord{}
	var actions []PoolAction
	var events []string
	need := map[string]int{}
	for _, n := range needs {
		need[n.Pool] += n.Add
	}
	byName := map[string]PoolNode{}
	for _, n := range nodes {
		byName[n.Name] = n
	}
	sorted := append([]desired.NodePool(nil), pools...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, p := range sorted {
		rec := records[p.Name]
		rec.Pool = p.Name
		rec.Machines = append([]PoolMachine(nil), rec.Machines...)
		act := PoolAction{Pool: p.Name}
		say := func(format string, args ...any) {
			rec.Last = fmt.Sprintf(format, args...)
			events = append(events, fmt.Sprintf("NodePool %s: %s", p.Name, rec.Last))
		}
		// Machines that joined, and those that never will.
		kept := rec.Machines[:0]
		for _, m := range rec.Machines {
			n, seen := byName[m.Name]
			if seen && n.Ready && !m.Joined {
				m.Joined = true
				rec.Failures = 0
			}
			if !m.Joined && now.Sub(m.Asked) > p.JoinTimeout {
				rec.Failures++
				rec.RetryAt = now.Add(poolBackoff(rec.Failures))
				act.Delete = append(act.Delete, m)
				say("machine %s did not join within %s: deleted; asking again after %s", m.Name, p.JoinTimeout, poolBackoff(rec.Failures))
				continue
			}
			kept = append(kept, m)
		}
		rec.Machines = kept
		// The pool's nodes: those labelled with it, and its machines.
		members := map[string]bool{}
		for _, n := range nodes {
			if n.Pool == p.Name {
				members[n.Name] = true
			}
		}
		outstanding := 0
		for _, m := range rec.Machines {
			members[m.Name] = true
			if !m.Joined {
				outstanding++
			}
		}
		size := len(members)
		// Scale up.
		want := 0
		switch {
		case size < p.Min:
			want = p.Min - size
		case need[p.Name] > 0:
			if rec.PendingSince.IsZero() {
				rec.PendingSince = now
			}
			if now.Sub(rec.PendingSince) >= p.PendingFor {
				want = need[p.Name]
			}
		default:
			rec.PendingSince = time.Time{}
		}
		if want = min(want, p.Max-size); want > 0 {
			if now.Before(rec.RetryAt) {
				rec.Last = fmt.Sprintf("%d machines wanted; asking again at %s after %d that did not join", want, rec.RetryAt.UTC().Format(time.RFC3339), rec.Failures)
			} else {
				for i := range want {
					name := machineName(p.Name, now, i, members)
					members[name] = true
					act.Create = append(act.Create, name)
					rec.Machines = append(rec.Machines, PoolMachine{Name: name, Asked: now})
				}
				rec.LastScaleUp, rec.PendingSince = now, time.Time{}
				why := "replicas fit nowhere"
				if size < p.Min {
					why = fmt.Sprintf("below its min of %d", p.Min)
				}
				say("asked for %d machines (%s): %d → %d", want, why, size, size+want)
				size += want
			}
		}
		// Scale down.
		unneeded := map[string]time.Time{}
		draining := 0
		for i, m := range rec.Machines {
			if !m.Draining {
				continue
			}
			draining++
			if n, ok := byName[m.Name]; !ok || n.Empty {
				act.Delete = append(act.Delete, m)
				rec.Machines[i].Name = "" // dropped below
				say("machine %s drained: deleted (%d → %d)", m.Name, size, size-1)
				size--
				draining--
			}
		}
		rec.Machines = dropUnnamed(rec.Machines)
		if p.ScaleDown {
			names := make([]string, 0, len(members))
			for name := range members {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				n, ok := byName[name]
				if !ok || !n.Ready || n.Utilization >= p.UtilizationThreshold || !n.FitsElsewhere || isDraining(rec.Machines, name) {
					continue
				}
				since, was := rec.Unneeded[name]
				if !was {
					since = now
				}
				unneeded[name] = since
			}
			if draining == 0 && outstanding == 0 && size > p.Min && now.Sub(rec.LastScaleUp) >= p.DelayAfterAdd {
				var oldest string
				for _, name := range names {
					if since, ok := unneeded[name]; ok && now.Sub(since) >= p.UnneededFor && (oldest == "" || since.Before(unneeded[oldest])) {
						oldest = name
					}
				}
				if oldest != "" {
					act.Drain = append(act.Drain, oldest)
					markDraining(&rec, oldest, now)
					delete(unneeded, oldest)
					say("node %s under %.0f%% of its capacity for %s, its replicas fit elsewhere: draining it", oldest, 100*p.UtilizationThreshold, p.UnneededFor)
				}
			}
		}
		rec.Unneeded = unneeded
		if len(rec.Unneeded) == 0 {
			rec.Unneeded = nil
		}
		out[p.Name] = rec
		if len(act.Create)+len(act.Drain)+len(act.Delete) > 0 {
			actions = append(actions, act)
		}
	}
	return out, actions, events
}

// machineName is a new machine's node name: the pool's, and a suffix made
// from the clock and its index (Compute's way), not one in use.
func machineName(pool string, now time.Time, i int, used map[string]bool) string {
	for n := 0; ; n++ {
		if name := pool + "-" + hashSuffix(fmt.Sprintf("%s/%d/%d/%d", pool, now.UnixNano(), i, n)); !used[name] {
			return name
		}
	}
}

func isDraining(ms []PoolMachine, name string) bool {
	for _, m := range ms {
		if m.Name == name && m.Draining {
			return true
		}
	}
	return false
}

// markDraining records that node name drains (a node of the pool's label
// that the pool did not make is adopted as a machine then).
func markDraining(rec *PoolRecord, name string, now time.Time) {
	for i := range rec.Machines {
		if rec.Machines[i].Name == name {
			rec.Machines[i].Draining = true
			return
		}
	}
	rec.Machines = append(rec.Machines, PoolMachine{Name: name, Asked: now, Joined: true, Draining: true})
}

func dropUnnamed(ms []PoolMachine) []PoolMachine {
	out := ms[:0]
	for _, m := range ms {
		if m.Name != "" {
			out = append(out, m)
		}
	}
	return out
}
