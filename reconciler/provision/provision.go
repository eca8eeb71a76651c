package provision

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent"
)

// Version is the protocol's version, in every request.
const Version = 1

// MaxAnswerBytes bounds what a provisioner may answer.
const MaxAnswerBytes = 1 << 20

// Operations.
const (
	OpCreate = "create"
	OpDelete = "delete"
	OpList   = "list"
)

// Template is what a new machine of the pool has.
type Template struct {
	CPUMilli    int64             `json:"cpuMilli"`
	MemoryBytes int64             `json:"memoryBytes"`
	Extra       map[string]int64  `json:"extra,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Taints      []desired.Taint   `json:"taints,omitempty"`
}

// NewMachine is a machine to make: its node name, and the one-time token
// it joins with (baton agent --join JOIN --token TOKEN --node NAME).
type NewMachine struct {
	Name      string `json:"name"`
	JoinToken string `json:"joinToken"`
}

// Machine is one of the pool's machines as the provisioner knows it: the
// node name it joins as, and the provisioner's own ID for it.
type Machine struct {
	Name string `json:"name"`
	ID   string `json:"id,omitempty"`
}

// Request is what a provisioner is asked.
type Request struct {
	Version int    `json:"version"`
	Op      string `json:"op"`
	Pool    string `json:"pool"`
	// Join is the server's join endpoint (create).
	Join     string       `json:"join,omitempty"`
	Template *Template    `json:"template,omitempty"`
	Create   []NewMachine `json:"create,omitempty"`
	Delete   *Machine     `json:"delete,omitempty"`
}

// Answer is what a provisioner says: the machines made (create) or all of
// the pool's (list), or why it could not.
type Answer struct {
	Machines []Machine `json:"machines"`
	Error    string    `json:"error,omitempty"`
}

// Provisioner makes and removes a pool's machines.
type Provisioner interface {
	Call(ctx context.Context, req Request) (Answer, error)
}

// Create asks p for the machines of create, and checks the answer: every
// machine it returns must be one asked for. An answer with an error may
// still name the machines it made: they are returned with the error (a
// provisioner that made one of two says so).
func Create(ctx context.Context, p Provisioner, pool, join string, t Template, create []NewMachine) ([]Machine, error) {
	a, err := p.Call(ctx, Request{Version: Version, Op: OpCreate, Pool: pool, Join: join, Template: &t, Create: create})
	if err != nil && !(errors.Is(err, ErrFailed) && len(a.Machines) > 0) {
		return nil, err
	}
	failed := err
	asked := map[string]bool{}
	for _, m := range create {
		asked[m.Name] = true
	}
	if len(a.Machines) > len(create) {
		return nil, fmt.Errorf("%w: %d machines answered for %d asked", ErrBadAnswer, len(a.Machines), len(create))
	}
	for _, m := range a.Machines {
		if !asked[m.Name] {
			return nil, fmt.Errorf("%w: machine %q was not asked for", ErrBadAnswer, m.Name)
		}
		delete(asked, m.Name) // once each
	}
	return a.Machines, failed
}

// Delete asks p to remove machine m.
func Delete(ctx context.Context, p Provisioner, pool string, m Machine) error {
	_, err := p.Call(ctx, Request{Version: Version, Op: OpDelete, Pool: pool, Delete: &m})
	return err
}

// List asks p for the pool's machines.
func List(ctx context.Context, p Provisioner, pool string) ([]Machine, error) {
	a, err := p.Call(ctx, Request{Version: Version, Op: OpList, Pool: pool})
	return a.Machines, err
}

// Errors of a call.
var (
	// ErrFailed: the provisioner said it could not (an exit code, an error
	// answer, an HTTP error status).
	ErrFailed = errors.New("provisioner failed")
	// ErrTimeout: it did not answer within the pool's timeout.
	ErrTimeout = errors.New("provisioner did not answer in time")
	// ErrBadAnswer: its answer is not the protocol's.
	ErrBadAnswer = errors.New("provisioner answered what the protocol does not allow")
)

// decode reads an answer, bounded.
func decode(b []byte) (Answer, error) {
	var a Answer
	if len(b) > MaxAnswerBytes {
		return a, fmt.Errorf("%w: more than %d bytes", ErrBadAnswer, MaxAnswerBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return a, fmt.Errorf("%w: not JSON of the protocol (%v): %q", ErrBadAnswer, err, cut(string(b)))
	}
	for _, m := range a.Machines {
		if !nodeagent.NodeName.MatchString(m.Name) || len(m.ID) > 256 {
			return Answer{}, fmt.Errorf("%w: machine name %q", ErrBadAnswer, cut(m.Name))
		}
	}
	if a.Error != "" {
		return a, fmt.Errorf("%w: %s", ErrFailed, cut(a.Error))
	}
	return a, nil
}

// joinTokens are join tokens as a provisioner may echo them.
var joinTokens = regexp.MustCompile(`baton1\.[A-Za-z0-9_.=-]+`)

// cut trims what a provisioner said for an error, short, with any join
// token it echoed replaced: errors reach events, the status and logs.
func cut(s string) string {
	s = joinTokens.ReplaceAllString(strings.TrimSpace(s), "baton1.[redacted]")
	if len(s) > 300 {
		return strings.ToValidUTF8(s[:300], "") + "…"
	}
	return s
}

// Command is a provisioner run as an executable: the request on its stdin,
// the answer on its stdout, its stderr in the error when it fails.
type Command struct {
	Argv    []string
	Timeout time.Duration
}

// Call implements Provisioner.
func (c Command) Call(ctx context.Context, req Request) (Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	// Its own process group, killed whole when the time is up: a script's
	// children do not outlive it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	body, _ := json.Marshal(req)
	cmd.Stdin = bytes.NewReader(body)
	var stdout, stderr limited
	stdout.max, stderr.max = MaxAnswerBytes+1, 8<<10
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return Answer{}, fmt.Errorf("%w: %s %s ran past %s", ErrTimeout, c.Argv[0], req.Op, c.Timeout)
	}
	if err != nil {
		return Answer{}, fmt.Errorf("%w: %s %s: %v: %s", ErrFailed, c.Argv[0], req.Op, err, cut(stderr.String()))
	}
	return decode(stdout.Bytes())
}

// limited keeps at most max bytes (it never fails a writer: the command
// must not block on a full pipe).
type limited struct {
	bytes.Buffer
	max int
}

func (l *limited) Write(b []byte) (int, error) {
	if room := l.max - l.Len(); room > 0 {
		l.Buffer.Write(b[:min(len(b), room)])
	}
	return len(b), nil
}

// Webhook is a provisioner behind HTTPS: the request is POSTed with
// X-Baton-Timestamp (Unix seconds) and X-Baton-Signature
// "sha256=HEX(HMAC-SHA256(key, timestamp + "." + body))"; a 2xx answer
// carries the Answer.
type Webhook struct {
	URL     string
	Key     []byte
	Timeout time.Duration
	Client  *http.Client // nil: http.DefaultClient
	Clock   func() time.Time
}

// Sign is the signature of body sent at ts.
func Sign(key []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%d.", ts)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Call implements Provisioner.
func (w Webhook) Call(ctx context.Context, req Request) (Answer, error) {
	if !strings.HasPrefix(w.URL, "https://") {
		return Answer{}, fmt.Errorf("%w: webhook %q: want https://", ErrFailed, w.URL)
	}
	ctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	body, _ := json.Marshal(req)
	now := time.Now
	if w.Clock != nil {
		now = w.Clock
	}
	ts := now().Unix()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return Answer{}, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("X-Baton-Timestamp", strconv.FormatInt(ts, 10))
	hreq.Header.Set("X-Baton-Signature", Sign(w.Key, ts, body))
	client := w.Client
	if client == nil {
		client = http.DefaultClient
	}
	// The signed body (join tokens in it) goes to this URL only: a redirect
	// is refused, never followed (perhaps to plain http).
	noRedirect := *client
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error {
		return errors.New("redirects are refused: the webhook must answer at its own URL")
	}
	client = &noRedirect
	resp, err := client.Do(hreq)
	if ctx.Err() != nil {
		return Answer{}, fmt.Errorf("%w: %s %s ran past %s", ErrTimeout, w.URL, req.Op, w.Timeout)
	}
	if err != nil {
		return Answer{}, fmt.Errorf("%w: %s %s: %v", ErrFailed, w.URL, req.Op, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes+1))
	if ctx.Err() != nil {
		return Answer{}, fmt.Errorf("%w: %s %s ran past %s", ErrTimeout, w.URL, req.Op, w.Timeout)
	}
	if err != nil {
		return Answer{}, fmt.Errorf("%w: %s %s: %v", ErrFailed, w.URL, req.Op, err)
	}
	if resp.StatusCode/100 != 2 {
		return Answer{}, fmt.Errorf("%w: %s %s: %s: %s", ErrFailed, w.URL, req.Op, resp.Status, cut(string(b)))
	}
	return decode(b)
}
