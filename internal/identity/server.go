package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
)

// ServerCertTTL is how long a server's TLS certificate lasts; a server makes
// a new one at every start.
const ServerCertTTL = 90 * 24 * time.Hour

// ServerTLS is a TLS configuration for a server answering as hosts (names
// or IP addresses), with a certificate the CA signs now.
func (id *Identity) ServerTLS(hosts ...string) (*tls.Config, error) {
	if len(hosts) == 0 {
		return nil, errors.New("server certificate: no host names or addresses (clients check them)")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "baton server"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(ServerCertTTL),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, id.ca, &key.PublicKey, id.caKey)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der, id.ca.Raw}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// ClientTLS is what a client of this cluster trusts: the CA, and no other.
func (id *Identity) ClientTLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(id.ca)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// Configure makes the server options trust only this identity: the
// operator, its system account and the baton account (in a resolver kept
// in memory: the first server holds the keys), and TLS on the client port
// with a certificate for hosts.
func (id *Identity) Configure(o *server.Options, hosts ...string) error {
	opJWT, err := id.OperatorJWT()
	if err != nil {
		return err
	}
	oc, err := jwt.DecodeOperatorClaims(opJWT)
	if err != nil {
		return err
	}
	res := &server.MemAccResolver{}
	sysJWT, err := id.SystemAccountJWT()
	if err != nil {
		return err
	}
	acJWT, err := id.AccountJWT()
	if err != nil {
		return err
	}
	sys, _ := id.sys.PublicKey()
	for pub, j := range map[string]string{sys: sysJWT, id.AccountPublicKey(): acJWT} {
		if err := res.Store(pub, j); err != nil {
			return err
		}
	}
	tc, err := id.ServerTLS(hosts...)
	if err != nil {
		return err
	}
	o.TrustedOperators = []*jwt.OperatorClaims{oc}
	o.SystemAccount = sys
	o.AccountResolver = res
	o.TLSConfig = tc
	o.TLS = true
	o.TLSTimeout = 2
	return nil
}

// UpdateServer pushes the account JWT (with its revocations) to a running
// server: a revoked credential's connections are closed at once and it
// cannot connect again.
func (id *Identity) UpdateServer(s *server.Server) error {
	acJWT, err := id.AccountJWT()
	if err != nil {
		return err
	}
	ac, err := jwt.DecodeAccountClaims(acJWT)
	if err != nil {
		return err
	}
	if r := s.AccountResolver(); r != nil {
		if err := r.Store(ac.Subject, acJWT); err != nil {
			return err
		}
	}
	acc, err := s.LookupAccount(ac.Subject)
	if err != nil {
		return err
	}
	s.UpdateAccountClaims(acc, ac)
	return nil
}
