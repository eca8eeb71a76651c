package gitsource

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
)

// MaxWebhookBytes caps a webhook's body.
const MaxWebhookBytes = 5 << 20

// Webhook is an HTTP handler for push events from GitHub
// (X-Hub-Signature-256), Gitea and Forgejo (X-Gitea-Signature) and GitLab
// (X-Gitlab-Token), each checked against a shared secret in constant time.
// A verified event only makes the source poll now: the revision always
// comes from the fetch, never from the payload.
type Webhook struct {
	secret  []byte
	trigger func()
	limit   *rate.Limiter
	log     zerolog.Logger
}

// NewWebhook returns a handler that calls trigger for each verified event,
// at most perSecond on average (bursts of burst); more get 429.
func NewWebhook(secret []byte, trigger func(), perSecond float64, burst int, log zerolog.Logger) (*Webhook, error) {
	if len(secret) < 16 {
		return nil, errors.New("webhook secret must have at least 16 bytes")
	}
	return &Webhook{secret: secret, trigger: trigger, limit: rate.NewLimiter(rate.Limit(perSecond), burst), log: log}, nil
}

func (h *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if !h.limit.Allow() {
		http.Error(w, "too many requests", http.StatusTooManyRequests)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBytes))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	from, ok := h.verify(r.Header, body)
	if !ok {
		h.log.Warn().Str("remote", r.RemoteAddr).Str("from", from).Msg("webhook with a missing or bad signature")
		http.Error(w, "signature does not verify", http.StatusUnauthorized)
		return
	}
	event := firstNonEmpty(r.Header.Get("X-GitHub-Event"), r.Header.Get("X-Gitea-Event"), r.Header.Get("X-Gitlab-Event"))
	if event == "ping" {
		w.WriteHeader(http.StatusOK)
		return
	}
	h.log.Info().Str("from", from).Str("event", event).Msg("webhook: polling now")
	h.trigger()
	w.WriteHeader(http.StatusAccepted)
}

// verify checks the request's signature; it says which forge it claims to be.
func (h *Webhook) verify(hdr http.Header, body []byte) (string, bool) {
	mac := hmac.New(sha256.New, h.secret)
	mac.Write(body)
	sum := mac.Sum(nil)
	hexEqual := func(got string) bool {
		b, err := hex.DecodeString(got)
		return err == nil && hmac.Equal(b, sum)
	}
	switch {
	case hdr.Get("X-Gitea-Signature") != "":
		return "gitea", hexEqual(hdr.Get("X-Gitea-Signature"))
	case hdr.Get("X-Hub-Signature-256") != "":
		sig, ok := strings.CutPrefix(hdr.Get("X-Hub-Signature-256"), "sha256=")
		return "github", ok && hexEqual(sig)
	case hdr.Get("X-Gitlab-Token") != "":
		return "gitlab", subtle.ConstantTimeCompare([]byte(hdr.Get("X-Gitlab-Token")), h.secret) == 1
	}
	return "unknown", false
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
