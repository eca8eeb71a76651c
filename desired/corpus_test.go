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

// corpusFloor is the share of the corpus's valid files of supported kinds
// that must load (the goal: 90%); rawFloor the share of all its
// files of supported kinds.
const (
	corpusFloor = 0.90
	rawFloor    = 0.85
)

// refusedByKubernetes are refusals that Kubernetes makes too (the API
// server, or kubectl apply, which GitOps tools use): files that are not
// valid manifests as written. They are not counted as Baton's. Each class
// has its number of files pinned, so that no file Baton should load hides
// among them: a change that refuses one more fails the test.
var refusedByKubernetes = []struct {
	reason *regexp.Regexp
	why    string
	files  int
}{
	{regexp.MustCompile(`containers\[\d+\]\.(image|name): required field is missing$`), "kustomize patches: a container without an image or a name", 15},
	{regexp.MustCompile(`^\$patch: field not allowed`), "a kustomize delete patch", 1},
	{regexp.MustCompile(`restartPolicy: required field is missing$`), "a kustomize patch of a Job without restartPolicy (Always, the default, is refused in a Job)", 1},
	{regexp.MustCompile(`^kind: \S+ \S+ was removed from Kubernetes`), "API versions current Kubernetes no longer serves", 8},
	{regexp.MustCompile(`^metadata\.generateName: `), "kubectl apply refuses a generated name", 4},
	{regexp.MustCompile(`^spec\.ports: a Service with a virtual address needs at least one port`), "kustomize patches of a Service without ports", 3},
	{regexp.MustCompile(`invalid value "[^"]*(\$|<|[A-Z]_[A-Z])`), "templates: placeholders such as ${KSA_NAME}, <KSA_NAME> or PV_NAME left in", 9},
	{regexp.MustCompile(`duplicate key`), "a key written twice in a mapping", 5},
	{regexp.MustCompile(`protocol: invalid value "tcp"`), "protocol in lower case", 2},
	{regexp.MustCompile(`containerPort: must be an integer, not a string`), "a port number written as a string", 1},
}

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
	invalid := make([][]string, len(refusedByKubernetes))
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
		for i, c := range refusedByKubernetes {
			if c.reason.MatchString(reason) {
				invalid[i] = append(invalid[i], p)
				return nil
			}
		}
		why[reason] = append(why[reason], p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	notValid := 0
	var b strings.Builder
	for i, c := range refusedByKubernetes {
		notValid += len(invalid[i])
		fmt.Fprintf(&b, "%4d  %s\n", len(invalid[i]), c.why)
		if len(invalid[i]) != c.files {
			t.Errorf("%d files refused as %s, want %d: %v", len(invalid[i]), c.why, c.files, invalid[i])
		}
	}
	t.Logf("refused as Kubernetes refuses them too (not counted):\n%s", b.String())
	raw := float64(knownLoaded) / float64(ofKnown)
	share := float64(knownLoaded) / float64(ofKnown-notValid)
	t.Logf("%d files, %d load; of the %d whose kinds Baton knows, %d load: %.1f%%; of the %d valid ones: %.1f%%",
		files, loaded, ofKnown, knownLoaded, 100*raw, ofKnown-notValid, 100*share)
	reasons := slices.SortedFunc(maps.Keys(why), func(a, b string) int {
		if d := len(why[b]) - len(why[a]); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	b.Reset()
	for _, r := range reasons {
		fmt.Fprintf(&b, "%4d  %s  (e.g. %s)\n", len(why[r]), clip(r, 160), why[r][0])
	}
	t.Logf("refused, by the first reason:\n%s", b.String())
	if share < corpusFloor || raw < rawFloor {
		t.Fatalf("%.1f%% of the corpus's valid files of known kinds load (%.1f%% of all), below the floor of %.0f%% (%.0f%%)",
			100*share, 100*raw, 100*corpusFloor, 100*rawFloor)
	}
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
