package desired

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
)

// Loader loads revisions with fixed Options, keeping what each file held
// once validated and normalized, by path and content, for the next loads:
// a commit that changes one file of a large repository validates that file
// only. The files of one load are validated in parallel, one CUE context per
// core. A Loader is safe for concurrent use (loads take turns).
type Loader struct {
	opts Options

	mu    sync.Mutex
	cache map[string]*unitResult
	gen   int
}

// NewLoader returns a Loader with opts.
func NewLoader(opts Options) *Loader {
	opts.defaults()
	return &Loader{opts: opts, cache: map[string]*unitResult{}}
}

// Load renders the desired state from the files of one revision, as
// LoadWith does.
func (l *Loader) Load(ctx context.Context, files map[string][]byte) (*State, error) {
	return loadWith(ctx, files, l.opts, l)
}

// keepGenerations is how many loads an unused file stays cached: the
// revision in force, the next one, and a plan's.
const keepGenerations = 3

// unit is what is validated on its own: a YAML file, or the .cue files of
// one directory (one CUE package).
type unit struct {
	path  string            // the file, or the directory
	data  []byte            // a YAML file's content
	files map[string][]byte // a directory's .cue files
	key   string            // path and content digest
	pre   Errors            // refused before parsing (size, text)
}

// unitResult is a unit validated and normalized: its objects (hashes not
// computed yet: they depend on other files), and per document what the
// merge needs, in document order.
type unitResult struct {
	parseErrs Errors
	items     []item
	part      State
	docs      []document // kept only when error positions are needed
	gen       int
}

// item is one document: its validation errors, or its identity and its
// normalization errors.
type item struct {
	verrs Errors
	id    *objectID
	nerrs Errors
}

// objectID names an object and where it was defined.
type objectID struct {
	key, kind, name, file   string
	line, nameLine, nameCol int
}

func unitKey(p string, parts ...[]byte) string {
	h := sha256.New()
	h.Write([]byte(p))
	for _, b := range parts {
		h.Write([]byte{0})
		h.Write(b)
	}
	return fmt.Sprintf("%s\x00%x", p, h.Sum(nil))
}

// units splits a revision's files into units, in the order load reports
// them: YAML files by path, then CUE directories by path.
func units(files map[string][]byte, opts Options) ([]unit, error) {
	if len(files) > MaxFiles {
		return nil, fmt.Errorf("%w: %d files, more than the %d allowed", ErrTooLarge, len(files), MaxFiles)
	}
	var paths []string
	total := 0
	for p, b := range files {
		if IsManifest(p) && jsonManifest(p, b) {
			total += len(b)
			paths = append(paths, p)
		}
	}
	if total > opts.MaxTotalBytes {
		return nil, fmt.Errorf("%w: manifests total %d bytes, more than the %d allowed", ErrTooLarge, total, opts.MaxTotalBytes)
	}
	sort.Strings(paths)
	var out []unit
	cueDirs := map[string]map[string][]byte{}
	for _, p := range paths {
		data := files[p]
		if len(data) > opts.MaxFileBytes {
			out = append(out, unit{path: p, key: unitKey(p, data), pre: Errors{{File: p, Msg: fmt.Sprintf("file is %d bytes, more than the %d allowed", len(data), opts.MaxFileBytes)}}})
			continue
		}
		if e := checkText(p, data); e != nil {
			out = append(out, unit{path: p, key: unitKey(p, data), pre: Errors{e}})
			continue
		}
		if strings.HasSuffix(p, ".cue") {
			dir := path.Dir(p)
			if cueDirs[dir] == nil {
				cueDirs[dir] = map[string][]byte{}
			}
			cueDirs[dir][p] = data
			continue
		}
		out = append(out, unit{path: p, data: data, key: unitKey(p, data)})
	}
	for _, dir := range sortedKeys(cueDirs) {
		var parts [][]byte
		for _, name := range sortedKeys(cueDirs[dir]) {
			parts = append(parts, []byte(name), cueDirs[dir][name])
		}
		out = append(out, unit{path: dir, files: cueDirs[dir], key: unitKey(dir+"/", parts...)})
	}
	return out, nil
}

// worker validates units with a CUE context of its own.
type worker struct {
	ctx *cue.Context
	sch cue.Value
}

func newWorker() (*worker, error) {
	ctx := cuecontext.New()
	sch, err := compileSchema(ctx)
	if err != nil {
		return nil, err
	}
	return &worker{ctx: ctx, sch: sch}, nil
}

// unitsValidated counts the units validated (not taken from a cache).
var unitsValidated atomic.Int64

// do validates and normalizes one unit.
func (w *worker) do(u unit, opts Options, keepDocs bool) *unitResult {
	unitsValidated.Add(1)
	res := &unitResult{part: State{Workloads: []Workload{}}}
	if len(u.pre) > 0 {
		res.parseErrs = u.pre
		return res
	}
	var docs []document
	if u.files != nil {
		docs = cueDocuments(w.ctx, u.path, u.files, &res.parseErrs)
	} else {
		docs = yamlDocuments(w.ctx, u.path, u.data, &res.parseErrs)
	}
	if keepDocs {
		res.docs = docs
	}
	for _, d := range docs {
		var it item
		v, kind, ok := validate(w.sch, d, &it.verrs)
		if !ok {
			res.items = append(res.items, it)
			continue
		}
		ns := d.namespace()
		name := Qualify(ns, d.str("metadata.name"))
		key := kind + "/" + name
		switch {
		case kind == "Secret" || kind == "SealedSecret":
			key = "Secret/" + name // one namespace for both
		case kind == "Pod" && bareIsJob(d.str("spec.restartPolicy")):
			key = "Job/" + name // a Pod runs as a Job or a Deployment does
		case kind == "Pod" || kind == "DaemonSet" || kind == "ReplicationController" || kind == "StatefulSet":
			key = "Deployment/" + name // one name space for the workloads
		}
		line, col := nearest(d.value, "metadata.name")
		it.id = &objectID{key: key, kind: kind, name: name, file: d.file, line: d.line(), nameLine: line, nameCol: col}
		var objects State // the document's, named in its namespace, then added
		add(&objects, &norm{d: d, errs: &it.nerrs}, kind, v, opts)
		qualify(&objects, ns)
		res.part.append(&objects)
		res.items = append(res.items, it)
	}
	return res
}

// load renders a revision: its units from the cache (l may be nil) or
// validated anew in parallel, then merged in order, checked across objects
// and hashed. When a reference between objects is wrong, the revision is
// validated again without the cache, to name the positions.
func load(files map[string][]byte, opts Options, l *Loader) (*State, error) {
	opts.defaults()
	us, err := units(files, opts)
	if err != nil {
		return nil, err
	}
	st, errs, needDocs, err := merge(us, opts, l, false)
	if err == nil && needDocs {
		st, errs, _, err = merge(us, opts, nil, true)
	}
	if err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return st, nil
}

// merge gets every unit's result and merges them into one state.
func merge(us []unit, opts Options, l *Loader, keepDocs bool) (*State, Errors, bool, error) {
	results := make([]*unitResult, len(us))
	var todo []int
	if l != nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.gen++
		for i, u := range us {
			if r, ok := l.cache[u.key]; ok {
				r.gen = l.gen
				results[i] = r
			} else {
				todo = append(todo, i)
			}
		}
	} else {
		for i := range us {
			todo = append(todo, i)
		}
	}
	if err := validateUnits(us, todo, results, opts, keepDocs); err != nil {
		return nil, nil, false, err
	}
	if l != nil {
		for _, i := range todo {
			results[i].gen = l.gen
			l.cache[us[i].key] = results[i]
		}
		for k, r := range l.cache {
			if l.gen-r.gen >= keepGenerations {
				delete(l.cache, k)
			}
		}
	}

	var errs Errors
	for _, r := range results {
		errs = append(errs, r.parseErrs...)
	}
	st := &State{Workloads: []Workload{}}
	seen := map[string]string{}
	var docs []document
	for _, r := range results {
		for _, it := range r.items {
			errs = append(errs, it.verrs...)
			if it.id == nil {
				continue
			}
			if prev, dup := seen[it.id.key]; dup {
				errs = append(errs, &Error{File: it.id.file, Line: it.id.nameLine, Col: it.id.nameCol, Field: "metadata.name",
					Msg: fmt.Sprintf("%s %q is already defined at %s", it.id.kind, it.id.name, prev)})
				continue
			}
			seen[it.id.key] = fmt.Sprintf("%s:%d", it.id.file, it.id.line)
			errs = append(errs, it.nerrs...)
		}
		st.append(&r.part)
		docs = append(docs, r.docs...)
	}
	if len(errs) > 0 {
		return nil, errs, false, nil
	}
	sortState(st)
	var index map[string]document
	if keepDocs {
		index = docIndex(docs)
	}
	r := resolve(st, index, &errs)
	if r.needPositions {
		return nil, nil, true, nil
	}
	if len(errs) > 0 {
		return nil, errs, false, nil
	}
	st.Warnings = unenforced(st)
	return st, nil, false, nil
}

// validateUnits validates the units todo, one worker per core (at most one
// per unit).
func validateUnits(us []unit, todo []int, results []*unitResult, opts Options, keepDocs bool) error {
	if len(todo) == 0 {
		return nil
	}
	n := min(runtime.GOMAXPROCS(0), len(todo))
	next := make(chan int, len(todo))
	for _, i := range todo {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	errc := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				// A bug in a parser must not take the process down.
				if p := recover(); p != nil {
					errc <- fmt.Errorf("internal error loading the revision: %v", p)
				}
			}()
			w, err := newWorker()
			if err != nil {
				errc <- err
				return
			}
			for i := range next {
				results[i] = w.do(us[i], opts, keepDocs)
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// append adds the objects of part (one unit's) to st. The objects are
// shared, not copied: a cached unit's are never changed (resolve sets the
// hashes on st's copies of the structs).
func (st *State) append(part *State) {
	st.Workloads = append(st.Workloads, part.Workloads...)
	st.Jobs = append(st.Jobs, part.Jobs...)
	st.CronJobs = append(st.CronJobs, part.CronJobs...)
	st.ConfigMaps = append(st.ConfigMaps, part.ConfigMaps...)
	st.Secrets = append(st.Secrets, part.Secrets...)
	st.Claims = append(st.Claims, part.Claims...)
	st.Services = append(st.Services, part.Services...)
	st.Autoscalers = append(st.Autoscalers, part.Autoscalers...)
	st.Schedules = append(st.Schedules, part.Schedules...)
	st.Ignored = append(st.Ignored, part.Ignored...)
	st.Namespaces = append(st.Namespaces, part.Namespaces...)
	st.Budgets = append(st.Budgets, part.Budgets...)
	st.Endpoints = append(st.Endpoints, part.Endpoints...)
	st.Pools = append(st.Pools, part.Pools...)
}
