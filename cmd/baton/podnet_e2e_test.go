package main

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	cnins "github.com/containernetworking/plugins/pkg/ns"
	"github.com/miekg/dns"

	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
)

// startCNIAgent joins node from host h and runs its agent with the pod
// network (a bridge in the host's own namespace).
func (f *fleetCluster) startCNIAgent(h testenv.Host, node string, logs *lockedBuffer, extra ...string) *exec.Cmd {
	return f.daemon(h, logs, append([]string{"agent", "--join", f.joinAddr, "--token", f.token(), "--node", node, "--data-dir", filepath.Join(f.dir, node),
		"--containerd", f.sock, "--namespace", f.nodeNS(node), "--network", "cni", "--heartbeat", "300ms"}, extra...)...)
}

// fetchFromHost fetches url from host h (outside the pod network).
func (f *fleetCluster) fetchFromHost(h testenv.Host, url string) (string, error) {
	cmd := h.Command(os.Args[0])
	cmd.Env = append(os.Environ(), asFetch+"="+url)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// lookupFrom looks name up from inside node's pod, with the resolv.conf
// its pods are given.
func (f *fleetCluster) lookupFrom(node, name string) (string, error) {
	ns, err := f.podNetNS(node)
	if err != nil {
		return "", err
	}
	cmd := exec.Command("nsenter", "--net="+ns, os.Args[0])
	cmd.Env = append(os.Environ(), asLookup+"="+name, asLookupResolv+"="+filepath.Join(f.dir, node, "resolv.conf"))
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// resolvConfMounts is what the containers of node's pods mount as
// /etc/resolv.conf ("" if none, "several" if they differ).
func (f *fleetCluster) resolvConfMounts(node string) string {
	cli, err := nodeagent.DialContainerd(context.Background(), f.sock)
	if err != nil {
		f.t.Fatal(err)
	}
	defer cli.Close()
	ctx := namespaces.WithNamespace(context.Background(), f.nodeNS(node))
	cs, err := cli.Containers(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	found := ""
	for _, c := range cs {
		spec, err := c.Spec(ctx)
		if err != nil {
			f.t.Fatal(err)
		}
		for _, m := range spec.Mounts {
			if m.Destination == "/etc/resolv.conf" {
				if found != "" && found != m.Source {
					return "several"
				}
				found = m.Source
			}
		}
	}
	return found
}

// upstreamDNS is a resolver on host h (the test's, never the machine's)
// answering every name with addr.
func upstreamDNS(t testing.TB, h testenv.Host, addr string) string {
	var pc net.PacketConn
	err := cnins.WithNetNSPath("/var/run/netns/"+h.Name, func(cnins.NetNS) error {
		var err error
		pc, err = net.ListenPacket("udp", h.IP+":0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP(addr)})
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

// podNetNS is the network namespace of node's only pod.
func (f *fleetCluster) podNetNS(node string) (string, error) {
	dir := filepath.Join(f.dir, node, "netns")
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 1 {
		return "", fmt.Errorf("%s's pod network namespaces: %v (%v)", node, ents, err)
	}
	return filepath.Join(dir, ents[0].Name()), nil
}

// fetchFrom fetches url from inside the network namespace of node's only
// pod: as that pod would.
func (f *fleetCluster) fetchFrom(node, url string) (string, error) {
	ns, err := f.podNetNS(node)
	if err != nil {
		return "", err
	}
	cmd := exec.Command("nsenter", "--net="+ns, os.Args[0])
	cmd.Env = append(os.Environ(), asFetch+"="+url)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// podNet is a server and three nodes with the pod network, running a
// Deployment of three hello pods (one a node, labelled app: hello, port
// "http") and the NodePort Service web (10.78.0.10:80, node port 30080).
type podNet struct {
	f      *fleetCluster
	hosts  map[string]testenv.Host
	agents map[string]*exec.Cmd
	ips    map[string]string // node → its pod's address
	admin  *user
	files  map[string]string
	up     string // the upstream resolver
}

// startPodNet starts it; probe, when set, is the pods' readiness probe
// (YAML, at the container's indentation); the nodes named in routed are
// on hosts behind a router, sharing no link with the others.
func startPodNet(t testing.TB, probe string, routed ...string) *podNet {
	testenv.RequireCNI(t)
	f := newFleetCluster(t)
	p := &podNet{f: f, hosts: map[string]testenv.Host{"n1": f.node}, agents: map[string]*exec.Cmd{}, ips: map[string]string{}}
	for _, n := range []string{"n2", "n3"} {
		if slices.Contains(routed, n) {
			p.hosts[n] = f.fleet.RoutedHost(n)
		} else {
			p.hosts[n] = f.fleet.Host(n)
		}
	}
	p.up = upstreamDNS(t, f.ops, "192.0.2.7")
	for _, n := range fleetNodes {
		p.agents[n] = f.startCNIAgent(p.hosts[n], n, &lockedBuffer{}, "--dns-upstream", p.up)
	}
	p.admin = f.as(f.ops, f.adminCreds)
	testenv.WaitFor(t, 30*time.Second, "three nodes ready", func() (bool, string) {
		st := f.status(p.admin)
		return readyNodes(st) == 3, fmt.Sprint(st.Nodes)
	})
	files := deployment(3, "across")
	files["hello.yaml"] = strings.Replace(files["hello.yaml"], "  template:\n    spec:\n", "  template:\n    metadata:\n      labels: {app: hello}\n    spec:\n", 1)
	files["hello.yaml"] = strings.Replace(files["hello.yaml"], "          args:", "          ports: [{name: http, containerPort: 8080}]\n"+probe+"          args:", 1)
	hash := specHash(t, files)
	files["web.yaml"] = `apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  clusterIP: 10.78.0.10
  selector: {app: hello}
  ports: [{port: 80, targetPort: http, nodePort: 30080}]
`
	p.files = files
	f.commit("two", files)
	testenv.WaitFor(t, 60*time.Second, "a ready replica with an address on each node, and no other", func() (bool, string) {
		st := f.status(p.admin)
		clear(p.ips)
		n := 0
		for _, w := range st.Workloads {
			for _, r := range w.Replicas {
				n++
				if r.Ready && r.PodIP != "" && r.SpecHash == hash {
					p.ips[r.Node] = r.PodIP
				}
			}
		}
		return len(p.ips) == 3 && n == 3 && f.runningOn("n1") == 1 && f.runningOn("n2") == 1 && f.runningOn("n3") == 1, fmt.Sprint(st.Workloads)
	})
	return p
}

// endpoints are the Service web's endpoints in the leader's status.
func (p *podNet) endpoints() []string {
	for _, s := range p.f.status(p.admin).Services {
		if s.Name == "web" && len(s.Ports) == 1 {
			return s.Ports[0].Endpoints
		}
	}
	return nil
}

// rules is node's nftables table.
func (p *podNet) rules(node string) string {
	out, _ := p.hosts[node].Command("nft", "list", "table", "ip", "baton").CombinedOutput()
	return string(out)
}

// TestPodsAcrossNodes: three nodes on hosts played by network namespaces
// joined through a switch. Each leases its own pod subnet at join; the
// leader sends each the route to the other's pods (through the other's
// address); every pod reaches every other by its address and is seen with
// its own address (no masquerade inside the cluster). The Service spreads
// over the pods on all three hosts, from every host and through every
// node's port. A
// node removed takes its route away from the others, and its own routes
// and rules away as its agent stops.
func TestPodsAcrossNodes(t *testing.T) {
	p := startPodNet(t, "", "n3")
	f, hosts, ips, admin, n2 := p.f, p.hosts, p.ips, p.admin, p.hosts["n2"]
	for node, ip := range ips {
		st := f.status(admin)
		n, _ := nodeOfStatus(st, node)
		if !strings.HasPrefix(n.PodSubnet, "10.77.") || !subnetHolds(n.PodSubnet, ip) {
			t.Fatalf("%s: pod %s outside its subnet %q", node, ip, n.PodSubnet)
		}
	}
	routes := func(h testenv.Host) string {
		out, _ := h.Command("ip", "route", "show", "proto", "77").CombinedOutput()
		return string(out)
	}
	testenv.WaitFor(t, 30*time.Second, "each node's routes to the others' pods", func() (bool, string) {
		st := f.status(admin)
		var all string
		for _, from := range fleetNodes {
			r := routes(hosts[from])
			all += from + ": " + r
			for _, to := range fleetNodes {
				n, _ := nodeOfStatus(st, to)
				if to != from && !strings.Contains(r, routeTo(n.PodSubnet, hosts[to].IP, from == "n3" || to == "n3")) {
					return false, all
				}
			}
		}
		return true, all
	})
	for _, pair := range [][2]string{{"n1", "n2"}, {"n2", "n1"}, {"n1", "n3"}, {"n3", "n1"}, {"n2", "n3"}, {"n3", "n2"}} {
		from, to := pair[0], pair[1]
		var got string
		testenv.WaitFor(t, 20*time.Second, fmt.Sprintf("the pod on %s reaching the pod on %s", from, to), func() (bool, string) {
			out, err := f.fetchFrom(from, "http://"+ips[to]+":8080/whoami")
			got = out
			return err == nil, out
		})
		if got != ips[from] {
			t.Fatalf("the pod on %s was seen by the pod on %s as %q, want its own address %s (masqueraded inside the cluster?)", from, to, got, ips[from])
		}
		// More than a packet, through a path whose MTU is smaller than the
		// pods' (the tunnel's), arrives whole.
		if out, err := f.fetchFrom(from, "http://"+ips[to]+":8080/bytes?n=200000"); err != nil || len(out) != 200000 {
			t.Fatalf("200 kB from the pod on %s to the pod on %s: %d bytes (%v)", to, from, len(out), err)
		}
		t.Logf("pod %s (%s) → pod %s (%s): seen as %s", ips[from], from, ips[to], to, got)
	}
	// The Service's address balances over the three pods, wherever the
	// client is: every node programs it (nftables), the endpoints are the
	// ready pods on any node.
	for _, from := range fleetNodes {
		seen := map[string]int{}
		testenv.WaitFor(t, 30*time.Second, "the Service answering from all three pods, asked from "+from, func() (bool, string) {
			out, err := f.fetchFrom(from, "http://10.78.0.10/")
			if err == nil {
				seen[podOf(out)]++
			}
			return len(seen) == 3, fmt.Sprint(seen, out, err)
		})
		t.Logf("from %s through the Service: %v", from, seen)
	}

	// Names: the Service's, short and long, through the pods' resolv.conf
	// and their node's DNS; other names forwarded upstream.
	for name, want := range map[string]string{"web": "10.78.0.10", "web.default.svc.cluster.local": "10.78.0.10", "outside.test": "192.0.2.7"} {
		testenv.WaitFor(t, 20*time.Second, "n1's pod resolving "+name, func() (bool, string) {
			got, err := f.lookupFrom("n1", name)
			return err == nil && got == want, fmt.Sprint(got, err)
		})
	}
	// The pods' containers are given that resolv.conf.
	if mounted := f.resolvConfMounts("n1"); mounted != filepath.Join(f.dir, "n1", "resolv.conf") {
		t.Fatalf("n1's pod mounts %q as /etc/resolv.conf", mounted)
	}
	// A name in the cluster's domain that no Service has is answered
	// NXDOMAIN by the node, never forwarded.
	if got, err := f.lookupFrom("n2", "nosuch.default.svc.cluster.local"); err == nil {
		t.Fatalf("an unknown Service name resolved: %s", got)
	}

	// The node port, on any node's address, from a machine outside the
	// cluster, reaches the pods on every node.
	for node, h := range hosts {
		seen := map[string]int{}
		testenv.WaitFor(t, 30*time.Second, "node port 30080 of "+node+" answering from all three pods", func() (bool, string) {
			out, err := f.fetchFromHost(f.ops, "http://"+h.IP+":30080/")
			if err == nil {
				seen[podOf(out)]++
			}
			return len(seen) == 3, fmt.Sprint(seen, out, err)
		})
		t.Logf("from outside through %s:30080: %v", node, seen)
	}

	st := f.status(admin)
	if len(st.Services) != 1 || st.Services[0].IP != "10.78.0.10" || len(st.Services[0].Ports) != 1 || len(st.Services[0].Ports[0].Endpoints) != 3 ||
		st.Services[0].Ports[0].NodePort != 30080 {
		t.Fatalf("status of the Service: %+v", st.Services)
	}
	out, err := f.baton(f.ops, nil, "status", "--nats", f.natsURL, "--creds", f.adminCreds)
	if err != nil || !strings.Contains(out, "web") || !strings.Contains(out, "10.78.0.10") || !strings.Contains(out, ips["n2"]+":8080") {
		t.Fatalf("baton status: %v\n%s", err, out)
	}

	// Leaving the cluster (to the ops host), a pod is masqueraded behind its
	// node's address.
	ln, err := f.ops.Listen("tcp", f.ops.IP+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprintln(w, host)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	if got, err := f.fetchFrom("n1", "http://"+ln.Addr().String()+"/"); err != nil || got != f.node.IP {
		t.Fatalf("the pod on n1 leaving the cluster was seen as %q (%v), want n1's address %s", got, err, f.node.IP)
	}
	if out, err := f.baton(f.ops, nil, "node", "ls", "--nats", f.natsURL, "--creds", f.adminCreds); err != nil || !strings.Contains(out, n2.IP) || !strings.Contains(out, "10.77.") {
		t.Fatalf("node ls: %v\n%s", err, out)
	}

	if os.Getenv("BATON_SHOW_RULES") != "" {
		t.Logf("n1's table:\n%s", p.rules("n1"))
	}
	// The Service removed from Git: no rule of it is left on any node.
	f.remove("no service", "web.yaml")
	for node, h := range hosts {
		testenv.WaitFor(t, 30*time.Second, "the Service's rules gone from "+node, func() (bool, string) {
			out, _ := h.Command("nft", "list", "table", "ip", "baton").CombinedOutput()
			return strings.Contains(string(out), "table ip baton") && !strings.Contains(string(out), "10.78.0.10"), string(out)
		})
	}

	// n2 removed: n1's route to n2's pods goes.
	n2Node, _ := nodeOfStatus(f.status(admin), "n2")
	if out, err := f.baton(f.ops, nil, "node", "rm", "n2", "--nats", f.natsURL, "--creds", f.adminCreds); err != nil {
		t.Fatalf("node rm: %v\n%s", err, out)
	}
	testenv.WaitFor(t, 30*time.Second, "n1's route to n2 removed", func() (bool, string) {
		r := routes(hosts["n1"])
		return !strings.Contains(r, n2.IP), r
	})
	testenv.WaitFor(t, 30*time.Second, "n3's route to n2 removed, its route to n1 kept", func() (bool, string) {
		r := routes(hosts["n3"])
		return n2Node.PodSubnet != "" && !strings.Contains(r, n2Node.PodSubnet) && strings.Contains(r, "dev "+nodeagent.VXLANDevice), r
	})
	// n2's agent, refused, took its own routes, tunnel and rules away as it
	// stopped.
	testenv.WaitFor(t, 30*time.Second, "n2's routes, tunnel and Service rules removed on n2", func() (bool, string) {
		r, table := routes(hosts["n2"]), p.rules("n2")
		link, _ := hosts["n2"].Command("ip", "-br", "link").CombinedOutput()
		return strings.TrimSpace(r) == "" && !strings.Contains(table, "table ip baton {") && !strings.Contains(string(link), nodeagent.VXLANDevice), r + table + string(link)
	})
}

// routeTo is how `ip route` shows the route to a node's pods: through its
// address (host-gw), or through its tunnel end on the vxlan device.
func routeTo(subnet, hostIP string, tunnel bool) string {
	if !tunnel {
		return subnet + " via " + hostIP + " dev "
	}
	end, _, _ := strings.Cut(subnet, "/")
	return subnet + " via " + end + " dev " + nodeagent.VXLANDevice
}

// podOf is the pod in the hello server's answer "MESSAGE (pod ID, ...)".
func podOf(answer string) string {
	_, rest, _ := strings.Cut(answer, "(pod ")
	id, _, _ := strings.Cut(rest, ",")
	return id
}

// subnetHolds reports whether the CIDR subnet holds ip.
func subnetHolds(subnet, ip string) bool {
	_, n, err := net.ParseCIDR(subnet)
	return err == nil && n.Contains(net.ParseIP(ip))
}

// TestServiceEndpoints: a pod that turns not ready leaves the Service's
// rotation on every node, and gets no new connection; an agent restarted
// rebuilds exactly the same rules; a node lost takes its endpoints out.
func TestServiceEndpoints(t *testing.T) {
	probe := "          readinessProbe: {httpGet: {path: /ready, port: 8080}, periodSeconds: 1, failureThreshold: 1}\n"
	p := startPodNet(t, probe)
	n2ep, n2rule := p.ips["n2"]+":8080", p.ips["n2"]+" . 8080"
	testenv.WaitFor(t, 30*time.Second, "both pods in every node's rules", func() (bool, string) {
		r1, r2 := p.rules("n1"), p.rules("n2")
		return strings.Contains(r1, n2rule) && strings.Contains(r2, n2rule) && strings.Contains(r1, p.ips["n1"]+" . 8080"), r1
	})

	// n2's pod turns not ready: out of rotation on both nodes.
	if out, err := p.f.fetchFrom("n1", "http://"+n2ep+"/unready"); err != nil {
		t.Fatalf("make n2's pod unready: %v %s", err, out)
	}
	start := time.Now()
	testenv.WaitFor(t, 30*time.Second, "n2's pod out of every node's rules", func() (bool, string) {
		r1, r2 := p.rules("n1"), p.rules("n2")
		return !strings.Contains(r1, n2rule) && !strings.Contains(r2, n2rule), r1
	})
	t.Logf("readiness lost → out of rotation on both nodes in %s (probe period 1 s)", time.Since(start).Round(10*time.Millisecond))
	for i := range 20 {
		out, err := p.f.fetchFrom("n1", "http://10.78.0.10/")
		if err != nil || !strings.Contains(out, "(pod ") {
			t.Fatalf("request %d through the Service: %v %s", i, err, out)
		}
		if ip := p.podIPOf(podOf(out)); ip == p.ips["n2"] {
			t.Fatalf("request %d reached the pod that is not ready", i)
		}
	}

	// An agent restarted rebuilds the same table (it never went away).
	before := p.rules("n1")
	pid := p.agents["n1"].Process.Pid
	_ = p.agents["n1"].Process.Signal(os.Interrupt)
	testenv.WaitFor(t, 20*time.Second, "n1's agent stopped", func() (bool, string) { return syscall.Kill(pid, 0) != nil, "" })
	if during := p.rules("n1"); during != before {
		t.Fatalf("the rules changed while the agent was down:\n%s\n---\n%s", before, during)
	}
	p.agents["n1"] = p.f.daemon(p.hosts["n1"], &lockedBuffer{}, "agent", "--node", "n1", "--data-dir", filepath.Join(p.f.dir, "n1"),
		"--containerd", p.f.sock, "--namespace", p.f.nodeNS("n1"), "--network", "cni", "--heartbeat", "300ms", "--dns-upstream", p.up)
	testenv.WaitFor(t, 30*time.Second, "n1 back", func() (bool, string) {
		n, ok := nodeOfStatus(p.f.status(p.admin), "n1")
		return ok && n.Ready, fmt.Sprint(n)
	})
	// The rules are sent again on its return: some passes later, the
	// table is the same.
	pass := p.f.status(p.admin).Pass
	testenv.WaitFor(t, 20*time.Second, "five passes since n1 came back", func() (bool, string) {
		return p.f.status(p.admin).Pass >= pass+5, ""
	})
	if after := p.rules("n1"); after != before {
		t.Fatalf("the rules after the agent's restart differ:\n%s\n---\n%s", before, after)
	}

	// n2's agent killed: n2 is lost, its endpoints leave n1's rules.
	_ = p.agents["n2"].Process.Kill()
	testenv.WaitFor(t, 30*time.Second, "n2's pod out of n1's rules, and from status", func() (bool, string) {
		eps := p.endpoints()
		return !strings.Contains(p.rules("n1"), p.ips["n2"]) && !strings.Contains(strings.Join(eps, " "), p.ips["n2"]), fmt.Sprint(eps)
	})
}

// podIPOf is the address of the pod with replica ID id, from status.
func (p *podNet) podIPOf(id string) string {
	for _, w := range p.f.status(p.admin).Workloads {
		for _, r := range w.Replicas {
			if r.ID == id {
				return r.PodIP
			}
		}
	}
	return ""
}

// TestServicePolicies: with sessionAffinity ClientIP every request of a
// pod goes to one pod; with externalTrafficPolicy Local a node port
// answers from the pod of the node it is reached on, which sees the
// client's own address; with internalTrafficPolicy Local a pod reaches
// the Service's pod on its own node.
func TestServicePolicies(t *testing.T) {
	p := startPodNet(t, "")
	f := p.f
	files := maps.Clone(p.files)
	files["policies.yaml"] = `apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  clusterIP: 10.78.0.11
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}
  selector: {app: hello}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: local}
spec:
  type: NodePort
  clusterIP: 10.78.0.12
  externalTrafficPolicy: Local
  internalTrafficPolicy: Local
  selector: {app: hello}
  ports: [{port: 80, targetPort: http, nodePort: 30081}]
`
	f.commit("policies", files)
	for node := range p.hosts {
		testenv.WaitFor(t, 30*time.Second, "both Services in "+node+"'s rules", func() (bool, string) {
			r := p.rules(node)
			return strings.Contains(r, "10.78.0.11 . tcp . 80") && strings.Contains(r, "tcp . 30081"), r
		})
	}
	ask := func(what string, get func() (string, error)) map[string]int {
		seen := map[string]int{}
		for i := range 12 {
			out, err := get()
			if err != nil || !strings.Contains(out, "(pod ") {
				t.Fatalf("%s, request %d: %v %s", what, i, err, out)
			}
			seen[p.podIPOf(podOf(out))]++
		}
		return seen
	}
	for _, node := range fleetNodes {
		// 12 answers from one pod of three: by chance once in 177,147.
		if seen := ask("sticky from "+node, func() (string, error) { return f.fetchFrom(node, "http://10.78.0.11/") }); len(seen) != 1 {
			t.Errorf("the pod on %s through the sticky Service reached %v, want one pod", node, seen)
		}
		if seen := ask("local from "+node, func() (string, error) { return f.fetchFrom(node, "http://10.78.0.12/") }); len(seen) != 1 || seen[p.ips[node]] != 12 {
			t.Errorf("the pod on %s through the internal-local Service reached %v, want its own %s", node, seen, p.ips[node])
		}
		url := "http://" + p.hosts[node].IP + ":30081"
		if seen := ask("node port of "+node, func() (string, error) { return f.fetchFromHost(f.ops, url+"/") }); len(seen) != 1 || seen[p.ips[node]] != 12 {
			t.Errorf("node port 30081 of %s reached %v, want the pod on it, %s", node, seen, p.ips[node])
		}
		if got, err := f.fetchFromHost(f.ops, url+"/whoami"); err != nil || strings.TrimSpace(got) != f.ops.IP {
			t.Errorf("through the external-local node port of %s the pod saw %q (%v), want the client's %s", node, got, err, f.ops.IP)
		}
	}
	checkNamespaces(t, p, files)
}

// checkNamespaces adds namespace shop with a Deployment hello and a
// Service web of the same names and labels as the default namespace's:
// each Service reaches its own namespace's pods only, and a pod resolves a
// bare name in its own namespace (web.NAMESPACE in another), through the
// resolv.conf its node gives pods of its namespace.
func checkNamespaces(t *testing.T, p *podNet, files map[string]string) {
	f := p.f
	netns := map[string]string{} // node → its default pod's network namespace, before shop's pods come
	for _, node := range fleetNodes {
		ns, err := f.podNetNS(node)
		if err != nil {
			t.Fatal(err)
		}
		netns[node] = ns
	}
	files = maps.Clone(files)
	files["shop.yaml"] = strings.Replace(strings.Replace(files["hello.yaml"], "  name: hello\n", "  name: hello\n  namespace: shop\n", 1), "replicas: 3", "replicas: 1", 1) +
		"---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n" + strings.Replace(p.files["web.yaml"], "  name: web\n", "  name: web\n  namespace: shop\n", 1)
	files["shop.yaml"] = strings.NewReplacer("clusterIP: 10.78.0.10", "clusterIP: 10.78.0.13", "nodePort: 30080", "nodePort: 30082").Replace(files["shop.yaml"])
	f.commit("shop", files)
	var shopNode, shopIP string
	testenv.WaitFor(t, 60*time.Second, "a ready replica of shop/hello", func() (bool, string) {
		st := f.status(p.admin)
		for _, w := range st.Workloads {
			for _, r := range w.Replicas {
				if w.Name == "shop/hello" && r.Ready && r.PodIP != "" {
					shopNode, shopIP = r.Node, r.PodIP
					return true, ""
				}
			}
		}
		return false, fmt.Sprint(st.Workloads)
	})
	testenv.WaitFor(t, 30*time.Second, "shop/web's rule with the shop pod alone, web's with the default pods alone", func() (bool, string) {
		r := p.rules("n1")
		return strings.Contains(r, "10.78.0.13 . tcp . 80") && strings.Count(r, shopIP+" . 8080") == 1 && len(p.endpoints()) == 3 && !slices.Contains(p.endpoints(), shopIP+":8080"), r
	})
	if out, err := f.fetchFromHost(f.ops, "http://"+p.hosts["n1"].IP+":30082/"); err != nil || p.podIPOf(podOf(out)) != shopIP {
		t.Errorf("shop's node port reached %q (%v), want the shop pod %s", out, err, shopIP)
	}
	shopResolv := filepath.Join(f.dir, shopNode, "resolv-shop.conf")
	if b, err := os.ReadFile(shopResolv); err != nil || !strings.Contains(string(b), "search shop.svc.cluster.local svc.cluster.local") {
		t.Fatalf("%s: %q %v", shopResolv, b, err)
	}
	if got := f.resolvConfMounts(shopNode); got != "several" {
		t.Errorf("the pods on %s (default and shop) mount one resolv.conf: %s", shopNode, got)
	}
	lookup := func(resolv, name string) string {
		cmd := exec.Command("nsenter", "--net="+netns[shopNode], os.Args[0])
		cmd.Env = append(os.Environ(), asLookup+"="+name, asLookupResolv+"="+resolv)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return err.Error() + ": " + string(out)
		}
		return strings.TrimSpace(string(out))
	}
	defaultResolv := filepath.Join(f.dir, shopNode, "resolv.conf")
	for _, tc := range [][3]string{
		{defaultResolv, "web", "10.78.0.10"}, {defaultResolv, "web.shop", "10.78.0.13"},
		{shopResolv, "web", "10.78.0.13"}, {shopResolv, "web.default", "10.78.0.10"}, {shopResolv, "web.shop.svc.cluster.local", "10.78.0.13"},
	} {
		if got := lookup(tc[0], tc[1]); got != tc[2] {
			t.Errorf("%s with %s: %s, want %s", tc[1], filepath.Base(tc[0]), got, tc[2])
		}
	}
	if out, err := f.baton(f.ops, nil, "status", "-n", "shop", "--nats", f.natsURL, "--creds", f.adminCreds); err != nil || !strings.Contains(out, "shop/hello") || strings.Contains(out, "\nhello ") {
		t.Errorf("baton status -n shop: %v\n%s", err, out)
	}
}

// TestCounterExample: examples/counter as written, on two nodes: the web
// pods (one a node) count their visits in the kv pod through the Service
// name kv, and the NodePort answers on either node with one count.
func TestCounterExample(t *testing.T) {
	testenv.RequireCNI(t)
	f := newFleetCluster(t)
	hosts := map[string]testenv.Host{"n1": f.node, "n2": f.fleet.Host("n2")}
	cli, err := nodeagent.DialContainerd(context.Background(), f.sock)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range [][2]string{{"kv", "baton.local/kv:v1"}, {"counter", "baton.local/counter:v1"}} {
		a := testenv.ExampleArchive(t, img[0], img[1])
		for _, node := range fleetNodes {
			if _, err := nodeagent.Import(context.Background(), cli, f.nodeNS(node), a); err != nil {
				t.Fatal(err)
			}
		}
	}
	cli.Close()
	up := upstreamDNS(t, f.ops, "192.0.2.7")
	for _, n := range fleetNodes {
		f.startCNIAgent(hosts[n], n, &lockedBuffer{}, "--dns-upstream", up)
	}
	admin := f.as(f.ops, f.adminCreds)
	testenv.WaitFor(t, 30*time.Second, "two nodes ready", func() (bool, string) {
		st := f.status(admin)
		return readyNodes(st) == 2, fmt.Sprint(st.Nodes)
	})
	files := map[string]string{}
	for _, name := range []string{"kv.yaml", "web.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", "counter", name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = string(b)
	}
	f.remove("no hello", "hello.yaml")
	f.commit("counter", files)
	testenv.WaitFor(t, 90*time.Second, "web on both nodes and kv, ready", func() (bool, string) {
		st := f.status(admin)
		nodes := map[string]bool{}
		kv := 0
		for _, w := range st.Workloads {
			for _, r := range w.Replicas {
				switch {
				case w.Name == "web" && r.Ready:
					nodes[r.Node] = true
				case w.Name == "kv" && r.Ready:
					kv++
				}
			}
		}
		return len(nodes) == 2 && kv == 1, fmt.Sprint(st.Workloads)
	})
	pods := map[string]bool{}
	last := 0
	for i := range 12 {
		h := hosts[fleetNodes[i%2]]
		var out string
		testenv.WaitFor(t, 20*time.Second, "a visit through "+h.Name, func() (bool, string) {
			var err error
			out, err = f.fetchFromHost(f.ops, "http://"+h.IP+":30080/")
			return err == nil && strings.HasPrefix(out, "visits: "), out
		})
		var n int
		if _, err := fmt.Sscanf(out, "visits: %d", &n); err != nil || n <= last {
			t.Fatalf("visit %d: %q after %d: one count shared by every web pod expected", i, out, last)
		}
		last = n
		pods[podOf(out)] = true
	}
	if len(pods) != 2 {
		t.Fatalf("visits answered by %v, want both web pods", pods)
	}
	t.Logf("12 visits through both nodes' port 30080, answered by %d web pods, counted to %d by kv", len(pods), last)
}
