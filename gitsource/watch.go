package gitsource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"
)

// ErrNotLocal is Watch's answer for a repository that is not on this
// machine's filesystem: it is polled (and a push webhook can wake it) only.
var ErrNotLocal = errors.New("the repository is not on the local filesystem")

// maxWatchedDirs bounds the inotify watches of one repository (refs/ and
// its subdirectories): past it, new ref directories are left to polling.
const maxWatchedDirs = 512

// LocalGitDir returns the git directory of a repository URL that names a
// path on this machine (a plain path or file://): the .git directory of a
// work tree (or the one its .git file points to), or a bare repository
// itself. Other URLs give ErrNotLocal.
func LocalGitDir(rawURL string) (string, error) {
	p := rawURL
	switch {
	case strings.HasPrefix(rawURL, "file://"):
		u, err := url.Parse(rawURL)
		if err != nil {
			return "", fmt.Errorf("repository URL: %w", err)
		}
		p = u.Path
	case strings.Contains(rawURL, "://") || isSSH(rawURL):
		return "", ErrNotLocal
	}
	p, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	dotgit := filepath.Join(p, ".git")
	if fi, err := os.Stat(dotgit); err == nil {
		if fi.IsDir() {
			return dotgit, nil
		}
		// A linked work tree or a submodule: ".git" says "gitdir: <dir>".
		b, err := os.ReadFile(dotgit)
		if err != nil {
			return "", err
		}
		dir, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir: ")
		if !ok {
			return "", fmt.Errorf("%s: not a gitdir file", dotgit)
		}
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(p, dir)
		}
		return dir, nil
	}
	if fi, err := os.Stat(filepath.Join(p, "refs")); err == nil && fi.IsDir() {
		if _, err := os.Stat(filepath.Join(p, "HEAD")); err == nil {
			return p, nil // bare
		}
	}
	return "", fmt.Errorf("%s: not a git repository", p)
}

// Watch wakes Poll (as Trigger does) whenever a ref of a repository on the
// local filesystem changes: HEAD, packed-refs, or any file under refs/ (a
// commit, a push into it, a new tag or branch). A commit then becomes a
// revision in milliseconds instead of at the next poll; polling goes on, so
// an event missed (or a watch refused by the kernel) costs at most one poll
// interval. It returns ErrNotLocal at once for a remote, an error if the
// watch cannot be set up, and nil when ctx ends.
func (s *Source) Watch(ctx context.Context) error { return s.watch(ctx, func() {}) }

// watch is Watch, calling ready once the watches are in place.
func (s *Source) watch(ctx context.Context, ready func()) error {
	gitDir, err := LocalGitDir(s.cfg.URL)
	if err != nil {
		return err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", gitDir, err)
	}
	defer w.Close()
	if err := w.Add(gitDir); err != nil {
		return fmt.Errorf("watch %s: %w", gitDir, err)
	}
	refs := filepath.Join(gitDir, "refs")
	watched := 0
	addTree := func(root string) {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if watched >= maxWatchedDirs {
				return filepath.SkipAll
			}
			if w.Add(p) == nil {
				watched++
			}
			return nil
		})
	}
	addTree(refs)
	log := zerolog.Ctx(ctx)
	log.Debug().Str("gitDir", gitDir).Int("dirs", watched+1).Msg("watching the repository's refs")
	ready()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// An overflow loses events: fetch, as one of them may have been a ref.
			log.Warn().Err(err).Str("gitDir", gitDir).Msg("watching the repository's refs")
			s.Trigger()
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if !refEvent(gitDir, refs, ev) {
				continue
			}
			if ev.Has(fsnotify.Create) && strings.HasPrefix(ev.Name, refs+string(filepath.Separator)) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					addTree(ev.Name) // a new ref directory (feature/x): watch it and what it holds
				}
			}
			s.Trigger()
		}
	}
}

// refEvent reports whether ev may have moved a ref: a change of HEAD or
// packed-refs in the git directory, or of anything under refs/, except git's
// lock files (the rename of a lock file onto the ref is the change).
func refEvent(gitDir, refs string, ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod || strings.HasSuffix(ev.Name, ".lock") {
		return false
	}
	if strings.HasPrefix(ev.Name, refs+string(filepath.Separator)) {
		return true
	}
	if filepath.Dir(ev.Name) != gitDir {
		return false
	}
	switch filepath.Base(ev.Name) {
	case "HEAD", "packed-refs", "refs":
		return true
	}
	return false
}
