package gitsource

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testenv"
)

func TestLocalGitDir(t *testing.T) {
	r := newRepo(t)
	r.commit("first", map[string][]byte{"a.yaml": []byte("a: 1")})
	bare := filepath.Join(t.TempDir(), "bare.git")
	if out, err := exec.Command("git", "clone", "-q", "--bare", r.dir, bare).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	linked := filepath.Join(t.TempDir(), "linked")
	r.git("worktree", "add", "-q", "-b", "other", linked)
	notRepo := t.TempDir()
	for _, tc := range []struct {
		url, want string
		err       error
	}{
		{r.dir, filepath.Join(r.dir, ".git"), nil},
		{"file://" + r.dir, filepath.Join(r.dir, ".git"), nil},
		{bare, bare, nil},
		{"file://" + bare, bare, nil},
		{linked, filepath.Join(r.dir, ".git", "worktrees", "linked"), nil},
		{"https://git.example/config.git", "", ErrNotLocal},
		{"ssh://git@git.example/config.git", "", ErrNotLocal},
		{"git@git.example:config.git", "", ErrNotLocal},
		{notRepo, "", nil},
	} {
		got, err := LocalGitDir(tc.url)
		switch {
		case tc.err != nil:
			if !errors.Is(err, tc.err) {
				t.Errorf("LocalGitDir(%q) = %q, %v; want %v", tc.url, got, err, tc.err)
			}
		case tc.want == "":
			if err == nil || errors.Is(err, ErrNotLocal) {
				t.Errorf("LocalGitDir(%q) = %q, %v; want not a git repository", tc.url, got, err)
			}
		case err != nil || got != tc.want:
			t.Errorf("LocalGitDir(%q) = %q, %v; want %q", tc.url, got, err, tc.want)
		}
	}
}

// TestWatchWakesPoll: with a poll interval of an hour, only the watch can
// bring a new commit in: a go-git commit in a work tree, a git commit on a
// branch whose ref directory did not exist when the watch began (its refs
// packed away first), and a push into a bare repository.
func TestWatchWakesPoll(t *testing.T) {
	type setup struct {
		url, branch string
		change      func() string // makes a commit and returns it
	}
	for _, tc := range []struct {
		name string
		make func(t *testing.T) setup
	}{
		{"go-git commit in a work tree", func(t *testing.T) setup {
			r := newRepo(t)
			r.commit("first", map[string][]byte{"a.yaml": []byte("a: 1")})
			return setup{r.dir, "main", func() string { return r.commit("second", map[string][]byte{"a.yaml": []byte("a: 2")}) }}
		}},
		{"git commit on a new ref directory", func(t *testing.T) setup {
			r := newRepo(t)
			r.commit("first", map[string][]byte{"a.yaml": []byte("a: 1")})
			r.git("checkout", "-q", "-b", "release/next")
			r.git("pack-refs", "--all", "--prune")
			if _, err := os.Stat(filepath.Join(r.dir, ".git", "refs", "heads", "release")); err == nil {
				t.Fatal("refs/heads/release is still there after pack-refs")
			}
			return setup{"file://" + r.dir, "release/next", func() string {
				if err := os.WriteFile(filepath.Join(r.dir, "a.yaml"), []byte("a: 3"), 0o644); err != nil {
					t.Fatal(err)
				}
				r.git("commit", "-qam", "third")
				return r.git("rev-parse", "HEAD")
			}}
		}},
		{"push into a bare repository", func(t *testing.T) setup {
			r := newRepo(t)
			r.commit("first", map[string][]byte{"a.yaml": []byte("a: 1")})
			bare := filepath.Join(t.TempDir(), "config.git")
			if out, err := exec.Command("git", "clone", "-q", "--bare", r.dir, bare).CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			return setup{bare, "main", func() string {
				rev := r.commit("pushed", map[string][]byte{"a.yaml": []byte("a: 4")})
				r.git("push", "-q", bare, "main")
				return rev
			}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			su := tc.make(t)
			s, err := New(Config{URL: su.url, Branch: su.branch, CacheDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			var mu sync.Mutex
			var revs []string
			wg.Add(2)
			go func() {
				defer wg.Done()
				s.Poll(ctx, time.Hour, func(snap Snapshot) { mu.Lock(); revs = append(revs, snap.Revision); mu.Unlock() }, func(error) {})
			}()
			watchErr := make(chan error, 1)
			watching := make(chan struct{})
			go func() { defer wg.Done(); watchErr <- s.watch(ctx, func() { close(watching) }) }()
			defer func() { cancel(); wg.Wait() }()
			last := func() (bool, string) {
				mu.Lock()
				defer mu.Unlock()
				return len(revs) > 0, ""
			}
			testenv.WaitFor(t, 5*time.Second, "the first revision", last)
			select {
			case <-watching:
			case err := <-watchErr:
				t.Fatalf("Watch: %v", err)
			}
			want := su.change()
			testenv.WaitFor(t, 5*time.Second, "the new commit, through the watch", func() (bool, string) {
				mu.Lock()
				defer mu.Unlock()
				return revs[len(revs)-1] == want, revs[len(revs)-1]
			})
			cancel()
			wg.Wait()
			if err := <-watchErr; err != nil {
				t.Fatalf("Watch: %v", err)
			}
		})
	}
}

func TestWatchRemoteIsNotLocal(t *testing.T) {
	s, _ := New(Config{URL: "https://git.example/config.git", CacheDir: t.TempDir()})
	if err := s.Watch(t.Context()); !errors.Is(err, ErrNotLocal) {
		t.Fatalf("Watch of a remote: %v", err)
	}
}
