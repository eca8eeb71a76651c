package identity

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nkeys"
)

// RouteTLS is mutual TLS for the routes between the servers of a cluster:
// this server's certificate for hosts (the addresses the others dial), and
// on both sides only a certificate the CA signed is accepted. Only servers
// hold such certificates (agents and operators have JWTs only).
func (id *Identity) RouteTLS(hosts ...string) (*tls.Config, error) {
	tc, err := id.ServerTLS(hosts...)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(id.ca)
	tc.RootCAs = pool
	tc.ClientCAs = pool
	tc.ClientAuth = tls.RequireAndVerifyClientCert
	return tc, nil
}

// maxFileBytes bounds a file of an identity handed to a joining server.
const maxFileBytes = 1 << 20

// Files are the identity's files, by name: every key of the cluster. Only a
// server joining the cluster gets them (it issues credentials and serves
// TLS as the first one does).
func (id *Identity) Files() (map[string][]byte, error) {
	ents, err := os.ReadDir(id.dir)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := readSecret(id.dir, e.Name())
		if err != nil {
			return nil, err
		}
		files[e.Name()] = b
	}
	return files, nil
}

// Install writes files (another server's Files) into dir, which must hold
// no identity yet, and opens it.
func Install(dir string, files map[string][]byte) (*Identity, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("identity directory: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, caKeyFile)); err == nil {
		return nil, fmt.Errorf("identity directory %s holds an identity already", dir)
	}
	for _, f := range []string{caCertFile, caKeyFile, operatorFile, systemFile, accountFile, userSignerFile, agentSignerFile} {
		if len(files[f]) == 0 {
			return nil, fmt.Errorf("the identity sent lacks %s", f)
		}
	}
	for name, b := range files {
		if name != filepath.Base(name) || name == "." || name == ".." || len(b) > maxFileBytes {
			return nil, fmt.Errorf("the identity sent has a bad file %q", name)
		}
		if err := writeSecret(dir, name, b); err != nil {
			return nil, err
		}
	}
	return load(dir)
}

// RevokeAt records a revocation of userPub made at (unix seconds) by
// another server, kept as Revoke keeps its own. It reports whether it was
// new here (then push the account to the server with UpdateServer).
func (id *Identity) RevokeAt(userPub string, at int64) (bool, error) {
	if !nkeys.IsValidPublicUserKey(userPub) {
		return false, fmt.Errorf("not a user public key: %q", userPub)
	}
	if at <= 0 || at > time.Now().Add(time.Hour).Unix() {
		return false, errors.New("revocation time out of range")
	}
	id.mu.Lock()
	defer id.mu.Unlock()
	if old, ok := id.revoked[userPub]; ok && old >= at {
		return false, nil
	}
	id.revoked[userPub] = at
	return true, id.saveRevokedLocked()
}

// saveRevokedLocked writes the revocations; id.mu is held.
func (id *Identity) saveRevokedLocked() error {
	b, err := json.MarshalIndent(id.revoked, "", "  ")
	if err != nil {
		return err
	}
	return writeSecret(id.dir, revokedFile, b)
}
