package gitsource

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
)

// NotesRef is where Baton writes each revision's outcome: `git log
// --notes=baton` shows them.
const NotesRef = "refs/notes/baton"

// MaxNoteBytes bounds one note.
const MaxNoteBytes = 16 << 10

// Signature names the author of the commits Baton pushes.
type Signature struct{ Name, Email string }

// ParseSignature reads "Name <email>".
func ParseSignature(s string) (Signature, error) {
	name, rest, ok := strings.Cut(s, "<")
	email, _, ok2 := strings.Cut(rest, ">")
	name, email = strings.TrimSpace(name), strings.TrimSpace(email)
	if !ok || !ok2 || name == "" || email == "" {
		return Signature{}, fmt.Errorf("author %q: want \"Name <email>\"", s)
	}
	return Signature{Name: name, Email: email}, nil
}

func (sg Signature) at(t time.Time) object.Signature {
	return object.Signature{Name: sg.Name, Email: sg.Email, When: t}
}

// Revert pushes onto the followed branch a commit that reverts rev (its
// tree becomes that of rev's first parent, as `git revert -m 1` of the
// tip), when rev is still the branch's tip; it returns the new commit, or
// "" when the branch has moved on (the newer commit is what gets applied).
// The push uses the source's credentials, which must allow it.
func (s *Source) Revert(ctx context.Context, rev, reason string, by Signature) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.open(); err != nil {
		return "", err
	}
	t, err := s.resolve(ctx)
	if err != nil {
		return "", err
	}
	if !t.remote.IsBranch() {
		return "", fmt.Errorf("revert: the source follows %s, not a branch", t.label)
	}
	if t.hash.String() != rev {
		return "", nil
	}
	if _, err := s.repo.CommitObject(t.hash); err != nil {
		if err := s.fetch(ctx, t); err != nil { // a new leader's cache may not have it yet
			return "", err
		}
	}
	bad, err := s.repo.CommitObject(t.hash)
	if err != nil {
		return "", fmt.Errorf("revert %s: %w", rev[:12], err)
	}
	if bad.NumParents() == 0 {
		return "", fmt.Errorf("revert %s: it is the first commit", rev[:12])
	}
	parent, err := bad.Parent(0)
	if err != nil {
		return "", fmt.Errorf("revert %s: its parent is not in the cache (a shallow clone?): %w", rev[:12], err)
	}
	subject, _, _ := strings.Cut(strings.TrimSpace(bad.Message), "\n")
	now := time.Now()
	c := &object.Commit{
		Author: by.at(now), Committer: by.at(now), TreeHash: parent.TreeHash, ParentHashes: []plumbing.Hash{bad.Hash},
		Message: fmt.Sprintf("Revert %q\n\nThis reverts commit %s.\n\nBaton reverted it because its rollout failed: %s\n", subject, rev, reason),
	}
	h, err := storeCommit(s.repo, c)
	if err != nil {
		return "", err
	}
	local := plumbing.ReferenceName("refs/baton/revert")
	if err := s.repo.Storer.SetReference(plumbing.NewHashReference(local, h)); err != nil {
		return "", err
	}
	if err := s.push(ctx, s.repo, config.RefSpec(fmt.Sprintf("%s:%s", local, t.remote))); err != nil {
		if t2, rerr := s.resolve(ctx); rerr == nil && t2.hash == h {
			return h.String(), nil // pushed; only the answer was lost
		} else if rerr == nil && t2.hash != t.hash {
			return "", nil // someone pushed first
		}
		if strings.Contains(err.Error(), "checked out") {
			err = fmt.Errorf("%w (a repository with a work tree takes pushes to its checked-out branch with: git config receive.denyCurrentBranch updateInstead)", err)
		}
		return "", fmt.Errorf("push the revert of %s to %s: %w", rev[:12], t.label, err)
	}
	return h.String(), nil
}

// Note sets text as the note of rev in NotesRef and pushes it; a
// concurrent update of the notes is fetched and the note added again on
// top. It works in a repository in memory holding only the notes'
// history, so it never takes the source's lock or touches its cache.
func (s *Source) Note(ctx context.Context, rev, text string, by Signature) error {
	if len(text) > MaxNoteBytes {
		return fmt.Errorf("note of %d bytes: at most %d", len(text), MaxNoteBytes)
	}
	if !plumbing.IsHash(rev) {
		return fmt.Errorf("note: revision %q is not a full commit hash", rev)
	}
	auth, err := s.cfg.Auth.method(s.cfg.URL)
	if err != nil {
		return err
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		repo, err := git.Init(memory.NewStorage(), nil)
		if err != nil {
			return err
		}
		if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{s.cfg.URL}}); err != nil {
			return err
		}
		err = repo.FetchContext(ctx, &git.FetchOptions{RemoteName: "origin", Auth: auth, CABundle: s.cfg.Auth.CABundle,
			RefSpecs: []config.RefSpec{"+" + NotesRef + ":" + NotesRef}, Tags: git.NoTags, Force: true})
		var none git.NoMatchingRefSpecError
		if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) && !errors.As(err, &none) {
			return fmt.Errorf("fetch %s: %w", NotesRef, redactErr(err, s.cfg.Auth, s.cfg.URL))
		}
		if err := addNote(repo, rev, text, by); err != nil {
			return err
		}
		if last = s.push(ctx, repo, NotesRef+":"+NotesRef); last == nil {
			return nil
		}
	}
	return fmt.Errorf("push %s: %w", NotesRef, last)
}

// addNote commits a new notes tree on top of the local NotesRef: every
// note kept, rev's replaced (flat or under a two-digit fan-out directory).
func addNote(repo *git.Repository, rev, text string, by Signature) error {
	var parents []plumbing.Hash
	var entries []object.TreeEntry
	if ref, err := repo.Reference(NotesRef, true); err == nil {
		prev, err := repo.CommitObject(ref.Hash())
		if err != nil {
			return fmt.Errorf("%s: %w", NotesRef, err)
		}
		tree, err := prev.Tree()
		if err != nil {
			return fmt.Errorf("%s: %w", NotesRef, err)
		}
		parents = []plumbing.Hash{prev.Hash}
		for _, e := range tree.Entries {
			if e.Name == rev {
				continue
			}
			if e.Mode == filemode.Dir && e.Name == rev[:2] {
				h, err := withoutEntry(repo, e.Hash, rev[2:])
				if err != nil {
					return err
				}
				if h.IsZero() {
					continue
				}
				e.Hash = h
			}
			entries = append(entries, e)
		}
	}
	blob := repo.Storer.NewEncodedObject()
	blob.SetType(plumbing.BlobObject)
	w, err := blob.Writer()
	if err != nil {
		return err
	}
	_, _ = w.Write([]byte(text))
	_ = w.Close()
	bh, err := repo.Storer.SetEncodedObject(blob)
	if err != nil {
		return err
	}
	entries = append(entries, object.TreeEntry{Name: rev, Mode: filemode.Regular, Hash: bh})
	th, err := storeTree(repo, entries)
	if err != nil {
		return err
	}
	now := time.Now()
	h, err := storeCommit(repo, &object.Commit{Author: by.at(now), Committer: by.at(now), TreeHash: th, ParentHashes: parents,
		Message: "Notes added by 'baton'\n"})
	if err != nil {
		return err
	}
	return repo.Storer.SetReference(plumbing.NewHashReference(NotesRef, h))
}

// withoutEntry returns tree h without name (the zero hash when empty).
func withoutEntry(repo *git.Repository, h plumbing.Hash, name string) (plumbing.Hash, error) {
	tree, err := repo.TreeObject(h)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	var keep []object.TreeEntry
	for _, e := range tree.Entries {
		if e.Name != name {
			keep = append(keep, e)
		}
	}
	if len(keep) == 0 {
		return plumbing.ZeroHash, nil
	}
	return storeTree(repo, keep)
}

func storeTree(repo *git.Repository, entries []object.TreeEntry) (plumbing.Hash, error) {
	// Git's order: by name, a directory's name compared as if it ended in "/".
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(entries, func(i, j int) bool { return key(entries[i]) < key(entries[j]) })
	obj := repo.Storer.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return repo.Storer.SetEncodedObject(obj)
}

func storeCommit(repo *git.Repository, c *object.Commit) (plumbing.Hash, error) {
	obj := repo.Storer.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return repo.Storer.SetEncodedObject(obj)
}

// push pushes spec from repo (the cache, or a repository in memory) to the
// source's remote with its credentials.
func (s *Source) push(ctx context.Context, repo *git.Repository, spec config.RefSpec) error {
	auth, err := s.cfg.Auth.method(s.cfg.URL)
	if err != nil {
		return err
	}
	err = repo.PushContext(ctx, &git.PushOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{spec}, Auth: auth, CABundle: s.cfg.Auth.CABundle})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return redactErr(err, s.cfg.Auth, s.cfg.URL)
	}
	return nil
}
