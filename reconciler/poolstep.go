package reconciler

import (
	"fmt"
	"maps"
	"sort"
	"strings"
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
	// Deleting is when its deletion was last asked of the provisioner
	// (zero: not being deleted). It stays in the record until the
	// provisioner said it is gone: a failed deletion is asked again.
	Deleting time.Time `json:"deleting,omitzero"`
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
		// Machines that joined, those that never will, and deletions
		// not confirmed in time (asked again).
		deleting := map[string]bool{}
		for i := range rec.Machines {
			m := &rec.Machines[i]
			if !m.Deleting.IsZero() {
				deleting[m.Name] = true
				if now.Sub(m.Deleting) >= p.Timeout+poolDeleteRetry {
					m.Deleting = now
					act.Delete = append(act.Delete, *m)
				}
				continue
			}
			n, seen := byName[m.Name]
			if seen && n.Ready && !m.Joined {
				m.Joined = true
				rec.Failures = 0
			}
			if !m.Joined && now.Sub(m.Asked) > p.JoinTimeout {
				rec.Failures++
				rec.RetryAt = now.Add(poolBackoff(rec.Failures))
				m.Deleting = now
				deleting[m.Name] = true
				act.Delete = append(act.Delete, *m)
				say("machine %s did not join within %s: deleting it; asking again after %s", m.Name, p.JoinTimeout, poolBackoff(rec.Failures))
			}
		}
		// The pool's nodes: those labelled with it, and its machines, less
		// those being deleted.
		members := map[string]bool{}
		for _, n := range nodes {
			if n.Pool == p.Name && !deleting[n.Name] {
				members[n.Name] = true
			}
		}
		outstanding := 0
		for _, m := range rec.Machines {
			if deleting[m.Name] {
				continue
			}
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
				used := maps.Clone(members)
				maps.Copy(used, deleting)
				for i := range want {
					name := machineName(p.Name, now, i, used)
					used[name] = true
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
			if !m.Draining || deleting[m.Name] {
				continue
			}
			draining++
			if n, ok := byName[m.Name]; !ok || n.Empty {
				rec.Machines[i].Deleting = now
				act.Delete = append(act.Delete, rec.Machines[i])
				say("machine %s drained: deleting it (%d → %d)", m.Name, size, size-1)
				size--
				draining--
			}
		}
		if p.ScaleDown {
			names := make([]string, 0, len(members))
			for name := range members {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				n, ok := byName[name]
				if !ok || !n.Ready || n.Utilization >= p.UtilizationThreshold || !n.FitsElsewhere || isDraining(rec.Machines, name) || deleting[name] {
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

// poolDeleteRetry is how long past the provisioner's timeout a deletion
// not confirmed is asked again (the last leader may have died asking).
const poolDeleteRetry = time.Minute

// PoolResult is what the pool worker did of an action: machines the
// provisioner made (with its IDs), machines asked and not made, machines
// it deleted, and why what failed failed.
type PoolResult struct {
	Pool    string
	Created []PoolMachine
	Failed  []string
	Deleted []string
	// NotDrained are nodes whose drain could not be recorded: the next
	// pass decides again.
	NotDrained []string
	Err        string
}

// ApplyPoolResults records what the pool worker did: a made machine gets
// its ID; one not made is dropped and counts as a failure (the pool backs
// off as after a machine that did not join); a deleted one is dropped; a
// deletion that failed stays and is asked again later (PoolsStep).
func ApplyPoolResults(records map[string]PoolRecord, results []PoolResult, now time.Time) (map[string]PoolRecord, []string) {
	var events []string
	out := maps.Clone(records)
	for _, res := range results {
		rec, ok := out[res.Pool]
		if !ok {
			continue // the pool left the revision meanwhile
		}
		rec.Machines = append([]PoolMachine(nil), rec.Machines...)
		ids := map[string]string{}
		for _, m := range res.Created {
			ids[m.Name] = m.ID
		}
		gone := map[string]bool{}
		for _, name := range res.Deleted {
			gone[name] = true
		}
		undrain := map[string]bool{}
		for _, name := range res.NotDrained {
			undrain[name] = true
		}
		failed := map[string]bool{}
		for _, name := range res.Failed {
			failed[name] = true
		}
		kept := rec.Machines[:0]
		for _, m := range rec.Machines {
			if id, ok := ids[m.Name]; ok {
				m.ID = id
			}
			if undrain[m.Name] {
				m.Draining = false
			}
			if gone[m.Name] || failed[m.Name] && !m.Joined {
				continue
			}
			kept = append(kept, m)
		}
		rec.Machines = kept
		switch {
		case len(res.Failed) > 0:
			rec.Failures++
			rec.RetryAt = now.Add(poolBackoff(rec.Failures))
			rec.Last = fmt.Sprintf("the provisioner did not make %d machines (%s): asking again after %s", len(res.Failed), res.Err, poolBackoff(rec.Failures))
		case res.Err != "":
			rec.Last = fmt.Sprintf("%s: tried again later", res.Err)
		case len(res.Created) > 0:
			rec.Last = fmt.Sprintf("the provisioner made %d machines; waiting for them to join", len(res.Created))
		case len(res.Deleted) > 0:
			rec.Last = fmt.Sprintf("machine %s deleted by the provisioner; its credential revoked", strings.Join(res.Deleted, ", "))
		default:
			continue
		}
		events = append(events, fmt.Sprintf("NodePool %s: %s", res.Pool, rec.Last))
		out[res.Pool] = rec
	}
	return out, events
}
