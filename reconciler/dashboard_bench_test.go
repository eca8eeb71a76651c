package reconciler_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler"
	"github.com/batonhq/baton/reconciler/dashboard"
	"github.com/batonhq/baton/reconciler/store"
)

// leaderSource is the dashboard's source over a reconciler alone (no
// history, no logs): what the pages cost to make from its status.
type leaderSource struct{ rec *reconciler.Reconciler }

func (s leaderSource) Status(q reconciler.StatusRequest) (reconciler.Status, error) {
	return s.rec.StatusWith(q), nil
}
func (leaderSource) History(context.Context) ([]store.HistoryEntry, error) { return nil, nil }
func (leaderSource) Logs(context.Context, string, protocol.LogsRequest, func(protocol.LogChunk)) error {
	return nil
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// watch opens n event streams of the overview and counts the bytes they
// receive until the returned stop is called.
func watch(tb testing.TB, url string, n int) (bytes *atomic.Int64, stop func()) {
	bytes = &atomic.Int64{}
	ctx, cancel := context.WithCancel(context.Background())
	for range n {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/ui/stream?page=/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			tb.Fatal(err)
		}
		go func() {
			defer resp.Body.Close()
			r := bufio.NewReader(resp.Body)
			buf := make([]byte, 32<<10)
			for {
				k, err := r.Read(buf)
				bytes.Add(int64(k))
				if err != nil {
					return
				}
			}
		}()
	}
	return bytes, cancel
}

// BenchmarkDashboard: the dashboard of a fleet of 100 real agents
// (simulated pods) running 1,000 workloads of 3 replicas over real NATS.
// It reports the overview's size and the time to make it (ms/op), the time
// to first contentful paint in headless Chromium, and, for 1 and 10
// viewers of the live overview, the event-stream traffic per second and
// the CPU it costs the leader's process (its CPU time per second watched
// less the same window unwatched), while idle and during a rollout of
// every workload.
//
//	go test -run '^$' -bench Dashboard -benchtime 20x -timeout 20m ./reconciler
//
// (b.Loop: the fleet starts once, whatever -benchtime.)
func BenchmarkDashboard(b *testing.B) {
	const nodes, workloads, replicas = 100, 1000, 3
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := startFleetOn(b, ctx, nodes, busOpen)
	f.converge(b, ctx, "rev0", manifests(workloads, replicas), workloads*replicas)
	d := dashboard.New(leaderSource{f.rec}, dashboard.Options{Log: zerolog.Nop()})
	srv := httptest.NewServer(d.Handler())
	defer func() { srv.CloseClientConnections(); srv.Close() }() // streams stay open

	var size int
	for b.Loop() {
		resp, err := http.Get(srv.URL + "/")
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "w0999") {
			b.Fatalf("overview: %d, %d bytes", resp.StatusCode, len(body))
		}
		size = len(body)
	}
	b.ReportMetric(float64(size)/1024, "KiB/overview")

	// First contentful paint of the overview in a real browser.
	if _, err := exec.LookPath("chromium"); err == nil {
		br := testenv.NewBrowser(b, 1280, 900)
		tctx, tcancel := context.WithTimeout(br.Ctx, time.Minute)
		err := chromedp.Do(tctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#ov-workloads")))
		var fcp float64
		if err == nil {
			fcp, err = chromedp.Run(tctx, chromedp.Evaluate[float64](`performance.getEntriesByName("first-contentful-paint")[0].startTime`))
		}
		tcancel()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(fcp, "ms-first-paint")
	}

	// The live overview: idle, then during a rollout of every workload.
	const window = 10 * time.Second
	measure := func(viewers int, during func()) (bytesPerSec, cpuPerSec float64) {
		n, stop := watch(b, srv.URL, viewers)
		time.Sleep(2 * time.Second) // the first events: every section once
		n.Store(0)
		c0 := cpuTime(b)
		during()
		cpu := cpuTime(b) - c0
		stop()
		return float64(n.Load()) / window.Seconds(), cpu.Seconds() / window.Seconds()
	}
	idle := func() { time.Sleep(window) }
	rev := 0
	rollout := func() { // every template changes; the window ends after 10 s
		rev++
		files := manifests(workloads, replicas)
		for k, v := range files {
			files[k] = []byte(strings.Replace(string(v), `image: "app:1"`, fmt.Sprintf(`image: "app:%d"`, rev+1), 1))
		}
		end := time.Now().Add(window)
		if err := f.rec.SetRevision(ctx, reconciler.Revision{ID: fmt.Sprintf("roll%d", rev)}, files); err != nil {
			b.Fatal(err)
		}
		time.Sleep(time.Until(end))
	}
	for _, tc := range []struct {
		name string
		do   func()
	}{{"idle", idle}, {"rollout", rollout}} {
		_, base := measure(0, tc.do)
		for _, viewers := range []int{1, 10} {
			bps, cpu := measure(viewers, tc.do)
			b.ReportMetric(bps/1024, fmt.Sprintf("KiB/s-%s-%dviewers", tc.name, viewers))
			b.ReportMetric((cpu-base)*1000, fmt.Sprintf("cpu-ms/s-%s-%dviewers", tc.name, viewers))
		}
		b.ReportMetric(base*1000, fmt.Sprintf("cpu-ms/s-%s-unwatched", tc.name))
	}
}
