package desired

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // time zones of ScalingSchedules and CronJobs, on any machine

	"cuelang.org/go/cue"
)

// Limits on what one revision may contain. MaxFileBytes and MaxTotalBytes
// are defaults that Options can change.
const (
	MaxFileBytes  = 4 << 20
	MaxFiles      = 10000
	MaxTotalBytes = 64 << 20
	MaxDocuments  = 500
	MaxReplicas   = 1000
)

// DefaultEvalTimeout bounds the evaluation of a revision's CUE.
const DefaultEvalTimeout = 10 * time.Second

// ErrTooLarge is returned for a revision past MaxFiles or MaxTotalBytes.
var ErrTooLarge = errors.New("revision too large")

// ErrTimeout is returned when a revision takes longer than its time limit to evaluate.
var ErrTimeout = errors.New("evaluation took too long")

// Options tune Load.
type Options struct {
	// Unsealer decrypts SealedSecrets; without it their values stay unknown
	// (their keys are still checked).
	Unsealer Unsealer
	// RequireUnsealed makes a SealedSecret that cannot be decrypted (no
	// Unsealer, or the wrong key) an error of the revision: a server must
	// never start pods with empty values in place of secret ones.
	RequireUnsealed bool
	// Timeout bounds evaluation (default DefaultEvalTimeout).
	Timeout time.Duration
	// MaxFileBytes and MaxTotalBytes cap one file and the whole revision
	// (defaults MaxFileBytes and MaxTotalBytes).
	MaxFileBytes, MaxTotalBytes int
}

// IsManifest reports whether a file name is one the loader reads: YAML,
// CUE and JSON (a JSON file that names no apiVersion, such as a
// package.json, is not a manifest and is skipped: see jsonManifest).
func IsManifest(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".cue", ".json":
		return true
	}
	return false
}

// jsonManifest reports whether a .json file is meant as a manifest (it
// names an apiVersion somewhere); other JSON files of a repository (tool
// configurations) are skipped, as files of other kinds are.
func jsonManifest(name string, data []byte) bool {
	return !strings.EqualFold(filepath.Ext(name), ".json") || bytes.Contains(data, []byte(`"apiVersion"`))
}

// Load renders the desired state from the files of one revision, keyed by
// slash-separated path, with default options.
func Load(files map[string][]byte) (*State, error) {
	return LoadWith(context.Background(), files, Options{})
}

// LoadWith renders the desired state from the files of one revision. Files
// that are neither YAML nor CUE are skipped. Every problem found is returned,
// as Errors, and no partial state. A revision whose evaluation outlasts the
// time limit fails with ErrTimeout; CUE evaluation cannot be interrupted, so
// it finishes in the background.
func LoadWith(ctx context.Context, files map[string][]byte, opts Options) (*State, error) {
	return loadWith(ctx, files, opts, nil)
}

// loadWith is LoadWith with a Loader's cache (l may be nil).
func loadWith(ctx context.Context, files map[string][]byte, opts Options, l *Loader) (*State, error) {
	opts.defaults()
	if hasCUE(files) && childReady.Load() {
		start := time.Now()
		if err := checkInChild(ctx, files, opts.Timeout); err != nil {
			return nil, err
		}
		// It terminates: evaluate here, with what is left of the limit and a
		// margin, since this process may be busier than the child was.
		opts.Timeout = max(opts.Timeout-time.Since(start), 0) + opts.Timeout
	}
	type result struct {
		st  *State
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			// A bug in a parser must not take the reconciler down: the
			// revision is refused, and the last good one keeps running.
			if p := recover(); p != nil {
				done <- result{nil, fmt.Errorf("internal error loading the revision: %v", p)}
			}
		}()
		st, err := load(files, opts, l)
		done <- result{st, err}
	}()
	t := time.NewTimer(opts.Timeout)
	defer t.Stop()
	select {
	case r := <-done:
		return r.st, r.err
	case <-t.C:
		return nil, fmt.Errorf("%w (more than %s)", ErrTimeout, opts.Timeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (o *Options) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = DefaultEvalTimeout
	}
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = MaxFileBytes
	}
	if o.MaxTotalBytes <= 0 {
		o.MaxTotalBytes = MaxTotalBytes
	}
}

func add(st *State, n *norm, kind string, u cue.Value, opts Options) {
	errs := n.errs
	switch kind {
	case "Deployment":
		if d, ok := decode[k8sDeployment](u, errs, n.d); ok {
			st.Workloads = append(st.Workloads, n.deployment(d))
		}
	case "Job":
		if j, ok := decode[k8sJob](u, errs, n.d); ok {
			st.Jobs = append(st.Jobs, Job{Meta: n.meta(j.Metadata), Spec: n.jobSpec("spec", j.Spec)})
		}
	case "ReplicationController":
		if rc, ok := decode[k8sReplicationController](u, errs, n.d); ok {
			st.Workloads = append(st.Workloads, n.replicationController(rc))
		}
	case "StatefulSet":
		if s, ok := decode[k8sStatefulSet](u, errs, n.d); ok {
			st.Workloads = append(st.Workloads, n.statefulSet(s))
		}
	case "DaemonSet":
		if d, ok := decode[k8sDaemonSet](u, errs, n.d); ok {
			st.Workloads = append(st.Workloads, n.daemonSet(d))
		}
	case "Pod":
		if p, ok := decode[k8sPod](u, errs, n.d); ok {
			n.bare(st, p)
		}
	case "CronJob":
		if c, ok := decode[k8sCronJob](u, errs, n.d); ok {
			st.CronJobs = append(st.CronJobs, n.cronJob(c))
		}
	case "ConfigMap":
		if c, ok := decode[k8sConfigMap](u, errs, n.d); ok {
			st.ConfigMaps = append(st.ConfigMaps, n.configMap(c))
		}
	case "Secret":
		if s, ok := decode[k8sSecret](u, errs, n.d); ok {
			st.Secrets = append(st.Secrets, n.secret(s))
		}
	case "SealedSecret":
		if s, ok := decode[k8sSealedSecret](u, errs, n.d); ok {
			st.Secrets = append(st.Secrets, n.sealed(s, opts.Unsealer, opts.RequireUnsealed))
		}
	case "PersistentVolumeClaim":
		if c, ok := decode[k8sPVC](u, errs, n.d); ok {
			st.Claims = append(st.Claims, n.claim(c))
		}
	case "Service":
		if s, ok := decode[k8sService](u, errs, n.d); ok {
			st.Services = append(st.Services, n.service(s))
		}
	case "HorizontalPodAutoscaler":
		if h, ok := decode[k8sHPA](u, errs, n.d); ok {
			st.Autoscalers = append(st.Autoscalers, n.autoscaler(h))
		}
	case "Endpoints":
		if e, ok := decode[k8sEndpoints](u, errs, n.d); ok {
			st.Endpoints = append(st.Endpoints, n.endpoints(e))
		}
	case "PodDisruptionBudget":
		if b, ok := decode[k8sPDB](u, errs, n.d); ok {
			st.Budgets = append(st.Budgets, n.disruptionBudget(b))
		}
	case "Namespace":
		if m, ok := decode[k8sNamespace](u, errs, n.d); ok {
			st.Namespaces = append(st.Namespaces, Namespace{Meta: n.meta(m.Metadata)})
		}
	case "NodePool":
		if p, ok := decode[k8sNodePool](u, errs, n.d); ok {
			st.Pools = append(st.Pools, n.nodePool(p))
		}
	case "ScalingSchedule":
		if s, ok := decode[k8sScalingSchedule](u, errs, n.d); ok {
			st.Schedules = append(st.Schedules, n.scalingSchedule(s))
		}
	default:
		if why, ok := acceptedKinds[kind]; ok {
			st.Ignored = append(st.Ignored, Ignored{Kind: kind, Name: n.d.str("metadata.name"), Source: fmt.Sprintf("%s:%d", n.d.file, n.d.line()), Why: why})
		}
	}
}

// cron parses a cron spec in its zone, reporting a bad spec at field.
func (n *norm) cron(field, spec, tz string) *Cron {
	if _, err := time.LoadLocation(tz); err != nil || tz == "Local" {
		tz = "UTC" // timeZone reported it
	}
	c, err := ParseCron(spec, tz)
	if err != nil {
		n.fail(field, "%v", err)
	}
	return c
}

func (n *norm) timeZone(field, tz string) string {
	if tz == "" {
		return "UTC"
	}
	if _, err := time.LoadLocation(tz); err != nil || tz == "Local" {
		n.fail(field, "unknown time zone %q (use an IANA name such as America/New_York)", tz)
	}
	return tz
}

func (n *norm) cronJob(c k8sCronJob) CronJob {
	tz := n.timeZone("spec.timeZone", c.Spec.TimeZone)
	cj := CronJob{
		Meta: n.meta(c.Metadata), Schedule: c.Spec.Schedule, TimeZone: tz,
		ConcurrencyPolicy: c.Spec.ConcurrencyPolicy, Suspend: c.Spec.Suspend, StartingDeadlineSeconds: c.Spec.StartingDeadlineSeconds,
		SuccessfulJobsHistoryLimit: intOr(c.Spec.SuccessfulJobsHistoryLimit, 3), FailedJobsHistoryLimit: intOr(c.Spec.FailedJobsHistoryLimit, 1),
		Job: n.jobSpec("spec.jobTemplate.spec", c.Spec.JobTemplate.Spec),
	}
	if cj.ConcurrencyPolicy == "" {
		cj.ConcurrencyPolicy = "Allow"
	}
	cj.Cron = n.cron("spec.schedule", c.Spec.Schedule, tz)
	return cj
}

func (n *norm) scalingSchedule(s k8sScalingSchedule) ScalingSchedule {
	out := ScalingSchedule{Meta: n.meta(s.Metadata), Target: s.Spec.Target.Name, TimeZone: n.timeZone("spec.timeZone", s.Spec.TimeZone)}
	names := map[string]bool{}
	for i, w := range s.Spec.Windows {
		f := fmt.Sprintf("spec.windows[%d]", i)
		win := ScalingWindow{Name: w.Name, Schedule: w.Schedule, Replicas: w.Replicas, Cron: n.cron(f+".schedule", w.Schedule, out.TimeZone)}
		if names[w.Name] {
			n.fail(f+".name", "duplicate window name %q", w.Name)
		}
		names[w.Name] = true
		out.Windows = append(out.Windows, win)
	}
	return out
}

func sortState(st *State) {
	sort.Slice(st.Workloads, func(i, j int) bool { return st.Workloads[i].Name < st.Workloads[j].Name })
	sort.Slice(st.Jobs, func(i, j int) bool { return st.Jobs[i].Name < st.Jobs[j].Name })
	sort.Slice(st.CronJobs, func(i, j int) bool { return st.CronJobs[i].Name < st.CronJobs[j].Name })
	sort.Slice(st.ConfigMaps, func(i, j int) bool { return st.ConfigMaps[i].Name < st.ConfigMaps[j].Name })
	sort.Slice(st.Secrets, func(i, j int) bool { return st.Secrets[i].Name < st.Secrets[j].Name })
	sort.Slice(st.Claims, func(i, j int) bool { return st.Claims[i].Name < st.Claims[j].Name })
	sort.Slice(st.Services, func(i, j int) bool { return st.Services[i].Name < st.Services[j].Name })
	sort.Slice(st.Autoscalers, func(i, j int) bool { return st.Autoscalers[i].Name < st.Autoscalers[j].Name })
	sort.Slice(st.Schedules, func(i, j int) bool { return st.Schedules[i].Name < st.Schedules[j].Name })
	sort.Slice(st.Endpoints, func(i, j int) bool { return st.Endpoints[i].Name < st.Endpoints[j].Name })
	sort.Slice(st.Budgets, func(i, j int) bool { return st.Budgets[i].Name < st.Budgets[j].Name })
	sort.Slice(st.Namespaces, func(i, j int) bool { return st.Namespaces[i].Name < st.Namespaces[j].Name })
	sort.Slice(st.Pools, func(i, j int) bool { return st.Pools[i].Name < st.Pools[j].Name })
	sort.Slice(st.Ignored, func(i, j int) bool {
		a, b := st.Ignored[i], st.Ignored[j]
		return a.Kind < b.Kind || a.Kind == b.Kind && a.Name < b.Name
	})
}

// ReadDir reads the manifests under dir, keyed by slash-separated relative
// path, applying the same limits as Load. Hidden directories (such as .git)
// are skipped; symbolic links are refused.
func ReadDir(dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	total := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !IsManifest(p) {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s: symbolic links are not allowed", rel)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Size() > MaxFileBytes {
			return fmt.Errorf("%s: file is %d bytes, more than the %d allowed", rel, info.Size(), MaxFileBytes)
		}
		total += int(info.Size())
		if total > MaxTotalBytes || len(files) >= MaxFiles {
			return fmt.Errorf("%s: more than %d files or %d bytes of manifests", dir, MaxFiles, MaxTotalBytes)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read manifests: %w", err)
	}
	return files, nil
}
