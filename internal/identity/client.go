package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
)

// MaxCredsBytes bounds a credentials or CA file a client reads.
const MaxCredsBytes = 64 << 10

// Credential is a parsed credentials file: the user JWT, its seed, and what
// the JWT says of its holder.
type Credential struct {
	JWT       string
	Seed      []byte
	Role      Role
	Name      string
	PublicKey string
	Issued    time.Time
	Expires   time.Time // zero: until revoked
}

// ParseCreds parses a NATS credentials file made by Creds.
func ParseCreds(b []byte) (*Credential, error) {
	if len(b) > MaxCredsBytes {
		return nil, fmt.Errorf("credentials: %d bytes, more than %d", len(b), MaxCredsBytes)
	}
	j, err := jwt.ParseDecoratedJWT(b)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	kp, err := jwt.ParseDecoratedNKey(b)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	c, err := describe(j)
	if err != nil {
		return nil, err
	}
	if pub, _ := kp.PublicKey(); pub != c.PublicKey {
		return nil, errors.New("credentials: the seed is not the JWT's key")
	}
	c.Seed = seed
	return c, nil
}

// describe reads role, name, key and expiry from a user JWT (not checking
// its signature: the server does).
func describe(userJWT string) (*Credential, error) {
	uc, err := jwt.DecodeUserClaims(userJWT)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	c := &Credential{JWT: userJWT, Name: uc.Name, PublicKey: uc.Subject, Issued: time.Unix(uc.IssuedAt, 0)}
	for _, t := range uc.Tags {
		if r, ok := strings.CutPrefix(t, "role:"); ok {
			c.Role = Role(r)
		}
	}
	if !c.Role.Valid() {
		return nil, fmt.Errorf("credentials of %q carry no known role", uc.Name)
	}
	if uc.Expires > 0 {
		c.Expires = time.Unix(uc.Expires, 0)
	}
	return c, nil
}

// Describe reads role, name, key and expiry from a user JWT, without
// checking its signature: for JWTs the server checked already (its
// connection events).
func Describe(userJWT string) (*Credential, error) { return describe(userJWT) }

// ReadCreds reads and parses a credentials file.
func ReadCreds(path string) (*Credential, error) {
	b, err := readSmall(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseCreds(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// InboxPrefix is the inbox prefix this credential may receive on ("" for a
// server: any).
func (c *Credential) InboxPrefix() string {
	if c.Role == RoleServer {
		return ""
	}
	return InboxPrefix(c.Role, c.Name)
}

// Options are the connect options of this credential held in memory (the
// in-process connections of a server).
func (c *Credential) Options() []nats.Option {
	opts := []nats.Option{nats.UserJWTAndSeed(c.JWT, string(c.Seed))}
	if p := c.InboxPrefix(); p != "" {
		opts = append(opts, nats.CustomInboxPrefix(p))
	}
	return opts
}

// ClientOptions are the connect options of a client holding the
// credentials file credsPath and trusting the CA in caPath: the file is read
// again at every reconnection (a renewed credential is used at once), TLS
// checks the server against that CA only, and replies come to the
// credential's own inbox prefix.
func ClientOptions(credsPath, caPath string) ([]nats.Option, *Credential, error) {
	c, err := ReadCreds(credsPath)
	if err != nil {
		return nil, nil, err
	}
	pemBytes, err := readSmall(caPath)
	if err != nil {
		return nil, nil, err
	}
	tc, err := TrustCA(pemBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", caPath, err)
	}
	opts := []nats.Option{nats.UserCredentials(credsPath), nats.Secure(tc)}
	if p := c.InboxPrefix(); p != "" {
		opts = append(opts, nats.CustomInboxPrefix(p))
	}
	return opts, c, nil
}

// TrustCA is a TLS client configuration that trusts the PEM CA and no other.
func TrustCA(pemBytes []byte) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, errors.New("no PEM certificate")
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxCredsBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > MaxCredsBytes {
		return nil, fmt.Errorf("%s: more than %d bytes", path, MaxCredsBytes)
	}
	return b, nil
}

// Local issues a credential held in memory only, for a connection inside
// the server's own process (no expiry: it dies with the process).
func (id *Identity) Local(role Role, name string) (*Credential, error) {
	seed, pub, err := NewUserKey()
	if err != nil {
		return nil, err
	}
	j, err := id.Issue(role, name, pub, 0)
	if err != nil {
		return nil, err
	}
	c, err := describe(j)
	if err != nil {
		return nil, err
	}
	c.Seed = seed
	return c, nil
}

// LocalSystem issues a credential of the system account, held in memory:
// the server's own process reads the bus's connection events with it
// (which agent's connection closed, and when).
func (id *Identity) LocalSystem(name string) (*Credential, error) {
	seed, pub, err := NewUserKey()
	if err != nil {
		return nil, err
	}
	uc := jwt.NewUserClaims(pub)
	uc.Name = name
	uc.Tags.Add("role:" + string(RoleServer))
	j, err := uc.Encode(id.sys)
	if err != nil {
		return nil, err
	}
	c, err := describe(j)
	if err != nil {
		return nil, err
	}
	c.Seed = seed
	return c, nil
}

// SystemAccountPublicKey is the system account's public key.
func (id *Identity) SystemAccountPublicKey() string {
	pub, _ := id.sys.PublicKey()
	return pub
}
