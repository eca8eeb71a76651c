package nodeagent

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/rs/zerolog"
)

// termGuard remembers the newest leader term the node has seen, in memory
// and (with a file) across agent restarts, and refuses older terms: a paused
// or cut-off old leader cannot undo what the new one did.
type termGuard struct {
	mu   sync.Mutex
	term uint64
	file string
}

func newTermGuard(file string) (*termGuard, error) {
	g := &termGuard{file: file}
	if file == "" {
		return g, nil
	}
	b, err := os.ReadFile(file)
	switch {
	case os.IsNotExist(err):
	case err != nil:
		return nil, fmt.Errorf("read leader term: %w", err)
	default:
		// A damaged file (a crash while writing) must not keep the agent
		// down: start from 0, and the next leader's resync sets the term.
		g.term, _ = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	}
	return g, nil
}

// admit reports whether a message of term may act, and records term when
// it is the newest seen. Term 0 (no election) is admitted only while no
// term has been seen.
func (g *termGuard) admit(log *zerolog.Logger, term uint64) (bool, uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if term < g.term {
		return false, g.term
	}
	if term > g.term {
		g.term = term
		if g.file != "" {
			if err := writeFileAtomic(g.file, []byte(strconv.FormatUint(term, 10)+"\n")); err != nil {
				log.Warn().Err(err).Msg("record leader term")
			}
		}
		log.Info().Uint64("term", term).Msg("new leader term")
	}
	return true, g.term
}

func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
