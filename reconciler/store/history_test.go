package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/batonhq/baton/desired"
)

// A history entry keeps a bounded part of a big revision's changes.
func TestKeepChanges(t *testing.T) {
	var changes []desired.Change
	for i := range MaxHistoryChanges + 7 {
		c := desired.Change{Kind: "Deployment", Name: fmt.Sprintf("w%d", i), Op: "changed"}
		for j := range MaxChangeFields + 3 {
			v := "2"
			if i == 0 && j == 0 {
				v = strings.Repeat("é", MaxChangeValue)
			}
			c.Fields = append(c.Fields, desired.FieldChange{Path: fmt.Sprintf("f%d", j), Old: "1", New: v})
		}
		changes = append(changes, c)
	}
	kept, more := KeepChanges(changes)
	if len(kept) != MaxHistoryChanges || more != 7 {
		t.Fatalf("kept %d, %d more; want %d, 7", len(kept), more, MaxHistoryChanges)
	}
	f := kept[0].Fields
	if len(f) != MaxChangeFields+1 || f[MaxChangeFields].Path != "(3 more fields)" {
		t.Fatalf("fields: %d, last %q", len(f), f[len(f)-1].Path)
	}
	if v := f[0].New; len(v) > MaxChangeValue+len("…") || !utf8.ValidString(v) || !strings.HasSuffix(v, "…") {
		t.Fatalf("a long value: %d bytes, valid %v: %q", len(v), utf8.ValidString(v), v)
	}
	if len(changes[0].Fields[0].New) != 2*MaxChangeValue {
		t.Fatal("KeepChanges changed its input")
	}
	small, more := KeepChanges(changes[:1:1])
	if more != 0 || len(small) != 1 {
		t.Fatalf("one change: %d, %d", len(small), more)
	}
}

// An entry's changes stay within MaxChangesBytes however long the names,
// paths and values, and what is left out is counted.
func TestKeepChangesBytes(t *testing.T) {
	var changes []desired.Change
	long := strings.Repeat("x", 5000)
	for i := range 40 {
		c := desired.Change{Kind: "Deployment", Name: fmt.Sprintf("w%d-%s", i, long), Op: "changed"}
		for j := range MaxChangeFields {
			c.Fields = append(c.Fields, desired.FieldChange{Path: fmt.Sprintf("f%d.%s", j, long), Old: long, New: long})
		}
		changes = append(changes, c)
	}
	kept, more := KeepChanges(changes)
	b, _ := json.Marshal(HistoryEntry{Changes: kept})
	if len(b) > MaxChangesBytes+16<<10 || len(kept) == 0 || len(kept)+more != 40 {
		t.Fatalf("%d changes kept in %d bytes, %d more", len(kept), len(b), more)
	}
	listed := WithoutChanges([]HistoryEntry{{Changes: kept, MoreChanges: more}})
	if listed[0].Changes != nil || listed[0].MoreChanges != 40 {
		t.Fatalf("a listing: %+v", listed[0])
	}
}
