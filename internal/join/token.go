package join

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/batonhq/baton/internal/identity"
)

// tokenPrefix versions the token format.
const tokenPrefix = "baton1"

// Token is a one-time join token: the CA fingerprint to pin, the token's ID
// (its key in the store) and its secret (kept only hashed by the servers).
type Token struct {
	CAFingerprint string // hex SHA-256 of the CA certificate
	ID            string // 16 hex digits
	Secret        string // 32 random bytes, base64url
}

// ErrBadToken is a token that is malformed, unknown, used, expired or wrong.
var ErrBadToken = errors.New("invalid join token")

// String is the token as an operator copies it.
func (t Token) String() string {
	return strings.Join([]string{tokenPrefix, t.CAFingerprint, t.ID, t.Secret}, ".")
}

// ParseToken parses a token made by String.
func ParseToken(s string) (Token, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 4 || parts[0] != tokenPrefix {
		return Token{}, fmt.Errorf("%w: want %s.<CA fingerprint>.<id>.<secret>", ErrBadToken, tokenPrefix)
	}
	t := Token{CAFingerprint: parts[1], ID: parts[2], Secret: parts[3]}
	if b, err := hex.DecodeString(t.CAFingerprint); err != nil || len(b) != sha256.Size {
		return Token{}, fmt.Errorf("%w: the CA fingerprint is not a SHA-256 in hex", ErrBadToken)
	}
	if b, err := hex.DecodeString(t.ID); err != nil || len(b) != 8 {
		return Token{}, fmt.Errorf("%w: the id is not 16 hex digits", ErrBadToken)
	}
	if b, err := base64.RawURLEncoding.DecodeString(t.Secret); err != nil || len(b) != 32 {
		return Token{}, fmt.Errorf("%w: the secret is not 32 bytes in base64url", ErrBadToken)
	}
	return t, nil
}

// newToken makes a token for the CA with fingerprint fp.
func newToken(fp string) (Token, error) {
	id := make([]byte, 8)
	secret := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return Token{}, err
	}
	if _, err := rand.Read(secret); err != nil {
		return Token{}, err
	}
	return Token{CAFingerprint: fp, ID: hex.EncodeToString(id), Secret: base64.RawURLEncoding.EncodeToString(secret)}, nil
}

// hash is what the store keeps of the secret.
func (t Token) hash() string {
	sum := sha256.Sum256([]byte(t.Secret))
	return hex.EncodeToString(sum[:])
}

// matches compares the secret with a stored hash in constant time.
func (t Token) matches(hash string) bool {
	return subtle.ConstantTimeCompare([]byte(t.hash()), []byte(hash)) == 1
}

// pemFingerprint is the fingerprint of the first certificate in pemBytes.
func pemFingerprint(pemBytes []byte) (string, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return "", errors.New("no PEM certificate")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", err
	}
	return identity.Fingerprint(c), nil
}

// caBeside is where the CA is kept next to a credentials file.
func caBeside(credsPath string) string { return filepath.Join(filepath.Dir(credsPath), "ca.crt") }
