package desired

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// State is the desired state rendered from one revision of the config repository.
type State struct {
	// Revision is the commit the state was rendered from ("" for a local directory).
	Revision string `json:"revision,omitempty"`
	// Workloads are sorted by name.
	Workloads []Workload `json:"workloads"`
}

// Workload returns the workload with the given name.
func (s *State) Workload(name string) (Workload, bool) {
	for _, w := range s.Workloads {
		if w.Name == name {
			return w, true
		}
	}
	return Workload{}, false
}

// Workload is one replicated pod template (a Deployment, for now).
type Workload struct {
	Name     string  `json:"name"`
	Kind     string  `json:"kind"`
	Replicas int     `json:"replicas"`
	Pod      PodSpec `json:"pod"`
	// Hash is the canonical hash of Pod: equal pod specs have equal hashes.
	Hash string `json:"hash"`
	// Source is "file:line" of the document the workload came from.
	Source string `json:"source"`
}

// PodSpec is a group of containers that share one network namespace.
type PodSpec struct {
	Containers []Container `json:"containers"`
}

// Container is one process image within a pod.
type Container struct {
	Name    string   `json:"name"`
	Image   string   `json:"image"`
	Command []string `json:"command,omitempty"`
	Args    []string `json:"args,omitempty"`
	Env     []EnvVar `json:"env,omitempty"`
}

// EnvVar is one environment variable of a container.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// HashLen is the number of hex digits kept of a pod spec hash.
const HashLen = 16

// Hash returns the canonical hash of a pod spec. The spec is normalized first
// (empty lists and nil lists are the same), then encoded as JSON, whose field
// order is fixed by the struct definitions; map-free types keep it stable.
func (p PodSpec) Hash() string {
	n := p.normalized()
	b, err := json.Marshal(n)
	if err != nil {
		// PodSpec has only strings and slices: Marshal cannot fail.
		panic("desired: marshal pod spec: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:HashLen]
}

func (p PodSpec) normalized() PodSpec {
	out := PodSpec{Containers: make([]Container, len(p.Containers))}
	for i, c := range p.Containers {
		c.Command = emptyToNil(c.Command)
		c.Args = emptyToNil(c.Args)
		if len(c.Env) == 0 {
			c.Env = nil
		}
		out.Containers[i] = c
	}
	return out
}

func emptyToNil(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
