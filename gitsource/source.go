package gitsource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/rs/zerolog"
)

// Limits on one revision's file tree.
const (
	MaxFileBytes  = 4 << 20
	MaxFiles      = 2000
	MaxTotalBytes = 64 << 20
)

// Config says what to follow.
type Config struct {
	// URL is a local path, file://, or any URL go-git can fetch.
	URL string
	// Branch to follow; empty follows the remote's HEAD.
	Branch string
	// Path is the directory of the repository that holds the manifests ("" is the root).
	Path string
	// CacheDir holds the clone; it persists across restarts.
	CacheDir string
}

// Snapshot is one revision: its commit and the files under Config.Path,
// keyed by slash-separated path relative to it.
type Snapshot struct {
	Revision string
	Message  string
	Author   string
	Time     time.Time
	Files    map[string][]byte
}

// Source follows one repository. It is not safe for concurrent use.
type Source struct {
	cfg  Config
	repo *git.Repository
}

// New returns a Source for cfg.
func New(cfg Config) (*Source, error) {
	if cfg.URL == "" {
		return nil, errors.New("repository URL is empty")
	}
	cfg.Path = strings.Trim(path.Clean("/"+filepath.ToSlash(cfg.Path)), "/")
	return &Source{cfg: cfg}, nil
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

func (s *Source) branch(ctx context.Context) (string, error) {
	if s.cfg.Branch != "" {
		return s.cfg.Branch, nil
	}
	rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{s.cfg.URL}})
	refs, err := rem.ListContext(ctx, &git.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("list refs of %s: %w", Redact(s.cfg.URL), err)
	}
	for _, r := range refs {
		if r.Name() == plumbing.HEAD && r.Type() == plumbing.SymbolicReference && r.Target().IsBranch() {
			return r.Target().Short(), nil
		}
	}
	return "", fmt.Errorf("%s has no HEAD branch; set a branch", Redact(s.cfg.URL))
}

// Fetch brings the cache up to date and returns the snapshot at the head of
// the branch.
func (s *Source) Fetch(ctx context.Context) (Snapshot, error) {
	if err := s.open(); err != nil {
		return Snapshot{}, err
	}
	branch, err := s.branch(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	local := plumbing.NewRemoteReferenceName("origin", branch)
	spec := config.RefSpec(fmt.Sprintf("+%s:%s", plumbing.NewBranchReferenceName(branch), local))
	err = s.repo.FetchContext(ctx, &git.FetchOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{spec}, Tags: git.NoTags, Force: true})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return Snapshot{}, fmt.Errorf("fetch %s from %s: %w", branch, Redact(s.cfg.URL), err)
	}
	ref, err := s.repo.Reference(local, true)
	if err != nil {
		return Snapshot{}, fmt.Errorf("branch %s of %s: %w", branch, Redact(s.cfg.URL), err)
	}
	return s.snapshot(ref.Hash())
}

func (s *Source) snapshot(h plumbing.Hash) (Snapshot, error) {
	commit, err := s.repo.CommitObject(h)
	if err != nil {
		return Snapshot{}, fmt.Errorf("commit %s: %w", h, err)
	}
	snap := Snapshot{
		Revision: h.String(),
		Message:  strings.TrimSpace(commit.Message),
		Author:   commit.Author.Name,
		Time:     commit.Committer.When.UTC(),
		Files:    map[string][]byte{},
	}
	tree, err := commit.Tree()
	if err != nil {
		return Snapshot{}, fmt.Errorf("tree of %s: %w", h, err)
	}
	if s.cfg.Path != "" {
		tree, err = tree.Tree(s.cfg.Path)
		if err != nil {
			return Snapshot{}, fmt.Errorf("path %q in %s: %w", s.cfg.Path, h.String()[:12], err)
		}
	}
	total := 0
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	for {
		name, entry, err := walker.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Snapshot{}, fmt.Errorf("walk %s: %w", h.String()[:12], err)
		}
		switch entry.Mode {
		case filemode.Dir:
			continue
		case filemode.Submodule:
			return Snapshot{}, fmt.Errorf("%s: submodules are not allowed", name)
		case filemode.Symlink:
			return Snapshot{}, fmt.Errorf("%s: symbolic links are not allowed", name)
		}
		if len(snap.Files) >= MaxFiles {
			return Snapshot{}, fmt.Errorf("more than %d files under %q", MaxFiles, s.cfg.Path)
		}
		blob, err := s.repo.BlobObject(entry.Hash)
		if err != nil {
			return Snapshot{}, fmt.Errorf("%s: %w", name, err)
		}
		if blob.Size > MaxFileBytes {
			return Snapshot{}, fmt.Errorf("%s: file is %d bytes, more than the %d allowed", name, blob.Size, MaxFileBytes)
		}
		if total += int(blob.Size); total > MaxTotalBytes {
			return Snapshot{}, fmt.Errorf("files under %q exceed %d bytes", s.cfg.Path, MaxTotalBytes)
		}
		r, err := blob.Reader()
		if err != nil {
			return Snapshot{}, fmt.Errorf("%s: %w", name, err)
		}
		data, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
		r.Close()
		if err != nil {
			return Snapshot{}, fmt.Errorf("%s: %w", name, err)
		}
		snap.Files[name] = data
	}
	return snap, nil
}

// Poll fetches every interval (with up to 10% jitter), calling onChange with
// each new revision and onError with each failure, until ctx ends. Failures
// back off up to a minute; the last good revision is never withdrawn.
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
			failures = 0
			if snap.Revision != last {
				last = snap.Revision
				log.Info().Str("revision", snap.Revision).Str("message", firstLine(snap.Message)).Msg("new revision")
				onChange(snap)
			}
		}
		wait += time.Duration(rand.Int64N(int64(wait)/10 + 1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
