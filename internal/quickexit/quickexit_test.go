package quickexit

import (
	"os"
	"testing"
)

func TestSet(t *testing.T) {
	for _, tc := range []struct{ before, after string }{
		{"", "atexit_sleep_ms=0"},
		{"halt_on_error=1", "halt_on_error=1 atexit_sleep_ms=0"},
		{"atexit_sleep_ms=50", "atexit_sleep_ms=50"}, // the caller's own choice stays
	} {
		t.Setenv("GORACE", tc.before)
		Set()
		if got := os.Getenv("GORACE"); got != tc.after {
			t.Errorf("GORACE %q: %q, want %q", tc.before, got, tc.after)
		}
	}
}
