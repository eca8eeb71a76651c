package reconciler

import (
	"fmt"
	"slices"
	"time"

	"github.com/batonhq/baton/desired"
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

// dueFiring is the latest firing of the CronJob after last and at or
// before now, from its schedule parsed when the revision loaded.
func dueFiring(c desired.CronJob, last, now time.Time) (time.Time, bool) {
	if c.Cron == nil {
		return time.Time{}, false
	}
	var due time.Time
	for t, n := c.Cron.Next(last), 0; !t.IsZero() && !t.After(now) && n < 100_000; t, n = c.Cron.Next(t), n+1 {
		due = t
	}
	return due, !due.IsZero()
}

// cronsStep advances every CronJob and drops the records of those that left
// the desired state (their runs go with them: the status, the API and the
// metrics stop showing them, and their pods stop). It returns the records,
// the desired state with the runs added as Jobs, the KV writes and the
// events. Pure.
func cronsStep(prev map[string]CronState, st *desired.State, live *Live, now time.Time) (map[string]CronState, *desired.State, []kvWrite, []string) {
	next := make(map[string]CronState, len(st.CronJobs))
	var writes []kvWrite
	var events []string
	withRuns := *st
	withRuns.Jobs = slices.Clone(st.Jobs)
	for _, c := range st.CronJobs {
		p := prev[c.Name]
		if c.Cron == nil {
			events = append(events, fmt.Sprintf("CronJob %s: its schedule was not parsed when the revision loaded: not run", c.Name))
		}
		progress := map[string]JobProgress{}
		for _, run := range p.Runs {
			progress[run.Name] = jobProgress(run.Name, c.Job, run.Hash, live.reported(JobWorkload(run.Name)), now)
		}
		n, notes := cronStep(c, p, progress, now)
		events = append(events, notes...)
		if !n.LastScheduled.Equal(p.LastScheduled) || !slices.Equal(n.Runs, p.Runs) {
			writes = append(writes, kvWrite{key: cronPrefix + c.Name, value: n})
		}
		next[c.Name] = n
		for _, run := range n.Runs {
			withRuns.Jobs = append(withRuns.Jobs, desired.Job{Meta: desired.Meta{Name: run.Name, Labels: map[string]string{"baton.dev/cronjob": c.Name}}, Spec: c.Job, Hash: run.Hash})
		}
	}
	for _, name := range sortedKeys(prev) {
		if _, ok := next[name]; !ok {
			writes = append(writes, kvWrite{key: cronPrefix + name})
		}
	}
	return next, &withRuns, writes, events
}
