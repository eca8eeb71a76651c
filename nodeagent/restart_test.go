package nodeagent

import (
	"testing"
	"time"
)

func TestRestartDecision(t *testing.T) {
	b := Backoff{Base: 10 * time.Second, Max: 5 * time.Minute, ResetAfter: 10 * time.Minute}
	tests := []struct {
		name     string
		policy   string
		code     int
		restarts int
		ran      time.Duration
		restart  bool
		after    time.Duration
		count    int
	}{
		{"never", "Never", 1, 0, 0, false, 0, 0},
		{"on failure, success", "OnFailure", 0, 0, 0, false, 0, 0},
		{"on failure, failure", "OnFailure", 2, 0, 0, true, 0, 1},
		{"always, first crash: at once", "Always", 0, 0, time.Second, true, 0, 1},
		{"second crash: base", "Always", 1, 1, time.Second, true, 10 * time.Second, 2},
		{"third crash: doubled", "Always", 1, 2, time.Second, true, 20 * time.Second, 3},
		{"capped", "Always", 1, 20, time.Second, true, 5 * time.Minute, 21},
		{"ran long enough: reset", "Always", 1, 20, 11 * time.Minute, true, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			restart, after, count := restartDecision(tt.policy, tt.code, tt.restarts, tt.ran, b)
			if restart != tt.restart || after != tt.after || count != tt.count {
				t.Fatalf("restartDecision = %v %s %d, want %v %s %d", restart, after, count, tt.restart, tt.after, tt.count)
			}
		})
	}
}
