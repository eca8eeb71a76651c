package join

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/batonhq/baton/internal/identity"
	"github.com/nats-io/nkeys"
)

// Joined is what joining wrote: the credential and where to reach NATS.
type Joined struct {
	Credential *identity.Credential
	CredsPath  string
	CAPath     string
	NATSURL    string
	// PodSubnet is the node's pod addresses, leased at join ("" for an
	// operator).
	PodSubnet string
}

// Join redeems tok at the join endpoint addr (host:port or an https URL)
// for a credential named name: it makes a key pair here, trusts the
// endpoint only if it presents the CA the token pins, and writes the
// credential (0600) to credsPath and the CA beside it as ca.crt.
func Join(ctx context.Context, addr, tok string, roles []identity.Role, name, credsPath string) (*Joined, error) {
	return JoinVia(ctx, nil, addr, tok, roles, name, credsPath)
}

// Dialer dials a connection (nil: the default).
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// JoinVia is Join with the connection made by dial. roles are the roles
// the joiner expects: a token of another role is refused, unused.
func JoinVia(ctx context.Context, dial Dialer, addr, tok string, roles []identity.Role, name, credsPath string) (*Joined, error) {
	seed, pub, err := identity.NewUserKey()
	if err != nil {
		return nil, err
	}
	ans, host, err := post(ctx, dial, addr, tok, seed, Request{Name: name, PublicKey: pub, Roles: roles})
	if err != nil {
		return nil, err
	}
	creds, err := identity.Creds(ans.JWT, seed)
	if err != nil {
		return nil, err
	}
	c, err := identity.ParseCreds(creds)
	if err != nil {
		return nil, err
	}
	if c.Name != name || c.PublicKey != pub {
		return nil, fmt.Errorf("join at %s: the credential is not for %s and this key", addr, name)
	}
	if err := writeJoined(credsPath, creds, []byte(ans.CA)); err != nil {
		return nil, err
	}
	j := &Joined{Credential: c, CredsPath: credsPath, CAPath: caBeside(credsPath), PodSubnet: ans.PodSubnet}
	if ans.NATSPort > 0 {
		j.NATSURL = "tls://" + net.JoinHostPort(host, strconv.Itoa(ans.NATSPort))
	}
	return j, nil
}

// post signs tok with seed, sends req with it to the join endpoint addr
// (trusting only the CA the token pins) and returns the answer, whose CA
// it has checked, and the host it reached.
func post(ctx context.Context, dial Dialer, addr, tok string, seed []byte, req Request) (Answer, string, error) {
	t, err := ParseToken(tok)
	if err != nil {
		return Answer{}, "", err
	}
	base := addr
	if !strings.Contains(base, "://") {
		base = "https://" + base
	}
	host, err := hostOf(base)
	if err != nil {
		return Answer{}, "", err
	}
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		return Answer{}, "", err
	}
	sig, err := kp.Sign([]byte(tok))
	if err != nil {
		return Answer{}, "", err
	}
	req.Token, req.Signature = tok, base64.StdEncoding.EncodeToString(sig)
	body, _ := json.Marshal(req)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/v1/join", bytes.NewReader(body))
	if err != nil {
		return Answer{}, "", err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: PinnedTLS(t.CAFingerprint), DialContext: dial}}
	resp, err := hc.Do(hreq)
	if err != nil {
		return Answer{}, "", fmt.Errorf("join at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return Answer{}, "", fmt.Errorf("join at %s: %w", addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.Unmarshal(b, &e)
		return Answer{}, "", fmt.Errorf("join at %s refused: %s: %s", addr, resp.Status, e.Error)
	}
	var ans Answer
	if err := json.Unmarshal(b, &ans); err != nil {
		return Answer{}, "", fmt.Errorf("join at %s: bad answer: %w", addr, err)
	}
	// The CA sent must be the one pinned: it is what NATS is checked with.
	if fp, err := pemFingerprint([]byte(ans.CA)); err != nil || fp != t.CAFingerprint {
		return Answer{}, "", fmt.Errorf("join at %s: the answer's CA is not the one the token pins", addr)
	}
	return ans, host, nil
}

// maxAnswerBytes bounds a join answer (a server's carries the identity).
const maxAnswerBytes = 4 << 20

func hostOf(rawURL string) (string, error) {
	rest := rawURL[strings.Index(rawURL, "://")+3:]
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	host, _, err := net.SplitHostPort(rest)
	if err != nil {
		return "", fmt.Errorf("join address %q: want host:port: %w", rawURL, err)
	}
	return host, nil
}

// PinnedTLS trusts a server whose chain ends in the CA with SHA-256
// fingerprint fp, and no other: the joining side has no CA yet, only the
// token's fingerprint of it. The server's name is not checked (a machine
// joins by whatever address reaches the server); the CA is.
func PinnedTLS(fp string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // verified below against the pinned CA
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			var ca *x509.Certificate
			for _, c := range cs.PeerCertificates[1:] {
				if identity.Fingerprint(c) == fp {
					ca = c
				}
			}
			if ca == nil {
				return errors.New("the server's certificate is not from the CA the token pins (another cluster, or an impostor)")
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca)
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			return err
		},
	}
}
