package desired

import (
	"fmt"
	"strings"
	"testing"
)

const benchDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-%d
  labels: {app: web-%d}
spec:
  replicas: 3
  selector: {matchLabels: {app: web-%d}}
  template:
    metadata: {labels: {app: web-%d}}
    spec:
      containers:
      - name: app
        image: registry.local/web:1.%d
        args: ["-listen", ":8080"]
        env: [{name: MODE, value: fast}]
        ports: [{containerPort: 8080, name: http}]
        resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 500m, memory: 128Mi}}
        readinessProbe: {httpGet: {path: /healthz, port: http}}
`

// yamlRepo is n Deployments, ten per file.
func yamlRepo(n int) map[string][]byte {
	files := map[string][]byte{}
	for f := 0; f < n/10; f++ {
		var b strings.Builder
		for i := f * 10; i < f*10+10; i++ {
			fmt.Fprintf(&b, benchDeployment+"---\n", i, i, i, i, i)
		}
		files[fmt.Sprintf("apps/f%03d.yaml", f)] = []byte(b.String())
	}
	return files
}

// cueRepo is the same n Deployments written once in CUE.
func cueRepo(n int) map[string][]byte {
	src := fmt.Sprintf(`package apps
import (
	"list"
	"baton.dev/schema"
)
#App: schema.#Deployment & {
	_i: int
	metadata: {name: "web-\(_i)", labels: app: "web-\(_i)"}
	spec: {
		replicas: 3
		selector: matchLabels: app: "web-\(_i)"
		template: {
			metadata: labels: app: "web-\(_i)"
			spec: containers: [{
				name:  "app"
				image: "registry.local/web:1.\(_i)"
				args: ["-listen", ":8080"]
				env: [{name: "MODE", value: "fast"}]
				ports: [{containerPort: 8080, name: "http"}]
				resources: {requests: {cpu: "100m", memory: "64Mi"}, limits: {cpu: "500m", memory: "128Mi"}}
				readinessProbe: httpGet: {path: "/healthz", port: "http"}
			}]
		}
	}
}
apps: [for i in list.Range(0, %d, 1) {#App & {_i: i}}]
`, n)
	return map[string][]byte{"apps/apps.cue": []byte(src)}
}

func TestBenchReposAgree(t *testing.T) {
	a, err := Load(yamlRepo(20))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(cueRepo(20))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Workloads) != 20 || len(b.Workloads) != 20 {
		t.Fatalf("%d and %d workloads", len(a.Workloads), len(b.Workloads))
	}
	for i := range a.Workloads {
		if a.Workloads[i].Hash != b.Workloads[i].Hash {
			t.Fatalf("workload %s: YAML and CUE hashes differ", a.Workloads[i].Name)
		}
	}
}

// BenchmarkLoad1000 loads and validates a repository of 1,000 workloads.
func BenchmarkLoad1000(b *testing.B) {
	for _, c := range []struct {
		name  string
		files map[string][]byte
	}{{"yaml", yamlRepo(1000)}, {"cue", cueRepo(1000)}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				st, err := Load(c.files)
				if err != nil {
					b.Fatal(err)
				}
				if len(st.Workloads) != 1000 {
					b.Fatalf("%d workloads", len(st.Workloads))
				}
			}
		})
	}
}

// BenchmarkLoadOneFileChanged: a Loader that loaded a 1,000-Deployment
// repository (100 files) loads the next commit, which changes one file:
// only that file is validated again.
//
//	go test -run '^$' -bench LoadOneFileChanged -benchtime 20x ./desired
func BenchmarkLoadOneFileChanged(b *testing.B) {
	files := yamlRepo(1000)
	l := NewLoader(Options{})
	if _, err := l.Load(b.Context(), files); err != nil {
		b.Fatal(err)
	}
	orig := string(files["apps/f007.yaml"])
	i := 0
	for b.Loop() {
		i++ // a commit that changes one Deployment's count: new content each time
		files["apps/f007.yaml"] = []byte(strings.Replace(orig, "replicas: 3", fmt.Sprintf("replicas: %d", 4+i%900), 1))
		st, err := l.Load(b.Context(), files)
		if err != nil || len(st.Workloads) != 1000 {
			b.Fatalf("%v", err)
		}
	}
}
