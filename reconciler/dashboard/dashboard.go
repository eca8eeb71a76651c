package dashboard

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"

	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler"
	"github.com/batonhq/baton/reconciler/store"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// ErrStandby is what a Source answers while its server does not lead: the
// leader holds the state the pages show.
var ErrStandby = errors.New("this server is standing by")

// Source is what the pages are made from: the leader's status, the
// revision history, and a replica's log output.
type Source interface {
	// Status is the leader's status (ErrStandby on a standby).
	Status(reconciler.StatusRequest) (reconciler.Status, error)
	// History is the kept revision history, oldest first.
	History(ctx context.Context) ([]store.HistoryEntry, error)
	// Logs streams a replica's output from its node until ctx ends.
	Logs(ctx context.Context, node string, req protocol.LogsRequest, out func(protocol.LogChunk)) error
}

// Options configure a Dashboard.
type Options struct {
	// Check reports whether token may read the cluster (a viewer's or an
	// admin's); nil serves the pages to anyone, as the open API does.
	Check func(token string) bool
	// Interval is how often a live page looks for changes (default 1 s).
	Interval time.Duration
	// MaxStreams bounds the live pages and log tails served at once
	// (default 256).
	MaxStreams int
	Log        zerolog.Logger
}

// Dashboard serves the pages.
type Dashboard struct {
	src     Source
	opts    Options
	tmpl    *template.Template
	streams chan struct{} // a slot per open event stream

	renders singleflight.Group // a page's sections made once for its viewers
	mu      sync.Mutex
	cache   map[string]*rendered // page URL → its sections as last made
	hist    historyCache
}

// TokenCookie is the cookie the login form keeps the token in.
const TokenCookie = "baton_token"

// New returns a dashboard over src.
func New(src Source, opts Options) *Dashboard {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = 256
	}
	t := template.Must(template.New("").Funcs(funcs).ParseFS(templateFiles, "templates/*.html"))
	return &Dashboard{src: src, opts: opts, tmpl: t, streams: make(chan struct{}, opts.MaxStreams), cache: map[string]*rendered{}}
}

// Handler serves / (the overview) and everything under /ui/.
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFiles, "static")
	mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", cacheFor(http.FileServerFS(static))))
	mux.HandleFunc("GET /ui/login", d.loginForm)
	mux.HandleFunc("POST /ui/login", d.login)
	mux.HandleFunc("POST /ui/logout", d.logout)
	mux.Handle("GET /ui/stream", d.auth(http.HandlerFunc(d.stream)))
	mux.Handle("GET /ui/logs", d.auth(http.HandlerFunc(d.logs)))
	mux.Handle("GET /{$}", d.auth(http.HandlerFunc(d.page)))
	mux.Handle("GET /ui/workloads/{name...}", d.auth(http.HandlerFunc(d.page)))
	mux.Handle("GET /ui/nodes/{name}", d.auth(http.HandlerFunc(d.page)))
	mux.Handle("GET /ui/history", d.auth(http.HandlerFunc(d.page)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Everything comes from this server; no page may be framed.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		mux.ServeHTTP(w, r)
	})
}

func cacheFor(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

// authorized reports whether r carries a token that may read: the login
// cookie, or a bearer token as the API takes.
func (d *Dashboard) authorized(r *http.Request) bool {
	if d.opts.Check == nil {
		return true
	}
	if c, err := r.Cookie(TokenCookie); err == nil && c.Value != "" && d.opts.Check(c.Value) {
		return true
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && d.opts.Check(tok)
}

// auth sends a page request without a good token to the login form, and
// answers 401 to an event stream's.
func (d *Dashboard) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.authorized(r) {
			next.ServeHTTP(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/ui/stream") || strings.HasPrefix(r.URL.Path, "/ui/logs") {
			http.Error(w, "sign in at /ui/login", http.StatusUnauthorized)
			return
		}
		http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
	})
}

// MaxTokenBytes bounds the login form's token.
const MaxTokenBytes = 512

func (d *Dashboard) loginForm(w http.ResponseWriter, r *http.Request) {
	d.render(w, http.StatusOK, "login", loginPage{Next: localPath(r.URL.Query().Get("next")), Open: d.opts.Check == nil})
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	tok, next := strings.TrimSpace(r.PostFormValue("token")), localPath(r.PostFormValue("next"))
	if d.opts.Check == nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	if tok == "" || len(tok) > MaxTokenBytes || !d.opts.Check(tok) {
		d.opts.Log.Info().Str("remote", r.RemoteAddr).Msg("dashboard sign-in refused")
		d.render(w, http.StatusUnauthorized, "login", loginPage{Next: next, Error: "That token is not known to this cluster."})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: TokenCookie, Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: int((7 * 24 * time.Hour).Seconds())})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: TokenCookie, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// localPath keeps a redirect on this server: a path of its own, else "/".
func localPath(p string) string {
	for _, c := range []byte(p) {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "/" // browsers drop tabs and newlines, and read a backslash as /
		}
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return "/"
	}
	return p
}
