package join_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/batonhq/baton/internal/identity"
	"github.com/batonhq/baton/internal/join"
	"github.com/batonhq/baton/internal/testenv"
)

func authority(t *testing.T) *join.Authority {
	t.Helper()
	id, err := identity.Open(filepath.Join(t.TempDir(), "identity"))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(testenv.NATS(t))
	if err != nil {
		t.Fatal(err)
	}
	st, err := join.OpenStore(context.Background(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	return &join.Authority{ID: id, Store: st, NATSPort: 4222, AgentTTL: time.Hour}
}

func token(t *testing.T, a *join.Authority, role identity.Role) string {
	t.Helper()
	ans, err := a.CreateToken(context.Background(), join.TokenRequest{Role: role, TTL: "1m"})
	if err != nil {
		t.Fatal(err)
	}
	return ans.Token
}

func key(t *testing.T) string {
	t.Helper()
	_, pub, err := identity.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// request is a join request as join.Join makes it: a new key, the token
// signed with it, the roles expected (agent by default).
func request(t *testing.T, tok, name string, roles ...identity.Role) join.Request {
	t.Helper()
	seed, pub, err := identity.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := kp.Sign([]byte(tok))
	if err != nil {
		t.Fatal(err)
	}
	if len(roles) == 0 {
		roles = []identity.Role{identity.RoleAgent}
	}
	return join.Request{Token: tok, Name: name, PublicKey: pub, Signature: base64.StdEncoding.EncodeToString(sig), Roles: roles}
}

func TestParseToken(t *testing.T) {
	a := authority(t)
	good := token(t, a, identity.RoleAgent)
	tok, err := join.ParseToken(good)
	if err != nil || tok.String() != good || tok.CAFingerprint != a.ID.CAFingerprint() {
		t.Fatalf("round trip: %v %+v", err, tok)
	}
	for _, bad := range []string{"", "baton1", "baton2." + good[7:], strings.Replace(good, ".", ":", 1),
		good + "x", good[:len(good)-2], "baton1.zz.00.00"} {
		if _, err := join.ParseToken(bad); !errors.Is(err, join.ErrBadToken) {
			t.Errorf("ParseToken(%q) = %v, want ErrBadToken", bad, err)
		}
	}
}

func TestCreateTokenLimits(t *testing.T) {
	a := authority(t)
	for _, req := range []join.TokenRequest{{Role: "operator", TTL: "1h"}, {Role: "root", TTL: "1h"}, {Role: identity.RoleAgent, TTL: "soon"},
		{Role: identity.RoleAgent, TTL: "0s"}, {Role: identity.RoleAgent, TTL: (join.MaxTokenTTL + time.Second).String()}} {
		if _, err := a.CreateToken(context.Background(), req); !errors.Is(err, join.ErrBadRequest) {
			t.Errorf("CreateToken(%+v) = %v, want ErrBadRequest", req, err)
		}
	}
}

// A token used by many joins at once works once.
func TestTokenWorksOnceUnderRace(t *testing.T) {
	a := authority(t)
	tok := token(t, a, identity.RoleAgent)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for i := range 20 {
		wg.Go(func() {
			_, err := a.Join(context.Background(), request(t, tok, fmt.Sprintf("n%d", i)))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, join.ErrBadToken):
				refused++
			default:
				t.Errorf("join: %v", err)
			}
		})
	}
	wg.Wait()
	if ok != 1 || refused != 19 {
		t.Fatalf("%d joins worked, %d refused; want 1 and 19", ok, refused)
	}
	creds, err := a.Store.Credentials(context.Background())
	if err != nil || len(creds) != 1 {
		t.Fatalf("credentials recorded: %v %+v", err, creds)
	}
	// The refused joins gave their names back.
	if _, err := a.Join(context.Background(), request(t, token(t, a, identity.RoleAgent), "n-other")); err != nil {
		t.Fatal(err)
	}
}

func TestJoin(t *testing.T) {
	ctx := context.Background()
	a := authority(t)
	now := time.Now()
	a.Clock = func() time.Time { return now }
	first := request(t, token(t, a, identity.RoleAgent), "n1")
	pub := first.PublicKey
	ans, err := a.Join(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if ans.Role != "agent" || ans.NATSPort != 4222 || !ans.Expires.Equal(now.Add(time.Hour)) || !strings.Contains(ans.CA, "CERTIFICATE") {
		t.Fatalf("answer: %+v", ans)
	}

	cases := []struct {
		name string
		req  join.Request
		want error
		msg  string
	}{
		{"a name that is joined", request(t, token(t, a, identity.RoleAgent), "n1"), join.ErrNameTaken, "baton node rm n1"},
		{"a key that joined already, under another name", func() join.Request {
			r := first
			r.Token, r.Name = token(t, a, identity.RoleAgent), "n9"
			return r
		}(), join.ErrBadRequest, "signature"},
		{"an unsigned request", func() join.Request {
			r := request(t, token(t, a, identity.RoleAgent), "n2")
			r.Signature = ""
			return r
		}(), join.ErrBadRequest, "signed"},
		{"an admin token used by an agent", request(t, token(t, a, identity.RoleAdmin), "n2"), join.ErrBadRequest, "is an admin token"},
		{"a bad name", request(t, token(t, a, identity.RoleAgent), "n1.cmd"), join.ErrBadRequest, "name"},
		{"not a user key", join.Request{Token: token(t, a, identity.RoleAgent), Name: "n2", PublicKey: "ABC", Roles: []identity.Role{identity.RoleAgent}}, join.ErrBadRequest, "user public key"},
		{"a malformed token", request(t, "baton1.x", "n2"), join.ErrBadToken, "want baton1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := a.Join(ctx, c.req)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want %v (%q)", err, c.want, c.msg)
			}
		})
	}

	t.Run("an expired token", func(t *testing.T) {
		tok := token(t, a, identity.RoleAgent)
		now = now.Add(2 * time.Minute)
		defer func() { now = now.Add(-2 * time.Minute) }()
		if _, err := a.Join(ctx, request(t, tok, "n3")); !errors.Is(err, join.ErrBadToken) || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("renewal", func(t *testing.T) {
		if _, err := a.Renew(ctx, "n1", key(t)); !errors.Is(err, join.ErrNotJoined) {
			t.Fatalf("renew another key: %v", err)
		}
		if _, err := a.Renew(ctx, "n2", pub); !errors.Is(err, join.ErrNotJoined) {
			t.Fatalf("renew as another node: %v", err)
		}
		now = now.Add(30 * time.Minute)
		r, err := a.Renew(ctx, "n1", pub)
		if err != nil || !r.Expires.Equal(now.Add(time.Hour)) {
			t.Fatalf("renew: %v %+v", err, r)
		}
	})

	t.Run("removal", func(t *testing.T) {
		n, err := a.Remove(ctx, identity.RoleAgent, "n1")
		if err != nil || n != 1 {
			t.Fatalf("remove: %d %v", n, err)
		}
		if _, err := a.Renew(ctx, "n1", pub); !errors.Is(err, join.ErrNotJoined) {
			t.Fatalf("renew after removal: %v", err)
		}
		if n, err := a.Remove(ctx, identity.RoleAgent, "n1"); err != nil || n != 0 {
			t.Fatalf("remove again: %d %v", n, err)
		}
		// The name is free again.
		if _, err := a.Join(ctx, request(t, token(t, a, identity.RoleAgent), "n1")); err != nil {
			t.Fatalf("join again after removal: %v", err)
		}
	})

	t.Run("operators' credentials do not expire", func(t *testing.T) {
		ans, err := a.Join(ctx, request(t, token(t, a, identity.RoleViewer), "vic", identity.RoleAdmin, identity.RoleViewer))
		if err != nil || ans.Role != "viewer" || !ans.Expires.IsZero() {
			t.Fatalf("viewer: %v %+v", err, ans)
		}
	})
}

// A token bound to a node name (a node pool's machine) joins as that name
// only; a refused try leaves it valid for the right one.
func TestTokenBoundToNode(t *testing.T) {
	ctx := context.Background()
	a := authority(t)
	ans, err := a.CreateToken(ctx, join.TokenRequest{Role: identity.RoleAgent, TTL: "1m", Node: "workers-abc12345"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Join(ctx, request(t, ans.Token, "thief")); !errors.Is(err, join.ErrBadRequest) || !strings.Contains(err.Error(), "joins only as node workers-abc12345") {
		t.Fatalf("joined as another name: %v", err)
	}
	if _, err := a.Join(ctx, request(t, ans.Token, "workers-abc12345")); err != nil {
		t.Fatalf("the bound name: %v", err)
	}
	// A machine deleted before it joined: its tokens are dropped, others kept.
	unused, _ := a.CreateToken(ctx, join.TokenRequest{Role: identity.RoleAgent, TTL: "1m", Node: "workers-gone1"})
	other := token(t, a, identity.RoleAgent)
	if n, err := a.DropTokens(ctx, "workers-gone1"); err != nil || n != 1 {
		t.Fatalf("drop: %d, %v", n, err)
	}
	if _, err := a.Join(ctx, request(t, unused.Token, "workers-gone1")); !errors.Is(err, join.ErrBadToken) {
		t.Fatalf("a dropped token joined: %v", err)
	}
	if _, err := a.Join(ctx, request(t, other, "n7")); err != nil {
		t.Fatalf("an unbound token was dropped: %v", err)
	}
	for _, req := range []join.TokenRequest{{Role: identity.RoleAdmin, TTL: "1m", Node: "n1"}, {Role: identity.RoleAgent, TTL: "1m", Node: "n1.cmd"}} {
		if _, err := a.CreateToken(ctx, req); !errors.Is(err, join.ErrBadRequest) {
			t.Errorf("CreateToken(%+v) = %v, want ErrBadRequest", req, err)
		}
	}
}
