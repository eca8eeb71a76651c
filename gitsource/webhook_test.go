package gitsource

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"
)

const hookSecret = "a-webhook-secret-of-some-length"

func sign(body string) string {
	m := hmac.New(sha256.New, []byte(hookSecret))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

func TestWebhook(t *testing.T) {
	var polls atomic.Int32
	h, err := NewWebhook([]byte(hookSecret), func() { polls.Add(1) }, 1000, 1000, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	body := `{"ref":"refs/heads/main","after":"ffffffffffffffffffffffffffffffffffffffff"}`
	tests := []struct {
		name    string
		method  string
		headers map[string]string
		body    string
		code    int
		polled  bool
	}{
		{"github push", "POST", map[string]string{"X-Hub-Signature-256": "sha256=" + sign(body), "X-GitHub-Event": "push"}, body, 202, true},
		{"github ping", "POST", map[string]string{"X-Hub-Signature-256": "sha256=" + sign(body), "X-GitHub-Event": "ping"}, body, 200, false},
		{"github bad signature", "POST", map[string]string{"X-Hub-Signature-256": "sha256=" + sign(body+"x"), "X-GitHub-Event": "push"}, body, 401, false},
		{"github without prefix", "POST", map[string]string{"X-Hub-Signature-256": sign(body)}, body, 401, false},
		{"gitea push", "POST", map[string]string{"X-Gitea-Signature": sign(body), "X-Gitea-Event": "push"}, body, 202, true},
		{"gitea bad signature", "POST", map[string]string{"X-Gitea-Signature": "zz" + sign(body)[2:]}, body, 401, false},
		{"gitlab push", "POST", map[string]string{"X-Gitlab-Token": hookSecret, "X-Gitlab-Event": "Push Hook"}, body, 202, true},
		{"gitlab wrong token", "POST", map[string]string{"X-Gitlab-Token": "guess"}, body, 401, false},
		{"unsigned", "POST", nil, body, 401, false},
		{"GET", "GET", nil, "", 405, false},
		{"too large", "POST", map[string]string{"X-Gitlab-Token": hookSecret}, strings.Repeat("x", MaxWebhookBytes+1), 413, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := polls.Load()
			req := httptest.NewRequest(tt.method, "/hooks/git", bytes.NewBufferString(tt.body))
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.code {
				t.Fatalf("code %d, want %d (%s)", rec.Code, tt.code, rec.Body)
			}
			if polled := polls.Load() > before; polled != tt.polled {
				t.Fatalf("polled = %v, want %v", polled, tt.polled)
			}
			if strings.Contains(rec.Body.String(), hookSecret) {
				t.Fatal("the secret is in the response")
			}
		})
	}
}

func TestWebhookRateLimit(t *testing.T) {
	h, _ := NewWebhook([]byte(hookSecret), func() {}, 1, 2, zerolog.Nop())
	codes := []int{}
	for range 4 {
		req := httptest.NewRequest("POST", "/", strings.NewReader("{}"))
		req.Header.Set("X-Gitlab-Token", hookSecret)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		codes = append(codes, rec.Code)
	}
	if codes[0] != 202 || codes[1] != 202 || codes[2] != http.StatusTooManyRequests {
		t.Fatalf("codes %v", codes)
	}
	if _, err := NewWebhook([]byte("short"), func() {}, 1, 1, zerolog.Nop()); err == nil {
		t.Fatal("a short secret was accepted")
	}
}
