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
// it joins as, the provisioner's ID for it, when it was asked for (then
// when the provisioner said it made it: its join deadline counts from
// there), and where it is in its life.
type PoolMachine struct {
	Name   string    `json:"name"`
	ID     string    `json:"id,omitempty"`
	Asked  time.Time `json:"asked"`
	Joined bool      `json:"joined,omitempty"`
	// Draining: it is being drained before deletion, asked at DrainAt.
	Draining bool      `json:"draining,omitempty"`
	DrainAt  time.Time `json:"drainAt,omitzero"`
	// Deleting is since when it is being deleted (zero: it is not); it
	// stays in the record until the provisioner said it is gone, and the
	// deletion is asked (again) at DeleteAt.
	Deleting time.Time `json:"deleting,omitzero"`
	DeleteAt time.Time `json:"deleteAt,omitzero"`
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
	// replicas fit elsewhere, and since when; Lost its joined machines not
	// ready, and since when.
	Unneeded    map[string]time.Time `json:"unneeded,omitempty"`
	Lost        map[string]time.Time `json:"lost,omitempty"`
	LastScaleUp time.Time            `json:"lastScaleUp,omitzero"`
	// Failures counts machines in a row that were not made or did not join
	// in time; RetryAt is when the pool may ask again.
	Failures int       `json:"failures,omitempty"`
	RetryAt  time.Time `json:"retryAt,omitzero"`
	// Mismatch says how a machine that joined differs from the template
	// (TemplateOf: the template it was checked against): no machine is
	// added while the template stays so, since sizing trusts it.
	Mismatch   string `json:"mismatch,omitempty"`
	TemplateOf string `json:"templateOf,omitempty"`
	// LastList is when the provisioner was last asked for the pool's
	// machines; Strays are those it listed that the record did not know,
	// handed to the next pass (adopted if they are ready nodes, else
	// deleted).
	LastList time.Time     `json:"lastList,omitzero"`
	Strays   []PoolMachine `json:"strays,omitempty"`
	// Last is the last decision, said.
	Last string `json:"last,omitempty"`
}

// PoolNode is a node of the cluster as the pool step sees it.
type PoolNode struct {
	Name  string
	Pool  string // its PoolLabel ("" for none)
	Ready bool
	// Draining: a drain control is on it (baton node drain, or a pool's).
	Draining bool
	// Utilization is the larger of its requested cpu and memory shares of
	// its capacity; FitsElsewhere whether its replicas fit on the other
	// nodes; Empty whether it runs (or was sent) no replica but
	// DaemonSets', stopping ones included.
	Utilization   float64
	FitsElsewhere bool
	Empty         bool
	// What it has, checked against its pool's template when it joins.
	CPUMilli, MemoryBytes int64
	Extra                 map[string]int64 // extended resources, huge pages, ephemeral-storage
	Labels                map[string]string
	Taints                []desired.Taint
}

// PoolAction is what a pass asks of a pool, done off the loop: machines to
// create (node names), to cordon and drain, and to delete (through the
// provisioner, then their credentials revoked).
type PoolAction struct {
	Pool   string
	Create []string
	Drain  []string
	Delete []PoolMachine
	// List asks the provisioner for the pool's machines, to find strays
	// (made and never recorded: a pool's record lost, a provisioner that
	// made more than it said).
	List bool
}

const (
	// Back-off after machines that were not made or never joined: 30 s
	// doubling, at most 10 min.
	poolBackoffBase = 30 * time.Second
	poolBackoffMax  = 10 * time.Minute
	// poolDeleteRetry is how long past the provisioner's timeout a
	// deletion not confirmed is asked again (the last leader may have
	// died asking).
	poolDeleteRetry = time.Minute
	// PoolLostAfter is how long a joined machine may stay not ready before
	// it is deleted and replaced (cluster-autoscaler's
	// --scale-down-unready-time).
	PoolLostAfter = 20 * time.Minute
	// poolDrainSeen is how long a drain asked may take to show as a node
	// control: past it, a drain that is not there was lifted (baton node
	// uncordon) or never written, and the node is not scaled down.
	poolDrainSeen = 30 * time.Second
	// PoolListEvery is how often the provisioner is asked for each pool's
	// machines (the first time as soon as the pool appears).
	PoolListEvery = 10 * time.Minute
)

func poolBackoff(failures int) time.Duration {
	d := poolBackoffBase
	for i := 1; i < failures && d < poolBackoffMax; i++ {
		d *= 2
	}
	return min(d, poolBackoffMax)
}

// templateOf is what a pool's machines are checked against.
func templateOf(p desired.NodePool) string {
	return fmt.Sprintf("%d/%d/%v/%v", p.Capacity.CPUMilli, p.Capacity.MemoryBytes, p.Labels, p.Taints)
}

// mismatch says how node n falls short of pool p's template ("" if it
// does not): less than 90 % of its cpu or memory, a label or taint missing.
func mismatch(p desired.NodePool, n PoolNode) string {
	var out []string
	if n.CPUMilli < p.Capacity.CPUMilli*9/10 {
		out = append(out, fmt.Sprintf("cpu %dm, the template %dm", n.CPUMilli, p.Capacity.CPUMilli))
	}
	if n.MemoryBytes < p.Capacity.MemoryBytes/10*9 {
		out = append(out, fmt.Sprintf("memory %d bytes, the template %d", n.MemoryBytes, p.Capacity.MemoryBytes))
	}
	for _, k := range sortedKeys(p.Capacity.Extra) {
		if want := p.Capacity.Extra[k]; n.Extra[k]*10 < want*9 {
			out = append(out, fmt.Sprintf("%s %d, the template %d", k, n.Extra[k], want))
		}
	}
	for _, k := range sortedKeys(p.Labels) {
		if v, ok := n.Labels[k]; !ok || v != p.Labels[k] {
			out = append(out, fmt.Sprintf("label %s=%s missing", k, p.Labels[k]))
		}
	}
	for _, t := range p.Taints {
		found := false
		for _, h := range n.Taints {
			found = found || h == t
		}
		if !found {
			out = append(out, fmt.Sprintf("taint %s=%s:%s missing", t.Key, t.Value, t.Effect))
		}
	}
	return strings.Join(out, ", ")
}

// PoolsStep is one pass of every pool's decisions (pure, clock injected):
// from the records, the pools of the revision, the nodes, and what pending
// replicas need of each pool (SizePools), it returns the new records, the
// actions, and events.
//
//   - A machine not made, or not joined within JoinTimeout of being made,
//     is deleted and counted as a failure: the pool waits a back-off
//     before asking again. A joined machine not ready for PoolLostAfter is
//     deleted (and replaced if the pool needs it).
//   - Replicas pending for PendingFor that a pool would take make it ask
//     for the machines they need, within max (machines joined, asked for
//     and being deleted count); a pool under min asks for the rest at once.
//     A machine that joined short of the template stops the pool from
//     adding machines until the template changes.
//   - A joined node under UtilizationThreshold whose replicas fit
//     elsewhere for UnneededFor, not within DelayAfterAdd of a scale-up,
//     is drained, one node at a time in the whole cluster (two pools'
//     nodes could each be where the other's replicas would go), never
//     below min; once it runs nothing but DaemonSets it is deleted.
//   - A deletion stays recorded until confirmed, and is asked again.
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
	// One drain at a time in the cluster.
	drains := 0
	for _, rec := range records {
		for _, m := range rec.Machines {
			if m.Draining && m.Deleting.IsZero() {
				drains++
			}
		}
	}
	sorted := append([]desired.NodePool(nil), pools...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, p := range sorted {
		rec := records[p.Name]
		rec.Pool = p.Name
		rec.Machines = append([]PoolMachine(nil), rec.Machines...)
		rec.Lost = maps.Clone(rec.Lost)
		act := PoolAction{Pool: p.Name}
		say := func(format string, args ...any) {
			rec.Last = fmt.Sprintf(format, args...)
			events = append(events, fmt.Sprintf("NodePool %s: %s", p.Name, rec.Last))
		}
		markDelete := func(m *PoolMachine) {
			m.Deleting, m.DeleteAt = now, now.Add(p.Timeout+poolDeleteRetry)
			act.Delete = append(act.Delete, *m)
		}
		if rec.Mismatch != "" && rec.TemplateOf != templateOf(p) {
			rec.Mismatch, rec.TemplateOf = "", "" // the template changed: trusted again
		}
		// Strays the provisioner listed: a ready node is adopted (scaled
		// down as any other when idle), anything else deleted.
		for _, m := range rec.Strays {
			if n, ok := byName[m.Name]; ok && n.Ready {
				rec.Machines = append(rec.Machines, PoolMachine{Name: m.Name, ID: m.ID, Asked: now, Joined: true})
				say("machine %s is the provisioner's and a ready node, unknown to the pool's record: adopted", m.Name)
				continue
			}
			m.Asked, m.Deleting, m.DeleteAt = now, now, now
			rec.Machines = append(rec.Machines, m)
			say("machine %s is the provisioner's, unknown to the pool's record and no ready node: deleting it", m.Name)
		}
		rec.Strays = nil
		if now.Sub(rec.LastList) >= PoolListEvery {
			act.List, rec.LastList = true, now
		}
		// Each machine's life: joined, never joining, lost, drain lifted,
		// deletions not confirmed.
		deleting := map[string]bool{}
		for i := range rec.Machines {
			m := &rec.Machines[i]
			if !m.Deleting.IsZero() {
				deleting[m.Name] = true
				if !now.Before(m.DeleteAt) {
					m.DeleteAt = now.Add(p.Timeout + poolDeleteRetry)
					act.Delete = append(act.Delete, *m)
				}
				continue
			}
			n, seen := byName[m.Name]
			up := seen && n.Ready
			if up && !m.Joined {
				m.Joined = true
				rec.Failures = 0
				if why := mismatch(p, n); why != "" && rec.Mismatch == "" {
					rec.Mismatch, rec.TemplateOf = fmt.Sprintf("machine %s joined short of the template (%s)", m.Name, why), templateOf(p)
					say("%s: no machine is added until the template says what the machines have", rec.Mismatch)
				} else {
					say("machine %s joined, %s after it was asked for", m.Name, now.Sub(m.Asked).Round(time.Second))
				}
			}
			switch {
			case !m.Joined && now.Sub(m.Asked) > p.JoinTimeout:
				rec.Failures++
				rec.RetryAt = now.Add(poolBackoff(rec.Failures))
				deleting[m.Name] = true
				markDelete(m)
				say("machine %s did not join within %s: deleting it; asking again after %s", m.Name, p.JoinTimeout, poolBackoff(rec.Failures))
				continue
			case m.Joined && !up:
				since, was := rec.Lost[m.Name]
				if !was {
					since = now
					if rec.Lost == nil {
						rec.Lost = map[string]time.Time{}
					}
					rec.Lost[m.Name] = since
				}
				if now.Sub(since) >= PoolLostAfter {
					delete(rec.Lost, m.Name)
					deleting[m.Name] = true
					markDelete(m)
					say("machine %s not ready for %s: deleting it", m.Name, PoolLostAfter)
					continue
				}
			default:
				delete(rec.Lost, m.Name)
			}
			if m.Draining && up && !n.Draining && now.Sub(m.DrainAt) > poolDrainSeen {
				m.Draining = false
				drains--
				say("the drain of node %s was lifted (or never written): not scaling it down", m.Name)
			}
		}
		// The pool's nodes: its ready labelled nodes and its machines, less
		// those being deleted (which still count toward max).
		members := map[string]bool{}
		for _, n := range nodes {
			if n.Pool == p.Name && n.Ready && !deleting[n.Name] {
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
		if want = min(want, p.Max-size-len(deleting)); want > 0 {
			switch {
			case now.Before(rec.RetryAt):
				rec.Last = fmt.Sprintf("%s wanted; asking again at %s after %d failures", machines(want), rec.RetryAt.UTC().Format(time.RFC3339), rec.Failures)
			case rec.Mismatch != "":
				rec.Last = fmt.Sprintf("%s wanted; none added: %s", machines(want), rec.Mismatch)
			default:
				used := maps.Clone(members)
				maps.Copy(used, deleting)
				for i := range want {
					name := machineName(p.Name, now, i, used)
					used[name] = true
					act.Create = append(act.Create, name)
					rec.Machines = append(rec.Machines, PoolMachine{Name: name, Asked: now})
				}
				rec.LastScaleUp, rec.PendingSince = now, time.Time{}
				why := "replicas fit nowhere"
				if size < p.Min {
					why = fmt.Sprintf("below its min of %d", p.Min)
				}
				say("asked for %s (%s): %d → %d", machines(want), why, size, size+want)
				size += want
			}
		}
		// Scale down: drained machines deleted (a node gone or not ready
		// past the grace has had its replicas placed elsewhere already).
		// Empty counts only once the drain shows as the node's control:
		// until then the scheduler may still place replicas on it.
		for i, m := range rec.Machines {
			if !m.Draining || deleting[m.Name] {
				continue
			}
			if n, ok := byName[m.Name]; !ok || !n.Ready || (n.Draining && n.Empty) {
				markDelete(&rec.Machines[i])
				deleting[m.Name] = true
				delete(rec.Lost, m.Name)
				say("machine %s drained: deleting it (%d → %d)", m.Name, size, size-1)
				size--
				drains--
			}
		}
		unneeded := map[string]time.Time{}
		if p.ScaleDown {
			names := sortedKeys(members)
			for _, name := range names {
				n, ok := byName[name]
				if !ok || !n.Ready || n.Draining || n.Utilization >= p.UtilizationThreshold || !n.FitsElsewhere || isDraining(rec.Machines, name) {
					continue
				}
				since, was := rec.Unneeded[name]
				if !was {
					since = now
				}
				unneeded[name] = since
			}
			if drains == 0 && outstanding == 0 && size > p.Min && now.Sub(rec.LastScaleUp) >= p.DelayAfterAdd {
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
					drains++
					say("node %s under %.0f%% of its capacity for %s, its replicas fit elsewhere: draining it", oldest, 100*p.UtilizationThreshold, p.UnneededFor)
				}
			}
		}
		rec.Unneeded = unneeded
		if len(rec.Unneeded) == 0 {
			rec.Unneeded = nil
		}
		if len(rec.Lost) == 0 {
			rec.Lost = nil
		}
		out[p.Name] = rec
		if len(act.Create)+len(act.Drain)+len(act.Delete) > 0 || act.List {
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
			rec.Machines[i].Draining, rec.Machines[i].DrainAt = true, now
			return
		}
	}
	rec.Machines = append(rec.Machines, PoolMachine{Name: name, Asked: now, Joined: true, Draining: true, DrainAt: now})
}
