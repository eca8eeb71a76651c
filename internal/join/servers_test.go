package join_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/batonhq/baton/internal/identity"
	"github.com/batonhq/baton/internal/join"
)

// A server joins with the cluster's server token before the cluster has a
// store, and with a one-time server token after; it gets the identity and
// the routes. Other tokens, a name taken, and no Admit are refused.
func TestJoinServer(t *testing.T) {
	ctx := context.Background()
	a := authority(t)
	members := map[string]bool{"s1": true}
	a.Admit = func(name string, local, remote net.Addr, port int) (join.ClusterInfo, error) {
		if members[name] {
			return join.ClusterInfo{}, join.ErrNameTaken
		}
		members[name] = true
		return join.ClusterInfo{Servers: 3, Routes: []string{"tls://10.0.0.1:8422"}, Advertise: remote.String()}, nil
	}
	local := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 8421}
	remote := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 8422}
	st, err := join.ServerToken(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(a.ID.Dir(), "server-token")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("server token file: %v %v", fi, err)
	}
	if again, _ := join.ServerToken(a.ID); again != st {
		t.Fatal("the server token changed when read again")
	}
	server := func(tok, name string) join.Request {
		r := request(t, tok, name, identity.RoleServer)
		r.ClusterPort = 8422
		return r
	}

	// Before the store: the server token works (twice: it is the
	// cluster's), a one-time one cannot be checked.
	store := a.Store
	a.SetStore(nil)
	for _, name := range []string{"s2", "s3"} {
		ans, err := a.JoinServer(ctx, server(st.String(), name), local, remote)
		if err != nil {
			t.Fatalf("join %s with the server token: %v", name, err)
		}
		if ans.Cluster == nil || ans.Cluster.Servers != 3 || len(ans.Identity) < 7 {
			t.Fatalf("answer %+v: want the cluster and the identity", ans.Cluster)
		}
		dir := filepath.Join(t.TempDir(), "identity")
		id, err := identity.Install(dir, ans.Identity)
		if err != nil {
			t.Fatal(err)
		}
		if id.CAFingerprint() != a.ID.CAFingerprint() || id.AccountPublicKey() != a.ID.AccountPublicKey() {
			t.Fatal("the identity installed is not the cluster's")
		}
		if _, err := identity.Install(dir, ans.Identity); err == nil {
			t.Fatal("Install over an identity: want an error")
		}
	}
	if _, err := a.CreateToken(ctx, join.TokenRequest{Role: identity.RoleServer, TTL: "1h"}); !errors.Is(err, join.ErrForming) {
		t.Fatalf("a token before the store: %v, want ErrForming", err)
	}
	if _, err := a.JoinServer(ctx, server(st.String(), "s2"), local, remote); !errors.Is(err, join.ErrNameTaken) {
		t.Fatalf("a name taken: %v, want ErrNameTaken", err)
	}
	a.SetStore(store)

	one := token(t, a, identity.RoleServer)
	if _, err := a.JoinServer(ctx, server(one, "s4"), local, remote); err != nil {
		t.Fatalf("one-time server token: %v", err)
	}
	if _, err := a.JoinServer(ctx, server(one, "s5"), local, remote); !errors.Is(err, join.ErrBadToken) {
		t.Fatalf("the one-time token again: %v, want ErrBadToken", err)
	}
	agentTok := token(t, a, identity.RoleAgent)
	if _, err := a.JoinServer(ctx, server(agentTok, "s6"), local, remote); !errors.Is(err, join.ErrBadRequest) {
		t.Fatalf("an agent token as a server's: %v, want ErrBadRequest", err)
	}
	if _, err := a.Join(ctx, request(t, agentTok, "n1")); err != nil {
		t.Fatalf("the agent token is still valid after that: %v", err)
	}
	// A server token cannot make an agent.
	if _, err := a.Join(ctx, request(t, st.String(), "n2")); !errors.Is(err, join.ErrBadToken) {
		t.Fatalf("the server token as an agent's: %v, want ErrBadToken", err)
	}
	a.Admit = nil
	if _, err := a.JoinServer(ctx, server(st.String(), "s7"), local, remote); !errors.Is(err, join.ErrBadRequest) {
		t.Fatalf("a server that admits none: %v, want ErrBadRequest", err)
	}
}

// A revocation made on one server reaches the others through the bucket:
// another server's identity (installed before it) records it as new.
func TestRevocationsReachEveryServer(t *testing.T) {
	ctx := context.Background()
	a := authority(t)
	other, err := identity.Install(filepath.Join(t.TempDir(), "id"), mustFiles(t, a.ID))
	if err != nil {
		t.Fatal(err)
	}
	type rev struct {
		pub   string
		fresh bool
	}
	got := make(chan rev, 4)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := a.Store.WatchRevocations(wctx, func(pub string, at int64) {
		fresh, err := other.RevokeAt(pub, at)
		if err != nil {
			t.Error(err)
		}
		got <- rev{pub, fresh}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Join(ctx, request(t, token(t, a, identity.RoleAgent), "n1")); err != nil {
		t.Fatal(err)
	}
	if n, err := a.Remove(ctx, identity.RoleAgent, "n1"); err != nil || n != 1 {
		t.Fatalf("Remove = %d, %v", n, err)
	}
	r := <-got
	if !r.fresh || !other.Revoked(r.pub) || !a.ID.Revoked(r.pub) {
		t.Fatalf("revocation %+v: want it new on the other server, and held by both", r)
	}
	if fresh, _ := other.RevokeAt(r.pub, 1); fresh {
		t.Fatal("an older revocation of the same key counted as new")
	}
}

func mustFiles(t *testing.T, id *identity.Identity) map[string][]byte {
	t.Helper()
	f, err := id.Files()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Each node that joins leases its own /24 of the cluster CIDR; removing
// the node frees it for the next; the CIDR running out refuses the join.
func TestNodeSubnets(t *testing.T) {
	ctx := context.Background()
	for n, want := range map[int]string{0: "10.77.0.0/24", 1: "10.77.1.0/24", 255: "10.77.255.0/24"} {
		if got, err := join.NodeSubnet(join.DefaultClusterCIDR, n); err != nil || got != want {
			t.Errorf("NodeSubnet(%d) = %s, %v; want %s", n, got, err, want)
		}
	}
	if _, err := join.NodeSubnet(join.DefaultClusterCIDR, 256); !errors.Is(err, join.ErrNoSubnet) {
		t.Errorf("NodeSubnet(256): %v, want ErrNoSubnet", err)
	}
	if _, err := join.NodeSubnet("10.0.0.0/25", 0); err == nil {
		t.Error("a cluster CIDR smaller than a node's /24: want an error")
	}
	a := authority(t)
	a.ClusterCIDR = "10.50.0.0/22" // room for 4 nodes: index 0 is baton up's, 1–3 lease
	subnets := map[string]string{}
	for _, node := range []string{"n1", "n2", "n3"} {
		ans, err := a.Join(ctx, request(t, token(t, a, identity.RoleAgent), node))
		if err != nil {
			t.Fatal(err)
		}
		subnets[node] = ans.PodSubnet
	}
	if subnets["n1"] != "10.50.1.0/24" || subnets["n2"] != "10.50.2.0/24" || subnets["n3"] != "10.50.3.0/24" {
		t.Fatalf("subnets %v", subnets)
	}
	tok := token(t, a, identity.RoleAgent)
	if _, err := a.Join(ctx, request(t, tok, "n4")); !errors.Is(err, join.ErrNoSubnet) {
		t.Fatalf("a fifth node: %v, want ErrNoSubnet", err)
	}
	if _, err := a.Remove(ctx, identity.RoleAgent, "n2"); err != nil {
		t.Fatal(err)
	}
	ans, err := a.Join(ctx, request(t, tok, "n4")) // the token was not used up
	if err != nil || ans.PodSubnet != "10.50.2.0/24" {
		t.Fatalf("n4 after n2 left: %+v, %v; want n2's subnet", ans.PodSubnet, err)
	}
}
