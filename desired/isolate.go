package desired

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"
)

// CUE evaluation cannot be interrupted, and a revision can ask for an
// evaluation that never ends. So a revision with CUE files is first
// evaluated in a child process (this same binary, re-executed), which is
// killed at the time limit: a runaway revision is rejected and costs nothing
// after it. Only when the child finishes in time is the revision evaluated
// in-process. A binary opts in by calling ServeChild first thing in main (and
// in TestMain); without it, evaluation falls back to an in-process goroutine
// that is abandoned at the time limit.

const childEnv = "BATON_DESIRED_EVAL_CHILD"

// maxChildInput caps what a child reads from its parent.
const maxChildInput = 256 << 20

var childReady atomic.Bool

// ServeChild makes this binary able to evaluate revisions in a child
// process. When the process is such a child, it evaluates the revision on its
// standard input and exits; otherwise it returns at once.
func ServeChild() {
	if os.Getenv(childEnv) != "1" {
		childReady.Store(true)
		return
	}
	var files map[string][]byte
	if err := json.NewDecoder(io.LimitReader(os.Stdin, maxChildInput)).Decode(&files); err != nil {
		fmt.Fprintln(os.Stderr, "decode revision:", err)
		os.Exit(2)
	}
	_, _ = load(files, Options{}, nil)
	os.Exit(0)
}

func hasCUE(files map[string][]byte) bool {
	for p := range files {
		if strings.HasSuffix(p, ".cue") {
			return true
		}
	}
	return false
}

// checkInChild evaluates files in a child process within timeout. It
// returns ErrTimeout when the child had to be killed, nil when it finished.
func checkInChild(ctx context.Context, files map[string][]byte, timeout time.Duration) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("evaluate in a child process: %w", err)
	}
	in, err := json.Marshal(files)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%w (more than %s)", ErrTimeout, timeout)
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		// The child crashed (out of memory, say): the revision is refused.
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 500 {
			msg = msg[:500]
		}
		return fmt.Errorf("evaluation failed: %v: %s", err, msg)
	}
	return nil
}
