package nodeagent

import (
	"testing"
	"time"
)

func TestTailLines(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\nb\nc\n", 0, "a\nb\nc\n"},
		{"a\nb\nc\n", 10, "a\nb\nc\n"},
		{"", 3, ""},
		{"one line", 1, "one line"},
	}
	for _, tt := range tests {
		if got := string(tailLines([]byte(tt.in), tt.n)); got != tt.want {
			t.Errorf("tailLines(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestUsageTracker(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	u := newUsageTracker()
	if got := u.observe("r", sample{at: t0, cpuNano: 1e9, memory: 100}); got != nil {
		t.Fatalf("first sample gave %+v", got)
	}
	// Too soon: the last usage (none yet).
	if got := u.observe("r", sample{at: t0.Add(time.Second), cpuNano: 2e9}); got != nil {
		t.Fatalf("early sample gave %+v", got)
	}
	// 2.5 s of CPU in 5 s: half a core.
	got := u.observe("r", sample{at: t0.Add(5 * time.Second), cpuNano: 3.5e9, memory: 200})
	if got == nil || got.CPUMilli != 500 || got.MemoryBytes != 200 {
		t.Fatalf("usage %+v", got)
	}
	if u.lastFor("r") != got {
		t.Fatal("lastFor")
	}
	// A counter that went backwards (a restarted container) is not negative.
	if got := u.observe("r", sample{at: t0.Add(10 * time.Second), cpuNano: 1}); got.CPUMilli != 0 {
		t.Fatalf("after reset %+v", got)
	}
	u.forget(map[string]bool{})
	if u.lastFor("r") != nil {
		t.Fatal("forget")
	}
}
