package join

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/internal/fsutil"
	"github.com/batonhq/baton/internal/identity"
)

// ErrForming is a request that needs the cluster's store before the
// cluster has formed (fewer servers than it was made for have joined).
var ErrForming = errors.New("the cluster is forming")

// SetStore gives the authority its store once JetStream is up (a server of
// a cluster that is forming admits servers before it has one).
func (a *Authority) SetStore(s *Store) {
	a.mu.Lock()
	a.Store = s
	a.mu.Unlock()
}

func (a *Authority) store() *Store {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.Store
}

// ready says why the store cannot be used yet, if it cannot.
func (a *Authority) ready() error {
	if a.store() == nil {
		return fmt.Errorf("%w: try again once every server has joined (baton server ls)", ErrForming)
	}
	return nil
}

// serverTokenFile is where the identity directory keeps the server token.
const serverTokenFile = "server-token"

// ServerToken is the cluster's server token, made on first use and kept in
// the identity directory (0600): a server joins the cluster with it, as
// often as needed, even before the cluster has a store (as k3s's server
// token). It hands out the whole identity: keep it as secret as that.
func ServerToken(id *identity.Identity) (Token, error) {
	p := filepath.Join(id.Dir(), serverTokenFile)
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		t, err := ParseToken(string(b))
		if err != nil {
			return Token{}, fmt.Errorf("%s: %w", p, err)
		}
		return t, nil
	case !errors.Is(err, os.ErrNotExist):
		return Token{}, err
	}
	t, err := newToken(id.CAFingerprint())
	if err != nil {
		return Token{}, err
	}
	if err := fsutil.WriteFileAtomic(p, []byte(t.String()+"\n"), 0o600); err != nil {
		return Token{}, fmt.Errorf("write the server token: %w", err)
	}
	return t, nil
}

// ClusterInfo is what a joining server needs to reach the others.
type ClusterInfo struct {
	// Servers is how many servers the cluster was made for.
	Servers int `json:"servers"`
	// Routes are the other servers' route URLs (tls://host:port).
	Routes []string `json:"routes"`
	// Advertise is the joining server's route address (host:port) as the
	// server it joined through sees it.
	Advertise string `json:"advertise"`
}

// Admit decides whether a server named name may join from remote (its
// route port given) through local, and says where the others are.
type Admit func(name string, local, remote net.Addr, clusterPort int) (ClusterInfo, error)

// JoinServer redeems a server token (the cluster's, or a one-time one made
// by baton token create --role server) for the identity and the routes.
func (a *Authority) JoinServer(ctx context.Context, req Request, local, remote net.Addr) (Answer, error) {
	if a.Admit == nil {
		return Answer{}, fmt.Errorf("%w: this server does not admit servers (it runs without a cluster: baton server --servers 3)", ErrBadRequest)
	}
	t, err := a.checkRequest(req)
	if err != nil {
		return Answer{}, err
	}
	if req.ClusterPort <= 0 || req.ClusterPort > 65535 {
		return Answer{}, fmt.Errorf("%w: clusterPort %d", ErrBadRequest, req.ClusterPort)
	}
	st, err := ServerToken(a.ID)
	if err != nil {
		return Answer{}, err
	}
	bootstrap := t.ID == st.ID && t.matches(st.hash())
	if !bootstrap {
		if err := a.ready(); err != nil {
			return Answer{}, fmt.Errorf("%w (or use the cluster's server token)", err)
		}
		rec, err := a.peek(ctx, t)
		if err != nil {
			return Answer{}, err
		}
		if rec.Role != identity.RoleServer {
			return Answer{}, fmt.Errorf("%w: this is a%s %s token; a server joins with a server token (it is still valid)", ErrBadRequest, article(rec.Role), rec.Role)
		}
	}
	info, err := a.Admit(req.Name, local, remote, req.ClusterPort)
	if err != nil {
		return Answer{}, err
	}
	if !bootstrap {
		if _, err := a.store().redeem(ctx, t, a.now()); err != nil {
			return Answer{}, err
		}
	}
	files, err := a.ID.Files()
	if err != nil {
		return Answer{}, err
	}
	zerolog.Ctx(ctx).Info().Str("server", req.Name).Str("route", info.Advertise).Bool("serverToken", bootstrap).Msg("server joined")
	return Answer{Role: string(identity.RoleServer), CA: string(a.ID.CAPEM()), NATSPort: a.NATSPort, Identity: files, Cluster: &info}, nil
}

// ServerJoined is what a server that joined was given.
type ServerJoined struct {
	Files   map[string][]byte
	Cluster ClusterInfo
	NATSURL string // the server it joined through
}

// JoinAsServer redeems a server token at addr for server name, whose
// routes listen on clusterPort.
func JoinAsServer(ctx context.Context, dial Dialer, addr, tok, name string, clusterPort int) (*ServerJoined, error) {
	seed, pub, err := identity.NewUserKey()
	if err != nil {
		return nil, err
	}
	ans, host, err := post(ctx, dial, addr, tok, seed, Request{Name: name, PublicKey: pub, Roles: []identity.Role{identity.RoleServer}, ClusterPort: clusterPort})
	if err != nil {
		return nil, err
	}
	if ans.Cluster == nil || len(ans.Identity) == 0 {
		return nil, fmt.Errorf("join at %s: the answer holds no identity (not a server token?)", addr)
	}
	// The identity sent must be the one whose CA the token pins.
	if fp, err := pemFingerprint(ans.Identity["ca.crt"]); err != nil || fp != strings.Split(tok, ".")[1] {
		return nil, fmt.Errorf("join at %s: the identity sent is not the cluster's the token pins", addr)
	}
	j := &ServerJoined{Files: ans.Identity, Cluster: *ans.Cluster}
	if ans.NATSPort > 0 {
		j.NATSURL = "tls://" + net.JoinHostPort(host, strconv.Itoa(ans.NATSPort))
	}
	return j, nil
}

// Revocations are kept in the join bucket so that every server applies
// them to its NATS server (an agent may be connected to any).
func revokedKey(pub string) string { return "revoked." + pub }

func (s *Store) putRevocation(ctx context.Context, pub string, at int64) error {
	_, err := s.kv.Put(ctx, revokedKey(pub), []byte(strconv.FormatInt(at, 10)))
	return err
}

// WatchRevocations calls apply with every revocation recorded, those made
// before first, until ctx ends.
func (s *Store) WatchRevocations(ctx context.Context, apply func(pub string, at int64)) error {
	return s.watch(ctx, revokedKey("*"), func(e jetstream.KeyValueEntry) {
		if e.Operation() != jetstream.KeyValuePut {
			return
		}
		at, err := strconv.ParseInt(string(e.Value()), 10, 64)
		pub := strings.TrimPrefix(e.Key(), "revoked.")
		if err == nil && nkeys.IsValidPublicUserKey(pub) {
			apply(pub, at)
		}
	})
}

// watch calls fn with every entry of the keys matching pattern, those
// there before first, from a goroutine of its own, until ctx ends.
func (s *Store) watch(ctx context.Context, pattern string, fn func(jetstream.KeyValueEntry)) error {
	w, err := s.kv.Watch(ctx, pattern)
	if err != nil {
		return err
	}
	go func() {
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil {
					fn(e)
				}
			}
		}
	}()
	return nil
}

// The servers of a cluster record their route URLs in the join bucket, so
// every server knows every other's (and a restarted one dials them all).
func serverKey(name string) string { return "server." + name }

// PutServer records server name's route URL.
func (s *Store) PutServer(ctx context.Context, name, route string) error {
	_, err := s.kv.Put(ctx, serverKey(name), []byte(route))
	return err
}

// DeleteServer forgets server name (removed from the cluster).
func (s *Store) DeleteServer(ctx context.Context, name string) error {
	return s.kv.Delete(ctx, serverKey(name))
}

// WatchServers calls fn with every server's route ("" once removed), those
// recorded before first, until ctx ends.
func (s *Store) WatchServers(ctx context.Context, fn func(name, route string)) error {
	return s.watch(ctx, serverKey("*"), func(e jetstream.KeyValueEntry) {
		name := strings.TrimPrefix(e.Key(), "server.")
		if !identity.ValidName(name) {
			return
		}
		route := ""
		if e.Operation() == jetstream.KeyValuePut {
			route = string(e.Value())
		}
		fn(name, route)
	})
}
