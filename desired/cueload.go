package desired

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"
	cueyaml "cuelang.org/go/encoding/yaml"

	"github.com/batonhq/baton/desired/schema"
)

// document is one object of a revision, before validation.
type document struct {
	file  string
	value cue.Value
	// json is the document's JSON, made once for the fast check and the
	// decoder; nil when the document is not concrete on its own.
	json []byte
	// plain: the document holds only strings, integers, booleans, nulls,
	// maps and lists, which its JSON keeps exactly (a float such as 3. or
	// 1e0 is written as an integer, bytes as base64 text): only such a
	// document may take the fast check.
	plain bool
}

// newDocument is v from file, with its JSON when v is concrete on its own.
func newDocument(file string, v cue.Value) document {
	j, err := v.MarshalJSON()
	if err != nil {
		j = nil // not concrete alone: the schema and cue's decoder judge it
	}
	return document{file: file, value: v, json: j}
}

func (d document) line() int { return d.value.Pos().Line() }

// fieldPaths are the paths every document is asked for, parsed once.
var fieldPaths = map[string]cue.Path{
	"apiVersion":    cue.ParsePath("apiVersion"),
	"kind":          cue.ParsePath("kind"),
	"metadata.name": cue.ParsePath("metadata.name"),
}

// pathOf parses a field path, the common ones once.
func pathOf(field string) cue.Path {
	if p, ok := fieldPaths[field]; ok {
		return p
	}
	return cue.ParsePath(field)
}

func (d document) str(field string) string {
	s, _ := d.value.LookupPath(pathOf(field)).String()
	return s
}

// compileSchema evaluates the embedded schema in ctx.
func compileSchema(ctx *cue.Context) (cue.Value, error) {
	v := ctx.CompileString(schema.Source, cue.Filename(schema.ImportPath+"/schema.cue"))
	if err := v.Err(); err != nil {
		return v, fmt.Errorf("embedded schema: %v", cueerrors.Details(err, nil))
	}
	return v, nil
}

// MaxDepth bounds the nesting of a manifest.
const MaxDepth = 64

// checkText refuses files that are not UTF-8 or nest too deeply, before any
// parser sees them.
func checkText(file string, data []byte) *Error {
	if !utf8.Valid(data) {
		line := 1 + bytes.Count(data[:firstInvalid(data)], []byte("\n"))
		return &Error{File: file, Line: line, Col: 1, Msg: "file is not valid UTF-8"}
	}
	depth, line := 0, 1
	for _, b := range data {
		switch b {
		case '\n':
			line++
		case '[', '{':
			if depth++; depth > MaxDepth {
				return &Error{File: file, Line: line, Col: 1, Msg: fmt.Sprintf("nested more than %d levels deep", MaxDepth)}
			}
		case ']', '}':
			depth--
		}
	}
	for i, l := range bytes.Split(data, []byte("\n")) {
		if indent := len(l) - len(bytes.TrimLeft(l, " \t-")); indent > 2*MaxDepth {
			return &Error{File: file, Line: i + 1, Col: 1, Msg: fmt.Sprintf("nested more than %d levels deep", MaxDepth)}
		}
	}
	return nil
}

func firstInvalid(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// extract decodes the next document, turning a panic of the decoder on
// malformed input into an error: bad input must never crash the reconciler.
func extract(dec *cueyaml.Decoder) (expr ast.Expr, err error) {
	defer func() {
		if p := recover(); p != nil {
			expr, err = nil, fmt.Errorf("cannot parse YAML: the decoder failed on this input (%v)", p)
		}
	}()
	return dec.Extract()
}

// yamlDocuments parses a multi-document YAML file into CUE values.
func yamlDocuments(ctx *cue.Context, file string, data []byte, errs *Errors) []document {
	var docs []document
	// YAML line breaks are LF, CRLF or a lone CR; CUE's decoder mishandles
	// the lone CR (it panics on some inputs): make them all LF, which keeps
	// line numbers.
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	data = bytes.ReplaceAll(data, []byte("\r"), []byte("\n"))
	if blankYAML(data) {
		return nil // an empty or comment-only file holds no object (as kubectl)
	}
	dec := cueyaml.NewDecoder(file, bytes.NewReader(data))
	for i := 0; ; i++ {
		expr, err := extract(dec)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			*errs = append(*errs, fromCUE(file, err, cue.Value{}, cue.Value{})...)
			return docs
		}
		if i >= MaxDocuments {
			*errs = append(*errs, &Error{File: file, Msg: fmt.Sprintf("more than %d documents", MaxDocuments)})
			return docs
		}
		if isNull(expr) {
			continue // an empty document, e.g. after a trailing "---"
		}
		if dups := duplicateKeys(file, expr); len(dups) > 0 {
			*errs = append(*errs, dups...)
			continue
		}
		// kind: List (what kubectl get -o yaml writes): its items are the
		// objects, each at its own lines.
		exprs := []ast.Expr{expr}
		if items, ok := listItems(expr); ok {
			exprs = items
		}
		if len(docs)+len(exprs) > MaxDocuments {
			*errs = append(*errs, &Error{File: file, Msg: fmt.Sprintf("more than %d documents", MaxDocuments)})
			return docs
		}
		for _, expr := range exprs {
			v := ctx.BuildExpr(expr, cue.Filename(file))
			if err := v.Err(); err != nil {
				*errs = append(*errs, fromCUE(file, err, cue.Value{}, cue.Value{})...)
				continue
			}
			d := newDocument(file, v)
			d.plain = d.json != nil && plainData(expr)
			docs = append(docs, d)
		}
	}
}

// plainData reports whether a YAML document's syntax tree holds only maps,
// lists, strings, integers, booleans and nulls.
func plainData(expr ast.Expr) bool {
	plain := true
	ast.Walk(expr, func(n ast.Node) bool {
		if !plain {
			return false
		}
		switch x := n.(type) {
		case *ast.StructLit, *ast.ListLit, *ast.Field, *ast.Ident, *ast.CommentGroup, *ast.Comment:
		case *ast.BasicLit:
			switch x.Kind {
			case token.INT, token.TRUE, token.FALSE, token.NULL:
			case token.STRING:
				// Bytes (a YAML !!binary) are a single-quoted CUE literal.
				plain = !strings.HasPrefix(strings.TrimLeft(x.Value, "#"), "'")
			default: // FLOAT and anything else
				plain = false
			}
		case *ast.UnaryExpr:
			// A negative integer.
			lit, ok := x.X.(*ast.BasicLit)
			plain = ok && x.Op == token.SUB && lit.Kind == token.INT
			return false
		default:
			plain = false
		}
		return plain
	}, nil)
	return plain
}

// blankYAML reports whether a YAML file has nothing but blank lines,
// comments and document markers.
func blankYAML(data []byte) bool {
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		l := bytes.TrimSpace(line)
		if len(l) > 0 && l[0] != '#' && !bytes.Equal(l, []byte("---")) && !bytes.Equal(l, []byte("...")) {
			return false
		}
	}
	return true
}

func isNull(e ast.Expr) bool {
	b, ok := e.(*ast.BasicLit)
	return e == nil || (ok && b.Kind == token.NULL)
}

// cueDocuments evaluates the .cue files of one directory as one package and
// returns the objects it defines: every top-level regular field whose value
// has a kind, or that is a list of such values.
func cueDocuments(ctx *cue.Context, dir string, files map[string][]byte, errs *Errors) []document {
	bctx := build.NewContext()
	sch := bctx.NewInstance(schema.ImportPath, nil)
	sch.ImportPath = schema.ImportPath
	if err := addFile(sch, schema.ImportPath+"/schema.cue", []byte(schema.Source)); err != nil {
		*errs = append(*errs, &Error{File: "schema", Msg: err.Error()})
		return nil
	}
	inst := bctx.NewInstance(dir, nil)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := addFile(inst, name, files[name]); err != nil {
			*errs = append(*errs, fromCUE(name, err, cue.Value{}, cue.Value{})...)
			return nil
		}
	}
	for _, f := range inst.Files {
		for imp := range f.ImportSpecs() {
			p := strings.Trim(imp.Path.Value, `"`)
			first, _, _ := strings.Cut(p, "/")
			// The schema and CUE's standard library, which does no I/O
			// outside tool/ packages; nothing else can be fetched.
			if p != schema.ImportPath && (strings.Contains(first, ".") || first == "tool") {
				*errs = append(*errs, &Error{File: f.Filename, Line: imp.Pos().Line(), Col: imp.Pos().Column(),
					Msg: fmt.Sprintf("import %q: only %q and CUE's standard library (not tool/) can be imported", p, schema.ImportPath)})
				return nil
			}
		}
	}
	inst.Imports = []*build.Instance{sch}
	v := ctx.BuildInstance(inst)
	if err := v.Err(); err != nil {
		*errs = append(*errs, fromCUE(names[0], err, cue.Value{}, cue.Value{})...)
		return nil
	}
	var docs []document
	it, err := v.Fields(cue.Optional(false), cue.Definitions(false), cue.Hidden(false))
	if err != nil {
		*errs = append(*errs, fromCUE(names[0], err, cue.Value{}, cue.Value{})...)
		return nil
	}
	for it.Next() {
		fv := it.Value()
		file := fileOf(fv, names[0])
		switch fv.IncompleteKind() {
		case cue.StructKind:
			if fv.LookupPath(cue.ParsePath("kind")).Exists() {
				docs = append(docs, newDocument(file, fv))
			}
		case cue.ListKind:
			li, err := fv.List()
			if err != nil {
				continue
			}
			for li.Next() {
				if e := li.Value(); e.LookupPath(cue.ParsePath("kind")).Exists() {
					docs = append(docs, newDocument(fileOf(e, file), e))
				}
			}
		}
	}
	return capEvaluated(docs, errs)
}

// MaxObjectBytes caps one object a CUE package evaluates to, as
// MaxFileBytes caps a file; maxEvaluatedBytes caps all of a package's
// objects, as MaxTotalBytes caps a revision's files (a variable for tests).
const MaxObjectBytes = MaxFileBytes

var maxEvaluatedBytes = MaxTotalBytes

// capEvaluated refuses a CUE package whose objects are too large once
// evaluated (a comprehension can build far more than its files hold), and
// drops them so the memory can be given back.
func capEvaluated(docs []document, errs *Errors) []document {
	total := 0
	refused := false
	for _, d := range docs {
		total += len(d.json)
		if len(d.json) > MaxObjectBytes {
			*errs = append(*errs, &Error{File: d.file, Line: d.line(), Col: d.value.Pos().Column(),
				Msg: fmt.Sprintf("%s %s is %d bytes once evaluated, more than the %d an object may be", d.str("kind"), d.str("metadata.name"), len(d.json), MaxObjectBytes)})
			refused = true
		}
	}
	if total > maxEvaluatedBytes && len(docs) > 0 {
		*errs = append(*errs, &Error{File: docs[0].file, Msg: fmt.Sprintf("the package evaluates to %d bytes of objects, more than the %d a revision may hold", total, maxEvaluatedBytes)})
		refused = true
	}
	if refused {
		// Nothing of it is kept (the loader caches results), and what the
		// evaluation took goes back to the system now, not at the next GC.
		clear(docs)
		debug.FreeOSMemory()
		return nil
	}
	return docs
}

func fileOf(v cue.Value, fallback string) string {
	if p := v.Pos(); p.IsValid() && p.Filename() != "" {
		return p.Filename()
	}
	return fallback
}

// kindsPath is where the schema maps apiVersion and kind to a definition.
func definition(sch cue.Value, apiVersion, kind string) (cue.Value, bool) {
	d := sch.LookupPath(cue.MakePath(cue.Str("kinds"), cue.Str(apiVersion), cue.Str(kind)))
	return d, d.Exists()
}

// removedAPIs are API versions Kubernetes removed that old manifests still
// use: the release that removed each, and what replaces it (their fields
// differ, so they are not read as the new version).
var removedAPIs = map[string][2]string{
	"extensions/v1beta1 Deployment":                        {"1.16", "apps/v1 Deployment (spec.selector is required)"},
	"apps/v1beta1 Deployment":                              {"1.16", "apps/v1 Deployment (spec.selector is required)"},
	"apps/v1beta2 Deployment":                              {"1.16", "apps/v1 Deployment"},
	"autoscaling/v2beta1 HorizontalPodAutoscaler":          {"1.25", "autoscaling/v2 HorizontalPodAutoscaler (metrics[].resource.target)"},
	"batch/v1beta1 CronJob":                                {"1.25", "batch/v1 CronJob"},
	"policy/v1beta1 PodDisruptionBudget":                   {"1.25", "policy/v1 PodDisruptionBudget"},
	"extensions/v1beta1 Ingress":                           {"1.22", "networking.k8s.io/v1 Ingress"},
	"networking.k8s.io/v1beta1 Ingress":                    {"1.22", "networking.k8s.io/v1 Ingress"},
	"rbac.authorization.k8s.io/v1beta1 Role":               {"1.22", "rbac.authorization.k8s.io/v1"},
	"rbac.authorization.k8s.io/v1beta1 ClusterRole":        {"1.22", "rbac.authorization.k8s.io/v1"},
	"rbac.authorization.k8s.io/v1beta1 RoleBinding":        {"1.22", "rbac.authorization.k8s.io/v1"},
	"rbac.authorization.k8s.io/v1beta1 ClusterRoleBinding": {"1.22", "rbac.authorization.k8s.io/v1"},
}

// supportedKinds lists "apiVersion Kind" for error messages.
func supportedKinds(sch cue.Value) string {
	var out []string
	it, _ := sch.LookupPath(cue.ParsePath("kinds")).Fields()
	for it != nil && it.Next() {
		av := it.Selector().Unquoted()
		kt, _ := it.Value().Fields()
		for kt != nil && kt.Next() {
			out = append(out, av+" "+kt.Selector().Unquoted())
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// validate unifies a document with the definition of its kind and returns the
// concrete value, or the errors at their positions in the document's file.
func validate(sch cue.Value, d document, errs *Errors) (cue.Value, string, bool) {
	apiVersion, kind := d.str("apiVersion"), d.str("kind")
	if apiVersion == "" || kind == "" {
		*errs = append(*errs, &Error{File: d.file, Line: d.line(), Col: d.value.Pos().Column(), Msg: "an object needs apiVersion and kind"})
		return cue.Value{}, "", false
	}
	if d.plain && fastValid(apiVersion, kind, d.json) {
		// Certainly valid: the document is its own validated value (the
		// schema has no defaults).
		return d.value, kind, true
	}
	def, ok := definition(sch, apiVersion, kind)
	if !ok {
		kv := d.value.LookupPath(cue.ParsePath("kind"))
		msg := fmt.Sprintf("%s %s is not supported (supported: %s)", apiVersion, kind, supportedKinds(sch))
		if use, ok := removedAPIs[apiVersion+" "+kind]; ok {
			msg = fmt.Sprintf("%s %s was removed from Kubernetes %s: use %s", apiVersion, kind, use[0], use[1])
		}
		*errs = append(*errs, &Error{File: d.file, Line: kv.Pos().Line(), Col: kv.Pos().Column(), Field: "kind", Msg: msg})
		return cue.Value{}, "", false
	}
	u := def.Unify(d.value)
	if err := u.Validate(cue.Concrete(true)); err != nil {
		found := fromCUE(d.file, err, d.value, def)
		// Every unknown field, not only those CUE reported.
		have := make(map[string]bool, len(found))
		for _, e := range found {
			have[e.Field] = true
		}
		for _, e := range unknownFields(d.file, d.value, def) {
			if !have[e.Field] {
				found = append(found, e)
			}
		}
		sort.SliceStable(found, func(i, j int) bool {
			return found[i].Line < found[j].Line || found[i].Line == found[j].Line && found[i].Col < found[j].Col
		})
		*errs = append(*errs, found...)
		return cue.Value{}, "", false
	}
	return u, kind, true
}

// fromCUE turns CUE errors into Errors at positions in file: the first
// position of the error that lies in file, else the position of the nearest
// enclosing field that exists in doc. def, when it exists, is the definition
// the document was checked against: it names the allowed fields.
func fromCUE(file string, err error, doc, def cue.Value) Errors {
	byPath := map[string]*Error{}
	var order []string
	for _, e := range cueerrors.Errors(err) {
		sel := e.Path()
		if len(sel) >= 3 && sel[0] == "kinds" {
			sel = sel[3:]
		}
		p := indexPath(strings.Join(sel, "."))
		format, args := e.Msg()
		msg := friendly(fmt.Sprintf(format, args...))
		line := 0
		if strings.TrimSpace(msg) == "" {
			// A YAML syntax error: "file: LINE: message".
			msg = strings.TrimSpace(strings.TrimPrefix(e.Error(), file+":"))
			if n, rest, ok := strings.Cut(msg, ": "); ok {
				if _, err := fmt.Sscanf(n, "%d", &line); err == nil {
					msg = rest
				}
			}
			msg = "invalid YAML: " + msg
		}
		if (msg == "invalid value" || strings.HasPrefix(msg, "conflicting values")) && def.Exists() && len(sel) > 0 {
			// In the user's words: what was written and what may be.
			if allowed := allowedValues(def, sel); len(allowed) > 0 {
				got := ""
				if v := doc.LookupPath(selPath(sel)); v.Exists() {
					if b, err := v.MarshalJSON(); err == nil {
						got = string(b) + " "
					}
				}
				msg = fmt.Sprintf("invalid value %s(allowed: %s)", got, strings.Join(allowed, ", "))
			}
		}
		if (p == "metadata.namespace" || p == "metadata.name") && stringAt(doc, sel) == ReservedNamespace &&
			(p == "metadata.namespace" || kindOf(doc) == "Namespace") {
			msg = `invalid value "job": Baton reserves it (job/NAME names a Job's pods); choose another namespace`
		}
		switch {
		case msg == "field not allowed" && p == "metadata.generateName":
			msg = "a generated name is for kubectl create (kubectl apply refuses it too): a manifest kept in Git needs metadata.name"
		case msg == "field not allowed" && def.Exists() && len(sel) > 0:
			msg = notAllowed(def, sel)
			if m := volumePlugin.FindStringSubmatch(p); m != nil && storagePlugins[m[1]] {
				msg = fmt.Sprintf("%s volumes are not supported: Baton has no storage drivers, a volume is on the node's own disk %s",
					m[1], strings.TrimPrefix(msg, "field not allowed "))
			}
		}
		out := &Error{File: file, Field: p, Msg: msg}
		for _, pos := range append([]token.Pos{e.Position()}, e.InputPositions()...) {
			if pos.IsValid() && pos.Filename() == file {
				out.Line, out.Col = pos.Line(), pos.Column()
				break
			}
		}
		if out.Line == 0 && line > 0 {
			out.Line, out.Col = line, 1
		}
		if out.Line == 0 && doc.Exists() {
			out.Line, out.Col = nearest(doc, p)
		}
		if prev, ok := byPath[p]; ok {
			if better(out.Msg, prev.Msg) {
				*prev = *out
			}
			continue
		}
		byPath[p] = out
		order = append(order, p)
	}
	var out Errors
	for _, p := range order {
		out = append(out, byPath[p])
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Line != out[j].Line {
			return out[i].Line < out[j].Line
		}
		return out[i].Col < out[j].Col
	})
	return out
}

// fieldsOf lists the regular and optional fields of def at the selector path
// (list indices match any element).
func fieldsOf(def cue.Value, sel []string) []string {
	v := defAt(def, sel)
	it, err := v.Fields(cue.Optional(true))
	if err != nil {
		return nil
	}
	var names []string
	for it.Next() {
		names = append(names, it.Selector().Unquoted())
	}
	sort.Strings(names)
	return names
}

// indexPath turns "containers.0.image" into "containers[0].image".
func indexPath(p string) string {
	parts := strings.Split(p, ".")
	var b strings.Builder
	for i, s := range parts {
		if s != "" && strings.Trim(s, "0123456789") == "" {
			b.WriteString("[" + s + "]")
			continue
		}
		if i > 0 {
			b.WriteString(".")
		}
		b.WriteString(s)
	}
	return b.String()
}

// nearest returns the position of the deepest existing prefix of path in doc.
func nearest(doc cue.Value, p string) (int, int) {
	for p != "" {
		if v := doc.LookupPath(pathOf(p)); v.Exists() && v.Pos().IsValid() {
			return v.Pos().Line(), v.Pos().Column()
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return doc.Pos().Line(), doc.Pos().Column()
}

// friendly rewrites CUE's messages for people who write YAML.
func friendly(msg string) string {
	switch {
	case strings.HasPrefix(msg, "incomplete value"):
		return "required field is missing"
	case strings.HasPrefix(msg, "field not allowed"):
		return "field not allowed"
	case strings.Contains(msg, "errors in empty disjunction"):
		return "invalid value"
	}
	if i := strings.Index(msg, "(mismatched types "); i >= 0 {
		var got, want string
		if _, err := fmt.Sscanf(strings.TrimSuffix(msg[i:], ")"), "(mismatched types %s and %s", &got, &want); err == nil {
			return fmt.Sprintf("must be %s, not %s", typeName(want), typeName(got))
		}
	}
	if strings.HasPrefix(msg, "incompatible list lengths (0 and") {
		return "needs at least one item"
	}
	for pattern, say := range patternNames {
		if strings.Contains(msg, pattern) {
			return msg[:strings.Index(msg, " (out of bound")] + ": " + say
		}
	}
	return msg
}

func typeName(t string) string {
	switch t {
	case "int":
		return "an integer"
	case "struct":
		return "an object"
	case "bool":
		return "true or false"
	case "list":
		return "a list"
	}
	return "a " + t
}

// patternNames explains the schema's regular expressions.
var patternNames = map[string]string{
	`=~"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"`:   "must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit",
	`=~"^[^\\s]+$"`:                         "must not be empty or contain spaces",
	`=~"^[+]?([0-9]+`:                       "must be a quantity such as 500m, 0.5, 128Mi or 1G",
	`=~"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.`: "must be a DNS subdomain: lower-case letters, digits, '-' and '.'",
	`=~"^[0-9]+%$"`:                         "must be an integer or a percentage such as 25%",
}

// better prefers specific messages to summaries of disjunctions.
func better(a, b string) bool {
	rank := func(s string) int {
		switch {
		case s == "invalid value":
			return 0
		case strings.Contains(s, "mismatched types"), strings.HasPrefix(s, "must be ") && strings.Contains(s, ", not "):
			return 1
		}
		return 2
	}
	return rank(a) > rank(b)
}

// addFile parses a CUE file into an instance.
func addFile(inst *build.Instance, name string, src []byte) error {
	f, err := parser.ParseFile(name, src)
	if err != nil {
		return err
	}
	if err := inst.AddSyntax(f); err != nil {
		return err
	}
	return nil
}

func kindOf(doc cue.Value) string {
	s, _ := doc.LookupPath(cue.ParsePath("kind")).String()
	return s
}

// stringAt is the string at sel in doc ("" if none).
func stringAt(doc cue.Value, sel []string) string {
	s, _ := doc.LookupPath(selPath(sel)).String()
	return s
}

// volumePlugin finds a volume source's field in an error's path.
var volumePlugin = regexp.MustCompile(`volumes\[\d+\]\.([A-Za-z]+)$`)

// storagePlugins are Kubernetes' volume sources that need a storage
// driver: network and cloud disks, refused as such.
var storagePlugins = map[string]bool{
	"csi": true, "nfs": true, "flexVolume": true, "cephfs": true, "rbd": true, "iscsi": true, "azureDisk": true, "azureFile": true,
	"gcePersistentDisk": true, "awsElasticBlockStore": true, "glusterfs": true, "cinder": true, "fc": true, "flocker": true,
	"portworxVolume": true, "quobyte": true, "scaleIO": true, "storageos": true, "vsphereVolume": true, "photonPersistentDisk": true,
	"gitRepo": true, "image": true,
}

// allowedValues lists the literal values a field of def may take when it
// is a choice of literals ("TCP" | "UDP"), else nothing.
func allowedValues(def cue.Value, sel []string) []string {
	v := defAt(def, sel)
	if !v.Exists() {
		return nil
	}
	var out []string
	var collect func(x cue.Value) bool
	collect = func(x cue.Value) bool {
		op, args := x.Expr()
		switch op {
		case cue.OrOp:
			for _, a := range args {
				if !collect(a) {
					return false
				}
			}
			return true
		case cue.NoOp:
			if !x.IsConcrete() {
				return false
			}
			b, err := x.MarshalJSON()
			if err != nil {
				return false
			}
			out = append(out, string(b))
			return true
		}
		return false
	}
	if !collect(v) || len(out) < 1 {
		return nil
	}
	return out
}

// selPath is the path of sel: names, and indexes for the numbers.
func selPath(sel []string) cue.Path {
	out := make([]cue.Selector, len(sel))
	for i, s := range sel {
		if n, err := strconv.Atoi(s); err == nil && strings.Trim(s, "0123456789") == "" {
			out[i] = cue.Index(n)
		} else {
			out[i] = cue.Str(s)
		}
	}
	return cue.MakePath(out...)
}
