package desired

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// fastBase are documents using every field the fast check knows.
var fastBase = []string{`{
  "apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}, "annotations": {"a": "b"}},
  "spec": {
    "replicas": 3, "selector": {"matchLabels": {"app": "web"}},
    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
    "minReadySeconds": 5, "revisionHistoryLimit": 3, "progressDeadlineSeconds": 60,
    "template": {
      "metadata": {"labels": {"app": "web"}, "annotations": {"x": "y"}},
      "spec": {
        "restartPolicy": "Always", "nodeSelector": {"disk": "ssd"}, "terminationGracePeriodSeconds": 30,
        "volumes": [
          {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
          {"name": "conf", "configMap": {"name": "web-conf", "optional": true}},
          {"name": "creds", "secret": {"secretName": "web-creds"}},
          {"name": "data", "persistentVolumeClaim": {"claimName": "web-data", "readOnly": false}}
        ],
        "containers": [{
          "name": "app", "image": "registry.example/web:1.2", "imagePullPolicy": "IfNotPresent",
          "command": ["/web"], "args": ["-listen", ":8080"], "workingDir": "/srv",
          "env": [{"name": "MODE", "value": "prod"},
                  {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "web-creds", "key": "key"}}},
                  {"name": "CONF", "valueFrom": {"configMapKeyRef": {"name": "web-conf", "key": "conf", "optional": true}}}],
          "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}, {"containerPort": 9090, "hostPort": 19090}],
          "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": 1, "memory": "128Mi"}},
          "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"}, "periodSeconds": 5, "initialDelaySeconds": 1},
          "livenessProbe": {"tcpSocket": {"port": 8080}, "failureThreshold": 3, "timeoutSeconds": 2, "successThreshold": 1},
          "startupProbe": {"httpGet": {"port": 8080}},
          "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}, {"name": "conf", "mountPath": "/etc/web", "readOnly": true},
                           {"name": "creds", "mountPath": "/run/creds"}, {"name": "data", "mountPath": "/data"}]
        }]
      }
    }
  }
}`, `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-conf"}, "data": {"conf": "x", "a.b_c-d": ""}, "immutable": true}`,
	`{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-creds"}, "stringData": {"key": "k"}}`,
	`{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "web-data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}`,
}

// mutants are the values a mutation puts in a document: edges of every
// constraint the fast check knows.
var mutants = []any{"", "a", "A", "a b", "web", "web-", "-web", "a.b", strings.Repeat("x", 15), strings.Repeat("x", 16),
	strings.Repeat("x", 63), strings.Repeat("x", 64), strings.Repeat("x", 254), "/path", "path", "/a b", "10%", "x%", "10m", "1.5",
	"0x10", "1e3", "+1", ".5", "5Qi", "1Gi", "a\x00b", "a=b", "TCP", "UDP", "SCTP", "HTTP", "HTTPS", "Always", "Never", "OnFailure",
	"IfNotPresent", "Recreate", "RollingUpdate", "default", "other", "Memory", "http", "with\nnewline", "ünïcode",
	json.Number("0"), json.Number("-1"), json.Number("1"), json.Number("15"), json.Number("1000"), json.Number("1001"),
	json.Number("65535"), json.Number("65536"), json.Number("86400"), json.Number("86401"), json.Number("1.5"),
	json.Number("2.0"), json.Number("1e3"), json.Number("9223372036854775808"), true, false, nil,
	map[string]any{}, []any{}, map[string]any{"unknown": "x"}, []any{"x"}}

// mutate changes one random place of v: a value replaced, a field removed
// or added, an element added.
func mutate(r *rand.Rand, v any) any {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys) // the same mutations for the same seed
		if len(keys) == 0 || r.IntN(8) == 0 {
			// A copy: a later mutation must not change the shared mutant
			// (inserting one into itself made a cycle).
			x[[]string{"unknown", "name", "value", "port", "optional", "labels"}[r.IntN(6)]] = clone(mutants[r.IntN(len(mutants))])
			return x
		}
		k := keys[r.IntN(len(keys))]
		switch r.IntN(6) {
		case 0:
			delete(x, k)
		case 1:
			x[k] = clone(mutants[r.IntN(len(mutants))])
		default:
			x[k] = mutate(r, x[k])
		}
		return x
	case []any:
		if len(x) == 0 || r.IntN(6) == 0 {
			if len(x) > 0 && r.IntN(2) == 0 {
				return append(x, clone(x[r.IntN(len(x))]))
			}
			return append(x, clone(mutants[r.IntN(len(mutants))]))
		}
		i := r.IntN(len(x))
		x[i] = mutate(r, x[i])
		return x
	default:
		return clone(mutants[r.IntN(len(mutants))])
	}
}

func clone(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

// loadBothWays loads files with the fast check and with CUE alone.
func loadBothWays(files map[string][]byte) (fast, slow *State, fastErr, slowErr error) {
	fast, fastErr = Load(files)
	fastCheckOff = true
	defer func() { fastCheckOff = false }()
	slow, slowErr = Load(files)
	return
}

// TestFastCheckNeverAcceptsWhatCUERefuses: documents mutated at random
// (values at the edges of every constraint, fields removed and added)
// load exactly the same with the fast check as with CUE alone: the same
// errors, or the same state. It fails if the fast check accepts anything
// the schema refuses, or changes what a document means.
func TestFastCheckNeverAcceptsWhatCUERefuses(t *testing.T) {
	n := 800
	if testing.Short() {
		n = 200
	}
	seed := uint64(7)
	r := rand.New(rand.NewPCG(seed, seed))
	base := make([]any, len(fastBase))
	for i, s := range fastBase {
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		if err := dec.Decode(&base[i]); err != nil {
			t.Fatal(err)
		}
	}
	files := func(docs []any) map[string][]byte {
		var parts []string
		for _, d := range docs {
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, string(b))
		}
		return map[string][]byte{"m.yaml": []byte(strings.Join(parts, "\n---\n"))}
	}
	// The documents as written load, and through the fast check.
	before := fastAccepted.Load()
	if _, err := Load(files(base)); err != nil {
		t.Fatal(err)
	}
	if got := fastAccepted.Load() - before; got != 2 {
		t.Fatalf("the fast check accepted %d of the base documents, want 2 (Deployment, ConfigMap)", got)
	}
	accepted, refused := 0, 0
	for i := range n {
		docs := make([]any, len(base))
		for j := range base {
			docs[j] = clone(base[j])
		}
		k := r.IntN(2) // the kinds the fast check knows
		for range 1 + r.IntN(2) {
			docs[k] = mutate(r, docs[k])
		}
		set := files(docs)
		before := fastAccepted.Load()
		fast, slow, fastErr, slowErr := loadBothWays(set)
		if fastAccepted.Load()-before == 2 { // the mutated document too
			accepted++
		}
		if slowErr != nil {
			refused++
		}
		if fmt.Sprint(fastErr) != fmt.Sprint(slowErr) || !reflect.DeepEqual(fast, slow) {
			t.Fatalf("mutation %d loads differently with the fast check:\n%s\nfast: %v\nCUE:  %v", i, set["m.yaml"], fastErr, slowErr)
		}
	}
	t.Logf("%d mutated revisions: %d refused by the schema; the fast check accepted documents in %d", n, refused, accepted)
	if refused < n/10 || accepted < n/20 {
		t.Fatalf("the mutations do not exercise both sides: %d refused, %d accepted", refused, accepted)
	}
}

// TestFastCheckTakesOnlyPlainData: a YAML float that CUE writes as an
// integer in JSON (3., 1e0, 1.5e1), bytes (!!binary, written as base64
// text) and the like never take the fast check: those documents load
// exactly as CUE alone loads them (refused where the schema wants an int
// or a string). Comments and negative integers keep it.
func TestFastCheckTakesOnlyPlainData(t *testing.T) {
	deployment := func(replicas, port, image string) map[string][]byte {
		return map[string][]byte{"d.yaml": []byte(`# a comment
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}  # another
spec:
  replicas: ` + replicas + `
  template:
    spec:
      containers:
      - name: app
        image: ` + image + `
        ports: [{containerPort: ` + port + `}]
`)}
	}
	for _, c := range []struct {
		name                  string
		replicas, port, image string
		fast                  bool
	}{
		{"plain, with comments", "3", "8080", "app:1", true},
		{"replicas 3.", "3.", "8080", "app:1", false},
		{"replicas 1e0", "1e0", "8080", "app:1", false},
		{"containerPort 8080.", "3", "8080.", "app:1", false},
		{"containerPort 1.5e1", "3", "1.5e1", "app:1", false},
		{"image !!binary", "3", "8080", "!!binary aW1n", false},
		{"replicas -1 (refused by the schema)", "-1", "8080", "app:1", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			files := deployment(c.replicas, c.port, c.image)
			before := fastAccepted.Load()
			fast, slow, fastErr, slowErr := loadBothWays(files)
			if got := fastAccepted.Load() > before; got != c.fast {
				t.Fatalf("fast check taken: %v, want %v", got, c.fast)
			}
			if fmt.Sprint(fastErr) != fmt.Sprint(slowErr) || !reflect.DeepEqual(fast, slow) {
				t.Fatalf("loads differently with the fast check:\nfast: %v\nCUE:  %v", fastErr, slowErr)
			}
			if !c.fast && c.name != "replicas -1 (refused by the schema)" && slowErr == nil {
				t.Fatalf("the schema accepted %s", c.name)
			}
		})
	}
}
