package desired

import (
	"fmt"
	"slices"
	"strconv"
)

// Requirement is one expression of a label selector or node selector
// term: Operator In, NotIn, Exists, DoesNotExist (and, for nodes, Gt, Lt).
type Requirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// Matches tells whether labels satisfy r.
func (r Requirement) Matches(labels map[string]string) bool {
	v, ok := labels[r.Key]
	switch r.Operator {
	case "In":
		return ok && slices.Contains(r.Values, v)
	case "NotIn":
		return !ok || !slices.Contains(r.Values, v)
	case "Exists":
		return ok
	case "DoesNotExist":
		return !ok
	case "Gt", "Lt":
		if !ok || len(r.Values) != 1 {
			return false
		}
		have, err1 := strconv.ParseInt(v, 10, 64)
		want, err2 := strconv.ParseInt(r.Values[0], 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if r.Operator == "Gt" {
			return have > want
		}
		return have < want
	}
	return false
}

// SelectorMatches tells whether labels carry every one of matchLabels and
// satisfy every expression (an empty selector matches everything).
func SelectorMatches(matchLabels map[string]string, exprs []Requirement, labels map[string]string) bool {
	for k, v := range matchLabels {
		if labels[k] != v {
			return false
		}
	}
	for _, r := range exprs {
		if !r.Matches(labels) {
			return false
		}
	}
	return true
}

// NodeSelectorTerm is one term of a node affinity: every expression on
// the node's labels holds, and every field (metadata.name, the only field
// Kubernetes has) on the node's name.
type NodeSelectorTerm struct {
	MatchExpressions []Requirement `json:"matchExpressions,omitempty"`
	MatchFields      []Requirement `json:"matchFields,omitempty"`
}

// Matches tells whether the node named name with labels satisfies t.
func (t NodeSelectorTerm) Matches(name string, labels map[string]string) bool {
	for _, r := range t.MatchExpressions {
		if !r.Matches(labels) {
			return false
		}
	}
	for _, r := range t.MatchFields {
		if !r.Matches(map[string]string{"metadata.name": name}) {
			return false
		}
	}
	return true
}

// NodeAffinity is a pod's node affinity: one of Required's terms must hold
// (none: any node); Preferred's terms add their weight to the nodes they
// hold on.
type NodeAffinity struct {
	Required  []NodeSelectorTerm        `json:"required,omitempty"`
	Preferred []PreferredSchedulingTerm `json:"preferred,omitempty"`
}

// PreferredSchedulingTerm is a weighted preference for nodes.
type PreferredSchedulingTerm struct {
	Weight     int              `json:"weight"`
	Preference NodeSelectorTerm `json:"preference"`
}

// Toleration lets a pod go to (and stay on) nodes with a matching taint.
type Toleration struct {
	Key      string `json:"key,omitempty"`
	Operator string `json:"operator,omitempty"` // Equal (default) or Exists
	Value    string `json:"value,omitempty"`
	Effect   string `json:"effect,omitempty"` // "" (every effect), NoSchedule, PreferNoSchedule, NoExecute
	// TolerationSeconds, with NoExecute, is how long the pod stays once
	// the taint appears (nil: for ever).
	TolerationSeconds *int64 `json:"tolerationSeconds,omitempty"`
}

// Taint is a node's: pods that do not tolerate it are not placed there
// (NoSchedule), placed there last (PreferNoSchedule) or also moved away
// (NoExecute).
type Taint struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Effect string `json:"effect"`
}

func (t Taint) String() string {
	if t.Value == "" {
		return t.Key + ":" + t.Effect
	}
	return t.Key + "=" + t.Value + ":" + t.Effect
}

// Tolerates tells whether tol tolerates taint, as Kubernetes decides.
func (tol Toleration) Tolerates(taint Taint) bool {
	if tol.Effect != "" && tol.Effect != taint.Effect {
		return false
	}
	if tol.Key == "" {
		return tol.Operator == "Exists" // an empty key with Exists tolerates everything
	}
	if tol.Key != taint.Key {
		return false
	}
	return tol.Operator == "Exists" || tol.Value == taint.Value
}

// Tolerated tells whether one of tols tolerates taint.
func Tolerated(tols []Toleration, taint Taint) bool {
	return slices.ContainsFunc(tols, func(t Toleration) bool { return t.Tolerates(taint) })
}

// checkRequirements reports requirements Kubernetes would refuse.
func (n *norm) checkRequirements(f string, rs []Requirement, node bool) {
	for i, r := range rs {
		rf := fmt.Sprintf("%s[%d]", f, i)
		switch r.Operator {
		case "In", "NotIn":
			if len(r.Values) == 0 {
				n.fail(rf+".values", "%s needs at least one value", r.Operator)
			}
		case "Exists", "DoesNotExist":
			if len(r.Values) > 0 {
				n.fail(rf+".values", "%s takes no values", r.Operator)
			}
		case "Gt", "Lt":
			if !node {
				n.fail(rf+".operator", "%s is for node selectors only", r.Operator)
			} else if _, err := strconv.ParseInt(firstOr(r.Values), 10, 64); len(r.Values) != 1 || err != nil {
				n.fail(rf+".values", "%s needs one integer value", r.Operator)
			}
		}
	}
}

func firstOr(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
