package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler"
	"github.com/batonhq/baton/reconciler/httpapi"
	"github.com/batonhq/baton/reconciler/store"
)

// plane is where an operator command reads and writes the control plane:
// the HTTP API (--server or $BATON_SERVER, a token from --token-file or
// $BATON_TOKEN), else NATS (--nats). An explicit --nats wins over
// $BATON_SERVER.
type plane struct {
	bus               busFlags
	server, tokenFile string
	useAPI            bool
	// keep: one NATS connection for every request of the command (a
	// command that polls), closed by closeConn.
	keep bool
	conn *cliConn
}

// dial is a NATS connection for one request and what to do after it: the
// kept one (nothing to do), or a new one (closed after).
func (p *plane) dial(name string) (*cliConn, func(), error) {
	if p.keep && p.conn != nil {
		return p.conn, func() {}, nil
	}
	nc, err := dialCLI(p.bus, name)
	if err != nil {
		return nil, nil, err
	}
	if p.keep {
		p.conn = nc
		return nc, func() {}, nil
	}
	return nc, nc.Close, nil
}

// closeConn closes the kept connection, if any.
func (p *plane) closeConn() {
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
}

func (p *plane) register(f *pflag.FlagSet) {
	p.bus.register(f)
	f.StringVar(&p.server, "server", os.Getenv("BATON_SERVER"), "control-plane API URL ($BATON_SERVER); without it the command uses NATS (--nats)")
	f.StringVar(&p.tokenFile, "token-file", "", "file holding an API bearer token ($BATON_TOKEN)")
}

// resolve decides between the API and NATS once the flags are parsed.
func (p *plane) resolve(cmd *cobra.Command) *plane {
	p.useAPI = p.server != "" && (cmd.Flags().Changed("server") || !cmd.Flags().Changed("nats"))
	return p
}

// maxAnswerBytes bounds an API answer the CLI reads.
const maxAnswerBytes = 64 << 20

// call makes one API request; body and out are JSON (either may be nil).
func (p *plane) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(p.server, "/")+path, rd)
	if err != nil {
		return fmt.Errorf("--server %q: %w", p.server, err)
	}
	req.Header.Set("Content-Type", "application/json")
	token := os.Getenv("BATON_TOKEN")
	if p.tokenFile != "" {
		t, err := os.ReadFile(p.tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(t))
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w (is the API at %s?)", method, path, err, p.server)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error)
		}
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: bad answer: %w", method, path, err)
	}
	return nil
}

func (p *plane) status(ctx context.Context, q reconciler.StatusRequest) (reconciler.Status, error) {
	var st reconciler.Status
	if p.useAPI {
		v := url.Values{"replicas": {string(q.Replicas)}}
		if q.Workload != "" {
			v.Set("workload", q.Workload)
		}
		if q.Namespace != "" {
			v.Set("namespace", q.Namespace)
		}
		return st, p.call(ctx, http.MethodGet, "/api/v1/status?"+v.Encode(), nil, &st)
	}
	nc, done, err := p.dial("baton-status")
	if err != nil {
		return st, err
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return reconciler.FetchStatus(ctx, nc.Conn, q)
}

func (p *plane) events(ctx context.Context, tail int) ([]string, error) {
	if p.useAPI {
		var ans struct{ Events []string }
		err := p.call(ctx, http.MethodGet, fmt.Sprintf("/api/v1/events?tail=%d", tail), nil, &ans)
		return ans.Events, err
	}
	var events []string
	return events, p.ask(ctx, "baton-events", protocol.EventsSubject, httpapi.EventsRequest{Tail: tail}, &events)
}

func (p *plane) history(ctx context.Context) ([]store.HistoryEntry, error) {
	if p.useAPI {
		var ans struct{ History []store.HistoryEntry }
		err := p.call(ctx, http.MethodGet, "/api/v1/history", nil, &ans)
		return ans.History, err
	}
	var h []store.HistoryEntry
	return h, p.ask(ctx, "baton-history", protocol.HistorySubject, nil, &h)
}

func (p *plane) pin(ctx context.Context, rev, by, reason string) (store.HistoryEntry, error) {
	if p.useAPI {
		var ans struct{ Pinned store.HistoryEntry }
		err := p.call(ctx, http.MethodPut, "/api/v1/pin", httpapi.PinRequest{Revision: rev, By: by, Reason: reason}, &ans)
		return ans.Pinned, err
	}
	var e store.HistoryEntry
	return e, p.ask(ctx, "baton-pin", protocol.PinSubject, httpapi.PinRequest{Revision: rev, By: by, Reason: reason}, &e)
}

func (p *plane) unpin(ctx context.Context) error {
	if p.useAPI {
		return p.call(ctx, http.MethodDelete, "/api/v1/pin", nil, nil)
	}
	return p.ask(ctx, "baton-unpin", protocol.UnpinSubject, nil, nil)
}

// ask makes one request to the servers over NATS (the state's KV is the
// servers' alone).
func (p *plane) ask(ctx context.Context, name, subject string, body, out any) error {
	nc, done, err := p.dial(name)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return nc.ask(ctx, subject, body, out)
}

// plan asks the API (the only way: planning needs the leader's live view).
func (p *plane) plan(ctx context.Context, files map[string][]byte) (reconciler.Plan, error) {
	if p.server == "" {
		p.server = "http://127.0.0.1:8420"
	}
	body := httpapi.PlanRequest{Files: make(map[string]string, len(files))}
	for k, v := range files {
		body.Files[k] = string(v)
	}
	var pl reconciler.Plan
	return pl, p.call(ctx, http.MethodPost, "/api/v1/plan", body, &pl)
}

// printJSON writes v as indented JSON, as the API does.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
