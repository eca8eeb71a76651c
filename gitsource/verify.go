package gitsource

import (
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
)

// ErrUnverified is returned for a commit whose signature is missing or does
// not verify: it is not handed out.
var ErrUnverified = errors.New("commit signature not verified")

func (s *Source) verify(h plumbing.Hash) error {
	c, err := s.repo.CommitObject(h)
	if err != nil {
		return err
	}
	if c.PGPSignature == "" {
		return fmt.Errorf("%w: %s is not signed", ErrUnverified, h.String()[:12])
	}
	if _, err := c.Verify(s.cfg.VerifyKeyring); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnverified, h.String()[:12], err)
	}
	return nil
}
