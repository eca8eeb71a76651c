package nodeagent_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// syncBuffer is a bytes.Buffer safe for the copy goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Commands in a running container on real containerd: the exit code,
// stdout and stderr apart, stdin to its end, a terminal of the asked size
// that follows a resize, a container by name, and a refusal for a
// container the pod does not have.
func TestExec(t *testing.T) {
	rt := newRuntime(t)
	defer rt.StopProbes()
	ctx := context.Background()
	spec := podSpec("hello-exec", desired.Container{Name: "web", Image: testenv.HelloImage},
		desired.Container{Name: "side", Image: testenv.HelloImage, Args: []string{"-listen", ":8081"}})
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, "hello-exec", protocol.StateRunning)
	run := func(container string, e nodeagent.ExecSpec) (int, string, string, error) {
		t.Helper()
		var out, errOut syncBuffer
		e.Stdout, e.Stderr = &out, &errOut
		ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		code, err := rt.Exec(ectx, "hello-exec", container, e)
		return code, out.String(), errOut.String(), err
	}

	code, out, _, err := run("", nodeagent.ExecSpec{Command: []string{"/hello", "-exit-after", "1ms", "-exit-code", "3", "-message", "in web"}})
	if err != nil || code != 3 || out != "in web: done, exit 3\n" {
		t.Fatalf("exit code: %d %q %v", code, out, err)
	}
	code, out, errOut, err := run("side", nodeagent.ExecSpec{Command: []string{"/hello", "-cat"}, Stdin: strings.NewReader("line one\nline two\n")})
	if err != nil || code != 0 || out != "line one\nline two\n" || errOut != "copied 18 bytes\n" {
		t.Fatalf("stdin: %d %q %q %v", code, out, errOut, err)
	}

	// A terminal of 30 × 100, then 40 × 120.
	resize := make(chan [2]uint16, 1)
	var tty syncBuffer
	done := make(chan error, 1)
	go func() {
		_, err := rt.Exec(ctx, "hello-exec", "web", nodeagent.ExecSpec{Command: []string{"/hello", "-tty-size"}, TTY: true, Rows: 30, Cols: 100,
			Stdout: &tty, Resize: resize})
		done <- err
	}()
	testenv.WaitFor(t, 20*time.Second, "the first size", func() (bool, string) { return strings.Contains(tty.String(), "tty 30x100"), tty.String() })
	resize <- [2]uint16{40, 120}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tty.String(), "tty 40x120") {
		t.Fatalf("after a resize: %q", tty.String())
	}

	_, _, _, err = run("nope", nodeagent.ExecSpec{Command: []string{"/hello", "-h"}})
	if !errors.Is(err, nodeagent.ErrNoSuchContainer) || !strings.Contains(err.Error(), "it has web, side") {
		t.Fatalf("a container the pod has not: %v", err)
	}
	if _, _, _, err := run("", nodeagent.ExecSpec{Command: []string{"/no-such-binary"}}); err == nil {
		t.Fatal("a command that does not exist: want an error")
	}
}
