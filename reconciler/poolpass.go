package reconciler

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/reconciler/provision"
)

// PoolStatus is a node pool as the status shows it.
type PoolStatus struct {
	Name string `json:"name"`
	Min  int    `json:"min"`
	Max  int    `json:"max"`
	// Nodes are its nodes (joined); Joining the machines asked for and
	// not joined yet; Deleting those being deleted; Draining those
	// being drained before deletion.
	Nodes    []string `json:"nodes"`
	Joining  []string `json:"joining,omitempty"`
	Draining []string `json:"draining,omitempty"`
	Deleting []string `json:"deleting,omitempty"`
	// Wanted is how many more machines pending replicas need of it now.
	Wanted   int       `json:"wanted,omitempty"`
	Last     string    `json:"last,omitempty"`
	Failures int       `json:"failures,omitempty"`
	RetryAt  time.Time `json:"retryAt,omitzero"`
}

// pools is the pass's node-pool step: it sizes what pending replicas need,
// decides (PoolsStep), saves the records, and hands the actions to the
// worker. It runs after Compute, whose pending replicas it reads.
func (r *Reconciler) pools(ctx context.Context, in Input, live *Live, now time.Time) {
	st := r.st
	if in.Desired == nil {
		return // no revision yet: records kept as they are
	}
	if now.Sub(st.started) < r.cfg.NodeGrace {
		// A new leader that may not have heard from every node yet
		// (machines would look lost, drained nodes empty, labelled nodes
		// missing): nothing decided, the records shown as they are.
		st.poolStatus = poolStatuses(in.Desired.Pools, st.poolRecords, nil, nil)
		return
	}
	pools := in.Desired.Pools
	if len(pools) == 0 && len(st.poolRecords) == 0 {
		st.poolStatus, st.poolUnserved = nil, nil
		return
	}
	nodes := PoolNodes(in, live, pools)
	have := poolSizes(st.poolRecords, nodes)
	pending := make([]Pending, 0, len(st.pending))
	for _, p := range st.pending {
		pending = append(pending, p)
	}
	// Pools backing off after failures (or whose machines fall short of
	// their template) take replicas onto their joining machines only: the
	// rest go to the next pool that can take them, if any.
	joining := map[string]int{}
	sizing := make([]desired.NodePool, 0, len(pools))
	for _, p := range pools {
		rec := st.poolRecords[p.Name]
		for _, m := range rec.Machines {
			if !m.Joined && m.Deleting.IsZero() {
				joining[p.Name]++
			}
		}
		if now.Before(rec.RetryAt) || rec.Mismatch != "" && rec.TemplateOf == templateOf(p) {
			p.Max = min(p.Max, have[p.Name])
		}
		sizing = append(sizing, p)
	}
	needs, unserved := SizePools(sizing, have, joining, pending, in.Desired)
	for _, p := range pools {
		if rec := st.poolRecords[p.Name]; now.Before(rec.RetryAt) {
			for i := range unserved {
				unserved[i].Reason = strings.TrimPrefix(unserved[i].Reason+fmt.Sprintf("; NodePool %s: backing off after failures until %s", p.Name, rec.RetryAt.UTC().Format(time.RFC3339)), "; ")
			}
		}
	}
	recs, actions, events := PoolsStep(st.poolRecords, pools, nodes, needs, now)
	r.events(events...)
	var writes []kvWrite
	for name, rec := range recs {
		if old, ok := st.poolRecords[name]; !ok || !reflect.DeepEqual(old, rec) {
			writes = append(writes, kvWrite{key: poolKeyPrefix + name, value: rec})
		}
	}
	for name, old := range st.poolRecords {
		if _, ok := recs[name]; !ok {
			writes = append(writes, kvWrite{key: poolKeyPrefix + name})
			if len(old.Machines) > 0 {
				r.events(fmt.Sprintf("NodePool %s left the revision: its %s stay as nodes (drain and remove them with baton node drain and baton node rm, and your provider)", name, machines(len(old.Machines))))
			}
		}
	}
	// A pass when replicas have waited pendingFor, not at the next resync.
	for _, p := range pools {
		if since := recs[p.Name].PendingSince; !since.IsZero() && !since.Equal(st.poolRecords[p.Name].PendingSince) {
			time.AfterFunc(since.Add(p.PendingFor).Sub(now)+10*time.Millisecond, r.kick)
		}
	}
	// Saved before the worker acts: a new leader knows every machine asked
	// for, and never asks twice. Nothing is asked when the records are not
	// saved, or another leader took over.
	saved := r.save(ctx, writes) == nil && !r.isDeposed()
	st.poolRecords = recs
	byPool := map[string]desired.NodePool{}
	for _, p := range pools {
		byPool[p.Name] = p
	}
	for _, a := range actions {
		p := byPool[a.Pool]
		// The machine's labels tell its pool (PoolLabel), whatever the
		// provisioner does with the rest.
		labels := maps.Clone(p.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		labels[PoolLabel] = p.Name
		// The token outlives the join deadline, which counts from the
		// provisioner's answer (at most p.Timeout after the token).
		job := poolJob{act: a, ttl: p.JoinTimeout + p.Timeout, template: provision.Template{CPUMilli: p.Capacity.CPUMilli, MemoryBytes: p.Capacity.MemoryBytes,
			Extra: p.Capacity.Extra, Labels: labels, Taints: p.Taints}}
		if !saved {
			r.mb.poolFailed(job.act, "the pool's record was not saved (or this server no longer leads): nothing asked")
			continue
		}
		job.prov, job.provErr = r.provisionerOf(p, in.Desired)
		select {
		case r.poolq <- job:
		default:
			r.mb.poolFailed(job.act, "too many pool actions waiting: this one was dropped")
		}
	}
	// What no pool can take, said once each time it changes.
	var lines []string
	for _, u := range unserved {
		lines = append(lines, fmt.Sprintf("%s of %s: %s", replicas(u.Count), u.Workload, u.Reason))
	}
	if strings.Join(lines, "\n") != strings.Join(st.poolUnserved, "\n") {
		for _, l := range lines {
			r.events("no NodePool can take " + l)
		}
	}
	st.poolUnserved = lines
	st.poolStatus = poolStatuses(pools, recs, nodes, needs)
}

// poolSizes counts each pool's ready nodes and its machines (being deleted
// too: they count toward max until they are gone).
func poolSizes(recs map[string]PoolRecord, nodes []PoolNode) map[string]int {
	members := map[string]map[string]bool{}
	add := func(pool, name string) {
		if members[pool] == nil {
			members[pool] = map[string]bool{}
		}
		members[pool][name] = true
	}
	for pool, rec := range recs {
		for _, m := range rec.Machines {
			add(pool, m.Name)
		}
	}
	for _, n := range nodes {
		if n.Pool != "" && n.Ready {
			add(n.Pool, n.Name)
		}
	}
	out := map[string]int{}
	for pool, m := range members {
		out[pool] = len(m)
	}
	return out
}

func poolStatuses(pools []desired.NodePool, recs map[string]PoolRecord, nodes []PoolNode, needs []PoolNeed) []PoolStatus {
	var out []PoolStatus
	for _, p := range pools {
		rec := recs[p.Name]
		ps := PoolStatus{Name: p.Name, Min: p.Min, Max: p.Max, Nodes: []string{}, Last: rec.Last, Failures: rec.Failures}
		if rec.RetryAt.After(time.Time{}) && rec.Failures > 0 {
			ps.RetryAt = rec.RetryAt
		}
		state := map[string]*[]string{}
		for _, m := range rec.Machines {
			switch {
			case !m.Deleting.IsZero():
				state[m.Name] = &ps.Deleting
			case m.Draining:
				state[m.Name] = &ps.Draining
			case !m.Joined:
				state[m.Name] = &ps.Joining
			}
		}
		seen := map[string]bool{}
		for _, n := range nodes {
			if n.Pool == p.Name && state[n.Name] == nil {
				ps.Nodes = append(ps.Nodes, n.Name)
			}
			seen[n.Name] = true
		}
		for _, m := range rec.Machines {
			if l := state[m.Name]; l != nil {
				*l = append(*l, m.Name)
			} else if !seen[m.Name] {
				ps.Nodes = append(ps.Nodes, m.Name) // joined, not heard from now
			}
		}
		for _, n := range needs {
			if n.Pool == p.Name {
				ps.Wanted += n.Add
			}
		}
		sort.Strings(ps.Nodes)
		out = append(out, ps)
	}
	return out
}
