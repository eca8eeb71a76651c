package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/batonhq/baton/examples"
)

// seedRepo makes dir a git repository holding examples/hello, unless it
// already is a repository; it reports whether it created it.
func seedRepo(dir string) (bool, error) {
	if _, err := git.PlainOpen(dir); err == nil {
		return false, nil
	} else if !errors.Is(err, git.ErrRepositoryNotExists) {
		return false, fmt.Errorf("open %s: %w", dir, err)
	}
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: plumbing.Main}})
	if err != nil {
		return false, fmt.Errorf("init %s: %w", dir, err)
	}
	cfg, err := repo.Config()
	if err != nil {
		return false, err
	}
	cfg.User.Name, cfg.User.Email = "Baton", "baton@localhost"
	// --auto-revert pushes to the checked-out branch: update the work tree
	// with it, as a Git host's bare repository would simply take the push.
	cfg.Raw.Section("receive").SetOption("denyCurrentBranch", "updateInstead")
	if err := repo.SetConfig(cfg); err != nil {
		return false, err
	}
	err = fs.WalkDir(examples.Hello, "hello", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := examples.Hello.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("hello", p)
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		return false, fmt.Errorf("copy example: %w", err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return false, err
	}
	if err := wt.AddGlob("."); err != nil {
		return false, err
	}
	sig := &object.Signature{Name: "Baton", Email: "baton@localhost", When: time.Now()}
	if _, err := wt.Commit("Seed from examples/hello", &git.CommitOptions{Author: sig}); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return true, nil
}
