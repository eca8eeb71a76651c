package identity

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// AccountName is the name of the account every Baton user belongs to.
const AccountName = "baton"

// ErrBadName is returned for a user name that cannot be a subject token.
var ErrBadName = errors.New("invalid name")

// names are node and operator names, as the agent accepts node names
// (nodeagent.NodeName): one subject token each (no '.', '*', '>' or
// spaces).
var names = regexp.MustCompile(`^[a-zA-Z0-9][-a-zA-Z0-9_]{0,62}$`)

// OperatorJWT is the operator's self-signed JWT, naming the system account.
func (id *Identity) OperatorJWT() (string, error) {
	pub, _ := id.op.PublicKey()
	oc := jwt.NewOperatorClaims(pub)
	oc.Name = "baton"
	sys, _ := id.sys.PublicKey()
	oc.SystemAccount = sys
	return oc.Encode(id.op)
}

// SystemAccountJWT is the system account's JWT, signed by the operator.
func (id *Identity) SystemAccountJWT() (string, error) {
	pub, _ := id.sys.PublicKey()
	ac := jwt.NewAccountClaims(pub)
	ac.Name = "SYS"
	return ac.Encode(id.op)
}

// AccountJWT is the baton account's JWT, signed by the operator: JetStream
// on, the user signing key, the agents' scoped signing key with its
// template, and the revocations.
func (id *Identity) AccountJWT() (string, error) {
	pub, _ := id.acct.PublicKey()
	ac := jwt.NewAccountClaims(pub)
	ac.Name = AccountName
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1, MaxAckPending: -1}
	users, _ := id.users.PublicKey()
	ac.SigningKeys.Add(users)
	agents, _ := id.agents.PublicKey()
	scope := jwt.NewUserScope()
	scope.Key = agents
	scope.Role = string(RoleAgent)
	scope.Description = "Baton agents: one node's subjects each"
	scope.Template = agentTemplate()
	ac.SigningKeys.AddScopedSigner(scope)
	id.mu.Lock()
	for user, at := range id.revoked {
		ac.RevokeAt(user, time.Unix(at, 0))
	}
	id.mu.Unlock()
	return ac.Encode(id.op)
}

// NewUserKey makes a user's key pair: a joining machine makes its own, and
// only its public key leaves it.
func NewUserKey() (seed []byte, pub string, err error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, "", err
	}
	if seed, err = kp.Seed(); err != nil {
		return nil, "", err
	}
	pub, err = kp.PublicKey()
	return seed, pub, err
}

// Issue signs a user JWT for userPub (a user public key, "U...") with the
// permissions of role, named name (the node, for an agent), valid for ttl
// (0: until revoked).
func (id *Identity) Issue(role Role, name, userPub string, ttl time.Duration) (string, error) {
	if !role.Valid() {
		return "", fmt.Errorf("unknown role %q (server, agent, admin or viewer)", role)
	}
	if !names.MatchString(name) {
		return "", fmt.Errorf("%w %q: a name is letters, digits, '-' and '_', at most 63", ErrBadName, name)
	}
	if !nkeys.IsValidPublicUserKey(userPub) {
		return "", fmt.Errorf("not a user public key: %q", userPub)
	}
	uc := jwt.NewUserClaims(userPub)
	uc.Name = name
	uc.IssuerAccount = id.AccountPublicKey()
	if ttl > 0 {
		uc.Expires = time.Now().Add(ttl).Unix()
	}
	uc.Tags.Add("role:" + string(role))
	signer := id.users
	switch role {
	case RoleAgent:
		// The scoped key's template gives the permissions; the JWT carries
		// none of its own (the server refuses one that does).
		uc.SetScoped(true)
		signer = id.agents
	case RoleAdmin, RoleViewer:
		uc.Permissions = operatorPermissions(role, name)
	case RoleServer:
		// Every subject of the account, JetStream included.
	}
	return uc.Encode(signer)
}

// Creds is the content of a NATS credentials file: the JWT and the seed.
func Creds(userJWT string, seed []byte) ([]byte, error) {
	return jwt.FormatUserConfig(userJWT, seed)
}

// IssueCreds makes a key and a credential for role and name: for users
// made on this machine (the server's own, the operators' of root).
func (id *Identity) IssueCreds(role Role, name string, ttl time.Duration) ([]byte, error) {
	seed, pub, err := NewUserKey()
	if err != nil {
		return nil, err
	}
	j, err := id.Issue(role, name, pub, ttl)
	if err != nil {
		return nil, err
	}
	return Creds(j, seed)
}

// Revoke revokes every credential of the user key userPub issued before
// now, for good: it is kept in the identity directory, and the account JWT
// carries it (push it to the servers with UpdateServer). It returns the
// revocation's time (unix seconds), which the other servers record with
// RevokeAt.
func (id *Identity) Revoke(userPub string) (int64, error) {
	if !nkeys.IsValidPublicUserKey(userPub) {
		return 0, fmt.Errorf("not a user public key: %q", userPub)
	}
	id.mu.Lock()
	defer id.mu.Unlock()
	at := time.Now().Unix()
	id.revoked[userPub] = at
	return at, id.saveRevokedLocked()
}

// ValidName reports whether name can name a credential (and a node).
func ValidName(name string) bool { return names.MatchString(name) }

// Revoked reports whether userPub was revoked.
func (id *Identity) Revoked(userPub string) bool {
	id.mu.Lock()
	defer id.mu.Unlock()
	_, ok := id.revoked[userPub]
	return ok
}
