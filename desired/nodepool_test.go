package desired

import (
	"strings"
	"testing"
	"time"
)

const pool = `apiVersion: baton.dev/v1
kind: NodePool
metadata: {name: workers, namespace: shop}
spec:
  min: 1
  max: 5
  template:
    capacity: {cpu: "2", memory: 4Gi, nvidia.com/gpu: 1}
    labels: {pool: workers}
    taints: [{key: dedicated, value: batch, effect: NoSchedule}]
  provisioner:
    command: [/usr/local/bin/provision, --pool, workers]
`

// A NodePool loads with cluster-autoscaler's defaults, is cluster-wide,
// and the revision says Baton does not provision machines yet.
func TestLoadNodePool(t *testing.T) {
	st, err := Load(map[string][]byte{"pool.yaml": []byte(pool)})
	if err != nil {
		t.Fatal(err)
	}
	p := st.Pools[0]
	if p.Name != "workers" || p.Min != 1 || p.Max != 5 || p.Capacity.CPUMilli != 2000 || p.Capacity.MemoryBytes != 4<<30 ||
		p.Capacity.Extra["nvidia.com/gpu"] != 1 || p.Labels["pool"] != "workers" || len(p.Taints) != 1 || p.Taints[0].Effect != "NoSchedule" ||
		len(p.Command) != 3 || p.Timeout != 5*time.Minute || p.PendingFor != 10*time.Second || p.JoinTimeout != 15*time.Minute ||
		!p.ScaleDown || p.UtilizationThreshold != 0.5 || p.UnneededFor != 10*time.Minute || p.DelayAfterAdd != 10*time.Minute {
		t.Fatalf("%+v", p)
	}
	if w := strings.Join(st.Warnings, "\n"); strings.Contains(w, "NodePool") {
		t.Fatalf("a NodePool is acted on; warned: %q", w)
	}
	webhook := strings.Replace(pool, "    command: [/usr/local/bin/provision, --pool, workers]\n",
		"    webhook: {url: \"https://provisioner.example/pools\", secretRef: {name: hook, key: hmac}}\n    timeout: 90s\n", 1) +
		"  scaleUp: {pendingFor: 30s, joinTimeout: 5m}\n  scaleDown: {enabled: false, utilizationThreshold: 0.3, unneededFor: 20m, delayAfterAdd: 1h}\n"
	secret := "---\napiVersion: v1\nkind: Secret\nmetadata: {name: hook}\nstringData: {hmac: s3cret}\n"
	st, err = Load(map[string][]byte{"pool.yaml": []byte(webhook + secret)})
	if err != nil {
		t.Fatal(err)
	}
	if p := st.Pools[0]; p.WebhookURL != "https://provisioner.example/pools" || p.WebhookSecret != "hook" || p.Timeout != 90*time.Second ||
		p.PendingFor != 30*time.Second || p.JoinTimeout != 5*time.Minute || p.ScaleDown || p.UtilizationThreshold != 0.3 ||
		p.UnneededFor != 20*time.Minute || p.DelayAfterAdd != time.Hour {
		t.Fatalf("%+v", p)
	}
	for _, tc := range []struct{ what, yaml, want string }{
		{"min over max", strings.Replace(pool, "min: 1", "min: 6", 1), "pool.yaml:5:3: spec.min: min 6 is more than max 5"},
		{"no provisioner", strings.Replace(pool, "    command: [/usr/local/bin/provision, --pool, workers]\n", "    {}\n", 1), "want exactly one of command (an executable) and webhook"},
		{"both", strings.Replace(webhook, "  provisioner:\n", "  provisioner:\n    command: [x]\n", 1) + secret, "want exactly one of command"},
		{"plain HTTP", strings.Replace(webhook, "https://", "http://", 1) + secret, "spec.provisioner.webhook.url"},
		{"no such Secret", webhook, `no Secret named "hook" in the revision`},
		{"no such key", webhook + strings.Replace(secret, "hmac:", "other:", 1), `Secret "hook" has no key "hmac"`},
		{"no memory", strings.Replace(pool, "memory: 4Gi, ", "", 1), "spec.template.capacity.memory"},
		{"a duration in words", strings.Replace(pool, "  provisioner:\n", "  scaleUp: {pendingFor: ten seconds}\n  provisioner:\n", 1), "spec.scaleUp.pendingFor"},
		{"a threshold over 1", strings.Replace(pool, "  provisioner:\n", "  scaleDown: {utilizationThreshold: 1.5}\n  provisioner:\n", 1), "spec.scaleDown.utilizationThreshold"},
		{"a taint effect", strings.Replace(pool, "NoSchedule", "Sometimes", 1), "spec.template.taints"},
		{"a join deadline within the call's timeout", strings.Replace(pool, "  provisioner:\n", "  scaleUp: {joinTimeout: 1m}\n  provisioner:\n", 1),
			"spec.scaleUp.joinTimeout: joinTimeout 1m0s must be longer than the provisioner's timeout 5m0s"},
	} {
		_, err := Load(map[string][]byte{"pool.yaml": []byte(tc.yaml)})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.what, err, tc.want)
		}
	}
}
