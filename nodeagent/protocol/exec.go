package protocol

import (
	"fmt"
	"strings"
	"time"
)

// ExecSubject is where node takes requests to run a command in one of its
// containers (baton exec): admins only, the bus's permissions say.
func ExecSubject(node string) string { return subjectPrefix + node + ".exec" }

// Limits of an exec request and of its messages' data.
const (
	MaxExecArgs      = 256
	MaxExecArgsBytes = 64 << 10
	MaxExecChunk     = 32 << 10
)

// ExecKeepAlive is how often an exec client sends an input (an empty one
// when it has none): a node ends a command whose client was not heard
// from in 3 of them.
const ExecKeepAlive = 3 * time.Second

// ExecRequest asks a node to run Command in a container of Replica
// (Container, or the pod's first app container), published with Inbox as
// its reply subject: the node sends ExecOutputs there, and reads the
// client's ExecInputs on Inbox+".stdin".
type ExecRequest struct {
	Version   int      `json:"version"`
	Replica   string   `json:"replica"`
	Container string   `json:"container,omitempty"`
	Command   []string `json:"command"`
	// Stdin: the client sends input; TTY: the command gets a terminal of
	// Rows × Cols (its output is then one stream).
	Stdin bool   `json:"stdin,omitempty"`
	TTY   bool   `json:"tty,omitempty"`
	Rows  uint16 `json:"rows,omitempty"`
	Cols  uint16 `json:"cols,omitempty"`
	Inbox string `json:"inbox"`
}

// Validate checks a request's bounds.
func (r ExecRequest) Validate() error {
	size := 0
	for _, a := range r.Command {
		size += len(a)
	}
	switch {
	case r.Replica == "" || len(r.Replica) > 253:
		return fmt.Errorf("exec: want a replica ID")
	case len(r.Command) == 0:
		return fmt.Errorf("exec: no command")
	case len(r.Command) > MaxExecArgs || size > MaxExecArgsBytes:
		return fmt.Errorf("exec: a command of at most %d arguments and %d bytes", MaxExecArgs, MaxExecArgsBytes)
	case len(r.Container) > 253 || strings.ContainsAny(r.Container, "/\x00"):
		return fmt.Errorf("exec: container %q: not a container name", r.Container)
	case r.Inbox == "":
		return fmt.Errorf("exec: no inbox")
	}
	return nil
}

// ExecInput is what the client sends: input (Data), a new terminal size
// (Rows and Cols), the end of its input (EOF); an empty one keeps the
// command alive.
type ExecInput struct {
	Version int    `json:"version"`
	Data    []byte `json:"data,omitempty"`
	Rows    uint16 `json:"rows,omitempty"`
	Cols    uint16 `json:"cols,omitempty"`
	EOF     bool   `json:"eof,omitempty"`
}

// Exec output streams.
const (
	Stdout = 1
	Stderr = 2
)

// ExecOutput is what the node sends: Started once the command runs,
// output of a Stream, and last Exited with the command's ExitCode, or
// Error when it could not run or was cut short.
type ExecOutput struct {
	Version  int    `json:"version"`
	Started  bool   `json:"started,omitempty"`
	Stream   int    `json:"stream,omitempty"`
	Data     []byte `json:"data,omitempty"`
	Exited   bool   `json:"exited,omitempty"`
	ExitCode int    `json:"exitCode,omitempty"`
	Error    string `json:"error,omitempty"`
}
