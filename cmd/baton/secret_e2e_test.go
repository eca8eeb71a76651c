package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/nats-io/nats.go/jetstream"
)

// canary is a secret value that must reach the containers and nothing else.
const canary = "canary-5d1e-a7"

func secretApp(password string) map[string]string {
	return map[string]string{"app.yaml": fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: db}
stringData: {password: %s}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello}
spec:
  replicas: 1
  template:
    spec:
      containers:
        - name: web
          image: %s
          imagePullPolicy: Never
          env:
            - name: DB_PASSWORD
              valueFrom: {secretKeyRef: {name: db, key: password}}
          volumeMounts: [{name: db, mountPath: /etc/db}]
      volumes: [{name: db, secret: {secretName: db}}]
`, password, testImage)}
}

// TestSecretCanary: a secret value reaches the container (its environment)
// and appears nowhere else: not in plan (text, Markdown, JSON), diff,
// render, baton logs, status, history or events, any API answer, any KV
// bucket or stream message, nor anything the daemons logged.
func TestSecretCanary(t *testing.T) {
	api, url, viewer, _ := withAPI(t)
	c := newCluster(t, 8*time.Second, api)
	c.startAgent("n1")
	v1, v2 := secretApp(canary+"-one"), secretApp(canary+"-two")
	rev1 := c.commit("v1", v1)
	c.converged(t, 1, hashOf(t, v1), "n1")
	rev2 := c.commit("rotate the password", v2)
	c.converged(t, 1, hashOf(t, v2), "n1") // a changed secret rolls the pods that use it

	// The control: the value is in the container's environment.
	ctx := namespaces.WithNamespace(context.Background(), c.namespace("n1"))
	ctrs, err := c.cli.Containers(ctx)
	if err != nil || len(ctrs) == 0 {
		t.Fatalf("containers: %v", err)
	}
	found := false
	for _, ctr := range ctrs {
		spec, err := ctr.Spec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range spec.Process.Env {
			found = found || e == "DB_PASSWORD="+canary+"-two"
		}
	}
	if !found {
		t.Fatal("the secret value did not reach the container: the canary checks below would prove nothing")
	}

	var outputs []string
	cli := func(args ...string) {
		t.Helper()
		out, errOut, err := run(t, args...)
		var ee exitError
		if err != nil && !(errors.As(err, &ee) && ee.code == 2) {
			t.Fatalf("baton %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		outputs = append(outputs, fmt.Sprintf("baton %s:\n%s%s", strings.Join(args, " "), out, errOut))
	}
	next := t.TempDir()
	if err := os.WriteFile(filepath.Join(next, "app.yaml"), []byte(secretApp(canary + "-three")["app.yaml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	api2 := []string{"--server", url, "--token-file", viewer}
	for _, f := range []string{"text", "markdown", "json"} {
		cli(append([]string{"plan", next, "-o", f, "--color", "always"}, api2...)...)
	}
	repo := filepath.Join(c.dir, "repo")
	cli("diff", rev1, rev2, "--repo", repo)
	cli("diff", rev1, rev2, "--repo", repo, "-o", "json")
	cli("render", next)
	cli("render", next, "-o", "json")
	cli("logs", "hello", "--nats", c.ns.ClientURL(), "--creds", adminCredsPath(c.dir))
	cli(append([]string{"status", "-o", "json"}, api2...)...)
	cli(append([]string{"history", "-o", "json"}, api2...)...)
	cli(append([]string{"events"}, api2...)...)
	for _, path := range []string{"/api/v1/status", "/api/v1/workloads", "/api/v1/replicas", "/api/v1/nodes", "/api/v1/history", "/api/v1/events", "/api/v1/pin", "/metrics"} {
		req, _ := http.NewRequest(http.MethodGet, url+path, nil)
		req.Header.Set("Authorization", "Bearer viewer-token-0123456789")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		outputs = append(outputs, "GET "+path+":\n"+string(b))
	}
	// The dashboard's pages, and their event streams for a few seconds
	// (every section is sent at once, then what changes).
	for _, path := range []string{"/", "/ui/workloads/hello", "/ui/nodes/n1", "/ui/history"} {
		outputs = append(outputs, "page "+path+":\n"+dashboardGet(t, url+path, 0))
		stream := dashboardGet(t, url+"/ui/stream?page="+path, 3*time.Second)
		if !strings.Contains(stream, "event: banner") {
			t.Fatalf("the stream of %s sent no banner:\n%s", path, stream)
		}
		outputs = append(outputs, "stream of "+path+":\n"+stream)
	}
	if page := outputs[len(outputs)-2]; !strings.Contains(page, "Secret") || !strings.Contains(page, "(hidden)") {
		t.Errorf("the history page does not show the Secret as changed:\n%s", page)
	}
	for _, out := range outputs {
		if strings.Contains(out, canary) {
			t.Errorf("the secret value leaked into %s", out)
		}
	}
	if !strings.Contains(strings.Join(outputs, ""), "(hidden)") {
		t.Error("the diffs do not show the secret as changed")
	}

	// Every message of every stream (the KV buckets are streams too), but
	// the image store's chunks.
	js, err := jetstream.New(c.connect("canary"))
	if err != nil {
		t.Fatal(err)
	}
	scanned := 0
	for name := range js.StreamNames(ctx).Name() {
		if strings.HasPrefix(name, "OBJ_") {
			continue
		}
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info := s.CachedInfo()
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				t.Fatalf("%s #%d: %v", name, seq, err)
			}
			scanned++
			if bytes.Contains(m.Data, []byte(canary)) || strings.Contains(m.Subject, canary) {
				t.Errorf("the secret value is in stream %s, message %d (%s): %s", name, seq, m.Subject, m.Data)
			}
		}
	}
	if scanned < 10 {
		t.Fatalf("only %d stream messages scanned", scanned)
	}
	if logs := c.logs.String(); strings.Contains(logs, canary) || len(logs) == 0 {
		t.Errorf("the daemons' logs (%d bytes) hold the secret value", len(logs))
	}
	t.Logf("checked %d outputs, %d stream messages, %d bytes of daemon logs", len(outputs), scanned, len(c.logs.String()))
}

// dashboardGet reads a dashboard page with the viewer token, or an event
// stream for as long as for.
func dashboardGet(t *testing.T, url string, For time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if For > 0 {
		time.AfterFunc(For, cancel)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer viewer-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || (err != nil && ctx.Err() == nil) {
		t.Fatalf("GET %s: %d %v %s", url, resp.StatusCode, err, b)
	}
	return string(b)
}
