package join

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/internal/identity"
)

// DefaultAgentTTL is how long an agent's credential lasts; the agent renews
// it when two thirds of that have passed.
const DefaultAgentTTL = 24 * time.Hour

// MaxTokenTTL bounds a join token's life.
const MaxTokenTTL = 30 * 24 * time.Hour

// Authority is a server holding the cluster identity: it makes tokens,
// redeems them, renews agents' credentials and revokes them.
type Authority struct {
	ID    *identity.Identity
	Store *Store
	// NATS is the embedded server revocations are pushed to (nil: none).
	NATS *server.Server
	// NATSPort is the port joined machines connect to, on the host they
	// joined through.
	NATSPort int
	// AgentTTL is how long agents' credentials last (DefaultAgentTTL).
	AgentTTL time.Duration
	Clock    func() time.Time
	// Admit, when set, admits servers to the cluster (JoinServer).
	Admit Admit
	// ClusterCIDR holds the pods' addresses; a joining node leases a /24
	// of it (DefaultClusterCIDR when empty).
	ClusterCIDR string

	mu sync.RWMutex // guards Store, which SetStore sets late
}

func (a *Authority) now() time.Time {
	if a.Clock != nil {
		return a.Clock()
	}
	return time.Now()
}

func (a *Authority) clusterCIDR() string {
	if a.ClusterCIDR != "" {
		return a.ClusterCIDR
	}
	return DefaultClusterCIDR
}

func (a *Authority) agentTTL() time.Duration {
	if a.AgentTTL > 0 {
		return a.AgentTTL
	}
	return DefaultAgentTTL
}

// Sentinel errors, each with its HTTP status.
var (
	ErrNameTaken = errors.New("name already joined")
	ErrNotJoined = errors.New("no such credential")
)

// TokenRequest asks for a join token.
type TokenRequest struct {
	Role identity.Role `json:"role"`
	TTL  string        `json:"ttl"` // a Go duration: "1h", "30m"
	By   string        `json:"by,omitempty"`
	// Node binds an agent token to one node name (node pools' machines).
	Node string `json:"node,omitempty"`
}

// TokenAnswer is a new token and when it expires.
type TokenAnswer struct {
	Token   string    `json:"token"`
	Role    string    `json:"role"`
	Expires time.Time `json:"expires"`
}

// CreateToken makes a one-time token for role, valid for ttl.
func (a *Authority) CreateToken(ctx context.Context, req TokenRequest) (TokenAnswer, error) {
	switch req.Role {
	case identity.RoleAgent, identity.RoleAdmin, identity.RoleViewer, identity.RoleServer:
	default:
		return TokenAnswer{}, fmt.Errorf("%w: role %q: want agent, admin, viewer or server", ErrBadRequest, req.Role)
	}
	if err := a.ready(); err != nil {
		return TokenAnswer{}, err
	}
	ttl, err := time.ParseDuration(req.TTL)
	if err != nil || ttl <= 0 || ttl > MaxTokenTTL {
		return TokenAnswer{}, fmt.Errorf("%w: ttl %q: want a duration more than 0 and at most %s", ErrBadRequest, req.TTL, MaxTokenTTL)
	}
	if req.Node != "" && (req.Role != identity.RoleAgent || !identity.ValidName(req.Node)) {
		return TokenAnswer{}, fmt.Errorf("%w: node %q: a token is bound to a node name only for an agent, and the name must be valid", ErrBadRequest, req.Node)
	}
	now := a.now()
	t, err := a.store().createToken(ctx, a.ID.CAFingerprint(), req.Role, ttl, req.By, req.Node, now)
	if err != nil {
		return TokenAnswer{}, err
	}
	return TokenAnswer{Token: t.String(), Role: string(req.Role), Expires: now.Add(ttl)}, nil
}

// ErrBadRequest is a request that is malformed.
var ErrBadRequest = errors.New("bad request")

// Request is a joining machine's or operator's request.
type Request struct {
	Token     string `json:"token"`
	Name      string `json:"name"`
	PublicKey string `json:"publicKey"`
	// Signature is the token signed with the key's private half (base64):
	// the joiner holds the key it asks a credential for.
	Signature string `json:"signature"`
	// Roles are the roles the joiner expects (an agent: agent; an
	// operator: admin or viewer): a token of another role is refused
	// before it is used up.
	Roles []identity.Role `json:"roles"`
	// ClusterPort is a joining server's route port.
	ClusterPort int `json:"clusterPort,omitempty"`
}

// Answer is the credential made for a join.
type Answer struct {
	JWT      string    `json:"jwt"`
	Role     string    `json:"role"`
	CA       string    `json:"ca"` // PEM
	NATSPort int       `json:"natsPort"`
	Expires  time.Time `json:"expires,omitzero"`
	// PodSubnet is a joined node's pod addresses (a /24 of the cluster
	// CIDR, its own).
	PodSubnet string `json:"podSubnet,omitempty"`
	// A server gets the cluster's identity and where the others are.
	Identity map[string][]byte `json:"identity,omitempty"`
	Cluster  *ClusterInfo      `json:"cluster,omitempty"`
}

// Join redeems a token for a credential of its role, named req.Name, for
// the key req.PublicKey. A name that holds a credential already is refused
// (remove it first): a token cannot take over another machine's name.
func (a *Authority) Join(ctx context.Context, req Request) (Answer, error) {
	if err := a.ready(); err != nil {
		return Answer{}, err
	}
	t, err := a.checkRequest(req)
	if err != nil {
		return Answer{}, err
	}
	// The name is claimed before the token is used up (and given back if
	// the token is refused): a refused join leaves the token for a right
	// one, and two joins as one name cannot both succeed.
	rec, err := a.peek(ctx, t)
	if err != nil {
		return Answer{}, err
	}
	if !slices.Contains(req.Roles, rec.Role) {
		return Answer{}, fmt.Errorf("%w: this is a%s %s token; it was used as one for %v (it is still valid)", ErrBadRequest, article(rec.Role), rec.Role, req.Roles)
	}
	if rec.Node != "" && rec.Node != req.Name {
		return Answer{}, fmt.Errorf("%w: this token joins only as node %s, not %s (it is still valid)", ErrBadRequest, rec.Node, req.Name)
	}
	if err := a.store().claimName(ctx, rec.Role, req.Name, req.PublicKey); err != nil {
		return Answer{}, err
	}
	// From here a failure gives the name back, whatever the request's
	// deadline did.
	undo := func() { a.store().releaseName(context.WithoutCancel(ctx), rec.Role, req.Name) }
	var subnet string
	if rec.Role == identity.RoleAgent {
		if subnet, err = a.store().LeaseSubnet(ctx, a.clusterCIDR(), req.Name); err != nil {
			undo()
			return Answer{}, fmt.Errorf("lease a pod subnet: %w", err)
		}
		undoName := undo
		undo = func() {
			_ = a.store().ReleaseSubnet(context.WithoutCancel(ctx), req.Name)
			undoName()
		}
	}
	if _, err = a.store().redeem(ctx, t, a.now()); err != nil {
		undo()
		return Answer{}, err
	}
	var ttl time.Duration
	if rec.Role == identity.RoleAgent {
		ttl = a.agentTTL()
	}
	now := a.now()
	j, err := a.ID.Issue(rec.Role, req.Name, req.PublicKey, ttl)
	if err != nil {
		undo()
		return Answer{}, err
	}
	c := Credential{PublicKey: req.PublicKey, Role: rec.Role, Name: req.Name, Joined: now}
	if ttl > 0 {
		c.Expires = now.Add(ttl)
	}
	// A key joins once: a record of it made by another join is never
	// replaced (it would move that node's renewals and removal here).
	if err := a.store().createCred(ctx, c); err != nil {
		undo()
		return Answer{}, err
	}
	zerolog.Ctx(ctx).Info().Str("role", string(rec.Role)).Str("name", req.Name).Str("token", t.ID).Msg("joined")
	return Answer{JWT: j, Role: string(rec.Role), CA: string(a.ID.CAPEM()), NATSPort: a.NATSPort, Expires: c.Expires, PodSubnet: subnet}, nil
}

// checkRequest checks what every join request must hold: a token of this
// cluster's CA, a user public key and the token signed with its private
// half, a valid name. It returns the token.
func (a *Authority) checkRequest(req Request) (Token, error) {
	t, err := ParseToken(req.Token)
	if err != nil {
		return Token{}, err
	}
	if t.CAFingerprint != a.ID.CAFingerprint() {
		return Token{}, fmt.Errorf("%w: made for another cluster's CA", ErrBadToken)
	}
	if !nkeys.IsValidPublicUserKey(req.PublicKey) {
		return Token{}, fmt.Errorf("%w: not a user public key", ErrBadRequest)
	}
	if err := verifyPossession(req); err != nil {
		return Token{}, err
	}
	if !identity.ValidName(req.Name) {
		return Token{}, fmt.Errorf("%w: name %q: letters, digits, '-' and '_', at most 63", ErrBadRequest, req.Name)
	}
	return t, nil
}

// peek checks a token without using it up.
func (a *Authority) peek(ctx context.Context, t Token) (TokenRecord, error) {
	e, err := a.store().kv.Get(ctx, tokenKey(t.ID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return TokenRecord{}, fmt.Errorf("%w: unknown or already used", ErrBadToken)
	}
	if err != nil {
		return TokenRecord{}, fmt.Errorf("read the token: %w", err)
	}
	var rec TokenRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil || !t.matches(rec.Hash) {
		return TokenRecord{}, fmt.Errorf("%w: wrong secret", ErrBadToken)
	}
	return rec, nil
}

// Renew issues a new credential for the agent key pub of node: the key must
// be one the node joined with and not removed since.
func (a *Authority) Renew(ctx context.Context, node, pub string) (Answer, error) {
	if err := a.ready(); err != nil {
		return Answer{}, err
	}
	c, rev, ok, err := a.store().credential(ctx, pub)
	if err != nil {
		return Answer{}, err
	}
	if !ok || c.Role != identity.RoleAgent || c.Name != node || a.ID.Revoked(pub) {
		return Answer{}, fmt.Errorf("%w: node %s has no credential for that key", ErrNotJoined, node)
	}
	now := a.now()
	ttl := a.agentTTL()
	j, err := a.ID.Issue(identity.RoleAgent, node, pub, ttl)
	if err != nil {
		return Answer{}, err
	}
	c.Expires = now.Add(ttl)
	// Only over the record read: a removal meanwhile wins (and the JWT
	// issued here is covered by its revocation or never handed out).
	if err := a.store().updateCred(ctx, c, rev); err != nil {
		return Answer{}, fmt.Errorf("%w: node %s was removed meanwhile", ErrNotJoined, node)
	}
	if a.ID.Revoked(pub) {
		return Answer{}, fmt.Errorf("%w: node %s was removed meanwhile", ErrNotJoined, node)
	}
	return Answer{JWT: j, Role: string(identity.RoleAgent), Expires: c.Expires}, nil
}

// Remove revokes every credential named name of role (agent for a node),
// at once: the server closes their connections and refuses them from now
// on. It returns how many it revoked.
func (a *Authority) Remove(ctx context.Context, role identity.Role, name string) (int, error) {
	if err := a.ready(); err != nil {
		return 0, err
	}
	pub, ok, err := a.store().nameHolder(ctx, role, name)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, nil
	}
	// Revoked and pushed before the records go: a failure leaves the name
	// held, so trying again finds it and pushes again.
	at, err := a.ID.Revoke(pub)
	if err != nil {
		return 0, err
	}
	// The other servers apply it from the bucket (WatchRevocations).
	if err := a.store().putRevocation(ctx, pub, at); err != nil {
		return 0, fmt.Errorf("record the revocation for the other servers: %w", err)
	}
	if a.NATS != nil {
		if err := a.ID.UpdateServer(a.NATS); err != nil {
			return 0, fmt.Errorf("push the revocation to the nats server: %w", err)
		}
	}
	if err := a.store().kv.Delete(ctx, credKey(pub)); err != nil {
		return 0, err
	}
	if role == identity.RoleAgent {
		if err := a.store().ReleaseSubnet(ctx, name); err != nil {
			return 0, fmt.Errorf("release the node's pod subnet: %w", err)
		}
	}
	a.store().releaseName(ctx, role, name)
	n := 1
	if n > 0 {
		zerolog.Ctx(ctx).Info().Str("role", string(role)).Str("name", name).Int("revoked", n).Msg("credentials revoked")
	}
	return n, nil
}

// DropTokens deletes the unused join tokens bound to node (a node pool's
// machine that was deleted or never made): none of them works afterwards.
func (a *Authority) DropTokens(ctx context.Context, node string) (int, error) {
	if err := a.ready(); err != nil {
		return 0, err
	}
	return a.store().dropTokensFor(ctx, node)
}

// RecordLocal records a credential issued on a server's machine (root's
// admin credential, the in-process agent of baton up) so it is listed and
// revocable by name. A key that held the name before (the last run's
// agent, the root credential of the machine a backup came from) is revoked
// first: a name names one credential, and one no longer listed must not
// keep working.
func (a *Authority) RecordLocal(ctx context.Context, c Credential) error {
	if err := a.ready(); err != nil {
		return err
	}
	old, ok, err := a.store().nameHolder(ctx, c.Role, c.Name)
	if err != nil {
		return err
	}
	if ok && old == c.PublicKey {
		return nil
	}
	if ok {
		if _, err := a.Remove(ctx, c.Role, c.Name); err != nil {
			return fmt.Errorf("revoke the credential %s %s held before: %w", c.Role, c.Name, err)
		}
	}
	return a.store().record(ctx, c)
}

// StatusOf is the HTTP status of an error of this package.
func StatusOf(err error) int {
	switch {
	case errors.Is(err, ErrBadToken):
		return http.StatusUnauthorized
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, ErrNameTaken):
		return http.StatusConflict
	case errors.Is(err, ErrNotJoined):
		return http.StatusNotFound
	case errors.Is(err, identity.ErrBadName):
		return http.StatusBadRequest
	case errors.Is(err, ErrForming), errors.Is(err, ErrNoSubnet):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// isClientError reports whether err is the requester's doing (logged at a
// lower level: anyone who reaches the port can send garbage).
func isClientError(err error) bool { return StatusOf(err) < 500 }

// maxRequestBytes bounds a join request.
const maxRequestBytes = 16 << 10

// Handler serves POST /v1/join over the TLS the caller sets up.
func (a *Authority) Handler(log zerolog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/join", func(w http.ResponseWriter, r *http.Request) {
		var req Request
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBytes))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want {\"token\", \"name\", \"publicKey\"}: " + err.Error()})
			return
		}
		ctx, cancel := context.WithTimeout(log.WithContext(r.Context()), 10*time.Second)
		defer cancel()
		var ans Answer
		var err error
		if slices.Contains(req.Roles, identity.RoleServer) {
			local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
			remote, _ := net.ResolveTCPAddr("tcp", r.RemoteAddr)
			ans, err = a.JoinServer(ctx, req, local, remote)
		} else {
			ans, err = a.Join(ctx, req)
		}
		if err != nil {
			ev := log.Error()
			if isClientError(err) {
				ev = log.Warn()
			}
			ev.Err(err).Str("name", req.Name).Str("from", r.RemoteAddr).Msg("join refused")
			writeJSON(w, StatusOf(err), map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, ans)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// nodeOfRenewal is the node in a renewal subject, baton.node.<node>.renew.
func nodeOfRenewal(subject string) (string, bool) {
	parts := strings.Split(subject, ".")
	if len(parts) != 4 || parts[0] != "baton" || parts[1] != "node" || parts[3] != "renew" {
		return "", false
	}
	return parts[2], true
}

// verifyPossession checks that the request's signature of its token was
// made with the private half of its public key.
func verifyPossession(req Request) error {
	sig, err := base64.StdEncoding.DecodeString(req.Signature)
	if err != nil || len(sig) == 0 {
		return fmt.Errorf("%w: the token must be signed with the key (signature)", ErrBadRequest)
	}
	kp, err := nkeys.FromPublicKey(req.PublicKey)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if err := kp.Verify([]byte(req.Token), sig); err != nil {
		return fmt.Errorf("%w: the signature is not the key's", ErrBadRequest)
	}
	return nil
}

func article(r identity.Role) string {
	if r == identity.RoleAgent || r == identity.RoleAdmin {
		return "n"
	}
	return ""
}
