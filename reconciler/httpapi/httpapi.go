package httpapi

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/gitsource"
	"github.com/batonhq/baton/internal/identity"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler"
	"github.com/batonhq/baton/reconciler/dashboard"
	"github.com/batonhq/baton/reconciler/store"
)

// Roles of tokens.
const (
	RoleRead  = "read"
	RoleAdmin = "admin"
)

// MaxBodyBytes caps request bodies.
const MaxBodyBytes = 1 << 20

// Server is the API handler. Set the reconciler while this server leads.
type Server struct {
	js     jetstream.JetStream
	id     string
	tokens map[string]string // token → role; nil: no authentication

	mu      sync.Mutex
	rec     *reconciler.Reconciler
	webhook http.Handler
	joining map[string]Handler // protocol subject → handler, when this server holds the cluster identity

	plans   chan struct{} // a slot per plan running
	dash    *dashboard.Dashboard
	metrics *Metrics
}

// MaxConcurrentPlans bounds the plans computed at once (each holds its
// revision, up to MaxPlanBytes, in memory); PlanQueueWait is how long a
// plan waits for a slot before 429 Too Many Requests.
const MaxConcurrentPlans = 2

// PlanQueueWait is how long a plan request waits for a slot.
var PlanQueueWait = 10 * time.Second

// SetJoining serves joining (join tokens, credentials, node removal) with
// handlers keyed by their NATS subject, on NATS (ServeNATS, called after)
// and on HTTP: a server that holds the cluster identity calls it.
func (s *Server) SetJoining(h map[string]Handler) {
	s.mu.Lock()
	s.joining = h
	s.mu.Unlock()
}

func (s *Server) joiningHandler(subject string) Handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.joining[subject]
}

// SetWebhook serves the git push webhook at POST /api/v1/hooks/git; it
// authenticates requests itself (a shared secret), not by bearer token.
func (s *Server) SetWebhook(h http.Handler) {
	s.mu.Lock()
	s.webhook = h
	s.mu.Unlock()
}

// Config configures a Server.
type Config struct {
	JS jetstream.JetStream
	// ID names this server (in /readyz and baton_leader).
	ID string
	// Tokens are the bearer tokens (token → role); nil: an open API.
	Tokens map[string]string
	Log    zerolog.Logger
	// Metrics are served at /metrics with the leader's state (nil: made
	// here; the loop and the git source feed them when given theirs).
	Metrics *Metrics
}

// New returns an API. It serves the dashboard at / and under /ui/, behind
// the same tokens.
func New(c Config) *Server {
	s := &Server{js: c.JS, id: c.ID, tokens: c.Tokens, plans: make(chan struct{}, MaxConcurrentPlans), metrics: c.Metrics}
	if s.metrics == nil {
		s.metrics = NewMetrics()
	}
	s.metrics.reg.MustRegister(stateCollector{s})
	opts := dashboard.Options{Log: c.Log}
	if c.Tokens != nil {
		opts.Check = func(tok string) bool { return s.roleOf(tok) != "" }
	}
	s.dash = dashboard.New(dashSource{s}, opts)
	return s
}

// SetLeader records the reconciler of the current leadership (nil when
// standing by).
func (s *Server) SetLeader(r *reconciler.Reconciler) {
	s.mu.Lock()
	s.rec = r
	s.mu.Unlock()
}

// Leader is the reconciler of the current leadership (nil when standing by).
func (s *Server) Leader() *reconciler.Reconciler {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec
}

// ReadTokens reads a tokens file: one "TOKEN ROLE" per line (role read or
// admin), blank lines and # comments ignored; tokens at least 16 characters.
func ReadTokens(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) == 2 && fields[1] == "viewer" {
			fields[1] = RoleRead // the bus's name for it
		}
		if len(fields) != 2 || (fields[1] != RoleRead && fields[1] != RoleAdmin) || len(fields[0]) < 16 {
			return nil, fmt.Errorf("%s:%d: want \"TOKEN viewer|admin\" (read is viewer) with a token of 16 characters or more", path, n)
		}
		out[fields[0]] = fields[1]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no tokens", path)
	}
	return out, nil
}

// Handler routes the API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	allowed := map[string][]string{} // path → methods, for 405 answers
	route := func(pattern string, h http.Handler) {
		method, path, _ := strings.Cut(pattern, " ")
		allowed[path] = append(allowed[path], method)
		mux.Handle(pattern, h)
	}
	route("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }))
	route("GET /readyz", http.HandlerFunc(s.readyz))
	route("GET /api/v1/status", s.auth(RoleRead, http.HandlerFunc(s.status)))
	route("GET /api/v1/events", s.auth(RoleRead, http.HandlerFunc(s.events)))
	route("GET /api/v1/history", s.auth(RoleRead, http.HandlerFunc(s.history)))
	route("GET /metrics", s.auth(RoleRead, s.metricsHandler()))
	route("POST /api/v1/plan", s.auth(RoleRead, http.HandlerFunc(s.plan)))
	route("GET /api/v1/workloads", s.auth(RoleRead, s.fromStatus(func(st reconciler.Status) any {
		return map[string]any{"workloads": st.Workloads, "jobs": st.Jobs}
	})))
	route("GET /api/v1/nodes", s.auth(RoleRead, s.fromStatus(func(st reconciler.Status) any { return map[string]any{"nodes": st.Nodes} })))
	route("GET /api/v1/pools", s.auth(RoleRead, s.fromStatus(func(st reconciler.Status) any {
		pools, unserved := st.Pools, st.PoolUnserved
		if pools == nil {
			pools = []reconciler.PoolStatus{}
		}
		if unserved == nil {
			unserved = []string{}
		}
		return map[string]any{"pools": pools, "unserved": unserved}
	})))
	route("GET /api/v1/replicas", s.auth(RoleRead, http.HandlerFunc(s.replicas)))
	route("GET /api/v1/pin", s.auth(RoleRead, http.HandlerFunc(s.getPin)))
	route("PUT /api/v1/pin", s.auth(RoleAdmin, http.HandlerFunc(s.putPin)))
	route("DELETE /api/v1/pin", s.auth(RoleAdmin, http.HandlerFunc(s.deletePin)))
	for _, op := range []string{"cordon", "uncordon", "drain"} {
		route("POST /api/v1/nodes/{name}/"+op, s.auth(RoleAdmin, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c := store.NodeControl{Node: r.PathValue("name"), Cordoned: op != "uncordon", Draining: op == "drain", By: r.URL.Query().Get("by")}
			fromKV(w, r, "node", func(ctx context.Context) (any, error) { return s.setNodeControl(ctx, c) })
		})))
	}
	route("POST /api/v1/tokens", s.auth(RoleAdmin, s.joiningHTTP(protocol.TokenSubject, func(r *http.Request) ([]byte, error) {
		return io.ReadAll(r.Body)
	})))
	route("GET /api/v1/credentials", s.auth(RoleRead, s.joiningHTTP(protocol.CredentialsSubject, nil)))
	route("DELETE /api/v1/nodes/{name}", s.auth(RoleAdmin, s.joiningHTTP(protocol.NodeRemoveSubject, func(r *http.Request) ([]byte, error) {
		return json.Marshal(map[string]string{"name": r.PathValue("name")})
	})))
	route("POST /api/v1/hooks/git", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		h := s.webhook
		s.mu.Unlock()
		if h == nil {
			writeError(w, http.StatusNotFound, "no webhook configured (baton server --webhook-secret-file)")
			return
		}
		h.ServeHTTP(w, r)
	}))
	dash := s.dash.Handler()
	mux.Handle("GET /{$}", dash)
	mux.Handle("/ui/", dash)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if methods, ok := allowed[r.URL.Path]; ok {
			w.Header().Set("Allow", strings.Join(methods, ", "))
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: allowed: %s", r.Method, r.URL.Path, strings.Join(methods, ", ")))
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s (see docs/architecture.md, Control-plane API)", r.Method, r.URL.Path))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := int64(MaxBodyBytes)
		switch r.URL.Path {
		case "/api/v1/plan":
			limit = MaxPlanBytes
		case "/api/v1/hooks/git":
			limit = gitsource.MaxWebhookBytes
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		mux.ServeHTTP(w, r)
	})
}

// MaxPlanBytes caps a plan request: a revision's files as JSON.
const MaxPlanBytes = 96 << 20

// PlanRequest is the body of POST /api/v1/plan: a revision's files.
type PlanRequest struct {
	Files map[string]string `json:"files"`
}

func (s *Server) plan(w http.ResponseWriter, r *http.Request) {
	rec := s.Leader()
	if rec == nil {
		writeError(w, http.StatusServiceUnavailable, "this server is standing by; plan against the leader")
		return
	}
	// The slot before the body: a plan's memory is its decoded revision.
	select {
	case s.plans <- struct{}{}:
		defer func() { <-s.plans }()
	case <-time.After(PlanQueueWait):
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("%d plans are being computed: try again shortly", MaxConcurrentPlans))
		return
	case <-r.Context().Done():
		return
	}
	var req PlanRequest
	if !decode(w, r, &req, `{"files": {"path": "content"}}`) {
		return
	}
	files := make(map[string][]byte, len(req.Files))
	for k, v := range req.Files {
		files[k] = []byte(v)
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	p, err := rec.Plan(ctx, files)
	switch {
	case errors.Is(err, desired.ErrTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// auth checks the bearer token's role; with no tokens configured, all pass.
func (s *Server) auth(role string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.tokens == nil {
			next.ServeHTTP(w, r)
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="baton"`)
			writeError(w, http.StatusUnauthorized, "a bearer token is required (Authorization: Bearer TOKEN)")
			return
		}
		got := s.roleOf(tok)
		switch {
		case got == "":
			writeError(w, http.StatusUnauthorized, "unknown token")
		case role == RoleAdmin && got != RoleAdmin:
			writeError(w, http.StatusForbidden, "this token is read-only")
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// roleOf is tok's role, "" for a token not known, compared in constant
// time (every token is compared).
func (s *Server) roleOf(tok string) string {
	got := ""
	for t, rl := range s.tokens {
		if subtle.ConstantTimeCompare([]byte(t), []byte(tok)) == 1 {
			got = rl
		}
	}
	return got
}

// decode reads a JSON body into v, answering 413 past the size limit and
// 400 for anything else that is not the wanted shape.
func decode(w http.ResponseWriter, r *http.Request, v any, want string) bool {
	err := json.NewDecoder(r.Body).Decode(v)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body: at most %d bytes", tooBig.Limit))
	case err != nil:
		writeError(w, http.StatusBadRequest, "body: want "+want+": "+err.Error())
	default:
		return true
	}
	return false
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	role := "standby"
	if s.Leader() != nil {
		role = "leader"
	}
	writeJSON(w, http.StatusOK, map[string]string{"server": s.id, "role": role})
}

// status answers GET /api/v1/status?replicas=auto|all|none&workload=NAME:
// by default a summary, the replicas listed up to reconciler.AutoReplicas.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	q := reconciler.StatusRequest{Replicas: reconciler.ReplicaList(r.URL.Query().Get("replicas")), Workload: r.URL.Query().Get("workload"),
		Namespace: r.URL.Query().Get("namespace")}
	if !q.Valid() {
		writeError(w, http.StatusBadRequest, "replicas: want auto, all or none")
		return
	}
	rec := s.Leader()
	if rec == nil {
		writeError(w, http.StatusServiceUnavailable, "this server is standing by; ask the leader (baton status over NATS finds it)")
		return
	}
	writeJSON(w, http.StatusOK, rec.StatusWith(q))
}

// fromStatus answers with part of the leader's status, without replica lists.
func (s *Server) fromStatus(part func(reconciler.Status) any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		rec := s.Leader()
		if rec == nil {
			writeError(w, http.StatusServiceUnavailable, "this server is standing by; ask the leader (baton status over NATS finds it)")
			return
		}
		writeJSON(w, http.StatusOK, part(rec.StatusWith(reconciler.StatusRequest{Replicas: reconciler.ReplicasNone})))
	})
}

// Replica is one live replica, with its workload.
type Replica struct {
	Workload string `json:"workload"`
	reconciler.ReplicaStatus
}

// Pages of GET /api/v1/replicas.
const (
	DefaultReplicaPage = 1000
	MaxReplicaPage     = 10000
)

// ReplicaPage is one page of GET /api/v1/replicas?limit=N&continue=TOKEN
// (as Kubernetes' list paging): Continue is the token of the next page, ""
// after the last.
type ReplicaPage struct {
	Replicas []Replica `json:"replicas"`
	Continue string    `json:"continue,omitempty"`
	Total    int       `json:"total"`
}

// replicas answers a page of the live replicas, sorted by workload and ID
// (?workload= keeps one workload).
func (s *Server) replicas(w http.ResponseWriter, r *http.Request) {
	limit, from := DefaultReplicaPage, 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxReplicaPage {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit: want 1 to %d", MaxReplicaPage))
			return
		}
		limit = n
	}
	if v := r.URL.Query().Get("continue"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "continue: a token from the previous page")
			return
		}
		from = n
	}
	rec := s.Leader()
	if rec == nil {
		writeError(w, http.StatusServiceUnavailable, "this server is standing by; ask the leader (baton status over NATS finds it)")
		return
	}
	st := rec.StatusWith(reconciler.StatusRequest{Replicas: reconciler.ReplicasAll, Workload: r.URL.Query().Get("workload")})
	var all []Replica
	for _, g := range st.ReplicaGroups() {
		for _, x := range g.Replicas {
			all = append(all, Replica{Workload: g.Workload, ReplicaStatus: x})
		}
	}
	page := ReplicaPage{Replicas: []Replica{}, Total: len(all)}
	if from < len(all) {
		end := min(from+limit, len(all))
		page.Replicas = all[from:end]
		if end < len(all) {
			page.Continue = strconv.Itoa(end)
		}
	}
	writeJSON(w, http.StatusOK, page)
}

// PinRequest is the body of PUT /api/v1/pin.
type PinRequest struct {
	Revision string `json:"revision"`
	By       string `json:"by,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// fromKV answers {key: value} from the JetStream state, which any server
// reads (10 s at most): 404 for a revision never applied, 400 for a bad
// pin, 502 when NATS fails.
func fromKV(w http.ResponseWriter, r *http.Request, key string, read func(context.Context) (any, error)) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	v, err := read(ctx)
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{key: v})
}

// statusOf is the HTTP status of an error of the state: the HTTP API's and
// the NATS answers' code.
func statusOf(err error) int {
	var re requestError
	var ae *AnswerError
	switch {
	case errors.As(err, &ae):
		return ae.Code
	case errors.Is(err, store.ErrNeverApplied):
		return http.StatusNotFound
	case errors.As(err, &re), errors.Is(err, store.ErrBadPin):
		return http.StatusBadRequest
	}
	return http.StatusBadGateway
}

func (s *Server) getPin(w http.ResponseWriter, r *http.Request) {
	fromKV(w, r, "pin", func(ctx context.Context) (any, error) { return store.ReadPin(ctx, s.js) })
}

func (s *Server) putPin(w http.ResponseWriter, r *http.Request) {
	var req PinRequest
	if !decode(w, r, &req, `{"revision": "COMMIT", "reason": "..."}`) {
		return
	}
	fromKV(w, r, "pinned", func(ctx context.Context) (any, error) {
		return store.PinRevision(ctx, s.js, req.Revision, req.By, req.Reason)
	})
}

func (s *Server) deletePin(w http.ResponseWriter, r *http.Request) {
	fromKV(w, r, "pin", func(ctx context.Context) (any, error) { return nil, store.ClearPin(ctx, s.js) })
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	tail := 200
	if v := r.URL.Query().Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "tail: want a number ≥ 0")
			return
		}
		tail = n
	}
	fromKV(w, r, "events", func(ctx context.Context) (any, error) { return store.Recent(ctx, s.js, tail) })
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	fromKV(w, r, "history", func(ctx context.Context) (any, error) {
		h, err := store.ReadHistory(ctx, s.js)
		if r.URL.Query().Get("changes") == "true" {
			return h, err
		}
		return store.WithoutChanges(h), err
	})
}

// joiningHTTP answers a joining request over HTTP with the handler of
// subject; body makes the handler's body from the request (nil: none).
func (s *Server) joiningHTTP(subject string, body func(*http.Request) ([]byte, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.tokens == nil {
			// An open API (no tokens file) is anyone's on this machine:
			// making join tokens there would make anyone an admin.
			writeError(w, http.StatusForbidden, "joining over HTTP needs bearer tokens (--api-tokens); use baton token create, node rm and node ls over the bus")
			return
		}
		h := s.joiningHandler(subject)
		if h == nil {
			writeError(w, http.StatusNotImplemented, "this server does not hold the cluster identity: joining is served by baton server (and baton up) on its embedded bus")
			return
		}
		var b []byte
		if body != nil {
			var err error
			if b, err = body(r); err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		v, err := h(ctx, b)
		if err != nil {
			writeError(w, statusOf(err), err.Error())
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

// setNodeControl cordons, drains or uncordons a node the leader knows (a
// standby, which knows no node, takes the operator's word).
func (s *Server) setNodeControl(ctx context.Context, c store.NodeControl) (store.NodeControl, error) {
	if !identity.ValidName(c.Node) {
		return c, badRequest(fmt.Sprintf("node %q: not a node name", c.Node))
	}
	if rec := s.Leader(); rec != nil && c.Cordoned {
		known := false
		for _, n := range rec.StatusWith(reconciler.StatusRequest{Replicas: reconciler.ReplicasNone}).Nodes {
			known = known || n.Name == c.Node
		}
		if !known {
			return c, &AnswerError{Code: http.StatusNotFound, Msg: fmt.Sprintf("no node named %q (baton node ls)", c.Node)}
		}
	}
	c.At = time.Now()
	if c.Draining {
		c.Cordoned = true
	}
	return c, store.SetNodeControl(ctx, s.js, c)
}
