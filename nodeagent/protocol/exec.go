package protocol

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// ExecSubject is where node takes requests to run a command in one of its
// containers (baton exec): admins only, the bus's permissions say.
func ExecSubject(node string) string { return subjectPrefix + node + ".exec" }

// ExecInputSubject is where the client of session sends its ExecInputs: a
// subject of the node's own, which no other node may hear.
func ExecInputSubject(node, session string) string { return ExecSubject(node) + ".in." + session }

// ExecWindow is how many input chunks a client sends before the node
// acknowledges them (ExecOutput.Ack): the node never queues more.
const ExecWindow = 16

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
// client's ExecInputs on ExecInputSubject(node, Session).
type ExecRequest struct {
	Version   int      `json:"version"`
	Session   string   `json:"session"`
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
	case !ValidSession(r.Session):
		return fmt.Errorf("exec: session %q: want 8 to 32 letters and digits", r.Session)
	}
	return nil
}

// sessionID is an exec session's or a log follower's ID: a subject token.
var sessionID = regexp.MustCompile(`^[A-Za-z0-9]{8,32}$`)

// ValidSession reports whether s may name a session in a subject.
func ValidSession(s string) bool { return sessionID.MatchString(s) }

// ExecInput is what the client sends: input (Data, numbered from 1 by
// Seq), a new terminal size (Rows and Cols), the end of its input (EOF);
// an empty one keeps the command alive.
type ExecInput struct {
	Version int    `json:"version"`
	Seq     uint64 `json:"seq,omitempty"`
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

// ExecOutput is what the node sends, numbered from 1 by Seq (a client
// that misses one fails rather than show a part): Started once it took the
// command, output of a Stream, Ack input chunks written to the command,
// empty ones every ExecKeepAlive, and last Exited with the command's
// ExitCode, or Error when it could not run or was cut short.
type ExecOutput struct {
	Version  int    `json:"version"`
	Seq      uint64 `json:"seq"`
	Started  bool   `json:"started,omitempty"`
	Ack      int    `json:"ack,omitempty"`
	Stream   int    `json:"stream,omitempty"`
	Data     []byte `json:"data,omitempty"`
	Exited   bool   `json:"exited,omitempty"`
	ExitCode int    `json:"exitCode,omitempty"`
	Error    string `json:"error,omitempty"`
}
