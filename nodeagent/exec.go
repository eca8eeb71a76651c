package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	client "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/nats-io/nuid"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ExecSpec is a command to run in a running container.
type ExecSpec struct {
	Command []string
	// TTY gives the command a terminal of Rows × Cols (stdout and stderr
	// are then one stream, written to Stdout).
	TTY        bool
	Rows, Cols uint16
	// Stdin is the command's input (nil: none); Resize, new terminal sizes.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Resize         <-chan [2]uint16 // rows, cols
}

// Execer is a Runtime that runs commands in its containers (baton exec).
type Execer interface {
	// Exec runs spec in the container of replica (container "": the pod's
	// first app container) until it exits or ctx ends (it is killed), and
	// returns its exit code.
	Exec(ctx context.Context, replica, container string, spec ExecSpec) (int, error)
}

// ErrNoSuchContainer is an exec in a container that is not running here.
var ErrNoSuchContainer = errors.New("no such container")

// Exec implements Execer: the command runs as a process of the container's
// task, with the container's user, environment, working directory and
// capabilities.
func (r *Containerd) Exec(ctx context.Context, replica, container string, spec ExecSpec) (int, error) {
	ctx = r.ctx(ctx)
	cs, err := r.containersOf(ctx, replica)
	if err != nil {
		return -1, err
	}
	var names []string
	var found *labeled
	sort.Slice(cs, func(i, j int) bool { return cs[i].created.Before(cs[j].created) })
	for i, c := range cs {
		if _, init := c.labels[LabelInit]; init {
			continue
		}
		name := c.labels[LabelContainer]
		names = append(names, name)
		if found == nil && (container == "" || name == container) {
			found = &cs[i]
		}
	}
	if found == nil {
		if len(names) == 0 {
			return -1, fmt.Errorf("%w: replica %s has no container on this node", ErrNoSuchContainer, replica)
		}
		return -1, fmt.Errorf("%w: replica %s has no container %q (it has %s)", ErrNoSuchContainer, replica, container, strings.Join(names, ", "))
	}
	task, err := found.c.Task(ctx, nil)
	if err != nil {
		return -1, fmt.Errorf("%w: container %s of %s is not running", ErrNoSuchContainer, found.labels[LabelContainer], replica)
	}
	if st, err := task.Status(ctx); err != nil || st.Status != client.Running {
		return -1, fmt.Errorf("%w: container %s of %s is not running", ErrNoSuchContainer, found.labels[LabelContainer], replica)
	}
	cspec, err := found.c.Spec(ctx)
	if err != nil {
		return -1, fmt.Errorf("container %s spec: %w", found.c.ID(), err)
	}
	pspec := *cspec.Process
	pspec.Args = spec.Command
	pspec.Terminal = spec.TTY
	pspec.ConsoleSize = nil
	if spec.TTY && spec.Rows > 0 && spec.Cols > 0 {
		// The terminal's size from its start: a resize after it would
		// reach the command as a change (SIGWINCH).
		pspec.ConsoleSize = &specs.Box{Height: uint(spec.Rows), Width: uint(spec.Cols)}
	}
	// Stdin's end closes the process's input, once the process exists.
	var stdin io.Reader
	eof := make(chan struct{})
	if spec.Stdin != nil {
		stdin = &eofReader{r: spec.Stdin, eof: func() { close(eof) }}
	}
	opts := []cio.Opt{cio.WithStreams(stdin, spec.Stdout, spec.Stderr)}
	if spec.TTY {
		opts = append(opts, cio.WithTerminal)
	}
	id := "exec-" + strings.ToLower(nuid.Next())[:12]
	p, err := task.Exec(ctx, id, &pspec, cio.NewCreator(opts...))
	if err != nil {
		return -1, fmt.Errorf("exec in %s: %w", found.c.ID(), err)
	}
	cleanup, cancel := cleanupContext(ctx)
	defer cancel()
	defer func() { _, _ = p.Delete(cleanup, client.WithProcessKill) }()
	status, err := p.Wait(ctx)
	if err != nil {
		return -1, err
	}
	if err := p.Start(ctx); err != nil {
		return -1, fmt.Errorf("start %q: %w", spec.Command[0], err)
	}
	for {
		select {
		case <-eof:
			eof = nil // closed once: a nil channel is never ready again
			_ = p.CloseIO(ctx, client.WithStdinCloser)
		case size := <-spec.Resize:
			if spec.TTY {
				_ = p.Resize(ctx, uint32(size[1]), uint32(size[0]))
			}
		case <-ctx.Done():
			_ = p.Kill(cleanup, syscall.SIGKILL)
			<-status
			return -1, ctx.Err()
		case st := <-status:
			// The output written before it exited; a child it left in the
			// background may hold its output open: not waited for long.
			flushed := make(chan struct{})
			go func() { p.IO().Wait(); close(flushed) }()
			select {
			case <-flushed:
			case <-time.After(2 * time.Second):
				p.IO().Cancel()
			}
			code, _, err := st.Result()
			return int(code), err
		}
	}
}

// eofReader calls eof once when r ends.
type eofReader struct {
	r    io.Reader
	once sync.Once
	eof  func()
}

func (e *eofReader) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	if err != nil {
		e.once.Do(e.eof)
	}
	return n, err
}

var _ Execer = (*Containerd)(nil)
