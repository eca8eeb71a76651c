package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/batonhq/baton/internal/testenv"
)

// TestDashboard in a real browser (headless Chromium) against a real
// cluster: sign in with a viewer token, every page loads with no console
// error and shows the cluster, and the overview follows a commit that adds
// a replica without being reloaded; a replica's log tail shows its output;
// readable at 1280 px and at a phone's width (screenshots kept).
func TestDashboard(t *testing.T) {
	api, url, _, _ := withAPI(t)
	c := newCluster(t, 8*time.Second, api)
	agentMetrics := "127.0.0.1:" + freePort(t)
	c.startAgent("n1", func(o *agentOptions) { o.metrics = agentMetrics })
	v1 := deployment(1, "from the dashboard test")
	rev1 := c.commit("one replica", v1)
	c.converged(t, 1, hashOf(t, v1), "n1")

	b := testenv.NewBrowser(t, 1280, 900)
	shots := testenv.ArtifactsDir(t, "dashboard")
	// Each step within a minute (the browser's context must have none).
	step := func() context.Context {
		ctx, cancel := context.WithTimeout(b.Ctx, time.Minute)
		t.Cleanup(cancel)
		return ctx
	}
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(step(), actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(step(), chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(step(), chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	eval := func(js string) any {
		t.Helper()
		v, err := chromedp.Run(step(), chromedp.Evaluate[any](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	waitText := func(sel, what string, ok func(string) bool) {
		t.Helper()
		testenv.WaitFor(t, 60*time.Second, what, func() (bool, string) {
			s := text(sel)
			return ok(s), s
		})
	}

	// Sign in: the page asked for sends to the form, then back.
	run("sign in", chromedp.Navigate(url+"/"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), "viewer-token-0123456789"), chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS("#ov-workloads")))
	if s := text("#ov-workloads"); !strings.Contains(s, "hello") {
		t.Fatalf("the overview does not show the workload:\n%s", s)
	}
	if s := text("#banner"); !strings.Contains(s, rev1[:12]) {
		t.Fatalf("the overview does not show the revision in force %s:\n%s", rev1[:12], s)
	}
	waitText("#ov-nodes", "node n1 ready on the overview", func(s string) bool { return strings.Contains(s, "n1") && strings.Contains(s, "ready") })
	shot("overview-1280")

	// Live: a commit adds a replica; the same page (not reloaded: the
	// mark stays) shows it ready.
	eval(`window.batonMark = "still here"`)
	v2 := deployment(2, "from the dashboard test")
	rev2 := c.commit("two replicas", v2)
	waitText("#ov-workloads", "the overview to show 2 ready without a reload", func(s string) bool {
		return strings.Contains(s, "hello\t2\t2\t2\t2") || strings.Contains(s, "hello 2 2 2 2")
	})
	waitText("#banner", "the banner to show the new revision", func(s string) bool { return strings.Contains(s, rev2[:12]) })
	if mark := eval(`window.batonMark`); mark != "still here" {
		t.Fatalf("the page was reloaded (mark %q): it should have changed in place", mark)
	}

	// The workload: its replicas, the change that made two, and a log tail.
	run("workload page", chromedp.Navigate(url+"/ui/workloads/hello"), chromedp.WaitVisible(chromedp.CSS("#wl-replicas")))
	waitText("#wl-replicas", "two replicas on the workload page", func(s string) bool { return strings.Count(s, "hello-") == 2 && strings.Count(s, "yes") == 2 })
	if s := text("#wl-change"); !strings.Contains(s, "replicas\t1\t2") || !strings.Contains(s, rev2[:12]) {
		t.Fatalf("the workload's last change:\n%s", s)
	}
	run("follow a replica's logs", chromedp.Click(chromedp.CSS(`#wl-replicas a[href*="logs="]`)), chromedp.WaitVisible(chromedp.CSS("pre.log")))
	waitText("pre.log", "the replica's output in the log tail", func(s string) bool { return strings.TrimSpace(s) != "" })
	shot("workload-1280")

	// History and the node.
	run("history page", chromedp.Navigate(url+"/ui/history"), chromedp.WaitVisible(chromedp.CSS("#hist-table")))
	hist, err := chromedp.Run(step(), chromedp.TextContent(chromedp.CSS("#hist-table")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{rev1[:12], rev2[:12], "two replicas", "replicas", "converged"} {
		if !strings.Contains(hist, want) {
			t.Fatalf("history page without %q:\n%s", want, hist)
		}
	}
	shot("history-1280")
	run("node page", chromedp.Navigate(url+"/ui/nodes/n1"), chromedp.WaitVisible(chromedp.CSS("#node-pods")))
	if s := text("#node-pods"); strings.Count(s, "hello-") != 2 {
		t.Fatalf("node page:\n%s", s)
	}

	// A phone's width: nothing wider than the screen but the tables'
	// own scrolling boxes.
	run("phone width", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(url+"/"),
		chromedp.WaitVisible(chromedp.CSS("#ov-workloads")))
	shot("overview-phone")
	if eval(`document.documentElement.scrollWidth > window.innerWidth + 1`) != false {
		t.Error("the overview is wider than a phone's screen")
	}
	// The metrics of what happened: the server's histograms (with the
	// viewer token) and the agent's own, on its flag's address.
	metric := func(body, series string) float64 {
		for _, line := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(line, series+" "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				return f
			}
		}
		return -1
	}
	server := dashboardGet(t, url+"/metrics", 0)
	agent := dashboardGet(t, "http://"+agentMetrics+"/metrics", 0)
	for _, m := range []struct {
		body, series string
		least        float64
	}{
		{server, "baton_reconcile_pass_duration_seconds_count", 5},
		{server, `baton_command_duration_seconds_count{result="ok"}`, 2},
		{server, `baton_git_fetch_duration_seconds_count{result="ok"}`, 2},
		{server, `baton_revision_converge_seconds_count{from="applied"}`, 2},
		{server, `baton_revision_converge_seconds_count{from="commit"}`, 2},
		{server, `baton_replicas_ready{workload="hello"}`, 2},
		{agent, `baton_agent_pods{node="n1",state="running"}`, 2},
		{agent, `baton_agent_start_duration_seconds_count{node="n1",result="ok"}`, 2},
	} {
		if v := metric(m.body, m.series); v < m.least {
			t.Errorf("%s = %v, want at least %v", m.series, v, m.least)
		}
	}
	// Every metric the Grafana dashboard of examples/ reads is served.
	board, err := os.ReadFile("../../examples/grafana/baton.json")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`\b(baton_[a-z_]+?)(_bucket|_count|_sum)?\b`).FindAllStringSubmatch(string(board), -1)
	for _, n := range names {
		if !regexp.MustCompile(`(?m)^` + n[1] + `(_bucket|_count|_sum)?[{ ]`).MatchString(server + agent) {
			t.Errorf("examples/grafana/baton.json reads %s, which neither the server nor the agent serves", n[0])
		}
	}
	if len(names) < 20 {
		t.Fatalf("only %d metrics found in the Grafana dashboard", len(names))
	}
	// baton exec through the agent: the exit code is baton's, stdin
	// reaches the command, a replica by ID and a container by name.
	admin := []string{"--nats", c.ns.ClientURL(), "--creds", adminCredsPath(c.dir)}
	out, _, err := runCtx(context.Background(), append(append([]string{"exec"}, admin...), "hello", "--", "/hello", "-exit-after", "1ms", "-exit-code", "5", "-message", "via baton exec")...)
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 5 || out != "via baton exec: done, exit 5\n" {
		t.Fatalf("baton exec's exit code: %v\n%q", err, out)
	}
	st := c.status()
	id := st.Workloads[0].Replicas[0].ID
	cmd := rootCmd()
	var stdout, stderr strings.Builder
	cmd.SetIn(strings.NewReader("through stdin\n"))
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs(append(append([]string{"exec"}, admin...), id, "-c", "web", "-i", "-t", "--", "/hello", "-cat"))
	if err := cmd.Execute(); err != nil || stdout.String() != "through stdin\n" || !strings.Contains(stderr.String(), "copied 14 bytes") ||
		!strings.Contains(stderr.String(), "Unable to use a TTY") {
		t.Fatalf("baton exec -i %s: %v\nstdout %q\nstderr %q", id, err, stdout.String(), stderr.String())
	}
	// -t on a terminal: the command gets one of this terminal's size, and
	// follows it when it changes (SIGWINCH).
	_, pts := openPTY(t, 33, 111)
	tcmd := rootCmd()
	var tout lockedBuffer
	tcmd.SetIn(pts)
	tcmd.SetOut(&tout)
	tcmd.SetErr(&tout)
	tcmd.SetArgs(append(append([]string{"exec"}, admin...), "hello", "-t", "--", "/hello", "-tty-size"))
	ttyDone := make(chan error, 1)
	go func() { ttyDone <- tcmd.Execute() }()
	testenv.WaitFor(t, 30*time.Second, "the terminal's size in the command", func() (bool, string) {
		return strings.Contains(tout.String(), "tty 33x111"), tout.String()
	})
	setPTYSize(t, pts, 44, 122)
	if err := syscall.Kill(os.Getpid(), syscall.SIGWINCH); err != nil {
		t.Fatal(err)
	}
	if err := <-ttyDone; err != nil || !strings.Contains(tout.String(), "tty 44x122") {
		t.Fatalf("baton exec -t after a resize: %v\n%q", err, tout.String())
	}
	if _, _, err := runCtx(context.Background(), append(append([]string{"exec"}, admin...), "nope", "--", "/hello")...); err == nil || !strings.Contains(err.Error(), `no workload or replica named "nope"`) {
		t.Fatalf("exec in nothing: %v\n%s", err, out)
	}
	if errs := b.Errors(); len(errs) > 0 {
		t.Fatalf("the pages printed errors:\n%s", strings.Join(errs, "\n"))
	}
	t.Logf("screenshots in %s", shots)
}
