package nodeagent

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/batonhq/baton/internal/fsutil"
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
			if err := writeTerm(g.file, term); err != nil {
				log.Warn().Err(err).Msg("record leader term")
			}
		}
		log.Info().Uint64("term", term).Msg("new leader term")
	}
	return true, g.term
}

func writeTerm(path string, term uint64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, []byte(strconv.FormatUint(term, 10)+"\n"), 0o600)
}
