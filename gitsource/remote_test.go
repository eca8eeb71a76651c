package gitsource

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

const (
	httpUser = "baton"
	httpPass = "s3cret-password"
)

// gitHTTP serves the repositories under root with the real `git http-backend`
// (smart HTTP) behind basic auth, on loopback. It counts requests and
// response bytes; fail, when set, makes upload-pack requests fail.
type gitHTTP struct {
	*httptest.Server
	requests, bytes atomic.Int64
	fail            atomic.Bool
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	c.n.Add(int64(len(b)))
	return c.ResponseWriter.Write(b)
}

func backendPath(t testing.TB) string {
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
}

func newGitHTTP(t testing.TB, root string, tls bool) *gitHTTP {
	g := &gitHTTP{}
	backend := &cgi.Handler{Path: backendPath(t), Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.requests.Add(1)
		u, p, ok := r.BasicAuth()
		if !ok || u != httpUser || p != httpPass {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if g.fail.Load() && strings.HasSuffix(r.URL.Path, "git-upload-pack") {
			// The connection drops in the middle of the pack.
			w.Header().Set("Content-Type", "application/x-git-upload-pack-result")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("0008NAK\n0023\x02Counting obj"))
			panic(http.ErrAbortHandler)
		}
		backend.ServeHTTP(countingWriter{w, &g.bytes}, r)
	})
	if tls {
		g.Server = httptest.NewTLSServer(h)
	} else {
		g.Server = httptest.NewServer(h)
	}
	t.Cleanup(g.Close)
	return g
}

// servedRepo is a repository under a served root.
func servedRepo(t *testing.T) (*testRepo, string) {
	root := t.TempDir()
	dir := filepath.Join(root, "config")
	r, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: "refs/heads/main"}})
	if err != nil {
		t.Fatal(err)
	}
	return &testRepo{t: t, dir: dir, repo: r}, root
}

func TestHTTPRemote(t *testing.T) {
	ctx := context.Background()
	r, root := servedRepo(t)
	rev1 := r.commit("first", map[string][]byte{"a.yaml": []byte("a: 1")})
	srv := newGitHTTP(t, root, false)
	url := srv.URL + "/config"
	auth := Auth{Username: httpUser, Password: httpPass}

	s, _ := New(Config{URL: url, CacheDir: t.TempDir(), Auth: auth})
	snap, err := s.Fetch(ctx)
	if err != nil || snap.Revision != rev1 || snap.Ref != "branch main" {
		t.Fatalf("first fetch: %v %+v", err, snap)
	}
	// A poll that finds nothing new is one request: the ref listing.
	before := srv.requests.Load()
	if _, err := s.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	if n := srv.requests.Load() - before; n != 1 {
		t.Fatalf("a poll with no change made %d requests, want 1", n)
	}
	// A push is seen on the next poll.
	rev2 := r.commit("second", map[string][]byte{"a.yaml": []byte("a: 2")})
	snap, err = s.Fetch(ctx)
	if err != nil || snap.Revision != rev2 || string(snap.Files["a.yaml"]) != "a: 2" {
		t.Fatalf("after push: %v %s", err, snap.Revision)
	}

	// Shallow mode fetches the tip only.
	sh, _ := New(Config{URL: url, CacheDir: t.TempDir(), Auth: auth, Shallow: true})
	if snap, err := sh.Fetch(ctx); err != nil || snap.Revision != rev2 {
		t.Fatalf("shallow fetch: %v", err)
	}
	if c, err := sh.repo.CommitObject(plumbing.NewHash(rev2)); err != nil || c.NumParents() != 1 {
		t.Fatalf("shallow tip: %v", err)
	} else if _, err := sh.repo.CommitObject(c.ParentHashes[0]); err == nil {
		t.Fatal("shallow fetch brought the parent commit too")
	}

	// The connection drops mid-fetch: an error, then recovery.
	srv.fail.Store(true)
	r.commit("third", map[string][]byte{"a.yaml": []byte("a: 3")})
	if _, err := s.Fetch(ctx); err == nil {
		t.Fatal("fetch through a dropped connection succeeded")
	}
	srv.fail.Store(false)
	if snap, err = s.Fetch(ctx); err != nil || string(snap.Files["a.yaml"]) != "a: 3" {
		t.Fatalf("after recovery: %v", err)
	}

	// Wrong credentials: a clear error without the secret.
	for _, bad := range []Auth{{Username: httpUser, Password: "wrong-password"}, {}} {
		s, _ := New(Config{URL: url, CacheDir: t.TempDir(), Auth: bad})
		_, err := s.Fetch(ctx)
		if err == nil || !strings.Contains(err.Error(), "authentication required") || strings.Contains(err.Error(), "wrong-password") {
			t.Fatalf("bad credentials: %v", err)
		}
	}
	// Credentials in the URL never reach an error or a log.
	userURL := strings.Replace(url, "http://", "http://"+httpUser+":"+httpPass+"@", 1)
	s2, _ := New(Config{URL: userURL, Branch: "nope", CacheDir: t.TempDir()})
	if _, err := s2.Fetch(ctx); err == nil || strings.Contains(err.Error(), httpPass) {
		t.Fatalf("error with credentials in the URL: %v", err)
	}
}

func TestHTTPSRemoteWithCustomCA(t *testing.T) {
	r, root := servedRepo(t)
	r.commit("first", map[string][]byte{"a.yaml": []byte("a: 1")})
	srv := newGitHTTP(t, root, true)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	s, _ := New(Config{URL: srv.URL + "/config", CacheDir: t.TempDir(), Auth: Auth{Username: httpUser, Password: httpPass, CABundle: ca}})
	if _, err := s.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	s, _ = New(Config{URL: srv.URL + "/config", CacheDir: t.TempDir(), Auth: Auth{Username: httpUser, Password: httpPass}})
	if _, err := s.Fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: %v", err)
	}
}

// sshServer runs the real git-upload-pack for clients with the authorized key.
func sshServer(t *testing.T, root string, authorized ssh.PublicKey) (addr string, hostKey ssh.PublicKey) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if bytes.Equal(k.Marshal(), authorized.Marshal()) {
			return nil, nil
		}
		return nil, errors.New("unknown key")
	}}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveSSH(c, cfg, root)
			}()
		}
	}()
	return ln.Addr().String(), signer.PublicKey()
}

func serveSSH(c net.Conn, cfg *ssh.ServerConfig, root string) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		ch, in, err := nc.Accept()
		if err != nil {
			return
		}
		for req := range in {
			if req.Type != "exec" {
				_ = req.Reply(false, nil)
				continue
			}
			var payload struct{ Command string }
			_ = ssh.Unmarshal(req.Payload, &payload)
			cmd, arg, _ := strings.Cut(payload.Command, " ")
			if cmd != "git-upload-pack" {
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(true, nil)
			p := filepath.Join(root, filepath.Clean("/"+strings.Trim(arg, "'\"")))
			run := exec.Command("git-upload-pack", p)
			run.Stdin, run.Stdout, run.Stderr = ch, ch, ch.Stderr()
			code := 0
			if err := run.Run(); err != nil {
				code = 1
			}
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
			ch.Close()
		}
	}
}

func TestSSHRemote(t *testing.T) {
	ctx := context.Background()
	r, root := servedRepo(t)
	rev := r.commit("first", map[string][]byte{"a.yaml": []byte("a: 1")})

	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	sshPub, _ := ssh.NewPublicKey(pub)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("key-passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(block)
	addr, hostKey := sshServer(t, root, sshPub)
	dir := t.TempDir()
	known := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(known, []byte(knownhosts.Line([]string{knownhosts.Normalize(addr)}, hostKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := "ssh://git@" + addr + "/config"
	auth := Auth{SSHKey: keyPEM, SSHPassphrase: "key-passphrase", KnownHosts: []string{known}}

	s, _ := New(Config{URL: url, Branch: "main", CacheDir: t.TempDir(), Auth: auth})
	snap, err := s.Fetch(ctx)
	if err != nil || snap.Revision != rev {
		t.Fatalf("ssh fetch: %v", err)
	}

	// A wrong host key is refused: possible man-in-the-middle.
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	otherSigner, _ := ssh.NewSignerFromKey(otherPriv)
	wrongKnown := filepath.Join(dir, "wrong_known_hosts")
	_ = os.WriteFile(wrongKnown, []byte(knownhosts.Line([]string{knownhosts.Normalize(addr)}, otherSigner.PublicKey())+"\n"), 0o600)
	bad := auth
	bad.KnownHosts = []string{wrongKnown}
	s, _ = New(Config{URL: url, Branch: "main", CacheDir: t.TempDir(), Auth: bad})
	if _, err := s.Fetch(ctx); err == nil || !strings.Contains(err.Error(), "does not match known_hosts") {
		t.Fatalf("wrong host key: %v", err)
	}
	// An unknown host is refused too.
	empty := filepath.Join(dir, "empty_known_hosts")
	_ = os.WriteFile(empty, nil, 0o600)
	bad.KnownHosts = []string{empty}
	s, _ = New(Config{URL: url, Branch: "main", CacheDir: t.TempDir(), Auth: bad})
	if _, err := s.Fetch(ctx); err == nil || !strings.Contains(err.Error(), "is not in known_hosts") {
		t.Fatalf("unknown host: %v", err)
	}
	// A key the server does not know, and a wrong passphrase: clear errors, no secret.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	ob, _ := ssh.MarshalPrivateKey(other, "")
	wrongKey := auth
	wrongKey.SSHKey, wrongKey.SSHPassphrase = pem.EncodeToMemory(ob), ""
	s, _ = New(Config{URL: url, Branch: "main", CacheDir: t.TempDir(), Auth: wrongKey})
	if _, err := s.Fetch(ctx); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("unknown client key: %v", err)
	}
	wrongPass := auth
	wrongPass.SSHPassphrase = "not-the-passphrase"
	s, _ = New(Config{URL: url, Branch: "main", CacheDir: t.TempDir(), Auth: wrongPass})
	if _, err := s.Fetch(ctx); err == nil || strings.Contains(err.Error(), "not-the-passphrase") {
		t.Fatalf("wrong passphrase: %v", err)
	}
}

func TestRefsAndHistoryRewrites(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	c1 := r.commit("v1", map[string][]byte{"a.yaml": []byte("v: 1")})
	r.git("tag", "v1.2.0")
	c2 := r.commit("v2", map[string][]byte{"a.yaml": []byte("v: 2")})
	r.git("tag", "-a", "v1.3.0", "-m", "release 1.3.0")
	c3 := r.commit("v3", map[string][]byte{"a.yaml": []byte("v: 3")})
	r.git("tag", "v2.0.0")

	fetch := func(cfg Config) (Snapshot, error) {
		cfg.URL, cfg.CacheDir = r.dir, t.TempDir()
		s, err := New(cfg)
		if err != nil {
			return Snapshot{}, err
		}
		return s.Fetch(ctx)
	}
	for _, tt := range []struct {
		cfg  Config
		want string
		ref  string
	}{
		{Config{Tag: "v1.2.0"}, c1, "tag v1.2.0"},
		{Config{Tag: "v1.3.0"}, c2, "tag v1.3.0"}, // annotated: its commit
		{Config{SemVer: ">=1.2.0 <2"}, c2, "tag v1.3.0"},
		{Config{SemVer: "^2"}, c3, "tag v2.0.0"},
		{Config{Commit: c1}, c1, "commit " + c1[:12]},
		{Config{}, c3, "branch main"},
	} {
		snap, err := fetch(tt.cfg)
		if err != nil || snap.Revision != tt.want || snap.Ref != tt.ref {
			t.Errorf("%+v: got %s %q, %v; want %s %q", tt.cfg, snap.Revision, snap.Ref, err, tt.want, tt.ref)
		}
	}
	if _, err := fetch(Config{SemVer: ">=3"}); err == nil || !strings.Contains(err.Error(), `matches ">=3"`) {
		t.Errorf("no matching tag: %v", err)
	}
	if _, err := New(Config{URL: r.dir, Tag: "a", Branch: "b"}); err == nil {
		t.Error("two refs accepted")
	}
	if _, err := New(Config{URL: r.dir, SemVer: "not a range"}); err == nil {
		t.Error("bad semver range accepted")
	}

	// One source across rewrites of the remote.
	s, _ := New(Config{URL: r.dir, Branch: "main", CacheDir: t.TempDir()})
	if snap, err := s.Fetch(ctx); err != nil || snap.Revision != c3 {
		t.Fatal(err)
	}
	r.git("reset", "-q", "--hard", c1) // force-push: history rewritten
	c4 := r.commit("rewritten", map[string][]byte{"a.yaml": []byte("v: 4")})
	if snap, err := s.Fetch(ctx); err != nil || snap.Revision != c4 {
		t.Fatalf("after a force push: %v", err)
	}
	r.git("checkout", "-q", "-b", "other")
	r.git("branch", "-D", "main") // the branch is deleted
	if _, err := s.Fetch(ctx); err == nil || !strings.Contains(err.Error(), `branch "main" not found`) {
		t.Fatalf("deleted branch: %v", err)
	}
	// A moved tag is followed.
	ts, _ := New(Config{URL: r.dir, Tag: "v1.2.0", CacheDir: t.TempDir()})
	if snap, _ := ts.Fetch(ctx); snap.Revision != c1 {
		t.Fatal("tag")
	}
	r.git("tag", "-f", "v1.2.0", c4)
	if snap, err := ts.Fetch(ctx); err != nil || snap.Revision != c4 {
		t.Fatalf("moved tag: %v %s", err, snap.Revision)
	}
}

func TestWebhookMakesPollImmediate(t *testing.T) {
	r := newRepo(t)
	r.commit("first", map[string][]byte{"a.yaml": []byte("a: 1")})
	s, _ := New(Config{URL: r.dir, Branch: "main", CacheDir: t.TempDir()})
	revs := make(chan string, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Poll(ctx, time.Hour, func(sn Snapshot) { revs <- sn.Revision }, func(error) {})
	<-revs
	hook, _ := NewWebhook([]byte(hookSecret), s.Trigger, 10, 10, zerolog.Nop())
	srv := httptest.NewServer(hook)
	defer srv.Close()
	post := func(sig string) int {
		req, _ := http.NewRequest("POST", srv.URL, strings.NewReader("{}"))
		req.Header.Set("X-Hub-Signature-256", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	rev2 := r.commit("second", map[string][]byte{"a.yaml": []byte("a: 2")})
	if code := post("sha256=" + sign("{}x")); code != 401 {
		t.Fatalf("bad signature: %d", code)
	}
	select {
	case rev := <-revs:
		t.Fatalf("a webhook with a bad signature caused a poll: %s", rev)
	case <-time.After(300 * time.Millisecond):
	}
	start := time.Now()
	if code := post("sha256=" + sign("{}")); code != 202 {
		t.Fatalf("good signature: %d", code)
	}
	select {
	case rev := <-revs:
		if rev != rev2 {
			t.Fatalf("revision %s", rev)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("webhook to revision took %s", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the webhook did not trigger a poll")
	}
}

// signer makes an OpenPGP key and its armored public key ring.
func signer(t *testing.T, name string) (*openpgp.Entity, string) {
	e, err := openpgp.NewEntity(name, "", name+"@localhost", nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, _ := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return e, buf.String()
}

func TestSignatureVerification(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	trusted, keyring := signer(t, "release")
	stranger, _ := signer(t, "stranger")
	commit := func(msg string, key *openpgp.Entity) string {
		wt, _ := r.repo.Worktree()
		_ = os.WriteFile(filepath.Join(r.dir, "a.yaml"), []byte(msg), 0o644)
		_, _ = wt.Add("a.yaml")
		h, err := wt.Commit(msg, &git.CommitOptions{SignKey: key, Author: &object.Signature{Name: "Ada", Email: "ada@localhost", When: time.Now()}})
		if err != nil {
			t.Fatal(err)
		}
		return h.String()
	}
	s, _ := New(Config{URL: r.dir, Branch: "main", CacheDir: t.TempDir(), VerifyKeyring: keyring})
	good := commit("signed", trusted)
	if snap, err := s.Fetch(ctx); err != nil || snap.Revision != good {
		t.Fatalf("signed commit: %v", err)
	}
	unsigned := commit("unsigned", nil)
	if _, err := s.Fetch(ctx); !errors.Is(err, ErrUnverified) || !strings.Contains(err.Error(), unsigned[:12]+" is not signed") {
		t.Fatalf("unsigned commit: %v", err)
	}
	commit("by a stranger", stranger)
	if _, err := s.Fetch(ctx); !errors.Is(err, ErrUnverified) {
		t.Fatalf("commit signed by an unknown key: %v", err)
	}
	good2 := commit("signed again", trusted)
	if snap, err := s.Fetch(ctx); err != nil || snap.Revision != good2 {
		t.Fatalf("signed again: %v", err)
	}
}
