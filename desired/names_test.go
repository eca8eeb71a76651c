package desired

import (
	"fmt"
	"strings"
	"testing"
)

// nsApp is a Deployment web in namespace ns with its ConfigMap, Secret,
// claim, Service and autoscaler, all named alike in every namespace.
func nsApp(ns string) string {
	meta := "{name: %s}"
	if ns != "" {
		meta = "{name: %s, namespace: " + ns + "}"
	}
	m := func(name string) string { return fmt.Sprintf(meta, name) }
	return `apiVersion: apps/v1
kind: Deployment
metadata: ` + m("web") + `
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      subdomain: web
      imagePullSecrets: [{name: pull}]
      volumes:
        - {name: cfg, configMap: {name: settings}}
        - {name: data, persistentVolumeClaim: {claimName: data}}
      containers:
        - name: app
          image: web:1
          env:
            - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
            - {name: TOKEN, valueFrom: {secretKeyRef: {name: creds, key: token}}}
          envFrom: [{configMapRef: {name: settings}}]
---
apiVersion: v1
kind: ConfigMap
metadata: ` + m("settings") + `
data: {mode: ` + ns + `x}
---
apiVersion: v1
kind: Secret
metadata: ` + m("creds") + `
stringData: {token: t}
---
apiVersion: v1
kind: Secret
metadata: ` + m("pull") + `
type: kubernetes.io/dockerconfigjson
stringData: {.dockerconfigjson: '{"auths": {}}'}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: ` + m("data") + `
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Service
metadata: ` + m("web") + `
spec: {clusterIP: None, selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: ` + m("web") + `
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 3
  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}}]
`
}

// The same names in several namespaces are different objects, and each
// pod's references resolve within its namespace.
func TestLoadNamespaces(t *testing.T) {
	st, err := Load(map[string][]byte{
		"default.yaml": []byte(nsApp("")),
		"shop.yaml":    []byte(nsApp("shop")),
		"ns.yaml":      []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: a}}\n"),
		"explicit.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other, namespace: default}\n---\n" +
			"apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: reader, namespace: shop}\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, w := range st.Workloads {
		names = append(names, w.Name)
	}
	for _, c := range st.ConfigMaps {
		names = append(names, c.Name)
	}
	for _, s := range st.Services {
		names = append(names, s.Name)
	}
	for _, c := range st.Claims {
		names = append(names, c.Name)
	}
	for _, a := range st.Autoscalers {
		names = append(names, a.Name+"→"+a.Target)
	}
	for _, i := range st.Ignored {
		names = append(names, i.Kind+" "+i.Name)
	}
	if got, want := strings.Join(names, " "), "shop/web web other settings shop/settings shop/web web data shop/data shop/web→shop/web web→web ClusterRole reader"; got != want {
		t.Fatalf("names:\n got %s\nwant %s", got, want)
	}
	if len(st.Namespaces) != 1 || st.Namespaces[0].Name != "shop" || st.Namespaces[0].Labels["team"] != "a" {
		t.Fatalf("namespaces %+v", st.Namespaces)
	}
	shop, _ := st.Workload("shop/web")
	p := shop.Pod
	c := p.Containers[0]
	if got := fmt.Sprint(p.Volumes[0].ConfigMap.Name, " ", p.Volumes[1].Claim.Claim, " ", c.Env[0].Value, " ", c.Env[1].SecretKeyRef.Name, " ",
		c.EnvFrom[0].ConfigMap, " ", p.ImagePullSecrets, " ", p.Subdomain); got != "shop/settings shop/data shop shop/creds shop/settings [shop/pull] shop/web" {
		t.Fatalf("shop's references: %s", got)
	}
	def, _ := st.Workload("web")
	if got := fmt.Sprint(def.Pod.Volumes[0].ConfigMap.Name, " ", def.Pod.Containers[0].Env[0].Value); got != "settings default" {
		t.Fatalf("default's references: %s", got)
	}
	// The hash covers the namespace's own ConfigMap: changing shop's
	// data changes shop's template only.
	st2, err := Load(map[string][]byte{
		"default.yaml": []byte(nsApp("")),
		"shop.yaml":    []byte(strings.Replace(nsApp("shop"), "data: {mode: shopx}", "data: {mode: shopy}", 1)),
	})
	if err != nil {
		t.Fatal(err)
	}
	def2, _ := st2.Workload("web")
	shop2, _ := st2.Workload("shop/web")
	if def2.Hash != def.Hash || shop2.Hash == shop.Hash {
		t.Fatalf("after shop's ConfigMap changed: default %s→%s, shop %s→%s", def.Hash, def2.Hash, shop.Hash, shop2.Hash)
	}
	// ResolvePod reads the namespace's own data.
	if got := string(st.ResolvePod(p).Volumes[0].ConfigMap.Files["mode"]); got != "shopx" {
		t.Fatalf("shop's pod reads %q", got)
	}
}

// A reference never crosses a namespace: a pod of shop waits for its own
// ConfigMap even when the default namespace has one of that name; names
// are unique per namespace and kind only.
func TestLoadNamespaceReferences(t *testing.T) {
	dep := strings.Replace(base, "name: web", "name: web\n  namespace: shop", 1) + "          envFrom: [{configMapRef: {name: settings}}]\n"
	st, err := Load(map[string][]byte{"web.yaml": []byte(dep), "cm.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n")})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(st.Workloads[0].Pod.Waiting); got != "[ConfigMap shop/settings]" {
		t.Fatalf("waiting %s", got)
	}
	_, err = Load(map[string][]byte{"a.yaml": []byte(dep), "b.yaml": []byte(dep)})
	if err == nil || !strings.Contains(err.Error(), `b.yaml:4:3: metadata.name: Deployment "shop/web" is already defined at a.yaml:1`) {
		t.Fatalf("a duplicate in a namespace: %v", err)
	}
	hpa := "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h, namespace: other}\nspec: {scaleTargetRef: {kind: Deployment, name: web}, maxReplicas: 2}\n"
	st, err = Load(map[string][]byte{"web.yaml": []byte(dep), "hpa.yaml": []byte(hpa)})
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(st.Warnings, "\n"); !strings.Contains(w, "other/web") {
		t.Fatalf("an autoscaler of another namespace's Deployment: warnings\n%s", w)
	}
}

// A Namespace may not be named job either.
func TestLoadNamespaceJob(t *testing.T) {
	_, err := Load(map[string][]byte{"ns.yaml": []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: job}\n")})
	if err == nil || !strings.Contains(err.Error(), `ns.yaml:3:18: metadata.name: invalid value "job": Baton reserves it`) {
		t.Fatalf("Namespace job: %v", err)
	}
}

func TestQualifiedNames(t *testing.T) {
	for _, tc := range []struct {
		ns, name, q string
	}{{"", "web", "web"}, {"default", "web", "web"}, {"shop", "web", "shop/web"}} {
		q := Qualify(tc.ns, tc.name)
		if q != tc.q || ShortName(q) != tc.name {
			t.Errorf("Qualify(%q, %q) = %q, ShortName %q", tc.ns, tc.name, q, ShortName(q))
		}
	}
	if NamespaceOf("web") != "default" || NamespaceOf("shop/web") != "shop" {
		t.Error("NamespaceOf")
	}
	for q, ok := range map[string]bool{"data": true, "shop/data.v1": true, "default/data": false, "job/x": false, "a/b/c": false, "Shop/x": false} {
		if IsQualified(q) != ok {
			t.Errorf("IsQualified(%q) = %v", q, !ok)
		}
	}
}

const statefulSet = `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  serviceName: db
  replicas: 3
  podManagementPolicy: OrderedReady
  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 1}}
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
        - name: db
          image: db:1
          env: [{name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
          volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
    - metadata: {name: data}
      spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
`

// A StatefulSet's claim templates become per-ordinal claims of its pods;
// its serviceName is their subdomain.
func TestLoadStatefulSet(t *testing.T) {
	st, err := Load(map[string][]byte{"db.yaml": []byte(statefulSet)})
	if err != nil {
		t.Fatal(err)
	}
	w := st.Workloads[0]
	if w.Name != "shop/db" || w.Kind != "StatefulSet" || w.Replicas != 3 || w.Stateful == nil || w.Stateful.Partition != 1 || w.Stateful.Parallel ||
		len(w.Stateful.Claims) != 1 || w.Stateful.Claims[0].StorageBytes != 1<<30 || w.Pod.Subdomain != "shop/db" {
		t.Fatalf("%+v %+v", w, w.Stateful)
	}
	if strings.Contains(strings.Join(st.Warnings, "\n"), "RetentionPolicy") {
		t.Fatalf("warnings %v", st.Warnings)
	}
	del := strings.Replace(statefulSet, "  serviceName: db\n", "  serviceName: db\n  persistentVolumeClaimRetentionPolicy: {whenScaled: Delete}\n", 1)
	if st2, err := Load(map[string][]byte{"db.yaml": []byte(del)}); err != nil ||
		!strings.Contains(strings.Join(st2.Warnings, "\n"), "StatefulSet shop/db: persistentVolumeClaimRetentionPolicy whenScaled Delete is not acted on") {
		t.Fatalf("Delete: %v %v", err, st2)
	}
	if len(st.Claims) != 0 || len(w.Pod.Waiting) != 0 {
		t.Fatalf("claims %v, waiting %v", st.Claims, w.Pod.Waiting)
	}
	// A volume of the template named as a claim template is replaced.
	st2, err := Load(map[string][]byte{"db.yaml": []byte(strings.Replace(statefulSet, "      containers:", "      volumes: [{name: data, emptyDir: {}}]\n      containers:", 1))})
	if err != nil || len(st2.Workloads[0].Pod.Volumes) != 1 || st2.Workloads[0].Pod.Volumes[0].Claim == nil {
		t.Fatalf("a template volume named as a claim template: %v %+v", err, st2)
	}
	p := PodFor(w.Pod, w.Name, 2)
	if v := p.Volumes[0]; p.Hostname != "db-2" || v.Claim == nil || v.Claim.Claim != "shop/data-db-2" || v.Claim.PerOrdinal {
		t.Fatalf("ordinal 2: hostname %q, volume %+v", p.Hostname, v.Claim)
	}
	if e := p.Containers[0].Env[0]; e.Value != "db-2" || e.FieldRef != "" || w.Pod.Containers[0].Env[0].FieldRef != "metadata.name" {
		t.Fatalf("ordinal 2's metadata.name: %+v (template %+v)", e, w.Pod.Containers[0].Env[0])
	}
	if w.Pod.Volumes[0].Claim.Claim != "shop/data-db" || !w.Pod.Volumes[0].Claim.PerOrdinal {
		t.Fatal("PodFor changed the template")
	}
	for _, tc := range []struct{ from, to, want string }{
		{"podManagementPolicy: OrderedReady", "podManagementPolicy: Sometimes", "spec.podManagementPolicy"},
		{"name: data}\n", "name: data}\n      spec: {accessModes: [ReadWriteMany], resources: {requests: {storage: 1Gi}}}\n    - metadata: {name: more}\n", "spec.volumeClaimTemplates[0].spec.accessModes[0]: ReadWriteMany needs shared storage"},
		{"metadata: {name: db,", "metadata: {name: a-very-long-statefulset-name-of-forty-one-c,", "at most 40 characters"},
		{"  serviceName: db\n", "  serviceName: db\n  ordinals: {start: 1000001}\n", "spec.ordinals.start"},
	} {
		_, err := Load(map[string][]byte{"db.yaml": []byte(strings.Replace(statefulSet, tc.from, tc.to, 1))})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.to, err, tc.want)
		}
	}
}
