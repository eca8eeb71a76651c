package reconciler

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/reconciler/store"
)

func TestCronStep(t *testing.T) {
	base := desired.CronJob{Meta: desired.Meta{Name: "report"}, Schedule: "*/10 * * * *", ConcurrencyPolicy: "Allow",
		SuccessfulJobsHistoryLimit: 3, FailedJobsHistoryLimit: 1, Hash: "h1"}
	with := func(f func(*desired.CronJob)) desired.CronJob { c := base; f(&c); return c }
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	run := func(ts string) CronRun {
		s := at(ts)
		return CronRun{Name: fmt.Sprintf("report-%d", s.Unix()), Hash: "h1", Scheduled: s}
	}
	state := func(last string, runs ...CronRun) CronState { return CronState{LastScheduled: at(last), Runs: runs} }
	sixty := 60
	tests := []struct {
		name     string
		c        desired.CronJob
		prev     CronState
		progress map[string]string // run → job state
		now      string
		last     string
		runs     []CronRun
	}{
		{name: "first sight: starts from now, no run", c: base, now: "2026-11-27T10:05:00Z", last: "2026-11-27T10:05:00Z"},
		{name: "nothing due", c: base, prev: state("2026-11-27T10:00:00Z"), now: "2026-11-27T10:09:59Z", last: "2026-11-27T10:00:00Z"},
		{name: "a firing: a run", c: base, prev: state("2026-11-27T10:00:00Z"), now: "2026-11-27T10:10:03Z",
			last: "2026-11-27T10:10:00Z", runs: []CronRun{run("2026-11-27T10:10:00Z")}},
		{name: "several missed: only the latest runs", c: base, prev: state("2026-11-27T10:00:00Z"), now: "2026-11-27T10:35:00Z",
			last: "2026-11-27T10:30:00Z", runs: []CronRun{run("2026-11-27T10:30:00Z")}},
		{name: "Allow: alongside an active run", c: base, prev: state("2026-11-27T10:00:00Z", run("2026-11-27T10:00:00Z")),
			progress: map[string]string{run("2026-11-27T10:00:00Z").Name: JobRunning}, now: "2026-11-27T10:10:00Z",
			last: "2026-11-27T10:10:00Z", runs: []CronRun{run("2026-11-27T10:00:00Z"), run("2026-11-27T10:10:00Z")}},
		{name: "Forbid: skipped while one is active", c: with(func(c *desired.CronJob) { c.ConcurrencyPolicy = "Forbid" }),
			prev: state("2026-11-27T10:00:00Z", run("2026-11-27T10:00:00Z")), progress: map[string]string{run("2026-11-27T10:00:00Z").Name: JobRunning},
			now: "2026-11-27T10:10:00Z", last: "2026-11-27T10:10:00Z", runs: []CronRun{run("2026-11-27T10:00:00Z")}},
		{name: "Replace: the active run goes", c: with(func(c *desired.CronJob) { c.ConcurrencyPolicy = "Replace" }),
			prev: state("2026-11-27T10:00:00Z", run("2026-11-27T10:00:00Z")), progress: map[string]string{run("2026-11-27T10:00:00Z").Name: JobRunning},
			now: "2026-11-27T10:10:00Z", last: "2026-11-27T10:10:00Z", runs: []CronRun{run("2026-11-27T10:10:00Z")}},
		{name: "suspended: no run", c: with(func(c *desired.CronJob) { c.Suspend = true }), prev: state("2026-11-27T10:00:00Z"),
			now: "2026-11-27T10:10:00Z", last: "2026-11-27T10:10:00Z"},
		{name: "past startingDeadlineSeconds: missed", c: with(func(c *desired.CronJob) { c.StartingDeadlineSeconds = &sixty }),
			prev: state("2026-11-27T10:00:00Z"), now: "2026-11-27T10:11:01Z", last: "2026-11-27T10:10:00Z"},
		{name: "history: the newest 3 complete and 1 failed stay", c: base,
			prev: state("2026-11-27T10:50:00Z", run("2026-11-27T10:00:00Z"), run("2026-11-27T10:10:00Z"), run("2026-11-27T10:20:00Z"),
				run("2026-11-27T10:30:00Z"), run("2026-11-27T10:40:00Z"), run("2026-11-27T10:50:00Z")),
			progress: map[string]string{
				run("2026-11-27T10:00:00Z").Name: JobComplete, run("2026-11-27T10:10:00Z").Name: JobFailed, run("2026-11-27T10:20:00Z").Name: JobComplete,
				run("2026-11-27T10:30:00Z").Name: JobFailed, run("2026-11-27T10:40:00Z").Name: JobComplete, run("2026-11-27T10:50:00Z").Name: JobComplete},
			now: "2026-11-27T10:55:00Z", last: "2026-11-27T10:50:00Z",
			runs: []CronRun{run("2026-11-27T10:20:00Z"), run("2026-11-27T10:30:00Z"), run("2026-11-27T10:40:00Z"), run("2026-11-27T10:50:00Z")}},
		{name: "time zone, across the DST change: 09:00 New York is 13:00 UTC in March", c: with(func(c *desired.CronJob) {
			c.Schedule, c.TimeZone = "0 9 * * *", "America/New_York"
		}), prev: state("2026-03-08T14:00:00Z"), now: "2026-03-09T13:05:00Z", last: "2026-03-09T13:00:00Z",
			runs: []CronRun{{Name: fmt.Sprintf("report-%d", at("2026-03-09T13:00:00Z").Unix()), Hash: "h1", Scheduled: at("2026-03-09T13:00:00Z")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			progress := map[string]JobProgress{}
			for n, s := range tt.progress {
				progress[n] = JobProgress{State: s}
			}
			tt.c.Cron = desired.MustParseCron(tt.c.Schedule, tt.c.TimeZone) // as the loader parses it
			got, _ := cronStep(tt.c, tt.prev, progress, at(tt.now))
			if !got.LastScheduled.Equal(at(tt.last)) {
				t.Fatalf("last scheduled %s, want %s", got.LastScheduled.UTC(), tt.last)
			}
			eq := func(a, b CronRun) bool { return a.Name == b.Name && a.Hash == b.Hash && a.Scheduled.Equal(b.Scheduled) }
			if !slices.EqualFunc(got.Runs, tt.runs, eq) {
				t.Fatalf("runs %+v, want %+v", got.Runs, tt.runs)
			}
		})
	}
}

// TestCronJobLeavesWithItsRuns: when the last CronJob leaves Git, its runs
// leave the status (and so the API and the metrics), and its record the KV
// bucket.
func TestCronJobLeavesWithItsRuns(t *testing.T) {
	nc := startJetStream(t)
	kv := openStore(t, nc)
	now := t0
	rec := New(Config{NATS: nc, Store: kv, Clock: func() time.Time { return now }})
	ctx := context.Background()
	if err := rec.restore(ctx); err != nil {
		t.Fatal(err)
	}
	cron := `apiVersion: batch/v1
kind: CronJob
metadata:
  name: report
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: app
              image: report:1
`
	if err := rec.SetRevision(ctx, Revision{ID: "r1"}, map[string][]byte{"cron.yaml": []byte(cron), "web.yaml": []byte(manifest)}); err != nil {
		t.Fatal(err)
	}
	rec.pass(ctx) // first sight
	now = now.Add(61 * time.Second)
	rec.pass(ctx) // a run
	if st := rec.Status(); len(st.Jobs) != 1 || !strings.HasPrefix(st.Jobs[0].Name, "report-") {
		t.Fatalf("jobs while the CronJob is in Git: %+v", st.Jobs)
	}
	if err := rec.SetRevision(ctx, Revision{ID: "r2"}, map[string][]byte{"web.yaml": []byte(manifest)}); err != nil {
		t.Fatal(err)
	}
	rec.pass(ctx)
	if st := rec.Status(); len(st.Jobs) != 0 {
		t.Fatalf("jobs after the CronJob left Git: %+v", st.Jobs)
	}
	crons, err := store.List[CronState](ctx, kv, cronPrefix, nil)
	if err != nil || len(crons) != 0 {
		t.Fatalf("cron records after the CronJob left Git: %v %v", crons, err)
	}
}
