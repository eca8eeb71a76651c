package reconciler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/batonhq/baton/desired"
)

// Plan is what applying a revision would do to the live cluster. Its JSON
// form is the API's answer to POST /api/v1/plan (schema in
// docs/architecture.md, "Plan JSON").
type Plan struct {
	// Against identifies the live state the plan was computed from: the
	// synced revision and a digest of every live replica and assignment
	// (like nomad's check-index); a later plan with another value means the
	// cluster moved.
	Against   PlanBase         `json:"against"`
	Summary   []string         `json:"summary"`
	Changes   []desired.Change `json:"changes"`
	Workloads []WorkloadPlan   `json:"workloads"`
	// Machines are what node pools would add for the replicas that fit
	// on no live node (SizePools against the pools' machines now).
	Machines []PoolNeed `json:"machines,omitempty"`
	Warnings []string   `json:"warnings,omitempty"`
	Errors   []string   `json:"errors,omitempty"`
}

// PlanBase is the live state a plan was computed against.
type PlanBase struct {
	Revision string `json:"revision"`
	Index    string `json:"index"`
}

// WorkloadPlan is one workload's part of a plan.
type WorkloadPlan struct {
	Name string `json:"name"`
	// Op is added, removed, changed or unchanged (the Deployment object).
	Op string `json:"op"`
	// Now and After are the replica counts, and Owner who sets After: git
	// (spec.replicas), a ScalingSchedule's window or an autoscaler.
	Now   int    `json:"now"`
	After int    `json:"after"`
	Owner string `json:"owner"`
	// Image is the first container's image, and ImageBefore the one running
	// now when it changes.
	Image       string `json:"image,omitempty"`
	ImageBefore string `json:"imageBefore,omitempty"`
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

// planRequest asks the loop for a plan of a loaded revision.
type planRequest struct {
	state *desired.State
	reply chan Plan
}

// Plan computes what files, as the next revision, would do. The files are
// loaded here; the plan itself is made on the loop's goroutine, between
// two passes, from the state the loop owns.
func (r *Reconciler) Plan(ctx context.Context, files map[string][]byte) (Plan, error) {
	st, err := r.loader.Load(ctx, files)
	if err != nil {
		var errs desired.Errors
		if !errors.As(err, &errs) {
			return Plan{}, err
		}
		var p Plan
		for _, e := range errs {
			p.Errors = append(p.Errors, e.Error())
		}
		return p, nil
	}
	if !r.running.Load() {
		return r.plan(st), nil // no loop: nothing else touches the state
	}
	req := planRequest{state: st, reply: make(chan Plan, 1)}
	select {
	case r.plans <- req:
	case <-ctx.Done():
		return Plan{}, fmt.Errorf("plan: the reconciler is busy: %w", ctx.Err())
	}
	select {
	case p := <-req.reply:
		return p, nil
	case <-ctx.Done():
		return Plan{}, ctx.Err()
	}
}

// plan is the loop's part of Plan.
func (r *Reconciler) plan(st *desired.State) Plan {
	s := r.st
	in := Input{Desired: s.desired, Nodes: s.views, Assignments: s.assignments, Now: r.cfg.Clock(), NodeGrace: r.cfg.NodeGrace,
		PendingTimeout: r.cfg.PendingTimeout, Started: s.started, Strategy: r.cfg.Strategy, ReadySince: s.readySince}
	return makePlan(s.desired, st, in, s.hpa, s.synced.ID, s.poolRecords)
}

// makePlan compares st with the state in force (cur) and runs the real
// scale rule (scalesStep) and Compute on the live input. Pure: golden-tested.
func makePlan(cur, st *desired.State, in Input, hpa map[string]HPAState, synced string, pools map[string]PoolRecord) Plan {
	p := Plan{Against: PlanBase{Revision: synced, Index: liveIndex(in)}, Changes: desired.Diff(cur, st), Workloads: []WorkloadPlan{}}
	p.Warnings = append(append(p.Warnings, st.Warnings...), desired.Lint(st)...)

	// Replica counts: the one scale rule on the new revision (an
	// autoscaler's next count within the new bounds, else the schedules'
	// windows, else spec.replicas).
	in.Desired = st
	live := NewLive(in)
	running := map[string]int{}
	for name, g := range live.groups {
		for _, rep := range g.all {
			if !rep.pending && !rep.held && alive(rep.State) {
				running[name]++
			}
		}
	}
	scales, _, _, _ := scalesStep(st, hpa, live, in.Now)
	in.Scales = scales

	// The scheduler's answer against the live nodes.
	placed := map[string]map[string]int{}
	pending := map[string]Pending{}
	res := Compute(in, live)
	for _, a := range res.Starts {
		if placed[a.Workload] == nil {
			placed[a.Workload] = map[string]int{}
		}
		placed[a.Workload][a.Node]++
	}
	for _, a := range res.Pending {
		pending[a.Workload] = a
	}
	old := map[string]desired.Workload{}
	if cur != nil {
		for _, w := range cur.Workloads {
			old[w.Name] = w
		}
	}
	changed := map[string]bool{} // Deployments with a field changed
	for _, c := range p.Changes {
		if c.Kind == "Deployment" {
			changed[c.Name] = true
		}
	}
	for _, w := range st.Workloads {
		sc := scales[w.Name]
		if w.Kind == "DaemonSet" {
			sc.Replicas = res.Daemons[w.Name] // one a node it may go to
		}
		wp := WorkloadPlan{Name: w.Name, Op: "unchanged", Now: running[w.Name], After: sc.Replicas, Owner: sc.By(),
			Image: firstImage(w), Placements: placed[w.Name]}
		if sc.Window != "" {
			wp.Owner += " (window " + sc.Window + ")"
		}
		o, had := old[w.Name]
		switch {
		case !had:
			wp.Op = "added"
		case o.Hash != w.Hash:
			wp.Op = "changed"
			if firstImage(o) != wp.Image {
				wp.ImageBefore = firstImage(o)
			}
			surge, unavailable := rolloutLimits(w)
			if w.Strategy.Type == "Recreate" {
				wp.Rollout = fmt.Sprintf("Recreate: all %d replicas stop, then %d start", wp.Now, wp.After)
			} else {
				wp.Rollout = fmt.Sprintf("rolling update of %d replicas, %d extra and %d unavailable at a time", wp.After, surge, unavailable)
			}
		}
		if wp.Op == "unchanged" && changed[w.Name] {
			wp.Op = "changed" // a field outside the template, e.g. spec.replicas
		}
		if a, ok := pending[w.Name]; ok {
			wp.Unplaceable, wp.Reason = a.Count, a.Reason
		}
		p.Workloads = append(p.Workloads, wp)
		delete(old, w.Name)
	}
	for name, w := range old {
		p.Workloads = append(p.Workloads, WorkloadPlan{Name: name, Op: "removed", Now: running[name], Owner: OwnerGit.String(), Image: firstImage(w)})
	}
	sort.Slice(p.Workloads, func(i, j int) bool { return p.Workloads[i].Name < p.Workloads[j].Name })
	for _, wp := range p.Workloads {
		p.Summary = append(p.Summary, summaryLine(wp))
	}
	for _, c := range p.Changes {
		if c.Kind != "Deployment" {
			p.Summary = append(p.Summary, fmt.Sprintf("%s %s: %s", c.Kind, c.Name, c.Op))
		}
	}
	// The machines node pools would add for what fits nowhere.
	if len(st.Pools) > 0 {
		joining := map[string]int{}
		for name, rec := range pools {
			for _, m := range rec.Machines {
				if !m.Joined && m.Deleting.IsZero() {
					joining[name]++
				}
			}
		}
		needs, unserved := SizePools(st.Pools, poolSizes(pools, PoolNodes(in, live, st.Pools)), joining, res.Pending, st)
		p.Machines = needs
		for _, n := range needs {
			var parts []string
			for _, w := range sortedKeys(n.Workloads) {
				parts = append(parts, fmt.Sprintf("%s of %s", replicas(n.Workloads[w]), w))
			}
			p.Summary = append(p.Summary, fmt.Sprintf("NodePool %s: would add %s for %s", n.Pool, machines(n.Add), strings.Join(parts, ", ")))
		}
		for _, u := range unserved {
			p.Summary = append(p.Summary, fmt.Sprintf("no NodePool can take %s of %s: %s", replicas(u.Count), u.Workload, u.Reason))
		}
	}
	return p
}

func replicas(n int) string { return count(n, "replica") }

func machines(n int) string { return count(n, "machine") }

// count is "1 thing" or "n things".
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

func firstImage(w desired.Workload) string {
	if len(w.Pod.Containers) == 0 {
		return ""
	}
	return w.Pod.Containers[0].Image
}

// summaryLine is one workload's plain-language line: "web: image 1.4 →
// 1.5; rolling update of ...; scaled 2 → 4 by ...".
func summaryLine(wp WorkloadPlan) string {
	if wp.Op == "removed" {
		return fmt.Sprintf("%s: removed, %s stop", wp.Name, replicas(wp.Now))
	}
	var parts []string
	if wp.Op == "added" {
		parts = append(parts, fmt.Sprintf("new, %s (%s)", replicas(wp.After), wp.Image))
	}
	switch {
	case wp.ImageBefore != "":
		parts = append(parts, fmt.Sprintf("image %s → %s", wp.ImageBefore, wp.Image))
	case wp.Rollout != "":
		parts = append(parts, "template changed")
	}
	if wp.Rollout != "" {
		parts = append(parts, wp.Rollout)
	}
	if wp.Op != "added" && wp.Now != wp.After {
		parts = append(parts, fmt.Sprintf("scaled %d → %d by %s", wp.Now, wp.After, wp.Owner))
	}
	if wp.Unplaceable > 0 {
		parts = append(parts, fmt.Sprintf("%d would not fit: %s", wp.Unplaceable, wp.Reason))
	}
	if len(parts) == 0 {
		what := "no change"
		if wp.Op == "changed" {
			what = "changed outside the pod template"
		}
		starts := 0
		for _, n := range wp.Placements {
			starts += n
		}
		if starts > 0 {
			// Not the change's doing: the live state is being repaired
			// (replacements, moves off a draining node, a rollout under way).
			what += fmt.Sprintf("; %s would start anyway (replacing or moving live ones)", replicas(starts))
		}
		parts = append(parts, what)
	}
	return wp.Name + ": " + strings.Join(parts, "; ")
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
