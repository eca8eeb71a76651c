package desired

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Cron is a cron schedule parsed, in its time zone, when the revision
// loads: a reconciler pass never parses a spec or loads a zone.
type Cron struct {
	Spec  string
	Zone  *time.Location
	sched cron.Schedule
}

// cronParser accepts the five standard fields and descriptors like @hourly.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseCron parses a cron spec (five fields or a descriptor) in the IANA
// time zone tz ("" or "UTC" for UTC).
func ParseCron(spec, tz string) (*Cron, error) {
	if strings.Contains(spec, "TZ=") {
		return nil, fmt.Errorf("set the time zone in timeZone, not in the schedule")
	}
	loc := time.UTC
	if tz != "" && tz != "UTC" {
		l, err := time.LoadLocation(tz)
		if err != nil || tz == "Local" {
			return nil, fmt.Errorf("unknown time zone %q (use an IANA name such as America/New_York)", tz)
		}
		loc = l
	}
	s, err := cronParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("invalid cron schedule %q: %v", spec, err)
	}
	if ss, ok := s.(*cron.SpecSchedule); ok {
		ss.Location = loc
	}
	return &Cron{Spec: spec, Zone: loc, sched: s}, nil
}

// MustParseCron is ParseCron for tests and fixed specs; it panics on an error.
func MustParseCron(spec, tz string) *Cron {
	c, err := ParseCron(spec, tz)
	if err != nil {
		panic(err)
	}
	return c
}

// Next is the first firing strictly after t (zero if none).
func (c *Cron) Next(t time.Time) time.Time { return c.sched.Next(t.In(c.Zone)) }
