package reconciler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/reconciler/provision"
	"github.com/batonhq/baton/reconciler/store"
)

// Machines is what node pools need of the cluster's join authority: a
// one-time token per new machine, the address machines join at, and the
// removal of a deleted machine's node (its credential revoked, its pod
// subnet released). The server holding the cluster identity gives it
// (Config.Machines); without it pools cannot add machines, and say so.
type Machines interface {
	// JoinToken mints a one-time agent token that joins only as node,
	// valid for ttl.
	JoinToken(ctx context.Context, node string, ttl time.Duration) (string, error)
	// JoinAddress is the join endpoint (host:port) new machines use.
	JoinAddress() string
	// RemoveNode revokes node's credential and releases its pod subnet;
	// a node that holds none is not an error.
	RemoveNode(ctx context.Context, node string) error
}

// ErrNoMachines: this server cannot mint join tokens.
var ErrNoMachines = errors.New("this server cannot mint join tokens (it does not hold the cluster identity, or has no join endpoint)")

// poolKeyPrefix keys the pools' records in KV: pool.<name>.
const poolKeyPrefix = "pool."

// poolQueue bounds the pool actions waiting for the worker; poolWorkers
// how many run at once.
const (
	poolQueue   = 64
	poolWorkers = 4
)

// poolJob is an action for the worker, with what it needs of the
// revision (read on the loop's goroutine).
type poolJob struct {
	act      PoolAction
	prov     provision.Provisioner
	provErr  error // why there is no provisioner
	template provision.Template
	ttl      time.Duration // a join token's life: the pool's joinTimeout
}

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
				r.events(fmt.Sprintf("NodePool %s left the revision: its %d machines stay as nodes (drain and remove them with baton node drain and baton node rm, and your provider)", name, len(old.Machines)))
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
		job := poolJob{act: a, ttl: p.JoinTimeout, template: provision.Template{CPUMilli: p.Capacity.CPUMilli, MemoryBytes: p.Capacity.MemoryBytes,
			Extra: p.Capacity.Extra, Labels: labels, Taints: p.Taints}}
		job.prov, job.provErr = r.provisionerOf(p, in.Desired)
		if !saved {
			r.mb.poolFailed(job.act, "the pool's record was not saved (or this server no longer leads): nothing asked")
			continue
		}
		select {
		case r.poolq <- job:
		default:
			r.mb.poolFailed(job.act, "too many pool actions waiting: this one was dropped")
		}
	}
	// What no pool can take, said once each time it changes.
	var lines []string
	for _, u := range unserved {
		lines = append(lines, fmt.Sprintf("%d replicas of %s: %s", u.Count, u.Workload, u.Reason))
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

// provisionerOf is pool p's provisioner: its command, if it is an
// executable of a directory this server allows (--provisioner-dir: a
// provisioner runs as the server's user, so a commit may not name any
// program), or its webhook with the key from the revision's Secret.
func (r *Reconciler) provisionerOf(p desired.NodePool, st *desired.State) (provision.Provisioner, error) {
	if len(p.Command) > 0 {
		if err := allowedCommand(p.Command[0], r.cfg.ProvisionerDirs); err != nil {
			return nil, err
		}
		return provision.Command{Argv: p.Command, Timeout: p.Timeout}, nil
	}
	if st != nil {
		for _, s := range st.Secrets {
			if s.Name == p.WebhookSecret {
				key, ok := s.Data[p.WebhookSecretKey]
				if !ok || len(key) == 0 {
					break
				}
				return provision.Webhook{URL: p.WebhookURL, Key: key, Timeout: p.Timeout}, nil
			}
		}
	}
	return nil, fmt.Errorf("the webhook's key (Secret %s, key %s) is not in the revision, or a sealed one this server cannot open", p.WebhookSecret, p.WebhookSecretKey)
}

// allowedCommand checks that path, symlinks resolved, is in one of dirs.
func allowedCommand(path string, dirs []string) error {
	if len(dirs) == 0 {
		return fmt.Errorf("provisioner %s: this server runs no provisioner commands (a provisioner runs as the server's user: start it with --provisioner-dir DIR and put the executable there, or use a webhook)", path)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil || !filepath.IsAbs(path) {
		return fmt.Errorf("provisioner %s: want the absolute path of an executable in a --provisioner-dir (%s)", path, strings.Join(dirs, ", "))
	}
	for _, d := range dirs {
		if rd, err := filepath.EvalSymlinks(d); err == nil && filepath.Dir(real) == rd {
			return nil
		}
	}
	return fmt.Errorf("provisioner %s: not in a --provisioner-dir of this server (%s)", path, strings.Join(dirs, ", "))
}

// poolFailed hands back an action that was not carried out: its machines
// count as not made (deleted by name in case), its drains are forgotten;
// its deletions are asked again at their time.
func (m *mailbox) poolFailed(a PoolAction, why string) {
	m.mu.Lock()
	m.poolDone = append(m.poolDone, PoolResult{Pool: a.Pool, Failed: a.Create, NotDrained: a.Drain, Err: why})
	m.mu.Unlock()
}

// poolWorker carries out pool actions off the loop (provisioners may take
// minutes): one pool's actions one after the other, in the order decided
// (a deletion never overtakes the creation of its machine), up to
// poolWorkers pools at once; what it did goes to the next pass.
func (r *Reconciler) poolWorker(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, poolWorkers)
	queued := map[string][]poolJob{} // by pool: the running job first
	finished := make(chan string)
	start := func(job poolJob) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			res := r.doPool(ctx, job)
			<-sem
			r.mb.mu.Lock()
			r.mb.poolDone = append(r.mb.poolDone, res)
			r.mb.mu.Unlock()
			r.kick()
			select {
			case finished <- job.act.Pool:
			case <-ctx.Done():
			}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case job := <-r.poolq:
			pool := job.act.Pool
			queued[pool] = append(queued[pool], job)
			if len(queued[pool]) == 1 {
				start(job)
			}
		case pool := <-finished:
			queued[pool] = queued[pool][1:]
			if len(queued[pool]) > 0 {
				start(queued[pool][0])
			} else {
				delete(queued, pool)
			}
		}
	}
}

// doPool carries out one action: drains first (the node controls, as baton
// node drain writes them), then deletions, then creations.
func (r *Reconciler) doPool(ctx context.Context, job poolJob) PoolResult {
	log := zerolog.Ctx(ctx).With().Str("pool", job.act.Pool).Logger()
	res := PoolResult{Pool: job.act.Pool}
	var errs []string
	for _, node := range job.act.Drain {
		if err := r.setControl(ctx, store.NodeControl{Node: node, Draining: true, By: "NodePool " + job.act.Pool, At: r.cfg.Clock()}); err != nil {
			errs = append(errs, fmt.Sprintf("drain %s: %v", node, err))
			res.NotDrained = append(res.NotDrained, node)
		}
	}
	for _, m := range job.act.Delete {
		revoked, err := r.deleteMachine(ctx, job, m)
		if err != nil {
			log.Warn().Err(err).Str("machine", m.Name).Msg("delete a pool machine")
			errs = append(errs, err.Error())
			continue
		}
		res.Deleted = append(res.Deleted, m.Name)
		if revoked {
			res.Revoked = append(res.Revoked, m.Name)
		}
	}
	if len(job.act.Create) > 0 {
		made, err := r.createMachines(ctx, job)
		res.Created = made
		asked := map[string]bool{}
		for _, m := range made {
			asked[m.Name] = true
		}
		for _, name := range job.act.Create {
			if !asked[name] {
				res.Failed = append(res.Failed, name)
			}
		}
		if err == nil && len(res.Failed) > 0 {
			err = fmt.Errorf("the provisioner's answer left out %s", strings.Join(res.Failed, ", "))
		}
		if err != nil {
			log.Warn().Err(err).Strs("machines", res.Failed).Msg("create pool machines")
			errs = append(errs, err.Error())
		}
	}
	// Last, so that what this job made or deleted is known to the record.
	if job.act.List && job.prov != nil {
		listed, err := provision.List(ctx, job.prov, job.act.Pool)
		if err != nil {
			log.Warn().Err(err).Msg("list a pool's machines")
		} else {
			res.Listing = true
			for _, m := range listed {
				res.Listed = append(res.Listed, PoolMachine{Name: m.Name, ID: m.ID})
			}
		}
	}
	res.Err = strings.Join(errs, "; ")
	return res
}

// createMachines mints a token for each machine and asks the provisioner.
func (r *Reconciler) createMachines(ctx context.Context, job poolJob) ([]PoolMachine, error) {
	if job.prov == nil {
		return nil, job.provErr
	}
	if r.cfg.Machines == nil {
		return nil, ErrNoMachines
	}
	create := make([]provision.NewMachine, 0, len(job.act.Create))
	for _, name := range job.act.Create {
		tok, err := r.cfg.Machines.JoinToken(ctx, name, job.ttl)
		if err != nil {
			return nil, fmt.Errorf("mint a join token for %s: %w", name, err)
		}
		create = append(create, provision.NewMachine{Name: name, JoinToken: tok})
	}
	// The machines made are kept with an error (one of two made).
	made, err := provision.Create(ctx, job.prov, job.act.Pool, r.cfg.Machines.JoinAddress(), job.template, create)
	out := make([]PoolMachine, len(made))
	for i, m := range made {
		out[i] = PoolMachine{Name: m.Name, ID: m.ID}
	}
	return out, err
}

// deleteMachine asks the provisioner to delete m, then revokes its node's
// credential and its unused join tokens (it reports whether it did),
// releases its subnet, lifts its drain and forgets the node.
func (r *Reconciler) deleteMachine(ctx context.Context, job poolJob, m PoolMachine) (bool, error) {
	if job.prov == nil {
		return false, fmt.Errorf("delete %s: %w", m.Name, job.provErr)
	}
	if err := provision.Delete(ctx, job.prov, job.act.Pool, provision.Machine{Name: m.Name, ID: m.ID}); err != nil {
		return false, fmt.Errorf("delete %s: %w", m.Name, err)
	}
	revoked := false
	if r.cfg.Machines != nil {
		if err := r.cfg.Machines.RemoveNode(ctx, m.Name); err != nil {
			r.post(fmt.Sprintf("NodePool %s: machine %s deleted, but its credential was not revoked: %v (baton node rm %s)", job.act.Pool, m.Name, err, m.Name))
		} else {
			revoked = true
		}
	}
	if err := r.setControl(ctx, store.NodeControl{Node: m.Name}); err != nil {
		r.post(fmt.Sprintf("NodePool %s: machine %s deleted; its drain record stays: %v (baton node uncordon %s)", job.act.Pool, m.Name, err, m.Name))
	}
	r.ForgetNode(m.Name)
	return revoked, nil
}

// setControl writes a node control as baton node drain / uncordon do.
func (r *Reconciler) setControl(ctx context.Context, c store.NodeControl) error {
	js, err := jetstream.New(r.cfg.NATS)
	if err != nil {
		return err
	}
	return store.SetNodeControl(ctx, js, c)
}

// restorePools reads the pools' records a former leader kept.
func (r *Reconciler) restorePools(ctx context.Context) (map[string]PoolRecord, error) {
	recs, err := store.List(ctx, r.cfg.Store, poolKeyPrefix, func(name string, rec PoolRecord) bool { return rec.Pool == name })
	if err != nil {
		return nil, err
	}
	return maps.Clone(recs), nil
}
