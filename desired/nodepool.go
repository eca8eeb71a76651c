package desired

import (
	"time"
)

// NodePool is a pool of machines that grows and shrinks with the workload
// through a provisioner (a baton.dev/v1 NodePool): the reconciler asks it
// for machines when replicas fit nowhere, and deletes unneeded ones.
type NodePool struct {
	Meta
	Min int `json:"min"`
	Max int `json:"max"`
	// Capacity, Labels and Taints are a new machine's, for deciding
	// whether pending replicas would fit on one.
	Capacity Amount            `json:"capacity"`
	Labels   map[string]string `json:"labels,omitempty"`
	Taints   []Taint           `json:"taints,omitempty"`
	// Command or Webhook (with its Secret's key) provisions machines, each
	// call within Timeout.
	Command          []string      `json:"command,omitempty"`
	WebhookURL       string        `json:"webhookURL,omitempty"`
	WebhookSecret    string        `json:"webhookSecret,omitempty"` // the Secret's name
	WebhookSecretKey string        `json:"webhookSecretKey,omitempty"`
	Timeout          time.Duration `json:"timeout"`
	// Scale up after PendingFor; a machine not joined within JoinTimeout
	// is deleted and counted as a failure.
	PendingFor  time.Duration `json:"pendingFor"`
	JoinTimeout time.Duration `json:"joinTimeout"`
	// Scale down (when ScaleDown) a machine under UtilizationThreshold of
	// its capacity for UnneededFor, not within DelayAfterAdd of a scale-up.
	ScaleDown            bool          `json:"scaleDown"`
	UtilizationThreshold float64       `json:"utilizationThreshold"`
	UnneededFor          time.Duration `json:"unneededFor"`
	DelayAfterAdd        time.Duration `json:"delayAfterAdd"`
}

// Node pool defaults, as cluster-autoscaler's where it has one.
const (
	DefaultPoolTimeout       = 5 * time.Minute
	DefaultPoolPendingFor    = 10 * time.Second
	DefaultPoolJoinTimeout   = 15 * time.Minute
	DefaultPoolUtilization   = 0.5
	DefaultPoolUnneededFor   = 10 * time.Minute
	DefaultPoolDelayAfterAdd = 10 * time.Minute
)

func (n *norm) duration(field, s string, def time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		n.fail(field, "want a positive duration such as 30s or 10m, not %q", s)
		return def
	}
	return d
}

func (n *norm) nodePool(p k8sNodePool) NodePool {
	s := p.Spec
	out := NodePool{Meta: n.meta(p.Metadata), Min: s.Min, Max: s.Max, Labels: s.Template.Labels, Taints: s.Template.Taints,
		Command:     s.Provisioner.Command,
		Timeout:     n.duration("spec.provisioner.timeout", s.Provisioner.Timeout, DefaultPoolTimeout),
		PendingFor:  n.duration("spec.scaleUp.pendingFor", s.ScaleUp.PendingFor, DefaultPoolPendingFor),
		JoinTimeout: n.duration("spec.scaleUp.joinTimeout", s.ScaleUp.JoinTimeout, DefaultPoolJoinTimeout),
		ScaleDown:   s.ScaleDown.Enabled == nil || *s.ScaleDown.Enabled, UtilizationThreshold: DefaultPoolUtilization,
		UnneededFor:   n.duration("spec.scaleDown.unneededFor", s.ScaleDown.UnneededFor, DefaultPoolUnneededFor),
		DelayAfterAdd: n.duration("spec.scaleDown.delayAfterAdd", s.ScaleDown.DelayAfterAdd, DefaultPoolDelayAfterAdd)}
	if t := s.ScaleDown.UtilizationThreshold; t != nil {
		out.UtilizationThreshold = *t
	}
	if s.Min > s.Max {
		n.fail("spec.min", "min %d is more than max %d", s.Min, s.Max)
	}
	if out.JoinTimeout <= out.Timeout {
		n.fail("spec.scaleUp.joinTimeout", "joinTimeout %s must be longer than the provisioner's timeout %s (a machine's join deadline counts from when it is made)", out.JoinTimeout, out.Timeout)
	}
	if w := s.Provisioner.Webhook; w != nil {
		out.WebhookURL, out.WebhookSecret, out.WebhookSecretKey = w.URL, w.SecretRef.Name, w.SecretRef.Key
	}
	if (len(out.Command) > 0) == (out.WebhookURL != "") {
		n.fail("spec.provisioner", "want exactly one of command (an executable) and webhook (an HTTPS URL)")
	}
	out.Capacity = n.amount("spec.template.capacity", s.Template.Capacity)
	if out.Capacity.CPUMilli <= 0 || out.Capacity.MemoryBytes <= 0 {
		n.fail("spec.template.capacity", "a new machine's cpu and memory must be more than 0")
	}
	return out
}
