package nodeagent

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/batonhq/baton/nodeagent/protocol"
)

// TestAgentRefusesOldTerms: once a node has seen a leader's term, in a
// command or a resync, commands of older terms are refused with
// stale_term, and the runtime is not touched.
func TestAgentRefusesOldTerms(t *testing.T) {
	h := runTestAgent(t)
	start := func(id string, term uint64) protocol.Reply {
		return h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: spec(id), Term: term})
	}
	if r := start("web-1", 0); !r.OK {
		t.Fatalf("term 0 before any term: %+v", r)
	}
	if r := start("web-2", 5); !r.OK {
		t.Fatalf("term 5: %+v", r)
	}
	for _, term := range []uint64{0, 4} {
		if r := start("web-3", term); r.OK || r.Code != protocol.CodeStaleTerm {
			t.Fatalf("term %d after 5: %+v, want stale_term", term, r)
		}
	}
	if r := h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStop, StopID: "web-1", Term: 4}); r.Code != protocol.CodeStaleTerm {
		t.Fatalf("stop of term 4: %+v", r)
	}
	// A new leader's resync raises the term before it sends any command.
	if err := h.nc.Publish(protocol.ResyncSubject, protocol.Encode(protocol.Resync{Version: protocol.Version, Term: 9, Leader: "s2"})); err != nil {
		t.Fatal(err)
	}
	// (Resyncs and commands are different subscriptions: wait until the
	// resync is handled, probing with harmless stops of an unknown replica.)
	deadline := time.Now().Add(5 * time.Second)
	for h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStop, StopID: "nothing", Term: 5}).Code != protocol.CodeStaleTerm {
		if time.Now().After(deadline) {
			t.Fatal("the resync of term 9 was never applied")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := start("web-4", 5); r.Code != protocol.CodeStaleTerm {
		t.Fatalf("term 5 after a resync of term 9: %+v", r)
	}
	if r := start("web-4", 9); !r.OK {
		t.Fatalf("term 9: %+v", r)
	}
	h.waitReport(hasReplica("web-4", protocol.StateRunning))
	if has, _ := h.rt.Has(context.Background(), "web-3"); has {
		t.Fatal("a refused start reached the runtime")
	}
	if has, _ := h.rt.Has(context.Background(), "web-1"); !has {
		t.Fatal("a refused stop reached the runtime")
	}
}

// TestTermSurvivesRestart: the newest term is kept in a file, so a
// restarted agent still refuses an old leader.
func TestTermSurvivesRestart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "leader-term")
	log := zerolog.Nop()
	g, err := newTermGuard(file)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := g.admit(&log, 7); !ok {
		t.Fatal("term 7 refused")
	}
	g2, err := newTermGuard(file)
	if err != nil {
		t.Fatal(err)
	}
	if ok, cur := g2.admit(&log, 6); ok || cur != 7 {
		t.Fatalf("after restart: term 6 admitted=%v, current %d", ok, cur)
	}
}

// TestTermFileDamaged: an empty or garbled term file (a crash while
// writing) does not keep the agent from starting.
func TestTermFileDamaged(t *testing.T) {
	for _, content := range []string{"", "garbage\n"} {
		file := filepath.Join(t.TempDir(), "leader-term")
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		g, err := newTermGuard(file)
		if err != nil {
			t.Fatalf("%q: %v", content, err)
		}
		log := zerolog.Nop()
		if ok, _ := g.admit(&log, 3); !ok {
			t.Fatalf("%q: term 3 refused", content)
		}
	}
}
