package reconciler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"

	"github.com/batonhq/baton/desired"
)

// Plan is what applying a revision would do to the live cluster.
type Plan struct {
	// Against identifies the live state the plan was computed from: the
	// synced revision and a digest of every live replica and assignment
	// (like nomad's check-index); a later plan with another value means the
	// cluster moved.
	Against   PlanBase         `json:"against"`
	Summary   []string         `json:"summary"`
	Changes   []desired.Change `json:"changes"`
	Workloads []WorkloadPlan   `json:"workloads"`
	Warnings  []string         `json:"warnings,omitempty"`
	Errors    []string         `json:"errors,omitempty"`
}

// PlanBase is the live state a plan was computed against.
type PlanBase struct {
	Revision string `json:"revision"`
	Index    string `json:"index"`
}

// WorkloadPlan is one workload's part of a plan.
type WorkloadPlan struct {
	Name string `json:"name"`
	// Now and After are the replica counts, and Owner who sets After.
	Now   int    `json:"now"`
	After int    `json:"after"`
	Owner string `json:"owner"`
	// Rollout describes how a template change would roll ("" when none).
	Rollout string `json:"rollout,omitempty"`
	// Placements are the nodes new replicas would land on (node → count),
	// by the real scheduler against the live nodes; Unplaceable those that
	// fit nowhere, with the reason.
	Placements  map[string]int `json:"placements,omitempty"`
	Unplaceable int            `json:"unplaceable,omitempty"`
	Reason      string         `json:"reason,omitempty"`
}

// Changed reports whether applying the plan would change anything.
func (p Plan) Changed() bool {
	if len(p.Changes) > 0 {
		return true
	}
	for _, w := range p.Workloads {
		if w.Now != w.After || w.Rollout != "" {
			return true
		}
	}
	return false
}

// Plan computes what files, as the next revision, would do.
func (r *Reconciler) Plan(ctx context.Context, files map[string][]byte) (Plan, error) {
	var p Plan
	st, err := desired.LoadWith(ctx, files, desired.Options{Unsealer: r.cfg.Unsealer})
	if err != nil {
		var errs desired.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				p.Errors = append(p.Errors, e.Error())
			}
			return p, nil
		}
		return p, err
	}
	p.Warnings = st.Warnings
	in := r.input()
	r.mu.Lock()
	cur := r.desired
	p.Against = PlanBase{Revision: r.synced.ID, Index: liveIndex(in)}
	r.mu.Unlock()
	p.Changes = desired.Diff(cur, st)

	// The scheduler's answer against the live nodes.
	in.Desired = st
	in.Frozen, in.Rollback, in.Backoff = nil, nil, nil
	actions := Compute(in)
	placed := map[string]map[string]int{}
	pending := map[string]Action{}
	for _, a := range actions {
		switch a.Type {
		case Start:
			if placed[a.Workload] == nil {
				placed[a.Workload] = map[string]int{}
			}
			placed[a.Workload][a.Node]++
		case Pending:
			pending[a.Workload] = a
		}
	}
	running := map[string]int{}
	for _, w := range r.Status().Workloads {
		running[w.Name] = w.Running
	}
	old := map[string]desired.Workload{}
	if cur != nil {
		for _, w := range cur.Workloads {
			old[w.Name] = w
		}
	}
	for _, w := range st.Workloads {
		sc := scaleOf(w, st, in.Now)
		wp := WorkloadPlan{Name: w.Name, Now: running[w.Name], After: sc.Replicas, Owner: sc.Owner, Placements: placed[w.Name]}
		if sc.Window != "" {
			wp.Owner += " (window " + sc.Window + ")"
		}
		if o, ok := old[w.Name]; ok && o.Hash != w.Hash {
			surge, unavailable := rolloutLimits(w)
			if w.Strategy.Type == "Recreate" {
				wp.Rollout = fmt.Sprintf("Recreate: all %d replicas stop, then %d start", running[w.Name], sc.Replicas)
			} else {
				wp.Rollout = fmt.Sprintf("rolling update of %d replicas, %d extra and %d unavailable at a time", sc.Replicas, surge, unavailable)
			}
		}
		if a, ok := pending[w.Name]; ok {
			wp.Unplaceable, wp.Reason = a.Count, a.Reason
		}
		p.Workloads = append(p.Workloads, wp)
		p.Summary = append(p.Summary, summaryLine(wp, old[w.Name], w))
	}
	for _, c := range p.Changes {
		if c.Kind == "Deployment" && c.Op == "removed" {
			p.Summary = append(p.Summary, fmt.Sprintf("%s: removed (%d replicas stop)", c.Name, running[c.Name]))
		}
	}
	sort.Strings(p.Summary)
	return p, nil
}

func summaryLine(wp WorkloadPlan, old, w desired.Workload) string {
	var parts []string
	if old.Name == "" {
		parts = append(parts, fmt.Sprintf("new, %d replicas", wp.After))
	}
	if old.Name != "" && len(old.Pod.Containers) > 0 && len(w.Pod.Containers) > 0 && old.Pod.Containers[0].Image != w.Pod.Containers[0].Image {
		parts = append(parts, fmt.Sprintf("image %s → %s", old.Pod.Containers[0].Image, w.Pod.Containers[0].Image))
	} else if wp.Rollout != "" {
		parts = append(parts, "template changed")
	}
	if wp.Rollout != "" {
		parts = append(parts, wp.Rollout)
	}
	if old.Name != "" && wp.Now != wp.After {
		parts = append(parts, fmt.Sprintf("scaled %d → %d by %s", wp.Now, wp.After, wp.Owner))
	}
	if wp.Unplaceable > 0 {
		parts = append(parts, fmt.Sprintf("%d would not fit: %s", wp.Unplaceable, wp.Reason))
	}
	if len(parts) == 0 {
		parts = append(parts, "no change")
	}
	line := w.Name + ": "
	for i, s := range parts {
		if i > 0 {
			line += "; "
		}
		line += s
	}
	return line
}

// liveIndex digests the live replicas and assignments.
func liveIndex(in Input) string {
	h := sha256.New()
	for _, name := range sortedKeys(in.Nodes) {
		for _, r := range in.Nodes[name].Replicas {
			fmt.Fprintf(h, "%s %s %s %s\n", name, r.ID, r.SpecHash, r.State)
		}
	}
	for _, id := range sortedKeys(in.Assignments) {
		fmt.Fprintf(h, "a %s %s\n", id, in.Assignments[id].Node)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
