package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	cnins "github.com/containernetworking/plugins/pkg/ns"
)

// podClient is an HTTP client whose connections are made inside node's
// pod's network namespace: requests leave as that pod's would.
func (p *podNet) podClient(tb testing.TB, node string) *http.Client {
	ns, err := p.f.podNetNS(node)
	if err != nil {
		tb.Fatal(err)
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := cnins.WithNetNSPath(ns, func(cnins.NetNS) error {
			var err error
			c, err = (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
}

func get(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// BenchmarkServiceVsDirect: a request from n1's pod (a new connection
// each time) through the Service's virtual address against straight to
// the pods' addresses (one on each of n1, n2 and n3, in turn, as the
// Service balances), in one run: what the nftables rules cost.
//
//	BATON_E2E=1 go test -run '^$' -bench ServiceVsDirect -benchtime 2000x ./cmd/baton
func BenchmarkServiceVsDirect(b *testing.B) {
	p := startPodNet(b, "")
	c := p.podClient(b, "n1")
	direct := []string{"http://" + p.ips["n1"] + ":8080/", "http://" + p.ips["n2"] + ":8080/", "http://" + p.ips["n3"] + ":8080/"}
	if err := get(c, "http://10.78.0.10/"); err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"service", "direct", "service", "direct"} {
		b.Run(mode, func(b *testing.B) {
			for i := range b.N {
				url := "http://10.78.0.10/"
				if mode == "direct" {
					url = direct[i%3]
				}
				if err := get(c, url); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadinessToRotation: n2's pod turns not ready, then ready
// again; the time until every node's rules show it, from the change in the
// pod (its probe runs every second, which dominates) and from the moment
// the leader's status shows it (the node's report: what Baton adds), as
// p50 and p99 over b.N changes.
//
//	BATON_E2E=1 go test -run '^$' -bench ReadinessToRotation -benchtime 20x ./cmd/baton
func BenchmarkReadinessToRotation(b *testing.B) {
	p := startPodNet(b, "          readinessProbe: {httpGet: {path: /ready, port: 8080}, periodSeconds: 1, failureThreshold: 1, successThreshold: 1}\n")
	c := p.podClient(b, "n1")
	ep, rule := p.ips["n2"]+":8080", p.ips["n2"]+" . 8080"
	everywhere := func(want bool) bool {
		for _, n := range fleetNodes {
			if strings.Contains(p.rules(n), rule) != want {
				return false
			}
		}
		return true
	}
	ready := func() bool {
		for _, w := range p.f.status(p.admin).Workloads {
			for _, r := range w.Replicas {
				if r.PodIP == p.ips["n2"] {
					return r.Ready
				}
			}
		}
		return false
	}
	var fromPod, fromReport []time.Duration
	b.ResetTimer()
	for i := range b.N {
		path, want := "/unready", false
		if i%2 == 1 {
			path, want = "/reready", true
		}
		if err := get(c, "http://"+ep+path); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		var reported time.Time
		for !everywhere(want) {
			if reported.IsZero() && ready() == want {
				reported = time.Now()
			}
			if time.Since(start) > 30*time.Second {
				b.Fatalf("%s: the rules did not follow in 30 s", path)
			}
		}
		done := time.Now()
		if reported.IsZero() {
			reported = done // reported and programmed between two looks
		}
		fromPod = append(fromPod, done.Sub(start))
		fromReport = append(fromReport, done.Sub(reported))
	}
	for _, d := range [][]time.Duration{fromPod, fromReport} {
		slices.Sort(d)
	}
	b.ReportMetric(fromPod[len(fromPod)/2].Seconds(), "p50-from-pod-s")
	b.ReportMetric(fromPod[(len(fromPod)*99)/100].Seconds(), "p99-from-pod-s")
	b.ReportMetric(fromReport[len(fromReport)/2].Seconds(), "p50-from-report-s")
	b.ReportMetric(fromReport[(len(fromReport)*99)/100].Seconds(), "p99-from-report-s")
	b.Logf("over %d changes: from the pod %v; from the report %v", len(fromPod), fromPod, fromReport)
}
