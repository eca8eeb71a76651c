package desired

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Limits on what one revision may contain.
const (
	MaxFileBytes  = 1 << 20
	MaxFiles      = 2000
	MaxTotalBytes = 32 << 20
	MaxDocuments  = 500
	MaxReplicas   = 1000
)

// IsManifest reports whether a file name is one the loader reads.
func IsManifest(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

// Load renders the desired state from the files of one revision, keyed by
// their slash-separated path. Files that are not manifests are skipped. Every
// problem found is returned, as Errors, and no partial state.
func Load(files map[string][]byte) (*State, error) {
	if len(files) > MaxFiles {
		return nil, fmt.Errorf("%d files, more than the %d allowed", len(files), MaxFiles)
	}
	paths := make([]string, 0, len(files))
	total := 0
	for p, b := range files {
		if !IsManifest(p) {
			continue
		}
		total += len(b)
		paths = append(paths, p)
	}
	if total > MaxTotalBytes {
		return nil, fmt.Errorf("manifests total %d bytes, more than the %d allowed", total, MaxTotalBytes)
	}
	sort.Strings(paths)

	var errs Errors
	st := &State{Workloads: []Workload{}}
	seen := map[string]string{}
	for _, p := range paths {
		for _, w := range loadFile(p, files[p], &errs) {
			if prev, dup := seen[w.Name]; dup {
				errs = append(errs, &Error{File: p, Line: sourceLine(w.Source), Col: 1, Field: "metadata.name",
					Msg: fmt.Sprintf("workload %q is already defined at %s", w.Name, prev)})
				continue
			}
			seen[w.Name] = w.Source
			st.Workloads = append(st.Workloads, w)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	sort.Slice(st.Workloads, func(i, j int) bool { return st.Workloads[i].Name < st.Workloads[j].Name })
	return st, nil
}

func sourceLine(src string) int {
	var line int
	if i := strings.LastIndexByte(src, ':'); i >= 0 {
		fmt.Sscanf(src[i+1:], "%d", &line)
	}
	return line
}

func loadFile(path string, data []byte, errs *Errors) []Workload {
	if len(data) > MaxFileBytes {
		*errs = append(*errs, &Error{File: path, Msg: fmt.Sprintf("file is %d bytes, more than the %d allowed", len(data), MaxFileBytes)})
		return nil
	}
	var out []Workload
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			*errs = append(*errs, yamlError(path, err))
			return out
		}
		if i >= MaxDocuments {
			*errs = append(*errs, &Error{File: path, Line: doc.Line, Col: doc.Column, Msg: fmt.Sprintf("more than %d documents", MaxDocuments)})
			return out
		}
		if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
			continue // an empty document, e.g. a trailing "---"
		}
		if w, ok := loadDocument(path, doc.Content[0], errs); ok {
			out = append(out, w)
		}
	}
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func yamlError(path string, err error) *Error {
	e := &Error{File: path, Msg: err.Error()}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		fmt.Sscanf(m[1], "%d", &e.Line)
		e.Col, e.Msg = 1, "invalid YAML: "+m[2]
	}
	return e
}

// supported lists the objects Baton runs, by apiVersion and kind.
var supported = map[[2]string]*field{
	{"apps/v1", "Deployment"}: deploymentSchema,
}

func loadDocument(path string, n *yaml.Node, errs *Errors) (Workload, bool) {
	if n.Kind != yaml.MappingNode {
		*errs = append(*errs, &Error{File: path, Line: n.Line, Col: n.Column, Msg: "a document must be an object with apiVersion and kind"})
		return Workload{}, false
	}
	apiVersion, kindNode := lookup(n, "apiVersion"), lookup(n, "kind")
	if apiVersion == nil || kindNode == nil {
		*errs = append(*errs, &Error{File: path, Line: n.Line, Col: n.Column, Msg: "a document must have apiVersion and kind"})
		return Workload{}, false
	}
	schema, ok := supported[[2]string{apiVersion.Value, kindNode.Value}]
	if !ok {
		*errs = append(*errs, &Error{File: path, Line: kindNode.Line, Col: kindNode.Column, Field: "kind",
			Msg: fmt.Sprintf("%s %s is not supported (supported: apps/v1 Deployment)", apiVersion.Value, kindNode.Value)})
		return Workload{}, false
	}
	before := len(*errs)
	check(path, n, schema, "", errs)
	if len(*errs) > before {
		return Workload{}, false
	}
	var d deploymentDoc
	if err := n.Decode(&d); err != nil {
		*errs = append(*errs, &Error{File: path, Line: n.Line, Col: n.Column, Msg: err.Error()})
		return Workload{}, false
	}
	return d.workload(path, n, errs)
}

func lookup(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// at finds the node of a dotted path (numeric parts index lists) for error
// positions; it falls back to the deepest node found.
func at(n *yaml.Node, path ...any) *yaml.Node {
	for _, p := range path {
		var next *yaml.Node
		switch p := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				next = lookup(n, p)
			}
		case int:
			if n.Kind == yaml.SequenceNode && p < len(n.Content) {
				next = n.Content[p]
			}
		}
		if next == nil {
			return n
		}
		n = next
	}
	return n
}

type deploymentDoc struct {
	Metadata struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				Containers []Container `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func (d *deploymentDoc) workload(path string, n *yaml.Node, errs *Errors) (Workload, bool) {
	before := len(*errs)
	bad := func(node *yaml.Node, field, format string, args ...any) {
		*errs = append(*errs, &Error{File: path, Line: node.Line, Col: node.Column, Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	name := d.Metadata.Name
	// Replica IDs add 24 characters to the name; keep them within 63.
	if !dnsLabel.MatchString(name) || len(name) > 39 {
		bad(at(n, "metadata", "name"), "metadata.name", "%q must be a DNS label: lower-case letters, digits and '-', at most 39 characters", name)
	}
	replicas := 1
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	if replicas < 0 || replicas > MaxReplicas {
		bad(at(n, "spec", "replicas"), "spec.replicas", "must be between 0 and %d, got %d", MaxReplicas, replicas)
	}
	for k, v := range d.Spec.Selector.MatchLabels {
		if d.Spec.Template.Metadata.Labels[k] != v {
			bad(at(n, "spec", "selector", "matchLabels", k), "spec.selector.matchLabels."+k,
				"selector %s=%s does not match the template's labels", k, v)
		}
	}
	cs := d.Spec.Template.Spec.Containers
	if len(cs) == 0 {
		bad(at(n, "spec", "template", "spec", "containers"), "spec.template.spec.containers", "a pod needs at least one container")
	}
	names := map[string]bool{}
	for i, c := range cs {
		p := fmt.Sprintf("spec.template.spec.containers[%d]", i)
		if !dnsLabel.MatchString(c.Name) || len(c.Name) > 63 {
			bad(at(n, "spec", "template", "spec", "containers", i, "name"), p+".name", "%q must be a DNS label", c.Name)
		}
		if names[c.Name] {
			bad(at(n, "spec", "template", "spec", "containers", i, "name"), p+".name", "duplicate container name %q", c.Name)
		}
		names[c.Name] = true
		if strings.TrimSpace(c.Image) == "" {
			bad(at(n, "spec", "template", "spec", "containers", i, "image"), p+".image", "must not be empty")
		}
		for j, e := range c.Env {
			if e.Name == "" || strings.ContainsAny(e.Name, "=\x00") {
				bad(at(n, "spec", "template", "spec", "containers", i, "env", j, "name"), fmt.Sprintf("%s.env[%d].name", p, j), "invalid environment variable name %q", e.Name)
			}
		}
	}
	if len(*errs) > before {
		return Workload{}, false
	}
	pod := PodSpec{Containers: cs}
	return Workload{
		Name:     name,
		Kind:     "Deployment",
		Replicas: replicas,
		Pod:      pod.normalized(),
		Hash:     pod.Hash(),
		Source:   fmt.Sprintf("%s:%d", path, n.Line),
	}, true
}

// ReadDir reads the manifests under dir, keyed by slash-separated relative
// path, applying the same limits as Load. Hidden directories (such as .git)
// are skipped; symbolic links are refused.
func ReadDir(dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	total := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !IsManifest(p) {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s: symbolic links are not allowed", rel)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Size() > MaxFileBytes {
			return fmt.Errorf("%s: file is %d bytes, more than the %d allowed", rel, info.Size(), MaxFileBytes)
		}
		total += int(info.Size())
		if total > MaxTotalBytes || len(files) >= MaxFiles {
			return fmt.Errorf("%s: more than %d files or %d bytes of manifests", dir, MaxFiles, MaxTotalBytes)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read manifests: %w", err)
	}
	return files, nil
}
