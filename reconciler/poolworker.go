package reconciler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
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
	ttl      time.Duration // a join token's life: the pool's joinTimeout and timeout
}

// provisionerOf is pool p's provisioner: its command, if it is an
// executable of a directory this server allows (--provisioner-dir: a
// provisioner runs as the server's user, so a commit may not name any
// program), or its webhook with the key from the revision's Secret.
func (r *Reconciler) provisionerOf(p desired.NodePool, st *desired.State) (provision.Provisioner, error) {
	if len(p.Command) > 0 {
		real, err := allowedCommand(p.Command[0], r.cfg.ProvisionerDirs)
		if err != nil {
			return nil, err
		}
		// The path checked is the path run: a symlink swapped after the
		// check changes nothing.
		return provision.Command{Argv: append([]string{real}, p.Command[1:]...), Timeout: p.Timeout}, nil
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

// allowedCommand checks that path, symlinks resolved, is in one of dirs,
// and returns it resolved.
func allowedCommand(path string, dirs []string) (string, error) {
	if len(dirs) == 0 {
		return "", fmt.Errorf("provisioner %s: this server runs no provisioner commands (a provisioner runs as the server's user: start it with --provisioner-dir DIR and put the executable there, or use a webhook)", path)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil || !filepath.IsAbs(path) {
		return "", fmt.Errorf("provisioner %s: want the absolute path of an executable in a --provisioner-dir (%s)", path, strings.Join(dirs, ", "))
	}
	for _, d := range dirs {
		if rd, err := filepath.EvalSymlinks(d); err == nil && filepath.Dir(real) == rd {
			return real, nil
		}
	}
	return "", fmt.Errorf("provisioner %s: not in a --provisioner-dir of this server (%s)", path, strings.Join(dirs, ", "))
}

// poolFailed hands back an action that was not carried out: its machines
// were never asked for (dropped from the record, the pool backs off), its
// drains are forgotten; its deletions are asked again at their time.
func (m *mailbox) poolFailed(a PoolAction, why string) {
	m.mu.Lock()
	m.poolDone = append(m.poolDone, PoolResult{Pool: a.Pool, NotAsked: a.Create, NotDrained: a.Drain, Err: why})
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
		made, asked, err := r.createMachines(ctx, job)
		res.Created = made
		if !asked {
			res.NotAsked = job.act.Create
		} else {
			madeNames := map[string]bool{}
			for _, m := range made {
				madeNames[m.Name] = true
			}
			for _, name := range job.act.Create {
				if !madeNames[name] {
					res.Failed = append(res.Failed, name)
				}
			}
			if err == nil && len(res.Failed) > 0 {
				err = fmt.Errorf("the provisioner's answer left out %s", strings.Join(res.Failed, ", "))
			}
		}
		if err != nil {
			log.Warn().Err(err).Strs("failed", res.Failed).Strs("notAsked", res.NotAsked).Msg("create pool machines")
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

// createMachines mints a token for each machine and asks the provisioner;
// asked is false when it could not be asked (nothing was made then).
func (r *Reconciler) createMachines(ctx context.Context, job poolJob) (made []PoolMachine, asked bool, err error) {
	if job.prov == nil {
		return nil, false, job.provErr
	}
	if r.cfg.Machines == nil {
		return nil, false, ErrNoMachines
	}
	create := make([]provision.NewMachine, 0, len(job.act.Create))
	for _, name := range job.act.Create {
		tok, err := r.cfg.Machines.JoinToken(ctx, name, job.ttl)
		if err != nil {
			for _, m := range create { // the tokens minted go with the request
				_ = r.cfg.Machines.RemoveNode(ctx, m.Name)
			}
			return nil, false, fmt.Errorf("mint a join token for %s: %w", name, err)
		}
		create = append(create, provision.NewMachine{Name: name, JoinToken: tok})
	}
	// The machines made are kept with an error (one of two made).
	got, err := provision.Create(ctx, job.prov, job.act.Pool, r.cfg.Machines.JoinAddress(), job.template, create)
	made = make([]PoolMachine, len(got))
	for i, m := range got {
		made[i] = PoolMachine{Name: m.Name, ID: m.ID}
	}
	return made, true, err
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
