package reconciler

import (
	"fmt"
	"maps"
	"strings"
	"time"
)

// PoolResult is what the pool worker did of an action: machines the
// provisioner made (with its IDs), machines asked and not known to be
// made, machines never asked for (no provisioner, no token, the action
// dropped), machines it deleted (and of those, whose credentials it revoked),
// nodes whose drain could not be recorded, and why what failed failed.
type PoolResult struct {
	Pool    string
	Created []PoolMachine
	// Listed are the machines the provisioner listed (Listing: it was
	// asked, and answered).
	Listed     []PoolMachine
	Listing    bool
	Failed     []string
	NotAsked   []string
	Deleted    []string
	Revoked    []string
	NotDrained []string
	Err        string
}

// ApplyPoolResults records what the pool worker did: a made machine gets
// its ID and its join deadline counts from now; one not known to be made
// (a failure, a timeout, left out of the answer) counts as a failure (the
// pool backs off) and is deleted by name at once, in case it exists; one
// never asked for is dropped, and the pool backs off; a deleted one is
// dropped; a drain not recorded is forgotten (decided
// again); a deletion that failed stays and is asked again later.
func ApplyPoolResults(records map[string]PoolRecord, results []PoolResult, now time.Time) (map[string]PoolRecord, []string) {
	var events []string
	out := maps.Clone(records)
	for _, res := range results {
		rec, ok := out[res.Pool]
		if !ok {
			continue // the pool left the revision meanwhile
		}
		rec.Machines = append([]PoolMachine(nil), rec.Machines...)
		ids := map[string]string{}
		for _, m := range res.Created {
			ids[m.Name] = m.ID
		}
		gone, failed, undrain, notAsked := set(res.Deleted), set(res.Failed), set(res.NotDrained), set(res.NotAsked)
		kept := rec.Machines[:0]
		for _, m := range rec.Machines {
			if notAsked[m.Name] && !m.Joined && m.Deleting.IsZero() {
				continue
			}
			if id, ok := ids[m.Name]; ok {
				m.ID = id
				if m.Deleting.IsZero() && !m.Joined {
					m.Asked = now
				}
			}
			if undrain[m.Name] {
				m.Draining = false
			}
			if failed[m.Name] && !m.Joined && m.Deleting.IsZero() {
				m.Deleting, m.DeleteAt = now, now
			}
			if gone[m.Name] {
				continue
			}
			kept = append(kept, m)
		}
		rec.Machines = kept
		if res.Listing {
			known := map[string]bool{}
			for _, m := range rec.Machines {
				known[m.Name] = true
			}
			for _, m := range rec.Strays {
				known[m.Name] = true
			}
			for _, m := range res.Listed {
				if !known[m.Name] {
					rec.Strays = append(rec.Strays, m)
					known[m.Name] = true
				}
			}
		}
		msg := ""
		switch {
		case len(res.NotAsked) > 0:
			rec.Failures++
			rec.RetryAt = now.Add(poolBackoff(rec.Failures))
			msg = fmt.Sprintf("%s not asked for (%s); asking again after %s", machines(len(res.NotAsked)), res.Err, poolBackoff(rec.Failures))
		case len(res.Failed) > 0:
			rec.Failures++
			rec.RetryAt = now.Add(poolBackoff(rec.Failures))
			msg = fmt.Sprintf("the provisioner did not make %s (%s): deleting them by name in case they exist; asking again after %s", machines(len(res.Failed)), res.Err, poolBackoff(rec.Failures))
		case res.Err != "":
			msg = fmt.Sprintf("%s: tried again later", res.Err)
		case len(res.Created) > 0:
			msg = fmt.Sprintf("the provisioner made %s; waiting for them to join", machines(len(res.Created)))
		case len(res.Deleted) > 0:
			msg = fmt.Sprintf("machine %s deleted by the provisioner", strings.Join(res.Deleted, ", "))
			if len(res.Revoked) > 0 {
				msg += fmt.Sprintf("; credential of %s revoked", strings.Join(res.Revoked, ", "))
			}
		}
		if msg != "" {
			rec.Last = msg
			events = append(events, fmt.Sprintf("NodePool %s: %s", res.Pool, msg))
		}
		out[res.Pool] = rec
	}
	return out, events
}

func set(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
