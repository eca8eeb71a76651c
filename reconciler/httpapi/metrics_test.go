package httpapi_test

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/batonhq/baton/reconciler/httpapi"
)

// The histograms the loop and the git source feed are served with the
// leader's state and the process's own metrics.
func TestMetricsHistograms(t *testing.T) {
	m := httpapi.NewMetrics()
	m.PassDone(3 * time.Millisecond)
	m.PassDone(40 * time.Millisecond)
	m.CommandDone(2*time.Millisecond, nil)
	m.CommandDone(10*time.Second, errors.New("timeout"))
	m.FetchDone(80*time.Millisecond, nil)
	m.Converged(5*time.Second, 2*time.Second)
	m.Converged(0, time.Second) // a commit without a time: from applied only
	api := httpapi.New(httpapi.Config{Metrics: m, ID: "s1", Log: zerolog.Nop()})
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	code, body := get(t, srv, "/metrics", "")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	for _, want := range []string{
		"baton_reconcile_pass_duration_seconds_count 2",
		`baton_reconcile_pass_duration_seconds_bucket{le="0.004"} 1`,
		`baton_command_duration_seconds_count{result="ok"} 1`,
		`baton_command_duration_seconds_count{result="error"} 1`,
		`baton_git_fetch_duration_seconds_count{result="ok"} 1`,
		`baton_revision_converge_seconds_count{from="commit"} 1`,
		`baton_revision_converge_seconds_count{from="applied"} 2`,
		`baton_revision_converge_seconds_sum{from="applied"} 3`,
		`baton_leader{server="s1"} 0`,
		"go_goroutines ",
		"process_cpu_seconds_total ",
		"# TYPE baton_reconcile_pass_duration_seconds histogram",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
