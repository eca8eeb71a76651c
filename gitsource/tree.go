package gitsource

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Limits on one revision's file tree.
const (
	MaxFileBytes  = 4 << 20
	MaxFiles      = 10000
	MaxTotalBytes = 64 << 20
	maxLinkHops   = 8
)

// snapshot reads the files under the configured path of commit h. The tree
// is confined to the repository: a symbolic link is followed only to a file
// inside it; links out of it (absolute, or through ..), links to
// directories and submodules are refused.
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
	root, err := commit.Tree()
	if err != nil {
		return Snapshot{}, fmt.Errorf("tree of %s: %w", h, err)
	}
	tree := root
	if s.cfg.Path != "" {
		tree, err = root.Tree(s.cfg.Path)
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
		full := path.Join(s.cfg.Path, name)
		switch entry.Mode {
		case filemode.Dir:
			continue
		case filemode.Submodule:
			return Snapshot{}, fmt.Errorf("%s: submodules are not allowed", full)
		}
		if len(snap.Files) >= MaxFiles {
			return Snapshot{}, fmt.Errorf("more than %d files under %q", MaxFiles, s.cfg.Path)
		}
		blob := entry.Hash
		if entry.Mode == filemode.Symlink {
			if blob, err = s.follow(root, full, entry.Hash); err != nil {
				return Snapshot{}, err
			}
		}
		data, err := s.read(full, blob)
		if err != nil {
			return Snapshot{}, err
		}
		if total += len(data); total > MaxTotalBytes {
			return Snapshot{}, fmt.Errorf("files under %q exceed %d bytes", s.cfg.Path, MaxTotalBytes)
		}
		snap.Files[name] = data
	}
	return snap, nil
}

func (s *Source) read(name string, h plumbing.Hash) ([]byte, error) {
	blob, err := s.repo.BlobObject(h)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if blob.Size > MaxFileBytes {
		return nil, fmt.Errorf("%s: file is %d bytes, more than the %d allowed", name, blob.Size, MaxFileBytes)
	}
	r, err := blob.Reader()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return data, nil
}

// follow resolves the symbolic link at name (whose target is in blob link)
// to the blob of a regular file inside root.
func (s *Source) follow(root *object.Tree, name string, link plumbing.Hash) (plumbing.Hash, error) {
	for range maxLinkHops {
		target, err := s.read(name, link)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		t := string(target)
		if path.IsAbs(t) {
			return plumbing.ZeroHash, fmt.Errorf("%s: symbolic link to %s points outside the repository", name, t)
		}
		resolved := path.Clean(path.Join(path.Dir(name), t))
		if resolved == ".." || strings.HasPrefix(resolved, "../") {
			return plumbing.ZeroHash, fmt.Errorf("%s: symbolic link to %s points outside the repository", name, t)
		}
		entry, err := root.FindEntry(resolved)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("%s: symbolic link to %s: target not found", name, t)
		}
		switch entry.Mode {
		case filemode.Symlink:
			name, link = resolved, entry.Hash
			continue
		case filemode.Regular, filemode.Executable, filemode.Deprecated:
			return entry.Hash, nil
		default:
			return plumbing.ZeroHash, fmt.Errorf("%s: symbolic link to %s: only links to files are allowed", name, t)
		}
	}
	return plumbing.ZeroHash, fmt.Errorf("%s: more than %d symbolic links in a row", name, maxLinkHops)
}
