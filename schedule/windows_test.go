package schedule

import (
	"fmt"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
)

// parsed gives each window its schedule parsed in zone tz, as the loader does.
func parsed(tz string, specs map[string]string, ws []Window) []Window {
	out := make([]Window, len(ws))
	for i, w := range ws {
		w.Cron = desired.MustParseCron(specs[w.Name], tz)
		out[i] = w
	}
	return out
}

func TestWindows(t *testing.T) {
	specs := map[string]string{"open": "30 9 * * MON-FRI", "close": "0 16 * * MON-FRI", "noon": "0 12 * * *", "new-year": "0 0 1 1 *"}
	market := []Window{{Name: "open", Replicas: 50}, {Name: "close", Replicas: 2}}
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name     string
		tz       string
		windows  []Window
		now      string
		want     string // window in effect, "" for none
		since    string
		next     string
		nextName string
	}{
		// New York is UTC-5 until 2026-03-08 02:00, then UTC-4.
		{"Friday before the open (EST)", "America/New_York", market, "2026-03-06T14:29:00Z", "close", "2026-03-05T21:00:00Z", "2026-03-06T14:30:00Z", "open"},
		{"Friday after the open (EST)", "America/New_York", market, "2026-03-06T14:31:00Z", "open", "2026-03-06T14:30:00Z", "2026-03-06T21:00:00Z", "close"},
		{"weekend: Friday's close holds", "America/New_York", market, "2026-03-07T18:00:00Z", "close", "2026-03-06T21:00:00Z", "2026-03-09T13:30:00Z", "open"},
		{"Monday after the DST change: the open is an hour earlier in UTC", "America/New_York", market, "2026-03-09T13:31:00Z", "open", "2026-03-09T13:30:00Z", "2026-03-09T20:00:00Z", "close"},
		{"Monday 13:31 UTC in EST would still be closed; in EDT it is open", "America/New_York", market, "2026-03-09T13:29:00Z", "close", "2026-03-06T21:00:00Z", "2026-03-09T13:30:00Z", "open"},
		{"exactly at a firing, it is in effect", "", []Window{{Name: "noon", Replicas: 3}}, "2026-11-27T12:00:00Z", "noon", "2026-11-27T12:00:00Z", "2026-11-28T12:00:00Z", "noon"},
		{"a yearly window fired months ago", "", []Window{{Name: "new-year", Replicas: 9}}, "2026-11-27T12:00:00Z", "new-year", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z", "new-year"},
		{"no windows", "", nil, "2026-11-27T12:00:00Z", "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Windows(parsed(tt.tz, specs, tt.windows), utc(tt.now))
			if err != nil {
				t.Fatal(err)
			}
			if got.OK != (tt.want != "") || got.Window.Name != tt.want {
				t.Fatalf("window %q (ok %v), want %q", got.Window.Name, got.OK, tt.want)
			}
			if tt.since != "" && !got.Since.Equal(utc(tt.since)) {
				t.Fatalf("since %s, want %s", got.Since.UTC(), tt.since)
			}
			if tt.next != "" && (!got.Next.Equal(utc(tt.next)) || got.NextWindow != tt.nextName) {
				t.Fatalf("next %s %s, want %s %s", got.NextWindow, got.Next.UTC(), tt.nextName, tt.next)
			}
		})
	}
	if _, err := Windows(market, time.Now()); err == nil {
		t.Fatal("a window without a parsed schedule was not an error")
	}
}

func ExampleWindows() {
	ny := func(spec string) *desired.Cron { return desired.MustParseCron(spec, "America/New_York") }
	windows := []Window{{Name: "open", Cron: ny("30 9 * * MON-FRI"), Replicas: 50}, {Name: "close", Cron: ny("0 16 * * MON-FRI"), Replicas: 2}}
	now := time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC) // a Friday, 10:00 in New York
	w, _ := Windows(windows, now)
	fmt.Println(w.Window.Name, w.Window.Replicas, "next:", w.NextWindow, w.Next.Format("15:04 MST"))
	// Output: open 50 next: close 16:00 EST
}

func BenchmarkWindows(b *testing.B) {
	ny := func(spec string) *desired.Cron { return desired.MustParseCron(spec, "America/New_York") }
	windows := []Window{{Name: "open", Cron: ny("30 9 * * MON-FRI"), Replicas: 50}, {Name: "close", Cron: ny("0 16 * * MON-FRI"), Replicas: 2}}
	now := time.Date(2026, 11, 28, 15, 0, 0, 0, time.UTC) // Saturday: the last firing is a day back
	for b.Loop() {
		if _, err := Windows(windows, now); err != nil {
			b.Fatal(err)
		}
	}
}
