package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/batonhq/baton/internal/identity"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler"
	"github.com/batonhq/baton/reconciler/httpapi"
	"github.com/batonhq/baton/reconciler/store"
)

// serverFleet is three servers, each on its own host, and two nodes.
type serverFleet struct {
	*fleetCluster
	hosts map[string]testenv.Host
	procs map[string]*exec.Cmd
	logs  map[string]*lockedBuffer
	// serverToken is the cluster's, from s1's data dir.
	serverToken string
}

func (s *serverFleet) args(name string) []string {
	h := s.hosts[name]
	return []string{"server", "--repo", s.repoDir, "--branch", "main", "--poll", "200ms",
		"--data-dir", filepath.Join(s.dir, name), "--id", name, "--api-listen", "",
		"--nats-listen", h.IP + ":4222", "--join-listen", h.IP + ":8421", "--cluster-listen", h.IP + ":8422"}
}

// start starts server name with extra arguments.
func (s *serverFleet) start(name string, extra ...string) {
	s.procs[name] = s.daemon(s.hosts[name], s.logs[name], append(s.args(name), extra...)...)
}

// newServerFleet starts s1 (made for three servers), joins s2 and s3 with
// the server token, and two agents, n1 and n2, through s1.
func newServerFleet(t *testing.T) *serverFleet {
	f := newFleetBase(t)
	s := &serverFleet{fleetCluster: f, hosts: map[string]testenv.Host{}, procs: map[string]*exec.Cmd{}, logs: map[string]*lockedBuffer{}}
	var urls []string
	for _, n := range []string{"s1", "s2", "s3"} {
		s.hosts[n] = f.fleet.Host(n)
		s.logs[n] = &lockedBuffer{}
		urls = append(urls, "tls://"+net.JoinHostPort(s.hosts[n].IP, "4222"))
	}
	f.server, f.serverLog = s.hosts["s1"], s.logs["s1"]
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range []string{"s1", "s2", "s3"} {
				t.Logf("%s's log:\n%s", n, tail(batonLines(s.logs[n].String()), 60))
			}
		}
	})
	f.natsURL = strings.Join(urls, ",")
	f.joinAddr = net.JoinHostPort(s.hosts["s1"].IP, "8421")
	f.adminCreds = adminCredsPath(filepath.Join(f.dir, "s1"))
	s.start("s1", "--servers", "3")
	tokPath := filepath.Join(identityDir(filepath.Join(f.dir, "s1")), "server-token")
	testenv.WaitFor(t, 30*time.Second, "the server token", func() (bool, string) {
		return fileExists(tokPath) && fileExists(f.adminCreds), s.logs["s1"].String()
	})
	b, err := os.ReadFile(tokPath)
	if err != nil {
		t.Fatal(err)
	}
	s.serverToken = strings.TrimSpace(string(b))
	for _, n := range []string{"s2", "s3"} {
		s.start(n, "--join", f.joinAddr, "--token", s.serverToken)
	}
	return s
}

// admin is an operator's connection from the ops host that goes from
// server to server as they come and go.
func (s *serverFleet) admin() *user {
	s.t.Helper()
	opts, _, err := identity.ClientOptions(s.adminCreds, filepath.Join(filepath.Dir(s.adminCreds), "ca.crt"))
	if err != nil {
		s.t.Fatal(err)
	}
	u, err := s.connect(s.ops, append(opts, nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond),
		nats.PingInterval(clientPingInterval), nats.MaxPingsOutstanding(2))...)
	if err != nil {
		s.t.Fatal(err)
	}
	return u
}

// servers is what baton server ls says, run on the ops host.
func (s *serverFleet) servers() string {
	out, _ := s.baton(s.ops, nil, "server", "ls", "--nats", s.natsURL, "--creds", s.adminCreds)
	return out
}

// allCurrent waits until every server is in the store and caught up.
func (s *serverFleet) allCurrent(why string) {
	s.t.Helper()
	testenv.WaitFor(s.t, 60*time.Second, why+": three servers current", func() (bool, string) {
		out := s.servers()
		return strings.Count(out, " current ") == 3 && strings.Contains(out, "leader"), out
	})
}

// leader is the server whose reconciler leads.
func (s *serverFleet) leader(u *user) string {
	var name string
	testenv.WaitFor(s.t, 30*time.Second, "a leader", func() (bool, string) {
		st := s.status(u)
		name = st.Leader
		return name != "", fmt.Sprint(st.Leader)
	})
	return name
}

// leaderVia asks server name, over a new connection, which server leads.
func (s *serverFleet) leaderVia(name string) (string, error) {
	opts, _, err := identity.ClientOptions(s.adminCreds, filepath.Join(filepath.Dir(s.adminCreds), "ca.crt"))
	if err != nil {
		return "", err
	}
	nc, err := nats.Connect("tls://"+net.JoinHostPort(s.hosts[name].IP, "4222"),
		append(opts, nats.SetCustomDialer(s.ops), nats.MaxReconnects(0), nats.Timeout(time.Second))...)
	if err != nil {
		return "", err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, err := reconciler.FetchStatus(ctx, nc, reconciler.StatusRequest{Replicas: reconciler.ReplicasNone})
	return st.Leader, err
}

// running lists the running replicas on both nodes: id@node started at,
// restarts.
func (s *serverFleet) running() []string {
	var out []string
	for _, node := range fleetNodes {
		for _, r := range s.replicasOn(node) {
			if r.State == protocol.StateRunning {
				out = append(out, fmt.Sprintf("%s@%s %s r%d", r.ID, node, r.StartedAt.Format(time.RFC3339Nano), r.Restarts))
			}
		}
	}
	slices.Sort(out)
	return out
}

// converged waits for want replicas of the template files make, running
// on the nodes and nothing else.
func (s *serverFleet) converged(u *user, files map[string]string, want int) []string {
	s.t.Helper()
	hash := specHash(s.t, files)
	var run []string
	testenv.WaitFor(s.t, 90*time.Second, fmt.Sprintf("%d replicas of %s running, nothing else", want, hash[:8]), func() (bool, string) {
		run = s.running()
		seen := map[string]bool{}
		for _, r := range run {
			id := r[:strings.IndexByte(r, '@')]
			if seen[id] {
				s.t.Fatalf("replica %s runs twice: %v", id, run)
			}
			seen[id] = true
		}
		if len(run) != want {
			return false, fmt.Sprint(run)
		}
		for _, r := range run {
			if !strings.Contains(r, hash[:8]) {
				return false, fmt.Sprint(run)
			}
		}
		st := s.status(u)
		return len(st.Workloads) == 1 && st.Workloads[0].Ready == want, fmt.Sprint(st.Workloads)
	})
	return run
}

func (s *serverFleet) history(u *user) []store.HistoryEntry {
	s.t.Helper()
	var h []store.HistoryEntry
	testenv.WaitFor(s.t, 30*time.Second, "the history", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := httpapi.Ask(ctx, u.nc, protocol.HistorySubject, nil, &h)
		return err == nil, fmt.Sprint(err)
	})
	return h
}

// TestThreeServers: three servers in three network namespaces, agents on
// two more. One server killed (kill -9) mid-rollout: the rollout converges
// without a replica started twice, nothing in the store is lost, and the
// server catches up when it returns. The leading server cut off from the
// others: the majority leads and converges a new commit; when the link
// returns there are no duplicate replicas. All three restarted one after
// another while the agents run: no container restarts. A server whose
// machine is gone removed (baton server rm) and replaced by a new one.
func TestThreeServers(t *testing.T) {
	s := newServerFleet(t)
	s.allCurrent("formed")
	nodeHosts := map[string]testenv.Host{"n1": s.node, "n2": s.fleet.Host("n2")}
	s.startAgent(nodeHosts["n1"], "n1", &lockedBuffer{})
	s.startAgent(nodeHosts["n2"], "n2", &lockedBuffer{})
	admin := s.admin()
	testenv.WaitFor(t, 30*time.Second, "two nodes ready", func() (bool, string) {
		st := s.status(admin)
		return readyNodes(st) == 2, fmt.Sprint(st.Nodes)
	})
	// Each node leased its own pod subnet when it joined, and its
	// heartbeats carry its address.
	st := s.status(admin)
	subnets := map[string]bool{}
	for _, node := range fleetNodes {
		js := readJoined(filepath.Join(s.dir, node))
		subnets[js.PodSubnet] = true
		n, _ := nodeOfStatus(st, node)
		if want := nodeHosts[node].IP; n.Address != want {
			t.Errorf("%s's address %q, want %s", node, n.Address, want)
		}
	}
	if !subnets["10.77.1.0/24"] || !subnets["10.77.2.0/24"] {
		t.Errorf("the nodes' pod subnets: %v, want 10.77.1.0/24 and 10.77.2.0/24", subnets)
	}

	v1 := deployment(4, "v1")
	s.commit("v1", v1)
	s.converged(admin, v1, 4)

	// Kill -9 the leading server mid-rollout.
	before := s.history(admin)
	v2 := deployment(4, "v2")
	s.commit("v2", v2)
	victim := s.leader(admin)
	testenv.WaitFor(t, 30*time.Second, "the rollout to v2 under way", func() (bool, string) {
		run := strings.Join(s.running(), " ")
		return strings.Contains(run, specHash(t, v2)[:8]), run
	})
	survivor := "s1"
	if victim == "s1" {
		survivor = "s2"
	}
	if err := s.procs[victim].Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	testenv.WaitFor(t, 30*time.Second, "another server leading", func() (bool, string) {
		l, err := s.leaderVia(survivor)
		return err == nil && l != "" && l != victim, fmt.Sprint(l, err)
	})
	t.Logf("leading server %s killed (kill -9) → another leads after %s", victim, time.Since(killed).Round(10*time.Millisecond))
	s.converged(admin, v2, 4)
	t.Logf("leader %s killed mid-rollout → rollout converged %s later", victim, time.Since(killed).Round(10*time.Millisecond))
	after := s.history(admin)
	for _, h := range before {
		if !slices.ContainsFunc(after, func(a store.HistoryEntry) bool { return a.Revision == h.Revision }) {
			t.Fatalf("history entry %s lost with the server: %v", h.Revision, after)
		}
	}
	s.start(victim)
	s.allCurrent(victim + " back")

	// The leader cut off from the others.
	cut := s.leader(admin)
	start := time.Now()
	s.fleet.Cut(s.hosts[cut])
	other := "s1"
	if cut == "s1" {
		other = "s2"
	}
	testenv.WaitFor(t, 30*time.Second, "another server leading", func() (bool, string) {
		l, err := s.leaderVia(other)
		return err == nil && l != "" && l != cut, fmt.Sprint(l, err)
	})
	t.Logf("leader %s cut off → another leads after %s", cut, time.Since(start).Round(10*time.Millisecond))
	// It stopped leading (and commanding) within the lease: its own log
	// says when, and the new leader could not have acquired the lease
	// before it expired.
	testenv.WaitFor(t, 20*time.Second, "the cut-off server standing down", func() (bool, string) {
		return strings.Contains(s.logs[cut].String(), "leadership ended"), ""
	})
	v3 := deployment(3, "v3")
	s.commit("v3", v3)
	s.converged(admin, v3, 3)
	s.fleet.Plug(s.hosts[cut])
	s.allCurrent(cut + " plugged back in")
	run := s.converged(admin, v3, 3)
	if got := s.history(admin); len(got) < len(after) {
		t.Fatalf("history shrank after the partition: %d → %d entries", len(after), len(got))
	}

	// Every server restarted, one after the other: the containers run on.
	for _, n := range []string{"s1", "s2", "s3"} {
		pid := s.procs[n].Process.Pid
		_ = s.procs[n].Process.Signal(os.Interrupt)
		testenv.WaitFor(t, 20*time.Second, n+" stopped", func() (bool, string) {
			return syscall.Kill(pid, 0) != nil, ""
		})
		s.start(n)
		s.allCurrent(n + " restarted")
	}
	if again := s.converged(admin, v3, 3); !slices.Equal(run, again) {
		t.Fatalf("restarting the servers restarted containers:\n before %v\n after  %v", run, again)
	}

	// s3's machine is gone for good: it is removed, and a new machine
	// joins in its place with the server token; the cluster follows a new
	// commit with s1, s2 and s4.
	pid := s.procs["s3"].Process.Pid
	_ = s.procs["s3"].Process.Kill()
	testenv.WaitFor(t, 20*time.Second, "s3 gone", func() (bool, string) { return syscall.Kill(pid, 0) != nil, "" })
	// s3 may have led: until another does, no server answers.
	testenv.WaitFor(t, 30*time.Second, "removing a running server refused", func() (bool, string) {
		out, err := s.baton(s.ops, nil, "server", "rm", "s1", "--nats", s.natsURL, "--creds", s.adminCreds)
		if err == nil {
			t.Fatalf("removing a running server: done\n%s", out)
		}
		return strings.Contains(out, "is running"), out
	})
	testenv.WaitFor(t, 30*time.Second, "s3 removed", func() (bool, string) {
		out, err := s.baton(s.ops, nil, "server", "rm", "s3", "--nats", s.natsURL, "--creds", s.adminCreds)
		return err == nil, out
	})
	s.hosts["s4"], s.logs["s4"] = s.fleet.Host("s4"), &lockedBuffer{}
	s.start("s4", "--join", s.joinAddr, "--token", s.serverToken)
	testenv.WaitFor(t, 60*time.Second, "s1, s2 and s4 current, s3 gone", func() (bool, string) {
		out := s.servers()
		return strings.Count(out, " current ") == 3 && strings.Contains(out, "s4") && !strings.Contains(out, "s3"), out
	})
	v4 := deployment(2, "v4")
	s.commit("v4", v4)
	s.converged(admin, v4, 2)

	head, err := s.repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	if st := s.status(admin); st.Synced.ID != head.Hash().String() {
		t.Fatalf("state after the restarts: synced %s, want the head %s", st.Synced.ID, head.Hash())
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// batonLines are a server log's lines but the NATS server's notices.
func batonLines(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `"component":"nats"`) && strings.Contains(l, `"level":"info"`) {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}
