package ratelog

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := &Limiter{Every: 10 * time.Second}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	logged := 0
	var held int64
	for i := 0; i < 60; i++ { // one event a second for a minute
		if ok, n := l.Allow(t0.Add(time.Duration(i) * time.Second)); ok {
			logged++
			held += n
		}
	}
	if logged != 6 || held != 45 || l.Total() != 60 {
		t.Fatalf("logged %d lines holding back %d of %d events; want 6 lines, 45 held back (the last 9 are told with the next line), 60 counted", logged, held, l.Total())
	}
}
