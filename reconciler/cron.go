package reconciler

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/schedule"
)

// CronState is a CronJob's durable record: when it last fired, and the runs
// (Jobs) it keeps.
type CronState struct {
	LastScheduled time.Time `json:"lastScheduled"`
	Runs          []CronRun `json:"runs,omitempty"`
}

// CronRun is one Job a CronJob created.
type CronRun struct {
	Name      string    `json:"name"`
	Hash      string    `json:"hash"`
	Scheduled time.Time `json:"scheduled"`
}

// cronStep advances a CronJob at now, given the progress of its runs: at a
// firing since the last one (the latest, if several were missed, and only
// within startingDeadlineSeconds), a run is added as concurrencyPolicy says
// (Allow: always; Forbid: not while one is active; Replace: instead of the
// active ones); finished runs beyond the history limits are dropped (their
// pods go with them). A new CronJob starts from now: it does not run for
// firings before it was seen. Pure: table-tested.
func cronStep(c desired.CronJob, prev CronState, progress map[string]JobProgress, now time.Time) (CronState, []string) {
	st := CronState{LastScheduled: prev.LastScheduled, Runs: slices.Clone(prev.Runs)}
	var notes []string
	if st.LastScheduled.IsZero() {
		st.LastScheduled = now.UTC()
		return st, nil
	}
	if due, ok := dueFiring(c, st.LastScheduled, now); ok {
		due = due.UTC()
		st.LastScheduled = due
		active := 0
		for _, r := range st.Runs {
			if progress[r.Name].State == JobRunning || progress[r.Name].State == "" {
				active++
			}
		}
		late := c.StartingDeadlineSeconds != nil && now.Sub(due) > time.Duration(*c.StartingDeadlineSeconds)*time.Second
		switch {
		case c.Suspend:
		case late:
			notes = append(notes, fmt.Sprintf("CronJob %s: missed the run of %s (startingDeadlineSeconds)", c.Name, due.Format(time.RFC3339)))
		case c.ConcurrencyPolicy == "Forbid" && active > 0:
			notes = append(notes, fmt.Sprintf("CronJob %s: run of %s skipped: the previous one is still active (concurrencyPolicy Forbid)", c.Name, due.Format(time.RFC3339)))
		default:
			if c.ConcurrencyPolicy == "Replace" && active > 0 {
				kept := st.Runs[:0]
				for _, r := range st.Runs {
					if p := progress[r.Name].State; p == JobComplete || p == JobFailed {
						kept = append(kept, r)
					} else {
						notes = append(notes, fmt.Sprintf("CronJob %s: run %s replaced (concurrencyPolicy Replace)", c.Name, r.Name))
					}
				}
				st.Runs = kept
			}
			run := CronRun{Name: fmt.Sprintf("%s-%d", c.Name, due.Unix()), Hash: c.Hash, Scheduled: due}
			st.Runs = append(st.Runs, run)
			notes = append(notes, fmt.Sprintf("CronJob %s: started run %s", c.Name, run.Name))
		}
	}
	// History: the newest finished runs within the limits stay, with their pods.
	complete, failed := 0, 0
	kept := make([]CronRun, 0, len(st.Runs))
	for i := len(st.Runs) - 1; i >= 0; i-- {
		r := st.Runs[i]
		switch progress[r.Name].State {
		case JobComplete:
			complete++
			if complete > c.SuccessfulJobsHistoryLimit {
				continue
			}
		case JobFailed:
			failed++
			if failed > c.FailedJobsHistoryLimit {
				continue
			}
		}
		kept = append(kept, r)
	}
	slices.Reverse(kept)
	st.Runs = kept
	return st, notes
}

// dueFiring is the latest firing of the CronJob after last and at or before now.
func dueFiring(c desired.CronJob, last, now time.Time) (time.Time, bool) {
	loc := time.UTC
	if c.TimeZone != "" {
		l, err := time.LoadLocation(c.TimeZone)
		if err != nil {
			return time.Time{}, false
		}
		loc = l
	}
	sched, err := schedule.Parser.Parse(c.Schedule)
	if err != nil {
		return time.Time{}, false
	}
	if s, ok := sched.(*cron.SpecSchedule); ok {
		s.Location = loc
	}
	var due time.Time
	for t, n := sched.Next(last.In(loc)), 0; !t.IsZero() && !t.After(now) && n < 100_000; t, n = sched.Next(t), n+1 {
		due = t
	}
	return due, !due.IsZero()
}

// runCronJobs advances every CronJob and returns the desired state with
// their runs added as Jobs (for Compute and the status).
func (r *Reconciler) runCronJobs(ctx context.Context, in *Input) {
	if in.Desired == nil {
		return
	}
	r.dropCrons(ctx, in.Desired.CronJobs)
	if len(in.Desired.CronJobs) == 0 {
		return
	}
	st := *in.Desired
	st.Jobs = slices.Clone(in.Desired.Jobs)
	byWorkload := in.reported()
	for _, c := range in.Desired.CronJobs {
		r.mu.Lock()
		prev := r.crons[c.Name]
		r.mu.Unlock()
		progress := map[string]JobProgress{}
		for _, run := range prev.Runs {
			progress[run.Name] = jobProgress(run.Name, c.Job, run.Hash, byWorkload[JobWorkload(run.Name)], in.Now)
		}
		next, notes := cronStep(c, prev, progress, in.Now)
		for _, n := range notes {
			zerolog.Ctx(ctx).Info().Str("cronjob", c.Name).Msg(n)
			r.event(n)
		}
		if !next.LastScheduled.Equal(prev.LastScheduled) || !slices.Equal(next.Runs, prev.Runs) {
			r.mu.Lock()
			r.crons[c.Name] = next
			r.mu.Unlock()
			if err := r.stored(r.cfg.Store.PutCron(ctx, c.Name, next)); err != nil {
				zerolog.Ctx(ctx).Warn().Err(err).Str("cronjob", c.Name).Msg("persist cronjob")
			}
		}
		for _, run := range next.Runs {
			st.Jobs = append(st.Jobs, desired.Job{Meta: desired.Meta{Name: run.Name, Labels: map[string]string{"baton.dev/cronjob": c.Name}}, Spec: c.Job, Hash: run.Hash})
		}
	}
	in.Desired = &st
	r.mu.Lock()
	r.withRuns = &st
	r.mu.Unlock()
}

// dropCrons forgets the CronJobs that left the desired state, with their
// runs: the status, the API and the metrics stop showing them, and their
// pods stop (their Jobs are no longer desired).
func (r *Reconciler) dropCrons(ctx context.Context, keep []desired.CronJob) {
	want := make(map[string]bool, len(keep))
	for _, c := range keep {
		want[c.Name] = true
	}
	r.mu.Lock()
	var gone []string
	for name := range r.crons {
		if !want[name] {
			gone = append(gone, name)
		}
	}
	if len(keep) == 0 {
		r.withRuns = nil
	}
	r.mu.Unlock()
	for _, name := range gone {
		if err := r.stored(r.cfg.Store.del(ctx, cronPrefix+name)); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Str("cronjob", name).Msg("forget cronjob")
			continue
		}
		r.mu.Lock()
		delete(r.crons, name)
		r.mu.Unlock()
	}
}
