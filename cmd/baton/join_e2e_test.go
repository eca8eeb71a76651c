package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/identity"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/reconciler"
)

// joinedAgent runs `baton agent --join` as an operator would on a new
// machine, in this process, until cancel is called; done has how it ended.
func (c *cluster) joinedAgent(node, token, dataDir string) (cancel context.CancelFunc, done <-chan error) {
	ctx, cancel := context.WithCancel(c.ctx)
	c.stopAll = append(c.stopAll, cancel)
	cni := c.cniConfig(node)
	args := []string{"agent", "--join", c.joinAddr["s1"], "--token", token, "--node", node, "--data-dir", dataDir,
		"--containerd", c.sock, "--namespace", c.namespace(node), "--heartbeat", "250ms", "--stop-grace", "5s",
		"--host-netns", cni.HostNetNS, "--pod-subnet", cni.Subnet, "--cni-bridge", cni.Bridge}
	for _, d := range cni.BinDirs {
		args = append(args, "--cni-bin-dir", d)
	}
	ended := make(chan error, 1)
	go func() {
		_, errOut, err := runCtx(ctx, args...)
		if err != nil {
			err = &cliError{err: err, stderr: errOut}
		}
		ended <- err
	}()
	return cancel, ended
}

type cliError struct {
	err    error
	stderr string
}

func (e *cliError) Error() string { return e.err.Error() + "\n" + e.stderr }

// token makes a join token with baton token create.
func (c *cluster) token(tb testing.TB, args ...string) string {
	tb.Helper()
	var out string
	testenv.WaitFor(tb, 30*time.Second, "a server making tokens", func() (bool, string) {
		o, _, err := run(tb, append([]string{"token", "create", "--nats", c.ns.ClientURL(), "--creds", adminCredsPath(c.dir)}, args...)...)
		if err != nil && !strings.Contains(err.Error(), "no server answers") {
			tb.Fatalf("token create: %v", err)
		}
		out = o
		return err == nil, fmt.Sprint(err)
	})
	return strings.TrimSpace(out)
}

// waitReady waits until n nodes are ready in the leader's view (a leader
// answers, and every node has heartbeated and reported).
func (c *cluster) waitReady(t testing.TB, n int) {
	t.Helper()
	nc := c.connect("status")
	testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("%d nodes ready", n), func() (bool, string) {
		st, err := fetchStatus(c.ctx, nc)
		return err == nil && readyNodes(st) == n, fmt.Sprint(err)
	})
}

func readyNodes(st reconciler.Status) int {
	ready := 0
	for _, n := range st.Nodes {
		if n.Ready {
			ready++
		}
	}
	return ready
}

// TestJoinRenewAndRemove is the k3s experience: a token from the first
// server, one command on the new machine, its replicas placed there; its
// short-lived credential renewed before it expires; and baton node rm
// revoking it at once and moving its replicas.
func TestJoinRenewAndRemove(t *testing.T) {
	c := newCluster(t, 30*time.Second, func(o *serverOptions) { o.join.agentTTL = 4 * time.Second })
	c.startAgent("n1")

	tok := c.token(t)
	if !strings.HasPrefix(tok, "baton1."+c.bus.id.CAFingerprint()+".") {
		t.Fatalf("the token does not carry the CA fingerprint: %s", tok)
	}
	dir := t.TempDir()
	stop, done := c.joinedAgent("n2", tok, dir)
	defer stop()
	nc := c.connect("status")
	testenv.WaitFor(t, 30*time.Second, "a leader", func() (bool, string) {
		_, err := fetchStatus(c.ctx, nc)
		return err == nil, fmt.Sprint(err)
	})
	testenv.WaitFor(t, 60*time.Second, "n1 and the joined n2 ready", func() (bool, string) {
		st := c.status()
		n1, ok1 := nodeOfStatus(st, "n1")
		n2, ok2 := nodeOfStatus(st, "n2")
		return ok1 && ok2 && n1.Ready && n2.Ready, "nodes: " + nodeNames(st)
	})
	c.commit("hello", deployment(4, "joined"))
	testenv.WaitFor(t, 60*time.Second, "replicas on the joined n2", func() (bool, string) {
		return c.running("n2", "") == 2, ""
	})
	creds, err := identity.ReadCreds(nodeCredsPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if creds.Role != identity.RoleAgent || creds.Name != "n2" || creds.Expires.IsZero() {
		t.Fatalf("joined credential: %+v", creds)
	}

	// The token worked once.
	if _, err := joinAgain(c, tok); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("a token used twice: %v", err)
	}

	// Renewed before it expires: the node stays ready past the first
	// credential's expiry, with a credential that expires later.
	testenv.WaitFor(t, 30*time.Second, "renewed credential", func() (bool, string) {
		now, err := identity.ReadCreds(nodeCredsPath(dir))
		return err == nil && now.Expires.After(creds.Expires), "expires " + creds.Expires.String()
	})
	time.Sleep(time.Until(creds.Expires.Add(time.Second)))
	if n, ok := nodeOfStatus(c.status(), "n2"); !ok || !n.Ready {
		t.Fatalf("n2 not ready after its first credential expired: %+v", n)
	}

	out, err := c.baton("node", "ls")
	if err != nil || !strings.Contains(out, "n2") || !strings.Contains(out, "joined") {
		t.Fatalf("node ls: %v\n%s", err, out)
	}

	// Removed: disconnected and refused, its replicas on n1.
	if out, err := c.baton("node", "rm", "n2"); err != nil || !strings.Contains(out, "1 credentials revoked") {
		t.Fatalf("node rm: %v\n%s", err, out)
	}
	testenv.WaitFor(t, 30*time.Second, "n2's replicas on n1", func() (bool, string) {
		st := c.status()
		_, still := nodeOfStatus(st, "n2")
		return !still && c.running("n1", "") == 4, "nodes: " + nodeNames(st)
	})
	// The agent keeps trying and is refused: it never comes back.
	c.waitPasses(t, 5)
	if _, still := nodeOfStatus(c.status(), "n2"); still {
		t.Fatal("a removed node came back")
	}
	if !strings.Contains(c.logs.String(), "credentials revoked") {
		t.Fatal("the revocation was not logged")
	}
	// The removed agent stops by itself and says why.
	var ended error
	select {
	case ended = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the removed agent is still running")
	}
	if ended == nil || !strings.Contains(ended.Error(), "refused this node's credential") {
		t.Fatalf("removed agent ended with: %v", ended)
	}
}

// joinAgain tries to join a third node with a token.
func joinAgain(c *cluster, tok string) (string, error) {
	out, errOut, err := run(c.tb, "agent", "--join", c.joinAddr["s1"], "--token", tok, "--node", "n3", "--data-dir", c.tb.TempDir(),
		"--containerd", c.sock, "--network", "none")
	return out + errOut, err
}

func nodeNames(st reconciler.Status) string {
	var s []string
	for _, n := range st.Nodes {
		s = append(s, n.Name)
	}
	return strings.Join(s, ",")
}
