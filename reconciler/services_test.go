package reconciler

import (
	"fmt"
	"testing"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
)

func svc(name, ip string) desired.Service {
	return desired.Service{Meta: desired.Meta{Name: name}, Type: "ClusterIP", ClusterIP: ip, Selector: map[string]string{"app": name},
		Ports: []desired.ServicePort{{Port: 80, Protocol: "TCP", TargetPort: "http"}}}
}

func TestAllocateServiceIPs(t *testing.T) {
	for _, tc := range []struct {
		name     string
		services []desired.Service
		held     map[string]string
		want     string
		errs     string
	}{
		{name: "lowest free, the network's address never",
			services: []desired.Service{svc("a", ""), svc("b", "")},
			want:     "map[a:10.78.0.1 b:10.78.0.2]", errs: "map[]"},
		{name: "held addresses stay, gone ones are freed",
			services: []desired.Service{svc("b", ""), svc("c", "")},
			held:     map[string]string{"a": "10.78.0.1", "b": "10.78.0.2"},
			want:     "map[b:10.78.0.2 c:10.78.0.1]", errs: "map[]"},
		{name: "asked for: honoured before the others take the rest",
			services: []desired.Service{svc("a", ""), svc("b", "10.78.0.1")},
			want:     "map[a:10.78.0.2 b:10.78.0.1]", errs: "map[]"},
		{name: "two Services cannot claim one address",
			services: []desired.Service{svc("a", "10.78.0.7"), svc("b", "10.78.0.7")},
			want:     "map[a:10.78.0.7]", errs: "map[b:spec.clusterIP 10.78.0.7 is the address of Service a]"},
		{name: "an address held by another is refused",
			services: []desired.Service{svc("a", ""), svc("b", "10.78.0.1")},
			held:     map[string]string{"a": "10.78.0.1"},
			want:     "map[a:10.78.0.1]", errs: "map[b:spec.clusterIP 10.78.0.1 is the address of Service a]"},
		{name: "outside the CIDR",
			services: []desired.Service{svc("a", "10.1.2.3")},
			want:     "map[]", errs: "map[a:spec.clusterIP 10.1.2.3 is outside the service CIDR 10.78.0.0/16]"},
		{name: "headless: none",
			services: []desired.Service{svc("a", "None")},
			want:     "map[]", errs: "map[]"},
		{name: "the manifest asks for another address: it moves",
			services: []desired.Service{svc("a", "10.78.0.5")},
			held:     map[string]string{"a": "10.78.0.1"},
			want:     "map[a:10.78.0.5]", errs: "map[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, errs := AllocateServiceIPs(tc.services, tc.held, DefaultServiceCIDR)
			if fmt.Sprint(got) != tc.want || fmt.Sprint(errs) != tc.errs {
				t.Fatalf("got %v %v, want %v %v", got, errs, tc.want, tc.errs)
			}
		})
	}
	full, errs := AllocateServiceIPs([]desired.Service{svc("a", ""), svc("b", ""), svc("c", "")}, nil, "10.78.0.0/30")
	if len(full) != 2 || errs["c"] != "the service CIDR 10.78.0.0/30 is full" {
		t.Fatalf("a full CIDR: %v %v", full, errs)
	}
}

// Endpoints are the ready pods the Service selects, on ready nodes, on
// the target port by name; a replica not ready, stopping or on a lost node
// is out of rotation.
func TestServiceRules(t *testing.T) {
	web := desired.Workload{Name: "web", Hash: "h1", Replicas: 4, PodLabels: map[string]string{"app": "web"},
		Pod: desired.PodSpec{Containers: []desired.Container{{Name: "c", Ports: []desired.Port{{Name: "http", ContainerPort: 8080}}}}}}
	other := desired.Workload{Name: "other", Hash: "h2", PodLabels: map[string]string{"app": "other"}}
	ready := func(id, ip string) protocol.Replica {
		r := rep(id, web, protocol.StateRunning, 0)
		r.PodIP = ip
		return r
	}
	notReady := ready("web-4", "10.77.1.4")
	notReady.Ready = false
	in := Input{Now: t0, NodeGrace: grace, Desired: &desired.State{Workloads: []desired.Workload{web, other}}, Nodes: map[string]NodeView{
		"n1": node("n1", ready("web-1", "10.77.1.2"), notReady),
		"n2": node("n2", ready("web-2", "10.77.2.2")),
		"n3": lost(node("n3", ready("web-3", "10.77.3.2"))),
	}}
	st := &desired.State{Workloads: in.Desired.Workloads, Services: []desired.Service{svc("web", ""), svc("none", "")}}
	rules := ServiceRules(st, map[string]string{"web": "10.78.0.1", "none": "10.78.0.2"}, nil, NewLive(in))
	want := "[{none 10.78.0.2 80 TCP 0 [] 0 false false} {web 10.78.0.1 80 TCP 0 [10.77.1.2:8080 10.77.2.2:8080] 0 false false}]"
	if fmt.Sprint(rules) != want {
		t.Fatalf("rules %v\nwant  %v", rules, want)
	}
	// Affinity and the traffic policies travel with the rule; the external
	// policy only where there is a node port.
	st.Services[0].AffinitySeconds, st.Services[0].ExternalLocal, st.Services[0].InternalLocal = 60, true, true
	rules = ServiceRules(st, map[string]string{"web": "10.78.0.1", "none": "10.78.0.2"}, map[string]int{"web.80": 30080}, NewLive(in))
	want = "[{none 10.78.0.2 80 TCP 0 [] 0 false false} {web 10.78.0.1 80 TCP 30080 [10.77.1.2:8080 10.77.2.2:8080] 60 true true}]"
	if fmt.Sprint(rules) != want {
		t.Fatalf("rules %v\nwant  %v", rules, want)
	}
	rules = ServiceRules(st, map[string]string{"web": "10.78.0.1"}, nil, NewLive(in))
	if r := rules[0]; r.ExternalLocal || !r.InternalLocal {
		t.Fatalf("no node port: %+v", r)
	}
}

// A Service with an address answers it; a headless one its ready pods'.
func TestDNSRecords(t *testing.T) {
	web := desired.Workload{Name: "web", Hash: "h1", PodLabels: map[string]string{"app": "web"}}
	r1 := rep("web-1", web, protocol.StateRunning, 0)
	r1.PodIP = "10.77.1.2"
	r2 := rep("web-2", web, protocol.StateRunning, 0)
	r2.PodIP = "10.77.2.2"
	r2.Ready = false
	in := Input{Now: t0, NodeGrace: grace, Desired: &desired.State{Workloads: []desired.Workload{web}},
		Nodes: map[string]NodeView{"n1": node("n1", r1), "n2": node("n2", r2)}}
	st := &desired.State{Workloads: in.Desired.Workloads, Services: []desired.Service{svc("web", ""), svc("db", "None")}}
	st.Services[1].Selector = map[string]string{"app": "web"}
	got := fmt.Sprint(DNSRecords(st, map[string]string{"web": "10.78.0.1"}, NewLive(in)))
	if want := "[{db [10.77.1.2]} {web [10.78.0.1]}]"; got != want {
		t.Fatalf("records %s, want %s", got, want)
	}
	// Pods whose subdomain is the headless Service get names under it:
	// their hostname, else their replica ID.
	st.Workloads[0].Pod.Subdomain = "db"
	got = fmt.Sprint(DNSRecords(st, map[string]string{"web": "10.78.0.1"}, NewLive(in)))
	if want := "[{db [10.77.1.2]} {web [10.78.0.1]} {web-1.db [10.77.1.2]}]"; got != want {
		t.Fatalf("records %s, want %s", got, want)
	}
}

func TestAllocateNodePorts(t *testing.T) {
	np := func(name string, asked ...int) desired.Service {
		s := svc(name, "")
		s.Type = "NodePort"
		s.Ports = nil
		for i, a := range asked {
			s.Ports = append(s.Ports, desired.ServicePort{Port: 80 + i, Protocol: "TCP", NodePort: a})
		}
		return s
	}
	got, errs := AllocateNodePorts([]desired.Service{np("a", 0, 30000), np("b", 0), svc("c", "")}, map[string]int{"b.80": 31000, "gone.80": 30005})
	if fmt.Sprint(got) != "map[a.80:30001 a.81:30000 b.80:31000]" || len(errs) != 0 {
		t.Fatalf("got %v %v", got, errs)
	}
	lb := np("lb", 0)
	lb.Type = "LoadBalancer" // served as node ports on every node
	if got, _ := AllocateNodePorts([]desired.Service{lb}, nil); got["lb.80"] != NodePortMin {
		t.Fatalf("a LoadBalancer Service: %v, want a node port", got)
	}
	_, errs = AllocateNodePorts([]desired.Service{np("a", 30500), np("b", 30500)}, nil)
	if errs["b"] != "nodePort 30500 is taken by a.80" {
		t.Fatalf("two Services on one node port: %v", errs)
	}
}

// A pod's requests with init containers, as Kubernetes counts them: the
// containers and sidecars together, or an init container with the
// sidecars before it, whichever is more, per resource.
func TestPodRequestsWithInitContainers(t *testing.T) {
	c := func(cpu, mem int64, sidecar bool) desired.Container {
		return desired.Container{Sidecar: sidecar, Resources: desired.Resources{Requests: desired.Amount{CPUMilli: cpu, MemoryBytes: mem}}}
	}
	p := desired.PodSpec{
		InitContainers: []desired.Container{c(100, 10, true), c(2000, 5, false), c(50, 50, true), c(10, 100, false)},
		Containers:     []desired.Container{c(500, 20, false)},
	}
	// cpu: max(100+50+500, 2000+100, 10+150) = 2100; memory: max(10+50+20, 5+10, 100+60) = 160.
	if got, _ := podRequests(p); got.CPUMilli != 2100 || got.MemoryBytes != 160 {
		t.Fatalf("requests %+v, want 2100m and 160", got)
	}
}

// A Service selects the pods of its own namespace only; its DNS names,
// and those of its pods, are in its namespace.
func TestServicesInNamespaces(t *testing.T) {
	labels := map[string]string{"app": "web"}
	spec := desired.PodSpec{Containers: []desired.Container{{Name: "c", Ports: []desired.Port{{Name: "http", ContainerPort: 8080}}}}, Subdomain: "shop/web"}
	web := desired.Workload{Name: "web", Hash: "h1", PodLabels: labels, Pod: spec}
	shop := desired.Workload{Name: "shop/web", Hash: "h2", PodLabels: labels, Pod: spec}
	r1 := rep("web-1", web, protocol.StateRunning, 0)
	r1.PodIP = "10.77.1.2"
	r2 := rep("web-2", shop, protocol.StateRunning, 0)
	r2.PodIP = "10.77.1.3"
	in := Input{Now: t0, NodeGrace: grace, Desired: &desired.State{Workloads: []desired.Workload{web, shop}},
		Nodes: map[string]NodeView{"n1": node("n1", r1, r2)}}
	headless := svc("shop/web", "None")
	headless.Selector = labels
	st := &desired.State{Workloads: in.Desired.Workloads, Services: []desired.Service{svc("web", ""), headless}}
	st.Services[0].Selector = labels
	rules := ServiceRules(st, map[string]string{"web": "10.78.0.1"}, nil, NewLive(in))
	if got, want := fmt.Sprint(rules), "[{web 10.78.0.1 80 TCP 0 [10.77.1.2:8080] 0 false false}]"; got != want {
		t.Fatalf("rules %s, want %s", got, want)
	}
	got := fmt.Sprint(DNSRecords(st, map[string]string{"web": "10.78.0.1"}, NewLive(in)))
	if want := "[{shop/web [10.77.1.3]} {shop/web-2.web [10.77.1.3]} {web [10.78.0.1]}]"; got != want {
		t.Fatalf("records %s, want %s", got, want)
	}
}

// A Service without a selector serves the addresses of its Endpoints
// object; headless, its name answers them.
func TestServiceWithEndpoints(t *testing.T) {
	ext := desired.Service{Meta: desired.Meta{Name: "db"}, Type: "ClusterIP",
		Ports: []desired.ServicePort{{Name: "sql", Port: 5432, Protocol: "TCP", TargetPort: "5432"}}}
	headlessExt := ext
	headlessExt.Name, headlessExt.ClusterIP = "dbs", "None"
	eps := func(name string) desired.Endpoints {
		return desired.Endpoints{Meta: desired.Meta{Name: name}, Subsets: []desired.EndpointSubset{
			{Addresses: []string{"192.0.2.10", "192.0.2.11"}, Ports: []desired.EndpointPort{{Name: "sql", Port: 5432, Protocol: "TCP"}}}}}
	}
	none := ext
	none.Name = "none" // no Endpoints: nothing served
	st := &desired.State{Services: []desired.Service{ext, headlessExt, none}, Endpoints: []desired.Endpoints{eps("db"), eps("dbs")}}
	in := Input{Now: t0, NodeGrace: grace, Desired: st, Nodes: map[string]NodeView{"n1": node("n1")}}
	rules := ServiceRules(st, map[string]string{"db": "10.78.0.5", "none": "10.78.0.6"}, nil, NewLive(in))
	if got, want := fmt.Sprint(rules), "[{db 10.78.0.5 5432 TCP 0 [192.0.2.10:5432 192.0.2.11:5432] 0 false false}]"; got != want {
		t.Fatalf("rules %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(DNSRecords(st, map[string]string{"db": "10.78.0.5"}, NewLive(in))), "[{db [10.78.0.5]} {dbs [192.0.2.10 192.0.2.11]}]"; got != want {
		t.Fatalf("records %s, want %s", got, want)
	}
}
