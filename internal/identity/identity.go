package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/batonhq/baton/internal/fsutil"
	"github.com/nats-io/nkeys"
)

// Files of the identity directory, all 0600 in a 0700 directory.
const (
	caCertFile      = "ca.crt"
	caKeyFile       = "ca.key"
	operatorFile    = "operator.nk"
	systemFile      = "system-account.nk"
	accountFile     = "account.nk"
	userSignerFile  = "user-signer.nk"
	agentSignerFile = "agent-signer.nk"
	revokedFile     = "revoked.json"
)

// Identity is the cluster's identity, loaded from (or made in) a directory.
// It is safe for concurrent use.
type Identity struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caPEM  []byte
	op     nkeys.KeyPair
	sys    nkeys.KeyPair
	acct   nkeys.KeyPair
	users  nkeys.KeyPair // signs servers', admins' and viewers' credentials
	agents nkeys.KeyPair // scoped: signs agents' credentials only

	mu      sync.Mutex
	revoked map[string]int64 // user public key → revoked at (unix seconds)
}

// Open loads the identity kept in dir, making it first if dir holds none:
// the first server of a cluster calls it on a fresh data dir. A directory
// holding only part of an identity is an error (never silently replaced:
// the keys already given out would stop working).
func Open(dir string) (*Identity, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("identity directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("identity directory: %w", err)
	}
	files := []string{caCertFile, caKeyFile, operatorFile, systemFile, accountFile, userSignerFile, agentSignerFile}
	present := 0
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			present++
		}
	}
	switch present {
	case 0:
		if err := create(dir); err != nil {
			return nil, err
		}
	case len(files):
	default:
		return nil, fmt.Errorf("identity in %s is incomplete (%d of %d files): restore it from a backup, or remove the directory to make a new cluster identity", dir, present, len(files))
	}
	return load(dir)
}

// create makes a new identity in dir.
func create(dir string) (retErr error) {
	defer func() {
		if retErr != nil {
			for _, f := range []string{caCertFile, caKeyFile, operatorFile, systemFile, accountFile, userSignerFile, agentSignerFile} {
				_ = os.Remove(filepath.Join(dir, f))
			}
		}
	}()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("CA key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Baton cluster CA", Organization: []string{"Baton"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeSecret(dir, caKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})); err != nil {
		return err
	}
	if err := writeSecret(dir, caCertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		return err
	}
	for file, make := range map[string]func() (nkeys.KeyPair, error){
		operatorFile: nkeys.CreateOperator, systemFile: nkeys.CreateAccount, accountFile: nkeys.CreateAccount,
		userSignerFile: nkeys.CreateAccount, agentSignerFile: nkeys.CreateAccount,
	} {
		kp, err := make()
		if err != nil {
			return fmt.Errorf("make %s: %w", file, err)
		}
		seed, err := kp.Seed()
		if err != nil {
			return err
		}
		if err := writeSecret(dir, file, seed); err != nil {
			return err
		}
	}
	return nil
}

// writeSecret writes a file of the identity, readable by its owner only.
func writeSecret(dir, name string, data []byte) error {
	return fsutil.WriteFileAtomic(filepath.Join(dir, name), data, 0o600)
}

func load(dir string) (*Identity, error) {
	id := &Identity{dir: dir, revoked: map[string]int64{}}
	var err error
	if id.caPEM, err = readSecret(dir, caCertFile); err != nil {
		return nil, err
	}
	block, _ := pem.Decode(id.caPEM)
	if block == nil {
		return nil, fmt.Errorf("%s: not a PEM certificate", caCertFile)
	}
	if id.ca, err = x509.ParseCertificate(block.Bytes); err != nil {
		return nil, fmt.Errorf("%s: %w", caCertFile, err)
	}
	keyPEM, err := readSecret(dir, caKeyFile)
	if err != nil {
		return nil, err
	}
	if block, _ = pem.Decode(keyPEM); block == nil {
		return nil, fmt.Errorf("%s: not a PEM key", caKeyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", caKeyFile, err)
	}
	var ok bool
	if id.caKey, ok = k.(*ecdsa.PrivateKey); !ok {
		return nil, fmt.Errorf("%s: not an ECDSA key", caKeyFile)
	}
	for file, dst := range map[string]*nkeys.KeyPair{operatorFile: &id.op, systemFile: &id.sys, accountFile: &id.acct,
		userSignerFile: &id.users, agentSignerFile: &id.agents} {
		seed, err := readSecret(dir, file)
		if err != nil {
			return nil, err
		}
		if *dst, err = nkeys.FromSeed(seed); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, revokedFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(b, &id.revoked); err != nil {
			return nil, fmt.Errorf("%s: %w", revokedFile, err)
		}
	}
	return id, nil
}

// readSecret reads a file of the identity, refusing one others may read.
func readSecret(dir, name string) ([]byte, error) {
	p := filepath.Join(dir, name)
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity: %s is readable by others (mode %o): chmod 600 it", p, st.Mode().Perm())
	}
	return os.ReadFile(p)
}

// Dir is where the identity is kept.
func (id *Identity) Dir() string { return id.dir }

// CAPEM is the CA certificate, PEM-encoded (public).
func (id *Identity) CAPEM() []byte { return id.caPEM }

// CAFingerprint is the SHA-256 of the CA certificate, in hex: a join token
// carries it, so a joining machine trusts this CA and no other.
func (id *Identity) CAFingerprint() string { return Fingerprint(id.ca) }

// Fingerprint is the SHA-256 of a certificate's DER, in hex.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// AccountPublicKey is the baton account's public key.
func (id *Identity) AccountPublicKey() string {
	pub, _ := id.acct.PublicKey()
	return pub
}
