package gitsource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/rs/zerolog"
)

// Config says what to follow.
type Config struct {
	// URL is a local path, file://, http(s):// or ssh:// (or user@host:path).
	URL string
	// At most one of Branch, Tag, SemVer and Commit; none follows the
	// remote's HEAD branch.
	Branch string
	Tag    string
	// SemVer is a constraint such as ">=1.2.0 <2": the highest matching tag
	// (with or without a leading v) is followed.
	SemVer string
	Commit string
	// Path is the directory of the repository that holds the manifests ("" is the root).
	Path string
	// OnFetch, when set, is told how long each fetch of new objects took
	// and whether it failed (metrics); ref listings that find nothing new
	// fetch nothing and are not reported.
	OnFetch func(d time.Duration, err error)
	// CacheDir holds the clone; it persists across restarts.
	CacheDir string
	// Shallow fetches only the tip (depth 1), for long histories.
	Shallow bool
	Auth    Auth
	// VerifyKeyring, when set, is an armored OpenPGP key ring: only commits
	// whose signature verifies against it are handed out.
	VerifyKeyring string
}

// Snapshot is one revision: its commit and the files under Config.Path,
// keyed by slash-separated path relative to it.
type Snapshot struct {
	Revision string
	// Ref is what was followed, e.g. "branch main" or "tag v1.4.0".
	Ref     string
	Message string
	Author  string
	Time    time.Time
	Files   map[string][]byte
}

// Source follows one repository. It is safe for concurrent use: Fetch, At,
// AtOrFetch and Revert take its lock (a revert holds it while it pushes,
// 30 s at most); Note works in a repository of its own, in memory; Trigger
// never blocks.
type Source struct {
	cfg        Config
	constraint *semver.Constraints
	wake       chan struct{}

	mu   sync.Mutex // Fetch and At
	repo *git.Repository
	last *Snapshot
}

// New returns a Source for cfg.
func New(cfg Config) (*Source, error) {
	if cfg.URL == "" {
		return nil, errors.New("repository URL is empty")
	}
	n := 0
	for _, s := range []string{cfg.Branch, cfg.Tag, cfg.SemVer, cfg.Commit} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return nil, errors.New("follow one of a branch, a tag, a semver range or a commit")
	}
	s := &Source{cfg: cfg, wake: make(chan struct{}, 1)}
	if cfg.SemVer != "" {
		c, err := semver.NewConstraint(cfg.SemVer)
		if err != nil {
			return nil, fmt.Errorf("semver range %q: %w", cfg.SemVer, err)
		}
		s.constraint = c
	}
	if cfg.Commit != "" && !plumbing.IsHash(cfg.Commit) {
		return nil, fmt.Errorf("commit %q: want a full 40-hex-digit hash", cfg.Commit)
	}
	s.cfg.Path = strings.Trim(path.Clean("/"+filepath.ToSlash(cfg.Path)), "/")
	return s, nil
}

// Redact removes credentials from a URL, for logs and errors.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = url.User("redacted")
	return u.String()
}

func (s *Source) open() error {
	if s.repo != nil {
		return nil
	}
	sum := sha256.Sum256([]byte(s.cfg.URL))
	dir := filepath.Join(s.cfg.CacheDir, hex.EncodeToString(sum[:8]))
	repo, err := git.PlainOpen(dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create cache dir: %w", err)
		}
		repo, err = git.PlainInit(dir, true)
		if err == nil {
			_, err = repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{s.cfg.URL}})
		}
	}
	if err != nil {
		return fmt.Errorf("open cache of %s: %w", Redact(s.cfg.URL), err)
	}
	s.repo = repo
	return nil
}

// target is what to fetch: the remote ref, where to keep it, its hash.
type target struct {
	remote, local plumbing.ReferenceName
	hash          plumbing.Hash
	label         string
}

// resolve lists the remote's refs (one round trip, no objects) and picks the
// one to follow.
func (s *Source) resolve(ctx context.Context) (target, error) {
	if s.cfg.Commit != "" {
		return target{hash: plumbing.NewHash(s.cfg.Commit), label: "commit " + s.cfg.Commit[:12]}, nil
	}
	auth, err := s.cfg.Auth.method(s.cfg.URL)
	if err != nil {
		return target{}, err
	}
	rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{s.cfg.URL}})
	refs, err := rem.ListContext(ctx, &git.ListOptions{Auth: auth, CABundle: s.cfg.Auth.CABundle, PeelingOption: git.AppendPeeled})
	if err != nil {
		return target{}, fmt.Errorf("list refs of %s: %w", Redact(s.cfg.URL), redactErr(err, s.cfg.Auth, s.cfg.URL))
	}
	byName := map[plumbing.ReferenceName]*plumbing.Reference{}
	for _, r := range refs {
		byName[r.Name()] = r
	}
	branch := func(b string) (target, error) {
		name := plumbing.NewBranchReferenceName(b)
		r, ok := byName[name]
		if !ok {
			return target{}, fmt.Errorf("branch %q not found in %s (deleted?)", b, Redact(s.cfg.URL))
		}
		return target{remote: name, local: plumbing.NewRemoteReferenceName("origin", b), hash: r.Hash(), label: "branch " + b}, nil
	}
	tag := func(t string) (target, error) {
		name := plumbing.NewTagReferenceName(t)
		r, ok := byName[name]
		if !ok {
			return target{}, fmt.Errorf("tag %q not found in %s", t, Redact(s.cfg.URL))
		}
		h := r.Hash()
		if peeled, ok := byName[plumbing.ReferenceName(string(name)+"^{}")]; ok {
			h = peeled.Hash() // an annotated tag: the commit it points to
		}
		return target{remote: name, local: name, hash: h, label: "tag " + t}, nil
	}
	switch {
	case s.cfg.Branch != "":
		return branch(s.cfg.Branch)
	case s.cfg.Tag != "":
		return tag(s.cfg.Tag)
	case s.constraint != nil:
		type cand struct {
			v   *semver.Version
			tag string
		}
		var cands []cand
		for name := range byName {
			if !name.IsTag() || strings.HasSuffix(string(name), "^{}") {
				continue
			}
			if v, err := semver.NewVersion(name.Short()); err == nil && s.constraint.Check(v) {
				cands = append(cands, cand{v, name.Short()})
			}
		}
		if len(cands) == 0 {
			return target{}, fmt.Errorf("no tag of %s matches %q", Redact(s.cfg.URL), s.cfg.SemVer)
		}
		sort.Slice(cands, func(i, j int) bool { return cands[i].v.GreaterThan(cands[j].v) })
		return tag(cands[0].tag)
	}
	head, ok := byName[plumbing.HEAD]
	if !ok || head.Type() != plumbing.SymbolicReference || !head.Target().IsBranch() {
		return target{}, fmt.Errorf("%s has no HEAD branch; set a branch", Redact(s.cfg.URL))
	}
	return branch(head.Target().Short())
}

// Fetch returns the snapshot of the followed revision. When the remote still
// points where it did, it costs one ref listing and no fetch.
func (s *Source) Fetch(ctx context.Context) (Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.open(); err != nil {
		return Snapshot{}, err
	}
	t, err := s.resolve(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	if s.last != nil && s.last.Revision == t.hash.String() {
		return *s.last, nil
	}
	if _, err := s.repo.CommitObject(t.hash); err != nil {
		if err := s.fetch(ctx, t); err != nil {
			return Snapshot{}, err
		}
	}
	if s.cfg.VerifyKeyring != "" {
		if err := s.verify(t.hash); err != nil {
			return Snapshot{}, err
		}
	}
	snap, err := s.snapshot(t.hash)
	if err != nil {
		return Snapshot{}, err
	}
	snap.Ref = t.label
	s.last = &snap
	return snap, nil
}

// At returns the snapshot of a revision already in the local cache (a
// commit fetched before), without the network: for rolling back to a
// revision that was healthy, and for pinning one while the Git host is down.
func (s *Source) At(rev string) (Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.open(); err != nil {
		return Snapshot{}, err
	}
	if !plumbing.IsHash(rev) {
		return Snapshot{}, fmt.Errorf("revision %q: want a full commit hash", rev)
	}
	h := plumbing.NewHash(rev)
	if s.cfg.VerifyKeyring != "" {
		if err := s.verify(h); err != nil {
			return Snapshot{}, err
		}
	}
	return s.snapshot(h)
}

// AtOrFetch is At, fetching every branch first when the commit is not in
// the cache yet (a new leader reloading the revision in force, or a healthy
// revision to roll back to, that its own polls never fetched).
func (s *Source) AtOrFetch(ctx context.Context, rev string) (Snapshot, error) {
	snap, err := s.At(rev)
	if err == nil || !errors.Is(err, plumbing.ErrObjectNotFound) {
		return snap, err
	}
	s.mu.Lock()
	ferr := s.fetch(ctx, target{hash: plumbing.NewHash(rev), label: "commit " + rev[:12]})
	s.mu.Unlock()
	if ferr != nil {
		return Snapshot{}, fmt.Errorf("%w; fetching it: %v", err, ferr)
	}
	return s.At(rev)
}

func (s *Source) fetch(ctx context.Context, t target) error {
	auth, err := s.cfg.Auth.method(s.cfg.URL)
	if err != nil {
		return err
	}
	spec := config.RefSpec("+refs/heads/*:refs/remotes/origin/*") // a fixed commit: all branches
	if t.remote != "" {
		spec = config.RefSpec(fmt.Sprintf("+%s:%s", t.remote, t.local))
	}
	opts := &git.FetchOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{spec}, Tags: git.NoTags, Force: true,
		Auth: auth, CABundle: s.cfg.Auth.CABundle}
	if s.cfg.Shallow {
		opts.Depth = 1
	}
	began := time.Now()
	err = s.repo.FetchContext(ctx, opts)
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		err = nil
	}
	if s.cfg.OnFetch != nil {
		s.cfg.OnFetch(time.Since(began), err)
	}
	if err != nil {
		return fmt.Errorf("fetch %s from %s: %w", t.label, Redact(s.cfg.URL), redactErr(err, s.cfg.Auth, s.cfg.URL))
	}
	if _, err := s.repo.CommitObject(t.hash); err != nil {
		return fmt.Errorf("%s: commit %s not found after fetch: %w", t.label, t.hash, err)
	}
	return nil
}

// Trigger makes Poll fetch now instead of at its next tick (a webhook calls
// it). It never blocks.
func (s *Source) Trigger() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Poll fetches every interval (with up to 10% jitter) and on Trigger,
// calling onChange with each new revision and onError with each failure (and
// with nil when fetching works again), until ctx ends. Failures back off up
// to a minute; the last good revision is never withdrawn.
func (s *Source) Poll(ctx context.Context, interval time.Duration, onChange func(Snapshot), onError func(error)) {
	log := zerolog.Ctx(ctx)
	last := ""
	failures := 0
	for {
		snap, err := s.Fetch(ctx)
		wait := interval
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			wait = min(interval<<min(failures, 6), time.Minute)
			log.Warn().Err(err).Int("failures", failures).Dur("retryIn", wait).Msg("fetch config repository")
			onError(err)
		} else {
			if failures > 0 {
				onError(nil)
			}
			failures = 0
			if snap.Revision != last {
				last = snap.Revision
				log.Info().Str("revision", snap.Revision).Str("ref", snap.Ref).Str("message", firstLine(snap.Message)).Msg("new revision")
				onChange(snap)
			}
		}
		wait += time.Duration(rand.Int64N(int64(wait)/10 + 1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-s.wake:
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// ReadLocal reads the files under path of revision rev (a branch, tag,
// commit or any revision go-git resolves, e.g. HEAD~1) of the repository
// at dir, with the same limits and symlink rules as a followed source: for
// `baton diff` and `baton plan` on a checkout.
func ReadLocal(dir, sub, rev string) (Snapshot, error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return Snapshot{}, fmt.Errorf("open repository %s: %w", dir, err)
	}
	h, err := repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return Snapshot{}, fmt.Errorf("revision %q in %s: %w", rev, dir, err)
	}
	s := &Source{repo: repo}
	s.cfg.Path = strings.Trim(path.Clean("/"+filepath.ToSlash(sub)), "/")
	return s.snapshot(*h)
}
