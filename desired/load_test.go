package desired

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestLoadGolden(t *testing.T) {
	files, err := ReadDir("testdata/valid")
	if err != nil {
		t.Fatal(err)
	}
	st, err := Load(files)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("testdata", "valid", "golden.json"), st)
}

// checkGolden compares v, as indented JSON, with a golden file (go test
// -update rewrites it) and returns the JSON.
func checkGolden(t *testing.T, golden string, v any) []byte {
	t.Helper()
	got, _ := json.MarshalIndent(v, "", "  ")
	if *update {
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(got)) != strings.TrimSpace(string(want)) {
		t.Fatalf("%s differs (go test -update to accept):\n%s", golden, got)
	}
	return got
}

const base = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  template:
    spec:
      containers:
        - name: app
          image: web:1
`

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // each must appear in the error text
	}{
		{"unknown field", strings.Replace(base, "replicas:", "replicaz:", 1),
			[]string{"web.yaml:6:3: spec.replicaz: field not allowed"}},
		{"unknown container field", base + "          imagePullSecret: x\n",
			[]string{"web.yaml:12:11: spec.template.spec.containers[0].imagePullSecret: field not allowed"}},
		{"unsupported kind", "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: x}\n",
			[]string{"web.yaml:2:1: kind: v1 ResourceQuota is not supported (supported: apps/v1 DaemonSet, apps/v1 Deployment, apps/v1 StatefulSet, autoscaling/v1 HorizontalPodAutoscaler, autoscaling/v2 HorizontalPodAutoscaler"}},
		{"missing kind", "metadata: {name: x}\n", []string{"web.yaml:1:1: an object needs apiVersion and kind"}},
		{"not an object", "- a\n- b\n", []string{"web.yaml:1:1: an object needs apiVersion and kind"}},
		{"replicas not an integer", strings.Replace(base, "replicas: 3", "replicas: three", 1),
			[]string{"web.yaml:6:13: spec.replicas: must be an integer, not a string"}},
		{"negative replicas", strings.Replace(base, "replicas: 3", "replicas: -1", 1),
			[]string{"web.yaml:6:13: spec.replicas: invalid value -1 (out of bound >=0)"}},
		{"too many replicas", strings.Replace(base, "replicas: 3", "replicas: 100000", 1),
			[]string{"spec.replicas: invalid value 100000 (out of bound <=1000)"}},
		{"missing image", strings.Replace(base, "          image: web:1\n", "", 1),
			[]string{"spec.template.spec.containers[0].image: required field is missing"}},
		{"empty image", strings.Replace(base, "image: web:1", `image: ""`, 1),
			[]string{"web.yaml:11:18: spec.template.spec.containers[0].image: invalid value \"\": must not be empty or contain spaces"}},
		{"no containers", strings.Replace(base, "      containers:\n        - name: app\n          image: web:1\n", "      containers: []\n", 1),
			[]string{"web.yaml:9:7: spec.template.spec.containers: needs at least one item"}},
		{"bad name", strings.Replace(base, "name: web", "name: Web_1", 1),
			[]string{"web.yaml:4:9: metadata.name: invalid value \"Web_1\": must be a DNS label"}},
		{"duplicate container", base + "        - name: app\n          image: web:2\n",
			[]string{"web.yaml:12:11: spec.template.spec.containers[1].name: duplicate container name \"app\""}},
		{"args not a list", strings.Replace(base, "image: web:1", "image: web:1\n          args: -v", 1),
			[]string{"web.yaml:12:17: spec.template.spec.containers[0].args: must be a list, not a string"}},
		{"env without name", strings.Replace(base, "image: web:1", "image: web:1\n          env:\n            - value: x", 1),
			[]string{"spec.template.spec.containers[0].env[0].name: required field is missing"}},
		{"selector mismatch", strings.Replace(base, "  replicas: 3\n", "  replicas: 3\n  selector:\n    matchLabels: {app: web}\n", 1),
			[]string{"web.yaml:8:19: spec.selector.matchLabels.app: selector app=web does not match"}},
		{"duplicate field", strings.Replace(base, "  replicas: 3\n", "  replicas: 3\n  replicas: 4\n", 1),
			[]string{`web.yaml:7:3: spec.replicas: duplicate key "replicas" (also on line 6)`}},
		{"duplicate field with the same value", strings.Replace(base, "  replicas: 3\n", "  replicas: 3\n  replicas: 3\n", 1),
			[]string{`web.yaml:7:3: spec.replicas: duplicate key "replicas" (also on line 6)`}},
		{"a field name in the wrong case", strings.Replace(base, "replicas:", "Replicas:", 1),
			[]string{"web.yaml:6:3: spec.Replicas: field not allowed: did you mean replicas?"}},
		{"unknown field in a Service port", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n    - port: 80\n      targetport: 8080\n      bogusField: 1\n",
			[]string{"web.yaml:7:7: spec.ports[0].targetport: field not allowed: did you mean targetPort? (allowed: name, nodePort, port, protocol, targetPort)",
				"web.yaml:8:7: spec.ports[0].bogusField: field not allowed"}},
		{"a value outside a choice", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 80, protocol: SCTP}]\n",
			[]string{`web.yaml:5:22: spec.ports[0].protocol: invalid value "SCTP" (allowed: "TCP", "UDP")`}},
		{"a network volume", strings.Replace(base, "      containers:", "      volumes: [{name: d, nfs: {server: a, path: /x}}]\n      containers:", 1),
			[]string{"spec.template.spec.volumes[0].nfs: nfs volumes are not supported: Baton has no storage drivers, a volume is on the node's own disk (allowed: configMap,"}},
		{"a generated name", strings.Replace(base, "name: web", "generateName: web-", 1),
			[]string{"metadata.generateName: a generated name is for kubectl create (kubectl apply refuses it too): a manifest kept in Git needs metadata.name"}},
		{"a reserved namespace", strings.Replace(base, "name: web", "name: web\n  namespace: job", 1),
			[]string{`web.yaml:5:14: metadata.namespace: invalid value "job": Baton reserves it (job/NAME names a Job's pods); choose another namespace`}},
		{"unknown field in a scaling window", "apiVersion: baton.dev/v1\nkind: ScalingSchedule\nmetadata: {name: s}\nspec:\n  target: {name: web}\n  windows:\n    - {name: day, schedule: '0 9 * * *', replicas: 3, bogusField: 1}\n",
			[]string{"spec.windows[0].bogusField: field not allowed"}},
		{"unknown field in a container port", strings.Replace(base, "image: web:1", "image: web:1\n          ports:\n            - containerport: 80", 1),
			[]string{"spec.template.spec.containers[0].ports[0].containerport: field not allowed: did you mean containerPort?"}},
		{"invalid yaml", "apiVersion: apps/v1\nkind: [Deployment\n", []string{"web.yaml:1:1: invalid YAML: did not find expected"}},
		{"two errors at once", strings.Replace(strings.Replace(base, "replicas:", "replicaz:", 1), "image:", "imagez:", 1),
			[]string{"spec.replicaz: field not allowed", "containers[0].imagez: field not allowed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := Load(map[string][]byte{"web.yaml": []byte(tt.yaml)})
			if err == nil {
				t.Fatalf("loaded %+v, want an error", st)
			}
			if st != nil {
				t.Fatal("a failed load must return no state")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%s\ndoes not contain %q", err, w)
				}
			}
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Errorf("error is %T, want Errors", err)
			}
		})
	}
}

func TestLoadDuplicateWorkload(t *testing.T) {
	_, err := Load(map[string][]byte{"a.yaml": []byte(base), "b.yaml": []byte(base)})
	if err == nil || !strings.Contains(err.Error(), `b.yaml:4:3: metadata.name: Deployment "web" is already defined at a.yaml:1`) {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadLimits(t *testing.T) {
	big := strings.Repeat("# padding\n", MaxFileBytes/10+1)
	if _, err := Load(map[string][]byte{"big.yaml": []byte(big)}); err == nil || !strings.Contains(err.Error(), "more than the") {
		t.Fatalf("oversized file: err = %v", err)
	}
	small := Options{MaxFileBytes: 100}
	if _, err := LoadWith(t.Context(), map[string][]byte{"w.yaml": []byte(base)}, small); err == nil || !strings.Contains(err.Error(), "w.yaml: file is 162 bytes, more than the 100 allowed") {
		t.Fatalf("configured file limit: err = %v", err)
	}
	if _, err := LoadWith(t.Context(), map[string][]byte{"w.yaml": []byte(base)}, Options{MaxTotalBytes: 100}); err == nil || !strings.Contains(err.Error(), "more than the 100 allowed") {
		t.Fatalf("configured total limit: err = %v", err)
	}
	many := strings.Repeat("---\napiVersion: apps/v1\n", MaxDocuments+1)
	if _, err := Load(map[string][]byte{"many.yaml": []byte(many)}); err == nil {
		t.Fatal("too many documents: no error")
	}
	bomb := "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n" +
		"d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n" +
		"g: [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
	if _, err := Load(map[string][]byte{"bomb.yaml": []byte(bomb)}); err == nil {
		t.Fatal("alias bomb: no error")
	}
}

func TestLoadSkipsOtherFiles(t *testing.T) {
	st, err := Load(map[string][]byte{"README.md": []byte("not yaml: ["), "app/web.yml": []byte(base)})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Workloads) != 1 || st.Workloads[0].Source != "app/web.yml:1" {
		t.Fatalf("workloads %+v", st.Workloads)
	}
}

// TestLoadEmptyFiles: empty and comment-only YAML files hold no object
// (as with kubectl), in any line-ending style.
func TestLoadEmptyFiles(t *testing.T) {
	st, err := Load(map[string][]byte{"empty.yaml": nil, "comments.yaml": []byte("# nothing yet\r\n---\r\n"), "app/web.yml": []byte(base)})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Workloads) != 1 {
		t.Fatalf("workloads %+v", st.Workloads)
	}
}

func TestHashIsCanonical(t *testing.T) {
	load := func(y string) string {
		t.Helper()
		st, err := Load(map[string][]byte{"w.yaml": []byte(y)})
		if err != nil {
			t.Fatal(err)
		}
		return st.Workloads[0].Hash
	}
	h := load(base)
	same := []string{
		strings.Replace(base, "replicas: 3", "replicas: 7", 1),                                                                     // replicas are not the pod
		strings.Replace(base, "        - name: app\n          image: web:1\n", "        - image: web:1\n          name: app\n", 1), // key order
		strings.Replace(base, "image: web:1", "image: web:1\n          args: []", 1),                                               // empty list = none
		"# a comment\n" + base,
	}
	withCPU := func(q string) string {
		return strings.Replace(base, "image: web:1", "image: web:1\n          resources: {limits: {cpu: "+q+", memory: 1Gi}}", 1)
	}
	if a, b, c := load(withCPU("500m")), load(withCPU(`"0.5"`)), load(withCPU("0.5")); a != b || b != c {
		t.Errorf("500m, \"0.5\" and 0.5 hash differently: %s %s %s", a, b, c)
	}
	if load(withCPU("500m")) == load(withCPU("600m")) {
		t.Error("a changed CPU limit did not change the hash")
	}
	for i, y := range same {
		if got := load(y); got != h {
			t.Errorf("variant %d: hash %s, want %s", i, got, h)
		}
	}
	for i, y := range []string{
		strings.Replace(base, "image: web:1", "image: web:2", 1),
		strings.Replace(base, "image: web:1", "image: web:1\n          args: [-v]", 1),
		strings.Replace(base, "image: web:1", "image: web:1\n          env: [{name: A, value: b}]", 1),
	} {
		if got := load(y); got == h {
			t.Errorf("change %d: hash did not change", i)
		}
	}
}

func ExampleLoad() {
	st, err := Load(map[string][]byte{"web.yaml": []byte(base)})
	if err != nil {
		fmt.Println(err)
		return
	}
	w := st.Workloads[0]
	fmt.Println(w.Name, w.Replicas, w.Pod.Containers[0].Image, len(w.Hash))
	_, err = Load(map[string][]byte{"web.yaml": []byte(strings.Replace(base, "replicas:", "replicaz:", 1))})
	fmt.Println(err)
	// Output:
	// web 3 web:1 16
	// web.yaml:6:3: spec.replicaz: field not allowed (allowed: minReadySeconds, paused, progressDeadlineSeconds, replicas, revisionHistoryLimit, selector, strategy, template)
}

func BenchmarkLoad(b *testing.B) {
	files := map[string][]byte{}
	for i := range 100 {
		files[fmt.Sprintf("w%03d.yaml", i)] = []byte(strings.Replace(base, "name: web", fmt.Sprintf("name: web%d", i), 1))
	}
	for b.Loop() {
		if _, err := Load(files); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLoadBadInput(t *testing.T) {
	dep := func(extra string) string {
		return strings.Replace(base, "          image: web:1\n", "          image: web:1\n"+extra, 1)
	}
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"a key missing from a ConfigMap", map[string]string{"w.yaml": dep("          env: [{name: A, valueFrom: {configMapKeyRef: {name: cfg, key: a}}}]\n") +
			"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {b: c}\n"},
			`w.yaml:12:57: spec.template.spec.containers[0].env[0].valueFrom.configMapKeyRef.name: ConfigMap "cfg" has no key "a"`},
		{"dangling secret key", map[string]string{"w.yaml": dep("          env: [{name: A, valueFrom: {secretKeyRef: {name: s, key: nope}}}]\n") +
			"---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {a: b}\n"},
			`secretKeyRef.name: Secret "s" has no key "nope"`},
		{"optional reference may dangle", map[string]string{"w.yaml": dep("          envFrom: [{configMapRef: {name: cfg, optional: true}}]\n")}, ""},
		{"invalid quantity", map[string]string{"w.yaml": dep("          resources: {limits: {memory: 12XB}}\n")},
			`w.yaml:12:40: spec.template.spec.containers[0].resources.limits.memory: invalid value "12XB": must be a quantity`},
		{"request above limit", map[string]string{"w.yaml": dep("          resources: {requests: {cpu: 2}, limits: {cpu: 500m}}\n")},
			`resources.requests: a request is above its limit`},
		{"probe without handler", map[string]string{"w.yaml": dep("          readinessProbe: {periodSeconds: 5}\n")},
			`spec.template.spec.containers[0].readinessProbe: a probe needs exactly one of httpGet, tcpSocket, grpc, exec (has 0)`},
		{"probe period zero", map[string]string{"w.yaml": dep("          livenessProbe: {tcpSocket: {port: 80}, periodSeconds: 0}\n")},
			`livenessProbe.periodSeconds: invalid value 0 (out of bound >=1)`},
		{"probe named port missing", map[string]string{"w.yaml": dep("          livenessProbe: {httpGet: {port: http}}\n")},
			`livenessProbe.httpGet.port: no container port named "http"`},
		{"bad cron", map[string]string{"s.yaml": base + "---\napiVersion: baton.dev/v1\nkind: ScalingSchedule\nmetadata: {name: s}\nspec:\n  target: {name: web}\n  windows: [{name: open, schedule: \"61 9 * * *\", replicas: 3}]\n"},
			`s.yaml:18:26: spec.windows[0].schedule: invalid cron schedule "61 9 * * *"`},
		{"bad time zone", map[string]string{"s.yaml": base + "---\napiVersion: baton.dev/v1\nkind: ScalingSchedule\nmetadata: {name: s}\nspec:\n  target: {name: web}\n  timeZone: Mars/Olympus\n  windows: [{name: open, schedule: \"0 9 * * *\", replicas: 3}]\n"},
			`spec.timeZone: unknown time zone "Mars/Olympus"`},
		{"schedule target missing", map[string]string{"s.yaml": "apiVersion: baton.dev/v1\nkind: ScalingSchedule\nmetadata: {name: s}\nspec:\n  target: {name: nope}\n  windows: [{name: open, schedule: \"@daily\", replicas: 3}]\n"},
			`s.yaml:5:12: spec.target.name: no Deployment named "nope"`},
		{"job restart policy", map[string]string{"j.yaml": "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n      containers: [{name: a, image: b}]\n"},
			`spec.template.spec.restartPolicy`},
		{"name too long", map[string]string{"w.yaml": strings.Replace(base, "name: web", "name: "+strings.Repeat("a", 64), 1)},
			`metadata.name: invalid value`},
		{"non-UTF-8", map[string]string{"w.yaml": base + "# \xff\xfe\n"}, "w.yaml:12:1: file is not valid UTF-8"},
		{"deep nesting", map[string]string{"w.yaml": "a: " + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "\n"}, "nested more than 64 levels deep"},
		{"duplicate across kinds", map[string]string{"a.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n",
			"b.yaml": "apiVersion: baton.dev/v1\nkind: SealedSecret\nmetadata: {name: s}\nspec: {encryptedData: {}}\n"}, `SealedSecret "s" is already defined at a.yaml:1`},
		{"runAsNonRoot as root", map[string]string{"w.yaml": dep("          securityContext: {runAsNonRoot: true, runAsUser: 0}\n")},
			"securityContext.runAsNonRoot: runAsUser is 0 (root)"},
		{"a sysctl of the whole node", map[string]string{"w.yaml": strings.Replace(dep(""), "      containers:", "      securityContext: {sysctls: [{name: vm.swappiness, value: '1'}]}\n      containers:", 1)},
			"spec.template.spec.securityContext.sysctls[0].name: vm.swappiness is not namespaced"},
		{"a network sysctl with hostNetwork", map[string]string{"w.yaml": strings.Replace(dep(""), "      containers:", "      hostNetwork: true\n      securityContext: {sysctls: [{name: net.ipv4.tcp_syncookies, value: '1'}]}\n      containers:", 1)},
			"would change the node's own network"},
		{"a Localhost seccomp profile without its file", map[string]string{"w.yaml": dep("          securityContext: {seccompProfile: {type: Localhost}}\n")},
			"securityContext.seccompProfile.localhostProfile: required with type Localhost"},
		{"unknown capability shape", map[string]string{"w.yaml": dep("          securityContext: {capabilities: {add: [sys-admin]}}\n")},
			"securityContext.capabilities.add[0]: invalid value"},
		{"two volume sources", map[string]string{"w.yaml": strings.Replace(base, "      containers:", "      volumes: [{name: d, emptyDir: {}, hostPath: {path: /x}}]\n      containers:", 1)},
			"a volume needs one of emptyDir, ephemeral, hostPath, configMap, secret, persistentVolumeClaim, downwardAPI, projected (has 2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string][]byte{}
			for k, v := range tt.files {
				files[k] = []byte(v)
			}
			_, err := Load(files)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant %q", err, tt.want)
			}
		})
	}
}

// TestDecodeWaysAgree: decoding a validated document from its JSON gives the
// same normalized objects as cue's decoder, on every kind the test data has
// and on numbers in int-or-string and quantity fields.
func TestDecodeWaysAgree(t *testing.T) {
	numbers := map[string][]byte{"n.yaml": []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: n}
spec:
  replicas: 2
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 2, maxUnavailable: 0}}
  template:
    spec:
      volumes: [{name: scratch, emptyDir: {sizeLimit: 1073741824}}]
      containers:
        - name: app
          image: app:1
          resources: {requests: {cpu: 0.25, memory: 134217728}, limits: {cpu: 2, memory: 1e9}}
          livenessProbe: {httpGet: {path: /, port: 8080}}
          readinessProbe: {tcpSocket: {port: 8080}}
---
apiVersion: v1
kind: Service
metadata: {name: n}
spec: {selector: {app: n}, ports: [{port: 80, targetPort: 8080}]}
`)}
	for _, dir := range []string{"testdata/valid", "testdata/k8s", "testdata/yamlequiv"} {
		files, err := ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, set := range []map[string][]byte{files, numbers} {
			viaJSON, err := Load(set)
			if err != nil {
				t.Fatal(err)
			}
			decodeWithCUE = true
			viaCUE, err := Load(set)
			decodeWithCUE = false
			if err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(viaJSON)
			b, _ := json.Marshal(viaCUE)
			if string(a) != string(b) {
				t.Fatalf("%s: decoded from JSON:\n%s\nby cue:\n%s", dir, a, b)
			}
		}
	}
}

// What `kubectl create deployment web --image=nginx --dry-run=client -o
// yaml` writes loads unchanged; capability names in any case are taken in
// upper case, as the runtimes take them.
func TestLoadKubectlDryRun(t *testing.T) {
	st, err := Load(map[string][]byte{"web.yaml": []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  creationTimestamp: null
  labels:
    app: web
  name: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  strategy: {}
  template:
    metadata:
      creationTimestamp: null
      labels:
        app: web
    spec:
      containers:
      - image: nginx:1.27
        name: nginx
        resources: {}
        securityContext:
          capabilities:
            drop: [all]
status: {}
`)})
	if err != nil {
		t.Fatal(err)
	}
	sc := st.Workloads[0].Pod.Containers[0].SecurityContext
	if sc == nil || !slices.Equal(sc.CapDrop, []string{"ALL"}) {
		t.Fatalf("capabilities: %+v", sc)
	}
}

// JSON manifests are read (JSON is YAML); other JSON files are skipped.
func TestLoadJSON(t *testing.T) {
	st, err := Load(map[string][]byte{
		"web.json":     []byte(`{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"}, "data": {"a": "1"}}`),
		"package.json": []byte(`{"name": "site", "version": "1.0.0"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.ConfigMaps) != 1 || st.ConfigMaps[0].Name != "web" {
		t.Fatalf("config maps: %+v", st.ConfigMaps)
	}
	if _, err := Load(map[string][]byte{"bad.json": []byte(`{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"}, "data": {"a": 1}}`)}); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Fatalf("a bad JSON manifest: %v", err)
	}
}

// Kinds Baton has nothing to govern with are accepted, named, and listed as
// not acted on, with why; their names are still checked.
func TestLoadAcceptedKinds(t *testing.T) {
	st, err := Load(map[string][]byte{"k.yaml": []byte(`apiVersion: v1
kind: ServiceAccount
metadata: {name: web}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec: {rules: [{host: example.com}]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: readers}
subjects: [{kind: ServiceAccount, name: web, namespace: default}]
roleRef: {kind: ClusterRole, name: view, apiGroup: rbac.authorization.k8s.io}
`)})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Ignored) != 3 || st.Ignored[0].Kind != "ClusterRoleBinding" || st.Ignored[1].Source != "k.yaml:5" {
		t.Fatalf("ignored: %+v", st.Ignored)
	}
	if w := strings.Join(st.Warnings, "\n"); !strings.Contains(w, "Ingress web is accepted and not acted on: there is no HTTP routing") {
		t.Fatalf("warnings: %s", w)
	}
	if _, err := Load(map[string][]byte{"k.yaml": []byte("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: Web_1}\n")}); err == nil || !strings.Contains(err.Error(), "metadata.name") {
		t.Fatalf("a bad name: %v", err)
	}
}

// Fields real manifests carry that Baton does not act on load and are
// said; Service types it cannot serve are refused with what to use.
func TestLoadAcceptedFields(t *testing.T) {
	dep := strings.Replace(base, "      containers:", "      serviceAccountName: web\n      automountServiceAccountToken: false\n      priorityClassName: high\n      containers:", 1)
	svc := "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  clusterIP: None\n  sessionAffinity: ClientIP\n  ipFamilyPolicy: SingleStack\n  ports: [{port: 80}]\n"
	st, err := Load(map[string][]byte{"web.yaml": []byte(dep), "svc.yaml": []byte(svc)})
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(st.Warnings, "\n")
	for _, want := range []string{"serviceAccountName and automountServiceAccountToken are accepted and not acted on", "priorityClassName is accepted and not acted on"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings lack %q:\n%s", want, w)
		}
	}
	// LoadBalancer is served as node ports on every node (as k3s's
	// built-in load balancer); ExternalName is refused.
	lb := strings.Replace(svc, "  clusterIP: None\n", "  type: LoadBalancer\n", 1)
	if st, err := Load(map[string][]byte{"svc.yaml": []byte(lb)}); err != nil || st.Services[0].Type != "LoadBalancer" {
		t.Fatalf("LoadBalancer: %v", err)
	}
	en := strings.Replace(svc, "  clusterIP: None\n", "  type: ExternalName\n", 1)
	if _, err := Load(map[string][]byte{"svc.yaml": []byte(en)}); err == nil || !strings.Contains(err.Error(), "spec.type: ExternalName is not supported; use ClusterIP, NodePort or LoadBalancer") {
		t.Fatalf("ExternalName: %v", err)
	}
}

// sessionAffinity: ClientIP (its timeout, 3 hours by default) and the
// traffic policies are served; a timeout out of range and an external
// policy without a node port are refused.
func TestLoadServicePolicies(t *testing.T) {
	svc := "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  type: NodePort\n  sessionAffinity: ClientIP\n  externalTrafficPolicy: Local\n  internalTrafficPolicy: Local\n  selector: {app: web}\n  ports: [{port: 80}]\n"
	st, err := Load(map[string][]byte{"svc.yaml": []byte(svc)})
	if err != nil {
		t.Fatal(err)
	}
	if s := st.Services[0]; s.AffinitySeconds != 10800 || !s.ExternalLocal || !s.InternalLocal || len(st.Warnings) != 0 {
		t.Fatalf("service %+v, warnings %q", s, st.Warnings)
	}
	timed := strings.Replace(svc, "  sessionAffinity: ClientIP\n", "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}\n", 1)
	if st, err := Load(map[string][]byte{"svc.yaml": []byte(timed)}); err != nil || st.Services[0].AffinitySeconds != 60 {
		t.Fatalf("timeoutSeconds 60: %v", err)
	}
	long := strings.Replace(timed, "60", "90000", 1)
	if _, err := Load(map[string][]byte{"svc.yaml": []byte(long)}); err == nil || !strings.Contains(err.Error(), "timeoutSeconds") {
		t.Fatalf("a timeout over a day: %v", err)
	}
	internal := strings.Replace(svc, "  type: NodePort\n", "", 1)
	if _, err := Load(map[string][]byte{"svc.yaml": []byte(internal)}); err == nil || !strings.Contains(err.Error(), "spec.externalTrafficPolicy: only allowed with type NodePort or LoadBalancer") {
		t.Fatalf("externalTrafficPolicy on a ClusterIP Service: %v", err)
	}
}

// A `kind: List` (what kubectl get -o yaml writes) is its items, each
// with its own lines.
func TestLoadList(t *testing.T) {
	list := "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: a}\n    data: {x: \"1\"}\n" +
		"  - apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: b}\n    data: {x: \"2\"}\n"
	st, err := Load(map[string][]byte{"l.yaml": []byte(list)})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.ConfigMaps) != 2 || st.ConfigMaps[1].Source != "l.yaml:8" {
		t.Fatalf("config maps: %+v", st.ConfigMaps)
	}
	bad := strings.Replace(list, "data: {x: \"2\"}", "datum: {x: \"2\"}", 1)
	if _, err := Load(map[string][]byte{"l.yaml": []byte(bad)}); err == nil || !strings.Contains(err.Error(), "l.yaml:11:5: datum: field not allowed") {
		t.Fatalf("an item's error: %v", err)
	}
}

// Every unknown field of a document is reported, even beside a wrong
// value (CUE alone reports none in a struct that has another error), and
// nothing that is allowed is: every valid test manifest, made to fail by
// one wrong value, reports that value only.
func TestEveryErrorOfADocument(t *testing.T) {
	bad := strings.Replace(strings.Replace(base, "replicas: 3", "replicas: three\n  bogus: 1", 1), "image: web:1", "image: web:1\n          imagez: 2", 1)
	_, err := Load(map[string][]byte{"web.yaml": []byte(bad)})
	if err == nil {
		t.Fatal("loaded")
	}
	for _, want := range []string{"spec.replicas: must be an integer", "spec.bogus: field not allowed", "containers[0].imagez: field not allowed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from:\n%v", want, err)
		}
	}
	for _, dir := range []string{"testdata/k8s", "testdata/valid"} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".yaml") {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			// A wrong value in metadata: every object has a name.
			broken := strings.Replace(string(b), "metadata:", "metadata:\n  namespace: Else_where", 1)
			_, err = Load(map[string][]byte{e.Name(): []byte(broken)})
			if err == nil {
				t.Errorf("%s: loaded with a wrong namespace", e.Name())
				continue
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if strings.Contains(line, "field not allowed") {
					t.Errorf("%s: a field reported that the schema allows: %s", e.Name(), line)
				}
			}
		}
	}
}

// An autoscaling/v1 HorizontalPodAutoscaler is read as the v2 form with
// its one CPU target (80% when unset, as in Kubernetes).
func TestLoadAutoscalingV1(t *testing.T) {
	hpa := "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  minReplicas: 2\n  maxReplicas: 6\n"
	for _, c := range []struct {
		extra string
		want  int
	}{{"", 80}, {"  targetCPUUtilizationPercentage: 55\n", 55}} {
		st, err := Load(map[string][]byte{"web.yaml": []byte(base), "hpa.yaml": []byte(hpa + c.extra)})
		if err != nil {
			t.Fatal(err)
		}
		if a := st.Autoscalers[0]; a.TargetCPUPercent != c.want || a.MinReplicas != 2 || a.MaxReplicas != 6 {
			t.Fatalf("autoscaler: %+v", a)
		}
	}
	v2 := strings.Replace(hpa, "autoscaling/v1", "autoscaling/v2", 1) + "  targetCPUUtilizationPercentage: 55\n"
	if _, err := Load(map[string][]byte{"web.yaml": []byte(base), "hpa.yaml": []byte(v2)}); err == nil || !strings.Contains(err.Error(), "targetCPUUtilizationPercentage: field not allowed") {
		t.Fatalf("a v1 field in v2: %v", err)
	}
}

// Resources beyond cpu and memory: a limit alone requests the limit;
// extended resources and huge pages need a limit equal to any request and
// whole units; each is said to be scheduled only.
func TestLoadExtraResources(t *testing.T) {
	res := func(r string) map[string][]byte {
		return map[string][]byte{"web.yaml": []byte(base + "          resources:\n" + r)}
	}
	st, err := Load(res("            requests: {ephemeral-storage: 1Gi}\n            limits: {nvidia.com/gpu: 2, hugepages-2Mi: 64Mi, ephemeral-storage: 2Gi}\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := st.Workloads[0].Pod.Containers[0].Resources.Requests.Extra
	if want := map[string]int64{"ephemeral-storage": 1 << 30, "nvidia.com/gpu": 2, "hugepages-2Mi": 64 << 20}; !maps.Equal(got, want) {
		t.Fatalf("requests %v, want %v", got, want)
	}
	w := strings.Join(st.Warnings, "\n")
	for _, want := range []string{"ephemeral-storage is scheduled against the nodes' disks and not enforced", "nvidia.com/gpu is scheduled against what nodes advertise",
		"hugepages-2Mi is scheduled against what nodes advertise"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings lack %q:\n%s", want, w)
		}
	}
	for _, c := range []struct{ res, want string }{
		{"            requests: {nvidia.com/gpu: 1}\n", "limits.nvidia.com/gpu: required"},
		{"            requests: {nvidia.com/gpu: 1}\n            limits: {nvidia.com/gpu: 2}\n", "requests.nvidia.com/gpu: must equal its limit"},
		{"            limits: {nvidia.com/gpu: 500m}\n", "whole units"},
		{"            requests: {hugepages-2Mi: 2Mi}\n", "limits.hugepages-2Mi: required"},
		{"            requests: {ephemeral-storage: 2Gi}\n            limits: {ephemeral-storage: 1Gi}\n", "a request is above its limit"},
		{"            requests: {gpu: 1}\n", "gpu: field not allowed"},
	} {
		if _, err := Load(res(c.res)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.res, err, c.want)
		}
	}
}

// An object a pod needs that the revision lacks (a Secret made with
// kubectl, as tutorials do) is waited for, not refused: the workload says
// so, and a warning too; an optional one is not waited for.
func TestLoadWaitsForMissingObjects(t *testing.T) {
	dep := strings.Replace(base, "      containers:", "      volumes: [{name: d, persistentVolumeClaim: {claimName: data}}, {name: s, secret: {secretName: tls, optional: true}}]\n      containers:", 1) +
		"          env: [{name: T, valueFrom: {secretKeyRef: {name: hf-secret, key: token}}}]\n          envFrom: [{configMapRef: {name: settings}}]\n"
	st, err := Load(map[string][]byte{"web.yaml": []byte(dep)})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(st.Workloads[0].Pod.Waiting); got != "[ConfigMap settings PersistentVolumeClaim data Secret hf-secret]" {
		t.Fatalf("waiting %s", got)
	}
	if w := strings.Join(st.Warnings, "\n"); !strings.Contains(w, "Deployment web: waits for Secret hf-secret, which is not in the revision") {
		t.Fatalf("warnings:\n%s", w)
	}
	// Once the revision has them, nothing waits and the template changes.
	more := dep + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: hf-secret}\nstringData: {token: x}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n" +
		"---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n"
	st2, err := Load(map[string][]byte{"web.yaml": []byte(more)})
	if err != nil {
		t.Fatal(err)
	}
	if w := st2.Workloads[0]; len(w.Pod.Waiting) != 0 || w.Hash == st.Workloads[0].Hash {
		t.Fatalf("with the objects: waiting %v, hash %s (was %s)", w.Pod.Waiting, w.Hash, st.Workloads[0].Hash)
	}
}

// A pod's securityContext gives its containers their defaults (theirs
// win) and the pod its groups, seccomp profile and sysctls.
func TestLoadPodSecurityContext(t *testing.T) {
	dep := strings.Replace(base, "      containers:", `      securityContext:
        runAsUser: 1000
        runAsGroup: 3000
        runAsNonRoot: true
        fsGroup: 2000
        supplementalGroups: [4000]
        seccompProfile: {type: Localhost, localhostProfile: profiles/audit.json}
        sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "0"}]
      containers:`, 1) + `        - name: side
          image: side:1
          securityContext: {runAsUser: 1001, runAsNonRoot: false, seccompProfile: {type: RuntimeDefault}}
`
	st, err := Load(map[string][]byte{"web.yaml": []byte(dep)})
	if err != nil {
		t.Fatal(err)
	}
	p := st.Workloads[0].Pod
	app, side := p.Containers[0].SecurityContext, p.Containers[1].SecurityContext
	if *app.RunAsUser != 1000 || *app.RunAsGroup != 3000 || !app.RunAsNonRoot || app.Seccomp != "Localhost/profiles/audit.json" {
		t.Errorf("app %+v", app)
	}
	if *side.RunAsUser != 1001 || *side.RunAsGroup != 3000 || side.RunAsNonRoot || side.Seccomp != "" {
		t.Errorf("side %+v", side)
	}
	if *p.FSGroup != 2000 || fmt.Sprint(p.SupplementalGroups) != "[4000]" || fmt.Sprint(p.Sysctls) != "[{net.ipv4.ip_unprivileged_port_start 0}]" {
		t.Errorf("pod: fsGroup %v groups %v sysctls %v", p.FSGroup, p.SupplementalGroups, p.Sysctls)
	}
}

// What real repositories carry that Kubernetes takes: server-written
// metadata, a headless Service without ports, nodePort 0, a claim naming
// a volume, RBAC names with colons, autoscaling/v2beta2; removed API
// versions are refused with what replaces them.
func TestLoadRealWorldForms(t *testing.T) {
	files := map[string][]byte{"all.yaml": []byte(`apiVersion: v1
kind: Service
metadata: {name: hl, uid: 0b1c, resourceVersion: "42", generation: 3}
spec: {clusterIP: None, selector: {app: x}}
---
apiVersion: v1
kind: Service
metadata: {name: np}
spec: {type: NodePort, ports: [{port: 80, nodePort: 0}]}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {volumeName: pv-1, resources: {requests: {storage: 1Gi}, limits: {storage: 2Gi}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:metrics-reader"}
rules: []
` + "---\n" + strings.Replace(base, "metadata:\n  name: web", "metadata:\n  name: web\n  resourceVersion: \"7\"", 1) + `---
apiVersion: autoscaling/v2beta2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 4
  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}}]
`)}
	st, err := Load(files)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Services) != 2 || len(st.Autoscalers) != 1 || st.Autoscalers[0].TargetCPUPercent != 50 || st.Services[1].Ports[0].NodePort != 0 {
		t.Fatalf("services %+v autoscalers %+v", st.Services, st.Autoscalers)
	}
	if w := strings.Join(st.Warnings, "\n"); !strings.Contains(w, "PersistentVolumeClaim data: volumeName pv-1 is not acted on") {
		t.Fatalf("warnings:\n%s", w)
	}
	for yaml, want := range map[string]string{
		"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {selector: {app: x}}\n":  "spec.ports: a Service with a virtual address needs at least one port",
		"apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: x}\nspec: {}\n": "extensions/v1beta1 Deployment was removed from Kubernetes 1.16: use apps/v1 Deployment",
		"apiVersion: batch/v1beta1\nkind: CronJob\nmetadata: {name: x}\nspec: {}\n":         "batch/v1beta1 CronJob was removed from Kubernetes 1.25: use batch/v1 CronJob",
	} {
		if _, err := Load(map[string][]byte{"x.yaml": []byte(yaml)}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", yaml, err, want)
		}
	}
}

// Scheduling as Kubernetes writes it: tolerations, node affinity
// (required and preferred, expressions and fields), pod affinity and
// anti-affinity with matchExpressions, and expressions in a Deployment's
// selector; what Kubernetes refuses is refused.
func TestLoadScheduling(t *testing.T) {
	dep := strings.Replace(strings.Replace(base, "spec:\n  replicas: 3\n", "spec:\n  replicas: 3\n  selector:\n    matchExpressions: [{key: app, operator: In, values: [web]}]\n", 1),
		"  template:\n    spec:\n", "  template:\n    metadata: {labels: {app: web}}\n    spec:\n", 1)
	dep = strings.Replace(dep, "      containers:", `      tolerations:
        - {key: gpu, operator: Exists, effect: NoSchedule}
        - {key: maint, operator: Equal, value: "yes", effect: NoExecute, tolerationSeconds: 60}
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions: [{key: cores, operator: Gt, values: ["8"]}]
              - matchFields: [{key: metadata.name, operator: In, values: [n1]}]
          preferredDuringSchedulingIgnoredDuringExecution:
            - {weight: 20, preference: {matchExpressions: [{key: disk, operator: Exists}]}}
        podAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            - {topologyKey: topology.kubernetes.io/zone, labelSelector: {matchExpressions: [{key: app, operator: In, values: [cache]}]}}
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm: {topologyKey: kubernetes.io/hostname, labelSelector: {matchExpressions: [{key: app, operator: NotIn, values: [batch]}]}}
      containers:`, 1)
	st, err := Load(map[string][]byte{"web.yaml": []byte(dep)})
	if err != nil {
		t.Fatal(err)
	}
	p := st.Workloads[0].Pod
	if len(p.Tolerations) != 2 || len(p.NodeAffinity.Required) != 2 || len(p.NodeAffinity.Preferred) != 1 || len(p.Affinity) != 1 || len(p.AntiAffinity) != 1 ||
		p.Affinity[0].MatchExpressions[0].Values[0] != "cache" || p.AntiAffinity[0].Weight != 100 {
		t.Fatalf("pod %+v", p)
	}
	for change, want := range map[[2]string]string{
		{"values: [web]}]", "values: [api]}]"}:                                    "spec.selector.matchExpressions[0]: app In [api] does not match the template's labels",
		{"operator: Gt, values: [\"8\"]", "operator: Gt, values: [eight]"}:        "needs one integer value",
		{"{key: gpu, operator: Exists, effect: NoSchedule}", "{operator: Equal}"}: "an empty key needs operator Exists",
		{"key: metadata.name", "key: metadata.uid"}:                               "the only field is metadata.name",
		{"operator: NotIn, values: [batch]", "operator: Gt, values: [\"1\"]"}:     "Gt is for node selectors only",
	} {
		if _, err := Load(map[string][]byte{"web.yaml": []byte(strings.Replace(dep, change[0], change[1], 1))}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s → %s: %v, want %q", change[0], change[1], err, want)
		}
	}
}

// An HPA's metrics: cpu and memory utilization are targets; Pods, Object
// and External metrics are accepted and said not acted on.
func TestLoadHPAMetrics(t *testing.T) {
	hpa := func(metrics string) map[string][]byte {
		return map[string][]byte{"web.yaml": []byte(base), "hpa.yaml": []byte(`apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 4
  metrics:
` + metrics)}
	}
	st, err := Load(hpa(`    - {type: Resource, resource: {name: memory, target: {type: Utilization, averageUtilization: 70}}}
    - {type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}}
    - {type: External, external: {metric: {name: queue}, target: {type: AverageValue, averageValue: "30"}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if a := st.Autoscalers[0]; a.TargetCPUPercent != 60 || a.TargetMemoryPercent != 70 || fmt.Sprint(a.Unmeasured) != "[External]" {
		t.Fatalf("autoscaler %+v", a)
	}
	if w := strings.Join(st.Warnings, "\n"); !strings.Contains(w, "its External metric is not acted on") {
		t.Fatalf("warnings:\n%s", w)
	}
	for metrics, want := range map[string]string{
		"    - {type: Resource}\n": "spec.metrics[0].resource: required with type Resource",
		"    - {type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}}\n    - {type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}}\n": "cpu twice",
	} {
		if _, err := Load(hpa(metrics)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", metrics, err, want)
		}
	}
}

// The downward API: fields the manifest knows are resolved when it
// loads, those only the node knows are kept for it; resources by
// container with a divisor.
func TestLoadDownwardAPI(t *testing.T) {
	dep := strings.Replace(base, "  template:\n    spec:\n", "  template:\n    metadata: {labels: {app: web, tier: front}, annotations: {team: blue}}\n    spec:\n      serviceAccountName: web-sa\n", 1) +
		`          resources: {limits: {cpu: 1500m}}
          env:
            - {name: TIER, valueFrom: {fieldRef: {fieldPath: "metadata.labels['tier']"}}}
            - {name: TEAM, valueFrom: {fieldRef: {fieldPath: "metadata.annotations['team']"}}}
            - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
            - {name: SA, valueFrom: {fieldRef: {apiVersion: v1, fieldPath: spec.serviceAccountName}}}
            - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
            - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
            - {name: CPUS, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 500m}}}
`
	st, err := Load(map[string][]byte{"web.yaml": []byte(dep)})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]EnvVar{}
	for _, e := range st.Workloads[0].Pod.Containers[0].Env {
		env[e.Name] = e
	}
	if env["TIER"].Value != "front" || env["TEAM"].Value != "blue" || env["NS"].Value != "default" || env["SA"].Value != "web-sa" ||
		env["POD"].FieldRef != "metadata.name" || env["IP"].FieldRef != "status.podIP" ||
		*env["CPUS"].ResourceFieldRef != (ResourceFieldRef{Container: "app", Resource: "limits.cpu", Divisor: 500}) {
		t.Fatalf("env %+v", env)
	}
	for change, want := range map[[2]string]string{
		{"fieldPath: status.podIP", "fieldPath: status.phase"}:                             `"status.phase" is not a field the downward API gives`,
		{"resource: limits.cpu, divisor: 500m", "resource: limits.cpu, containerName: db"}: `resourceFieldRef.containerName: no container named "db" in the pod`,
	} {
		if _, err := Load(map[string][]byte{"web.yaml": []byte(strings.Replace(dep, change[0], change[1], 1))}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", change[1], err, want)
		}
	}
}

// A generic ephemeral volume is scratch space of its claim's size, as an
// emptyDir; a template's metadata.name is ignored, as Kubernetes does.
func TestLoadEphemeralVolume(t *testing.T) {
	dep := strings.Replace(base, "  template:\n    spec:\n", `  template:
    metadata: {name: ignored}
    spec:
      volumes:
        - name: scratch
          ephemeral:
            volumeClaimTemplate:
              metadata: {labels: {type: scratch}}
              spec: {accessModes: [ReadWriteOnce], storageClassName: fast, resources: {requests: {storage: 2Gi}}}
`, 1) + "          volumeMounts: [{name: scratch, mountPath: /scratch}]\n"
	st, err := Load(map[string][]byte{"web.yaml": []byte(dep)})
	if err != nil {
		t.Fatal(err)
	}
	if v := st.Workloads[0].Pod.Volumes[0]; v.EmptyDir == nil || v.EmptyDir.SizeLimitBytes != 2<<30 || v.EmptyDir.Memory {
		t.Fatalf("volume %+v", v)
	}
}

// Init containers load in order, a restartPolicy Always one as a sidecar;
// what Kubernetes refuses of them is refused.
func TestLoadInitContainers(t *testing.T) {
	dep := strings.Replace(base, "      containers:", `      initContainers:
        - {name: migrate, image: "migrate:1", args: [up]}
        - {name: proxy, image: "proxy:1", restartPolicy: Always, ports: [{containerPort: 15001}], readinessProbe: {tcpSocket: {port: 15001}}}
      containers:`, 1)
	st, err := Load(map[string][]byte{"web.yaml": []byte(dep)})
	if err != nil {
		t.Fatal(err)
	}
	p := st.Workloads[0].Pod
	if len(p.InitContainers) != 2 || p.InitContainers[0].Sidecar || !p.InitContainers[1].Sidecar || len(p.AllContainers()) != 3 {
		t.Fatalf("init containers %+v", p.InitContainers)
	}
	for change, want := range map[[2]string]string{
		{"args: [up]}", "args: [up], readinessProbe: {tcpSocket: {port: 80}}}"}: "probes are for sidecars",
		{"name: proxy", "name: migrate"}:                                        `duplicate container name "migrate"`,
		{"args: [up]}", "args: [up], restartPolicy: Never}"}:                    "restartPolicy",
	} {
		if _, err := Load(map[string][]byte{"web.yaml": []byte(strings.Replace(dep, change[0], change[1], 1))}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", change[1], err, want)
		}
	}
}

// A bare Pod runs as one replica (restartPolicy Always) or as a Job of one
// completion, not retried (OnFailure, Never); a Service selects it by its
// labels; its name is a workload's or a Job's.
func TestLoadBarePod(t *testing.T) {
	pods := `apiVersion: v1
kind: Pod
metadata: {name: bb, labels: {app: bb}}
spec:
  containers: [{name: bb, image: "busybox:1.36", command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: once}
spec:
  restartPolicy: Never
  containers: [{name: bb, image: "busybox:1.36", command: [echo, hi]}]
`
	st, err := Load(map[string][]byte{"pods.yaml": []byte(pods)})
	if err != nil {
		t.Fatal(err)
	}
	w, j := st.Workloads[0], st.Jobs[0]
	if w.Kind != "Pod" || w.Replicas != 1 || w.Strategy.Type != "Recreate" || w.PodLabels["app"] != "bb" || w.Pod.RestartPolicy != "Always" {
		t.Fatalf("workload %+v", w)
	}
	if j.Kind != "Pod" || j.Spec.Completions != 1 || j.Spec.BackoffLimit != 0 || j.Spec.Pod.RestartPolicy != "Never" {
		t.Fatalf("job %+v", j)
	}
	// A Pod and a Deployment cannot share a name.
	dup := pods + "---\n" + strings.Replace(base, "name: web", "name: bb", 1)
	if _, err := Load(map[string][]byte{"pods.yaml": []byte(dup)}); err == nil || !strings.Contains(err.Error(), "is already defined") {
		t.Fatalf("a Pod and a Deployment of one name: %v", err)
	}
}

// A DaemonSet loads as a workload of kind DaemonSet, RollingUpdate with
// maxUnavailable 1 by default or OnDelete; its name is a workload's.
func TestLoadDaemonSet(t *testing.T) {
	ds := `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 25%}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      tolerations: [{operator: Exists}]
      containers: [{name: agent, image: "agent:1"}]
`
	st, err := Load(map[string][]byte{"ds.yaml": []byte(ds)})
	if err != nil {
		t.Fatal(err)
	}
	if w := st.Workloads[0]; w.Kind != "DaemonSet" || w.Strategy.MaxUnavailable != "25%" || w.Strategy.MaxSurge != "0" || len(w.Pod.Tolerations) != 1 {
		t.Fatalf("workload %+v", w)
	}
	for change, want := range map[[2]string]string{
		{"app: agent}}\n  updateStrategy", "app: other}}\n  updateStrategy"}: "does not match the template's labels",
		{"type: RollingUpdate,", "type: OnDelete,"}:                          "only allowed with type RollingUpdate",
	} {
		if _, err := Load(map[string][]byte{"ds.yaml": []byte(strings.Replace(ds, change[0], change[1], 1))}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", change[1], err, want)
		}
	}
}

// completionMode Indexed needs completions; suspend is not part of a Job's
// template (its hash), so a Job resumes where it was.
func TestLoadIndexedAndSuspendedJob(t *testing.T) {
	job := `apiVersion: batch/v1
kind: Job
metadata: {name: batch}
spec:
  completions: 4
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: "batch:1"}]
`
	st, err := Load(map[string][]byte{"job.yaml": []byte(job)})
	if err != nil {
		t.Fatal(err)
	}
	suspended, err := Load(map[string][]byte{"job.yaml": []byte(strings.Replace(job, "  completions: 4\n", "  completions: 4\n  suspend: true\n", 1))})
	if err != nil {
		t.Fatal(err)
	}
	if j, s := st.Jobs[0], suspended.Jobs[0]; !j.Spec.Indexed || !s.Spec.Suspend || j.Hash != s.Hash {
		t.Fatalf("job %+v / suspended %+v", j, s)
	}
	if _, err := Load(map[string][]byte{"job.yaml": []byte(strings.Replace(job, "  completions: 4\n", "", 1))}); err == nil || !strings.Contains(err.Error(), "completions: required with completionMode Indexed") {
		t.Fatalf("Indexed without completions: %v", err)
	}
}

// imagePullSecrets: a kubernetes.io/dockerconfigjson Secret's credentials
// reach the pod only resolved (ResolvePod), never in the State's JSON; a
// Secret without them is an error, a missing one is waited for.
func TestLoadImagePullSecrets(t *testing.T) {
	cfg := base64.StdEncoding.EncodeToString([]byte(`{"auths": {"https://registry.example.com/v2/": {"auth": "` +
		base64.StdEncoding.EncodeToString([]byte("robot:s3cret")) + `"}, "ghcr.io": {"username": "u", "password": "p"}}}`))
	dep := strings.Replace(base, "      containers:", "      imagePullSecrets: [{name: regcred}]\n      containers:", 1)
	secret := "---\napiVersion: v1\nkind: Secret\nmetadata: {name: regcred}\ntype: kubernetes.io/dockerconfigjson\ndata: {.dockerconfigjson: " + cfg + "}\n"
	st, err := Load(map[string][]byte{"web.yaml": []byte(dep + secret)})
	if err != nil {
		t.Fatal(err)
	}
	pod := st.ResolvePod(st.Workloads[0].Pod)
	if got := fmt.Sprint(pod.RegistryAuth); got != "[{ghcr.io u p} {registry.example.com robot s3cret}]" {
		t.Fatalf("registry auth %s", got)
	}
	if b, _ := json.Marshal(st); strings.Contains(string(b), "s3cret") || len(st.Workloads[0].Pod.RegistryAuth) != 0 {
		t.Fatal("the credentials are in the state itself")
	}
	plain := "---\napiVersion: v1\nkind: Secret\nmetadata: {name: regcred}\nstringData: {token: x}\n"
	if _, err := Load(map[string][]byte{"web.yaml": []byte(dep + plain)}); err == nil || !strings.Contains(err.Error(), `Secret "regcred": has no .dockerconfigjson`) {
		t.Fatalf("a Secret without credentials: %v", err)
	}
	st, err = Load(map[string][]byte{"web.yaml": []byte(dep)})
	if err != nil || fmt.Sprint(st.Workloads[0].Pod.Waiting) != "[Secret regcred]" {
		t.Fatalf("a missing pull secret: %v %v", err, st)
	}
}

// hostPID, hostIPC and serviceAccount (serviceAccountName's old name) load;
// baseline refuses the host namespaces; a subdomain without its headless
// Service is said to name nothing.
func TestLoadHostNamespaces(t *testing.T) {
	dep := strings.Replace(base, "      containers:", "      hostPID: true\n      hostIPC: true\n      serviceAccount: web\n      subdomain: web\n      containers:", 1) +
		"          terminationMessagePolicy: FallbackToLogsOnError\n"
	st, err := Load(map[string][]byte{"web.yaml": []byte(dep)})
	if err != nil {
		t.Fatal(err)
	}
	p := st.Workloads[0].Pod
	if !p.HostPID || !p.HostIPC || p.ServiceAccountName != "web" {
		t.Fatalf("pod %+v", p)
	}
	if v := fmt.Sprint(CheckPodSecurity(PodSecurityBaseline, p)); !strings.Contains(v, "hostPID") || !strings.Contains(v, "hostIPC") {
		t.Fatalf("baseline: %s", v)
	}
	if w := strings.Join(st.Warnings, "\n"); !strings.Contains(w, "subdomain web names no headless Service") {
		t.Fatalf("warnings:\n%s", w)
	}
}

// downwardAPI and projected volumes: ConfigMaps, Secrets and the pod's
// fields in one directory; labels whole as key="value" lines; a
// serviceAccountToken source is said not written.
func TestLoadProjectedVolumes(t *testing.T) {
	dep := strings.Replace(base, "  template:\n    spec:\n", `  template:
    metadata: {labels: {app: web, tier: front}}
    spec:
      volumes:
        - name: info
          downwardAPI:
            items:
              - {path: labels, fieldRef: {fieldPath: metadata.labels}}
              - {path: name, fieldRef: {fieldPath: metadata.name}}
        - name: all
          projected:
            sources:
              - configMap: {name: cfg, items: [{key: a, path: conf/a}]}
              - secret: {name: creds}
              - downwardAPI: {items: [{path: cpu, resourceFieldRef: {containerName: app, resource: limits.cpu, divisor: 1m}}]}
              - serviceAccountToken: {path: token}
`, 1) + "          volumeMounts: [{name: info, mountPath: /info}, {name: all, mountPath: /all}]\n" +
		"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: one}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {pw: s3cret}\n"
	st, err := Load(map[string][]byte{"web.yaml": []byte(dep)})
	if err != nil {
		t.Fatal(err)
	}
	vs := st.Workloads[0].Pod.Volumes
	info, all := vs[0].Projected, vs[1].Projected
	if info.Downward[0].Value != "app=\"web\"\ntier=\"front\"\n" || info.Downward[1].FieldRef != "metadata.name" {
		t.Fatalf("downwardAPI %+v", info)
	}
	if len(all.ConfigMaps) != 1 || len(all.Secrets) != 1 || all.Downward[0].ResourceFieldRef.Divisor != 1 || !all.NoToken {
		t.Fatalf("projected %+v", all)
	}
	pod := st.ResolvePod(st.Workloads[0].Pod)
	if got := pod.Volumes[1].Projected; string(got.ConfigMaps[0].Files["conf/a"]) != "one" || string(got.Secrets[0].Files["pw"]) != "s3cret" {
		t.Fatalf("resolved %+v", got)
	}
	if w := strings.Join(st.Warnings, "\n"); !strings.Contains(w, "volume all: its serviceAccountToken source is not written") {
		t.Fatalf("warnings:\n%s", w)
	}
	// A ConfigMap the revision lacks is waited for, as elsewhere.
	st, err = Load(map[string][]byte{"web.yaml": []byte(strings.SplitN(dep, "---", 2)[0])})
	if err != nil || fmt.Sprint(st.Workloads[0].Pod.Waiting) != "[ConfigMap cfg Secret creds]" {
		t.Fatalf("without the objects: %v %v", err, st)
	}
}

// A CUE comprehension may build more than any file holds: an object past
// MaxObjectBytes once evaluated, or a package past the revision's cap, is
// refused, naming the object.
func TestLoadCUEOutputCapped(t *testing.T) {
	big := `package cfg

import (
	"list"
	"strings"
)

blob: {
	apiVersion: "v1"
	kind:       "ConfigMap"
	metadata: name: "blob"
	data: x: strings.Join([for i in list.Range(0, 5*1024, 1) {strings.Repeat("x", 1024)}], "")
}
`
	if _, err := Load(map[string][]byte{"cfg/big.cue": []byte(big)}); err == nil || !strings.Contains(err.Error(), "ConfigMap blob is") || !strings.Contains(err.Error(), "once evaluated, more than the 4194304 an object may be") {
		t.Fatalf("a 5 MiB object: %v", err)
	}
	many := `package cfg

import (
	"list"
	"strings"
)

maps: [for i in [0, 1, 2, 3] {
	apiVersion: "v1"
	kind:       "ConfigMap"
	metadata: name: "m\(i)"
	data: x: strings.Join([for j in list.Range(0, 300, 1) {strings.Repeat("x", 1024)}], "")
}]
`
	defer func(n int) { maxEvaluatedBytes = n }(maxEvaluatedBytes)
	maxEvaluatedBytes = 1 << 20
	if _, err := Load(map[string][]byte{"cfg/many.cue": []byte(many)}); err == nil || !strings.Contains(err.Error(), "bytes of objects, more than the 1048576 a revision may hold") {
		t.Fatalf("1.2 MiB of objects past a 1 MiB cap: %v", err)
	}
	maxEvaluatedBytes = 2 << 20
	if _, err := Load(map[string][]byte{"cfg/many.cue": []byte(many)}); err != nil {
		t.Fatalf("under the cap: %v", err)
	}
}

// Lifecycle hooks load: exec, httpGet (named ports resolve) or sleep, one
// of them; Kubernetes' tcpSocket hook is not a field.
func TestLoadLifecycleHooks(t *testing.T) {
	dep := base + `          ports: [{name: http, containerPort: 8080}]
          lifecycle:
            postStart: {exec: {command: [/bin/warm]}}
            preStop: {httpGet: {path: /drain, port: http}}
`
	st, err := Load(map[string][]byte{"web.yaml": []byte(dep)})
	if err != nil {
		t.Fatal(err)
	}
	lc := st.Workloads[0].Pod.Containers[0].Lifecycle
	if fmt.Sprint(lc.PostStart.Exec) != "[/bin/warm]" || lc.PreStop.HTTPGet.Port != "http" || lc.PreStop.HTTPGet.Path != "/drain" {
		t.Fatalf("lifecycle %+v %+v", lc.PostStart, lc.PreStop)
	}
	for change, want := range map[[2]string]string{
		{"preStop: {httpGet: {path: /drain, port: http}}", "preStop: {sleep: {seconds: 5}, exec: {command: [x]}}"}: "exactly one of exec, httpGet, sleep",
		{"port: http}", "port: nope}"}: `no container port named "nope"`,
		{"preStop: {httpGet: {path: /drain, port: http}}", "preStop: {tcpSocket: {port: 80}}"}: "tcpSocket: field not allowed",
	} {
		if _, err := Load(map[string][]byte{"web.yaml": []byte(strings.Replace(dep, change[0], change[1], 1))}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", change[1], err, want)
		}
	}
}

// A ReplicationController loads as a workload with strategy OnDelete; its
// selector is a plain map that must match the template's labels.
func TestLoadReplicationController(t *testing.T) {
	rc := `apiVersion: v1
kind: ReplicationController
metadata: {name: redis}
spec:
  replicas: 2
  selector: {app: redis}
  template:
    metadata: {labels: {app: redis}}
    spec:
      containers: [{name: redis, image: "redis:7"}]
`
	st, err := Load(map[string][]byte{"rc.yaml": []byte(rc)})
	if err != nil {
		t.Fatal(err)
	}
	if w := st.Workloads[0]; w.Kind != "ReplicationController" || w.Replicas != 2 || w.Strategy.Type != "OnDelete" || w.Selector["app"] != "redis" {
		t.Fatalf("workload %+v", w)
	}
	if _, err := Load(map[string][]byte{"rc.yaml": []byte(strings.Replace(rc, "selector: {app: redis}", "selector: {app: other}", 1))}); err == nil || !strings.Contains(err.Error(), "does not match the template's labels") {
		t.Fatalf("a selector that matches nothing: %v", err)
	}
}

// What a Service asks that Baton does not do is said or refused:
// LoadBalancer's external address and publishNotReadyAddresses are
// warnings; IPv6 and dual stack are refused. tolerationSeconds is said
// not counted; a sidecar's host port is refused.
func TestLoadSaidAndRefused(t *testing.T) {
	svc := "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {type: LoadBalancer, publishNotReadyAddresses: true, clusterIPs: [10.78.0.5], selector: {app: web}, ports: [{port: 80}]}\n"
	st, err := Load(map[string][]byte{"svc.yaml": []byte(svc)})
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(st.Warnings, "\n")
	for _, want := range []string{"Service web: type LoadBalancer's external address", "Service web: publishNotReadyAddresses"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings lack %q:\n%s", want, w)
		}
	}
	if st.Services[0].ClusterIP != "10.78.0.5" {
		t.Errorf("clusterIPs[0] not taken: %q", st.Services[0].ClusterIP)
	}
	for change, want := range map[[2]string]string{
		{"publishNotReadyAddresses: true", "ipFamilies: [IPv6]"}:                     "spec.ipFamilies[0]: IPv6 Services are not built",
		{"publishNotReadyAddresses: true", "ipFamilyPolicy: RequireDualStack"}:       "RequireDualStack",
		{"clusterIPs: [10.78.0.5]", "clusterIPs: [10.78.0.5, \"fd00::5\"]"}:          "dual-stack Services are not built",
		{"clusterIPs: [10.78.0.5]", "clusterIP: 10.78.0.6, clusterIPs: [10.78.0.5]"}: "differs from clusterIP",
	} {
		if _, err := Load(map[string][]byte{"svc.yaml": []byte(strings.Replace(svc, change[0], change[1], 1))}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", change[1], err, want)
		}
	}
	dep := strings.Replace(base, "      containers:", "      tolerations: [{key: maint, operator: Exists, effect: NoExecute, tolerationSeconds: 60}]\n      containers:", 1)
	st, err = Load(map[string][]byte{"web.yaml": []byte(dep)})
	if err != nil || !strings.Contains(strings.Join(st.Warnings, "\n"), "tolerationSeconds is not counted") {
		t.Fatalf("tolerationSeconds: %v %v", err, st.Warnings)
	}
	side := strings.Replace(base, "      containers:", "      initContainers: [{name: proxy, image: \"proxy:1\", restartPolicy: Always, ports: [{containerPort: 81, hostPort: 81}]}]\n      containers:", 1)
	if _, err := Load(map[string][]byte{"web.yaml": []byte(side)}); err == nil || !strings.Contains(err.Error(), "a sidecar's host port is not published") {
		t.Fatalf("a sidecar's host port: %v", err)
	}
}

// A volume with no source is an emptyDir, as the API server defaults it.
func TestLoadVolumeWithoutSource(t *testing.T) {
	st, err := Load(map[string][]byte{"w.yaml": []byte(strings.Replace(base, "      containers:", "      volumes: [{name: scratch}]\n      containers:", 1))})
	if err != nil {
		t.Fatal(err)
	}
	if v := st.Workloads[0].Pod.Volumes[0]; v.EmptyDir == nil || v.EmptyDir.Memory {
		t.Fatalf("%+v", v)
	}
}

// A PodDisruptionBudget is read with its selector (none selects nothing)
// in its namespace; minAvailable and maxUnavailable together are refused.
func TestLoadDisruptionBudget(t *testing.T) {
	pdb := "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web, namespace: shop}\nspec: {minAvailable: 50%, selector: {matchLabels: {app: web}}}\n"
	st, err := Load(map[string][]byte{"pdb.yaml": []byte(pdb)})
	if err != nil {
		t.Fatal(err)
	}
	b := st.Budgets[0]
	if b.Name != "shop/web" || b.MinAvailable != "50%" || b.Selector == nil || len(st.Ignored) != 0 ||
		!b.Selects(Workload{Name: "shop/x", PodLabels: map[string]string{"app": "web"}}) || b.Selects(Workload{Name: "x", PodLabels: map[string]string{"app": "web"}}) {
		t.Fatalf("%+v", st)
	}
	if st, err := Load(map[string][]byte{"pdb.yaml": []byte(strings.Replace(pdb, ", selector: {matchLabels: {app: web}}", "", 1))}); err != nil ||
		st.Budgets[0].Selects(Workload{Name: "shop/x"}) {
		t.Fatalf("no selector: %v %+v", err, st)
	}
	_, err = Load(map[string][]byte{"pdb.yaml": []byte(strings.Replace(pdb, "minAvailable: 50%", "minAvailable: 1, maxUnavailable: 1", 1))})
	if err == nil || !strings.Contains(err.Error(), "pdb.yaml:4:") || !strings.Contains(err.Error(), "minAvailable and maxUnavailable cannot both be set") {
		t.Fatalf("both: %v", err)
	}
}

// An Endpoints object gives a Service without a selector its addresses,
// per port name; IPv6 is refused (Baton's Services are IPv4).
func TestLoadEndpoints(t *testing.T) {
	files := map[string][]byte{"db.yaml": []byte(`apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {ports: [{name: sql, port: 5432}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: db, namespace: shop}
subsets:
  - addresses: [{ip: 192.0.2.10}, {ip: 192.0.2.11}]
    notReadyAddresses: [{ip: 192.0.2.12}]
    ports: [{name: sql, port: 5432}]
`)}
	st, err := Load(files)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Warnings) != 0 {
		t.Fatalf("warnings %v", st.Warnings)
	}
	e, ok := st.EndpointsByName()["shop/db"]
	if got := fmt.Sprint(e.Serving("sql", "TCP")); !ok || got != "[192.0.2.10:5432 192.0.2.11:5432]" {
		t.Fatalf("endpoints of shop/db: %v %s", ok, got)
	}
	if got := e.Serving("other", "TCP"); len(got) != 0 {
		t.Fatalf("another port's: %v", got)
	}
	alone := map[string][]byte{"db.yaml": []byte(strings.SplitN(string(files["db.yaml"]), "---\n", 2)[0])}
	if st, err := Load(alone); err != nil || !strings.Contains(strings.Join(st.Warnings, "\n"), "Service shop/db has no selector and the revision no Endpoints of that name: it serves nothing") {
		t.Fatalf("a Service without selector nor Endpoints: %v %v", err, st)
	}
	files["db.yaml"] = []byte(strings.Replace(string(files["db.yaml"]), "ip: 192.0.2.11", "ip: 2001:db8::1", 1))
	if _, err := Load(files); err == nil || !strings.Contains(err.Error(), `subsets[0].addresses[1].ip: "2001:db8::1": want an IPv4 address`) {
		t.Fatalf("IPv6: %v", err)
	}
}
