package desired

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
)

// corpusFloor is the share of the corpus's files of supported kinds that
// must load; raised as support grows (the goal is 0.90).
const corpusFloor = 0.80

// topKind finds the kinds of a YAML stream's documents (and of a List's
// items).
var topKind = regexp.MustCompile(`(?m)^(?:  |- |    )?kind:\s*"?([A-Za-z]+)"?\s*$`)

// TestCorpus loads every file of testdata/corpus (real manifests from
// public repositories, see SOURCES.md) on its own and reports the share
// that loads among the files whose kinds Baton knows (acts on or accepts),
// and why the others are refused, most common first. It fails below
// corpusFloor.
func TestCorpus(t *testing.T) {
	sch, err := compileSchema(cuecontext.New())
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	it, _ := sch.LookupPath(cue.ParsePath("kinds")).Fields()
	for it.Next() {
		ks, _ := it.Value().Fields()
		for ks.Next() {
			known[ks.Selector().Unquoted()] = true
		}
	}
	known["List"] = true
	var files, loaded, ofKnown, knownLoaded int
	why := map[string][]string{}
	err = filepath.WalkDir("testdata/corpus", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".json")) {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		supported := true
		for _, m := range topKind.FindAllStringSubmatch(string(data), -1) {
			supported = supported && known[m[1]]
		}
		_, lerr := Load(map[string][]byte{filepath.Base(p): data})
		if lerr == nil {
			loaded++
		}
		if !supported {
			return nil
		}
		ofKnown++
		if lerr == nil {
			knownLoaded++
			return nil
		}
		var errs Errors
		reason := lerr.Error()
		if e, ok := lerr.(Errors); ok && len(e) > 0 {
			errs = e
			reason = errs[0].Field + ": " + errs[0].Msg
		}
		why[reason] = append(why[reason], p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	share := float64(knownLoaded) / float64(ofKnown)
	t.Logf("%d files, %d load; of the %d whose kinds Baton knows, %d load: %.1f%%", files, loaded, ofKnown, knownLoaded, 100*share)
	reasons := slices.SortedFunc(maps.Keys(why), func(a, b string) int {
		if d := len(why[b]) - len(why[a]); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	var b strings.Builder
	for _, r := range reasons {
		fmt.Fprintf(&b, "%4d  %s  (e.g. %s)\n", len(why[r]), clip(r, 160), why[r][0])
	}
	t.Logf("refused, by the first reason:\n%s", b.String())
	if share < corpusFloor {
		t.Fatalf("%.1f%% of the corpus's files of known kinds load, below the floor of %.0f%%", 100*share, 100*corpusFloor)
	}
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
