package nodeagent_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/netns"
	cnins "github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/desired"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/miekg/dns"

	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// TestCNIPodNetwork runs pods on a real CNI bridge whose host is a network
// namespace the test made: pods get addresses, reach each other, publish
// host ports through portmap, and give everything back when stopped.
func TestCNIPodNetwork(t *testing.T) {
	cni, host := testenv.CNI(t)
	rt := newRuntime(t)
	rt.SetNetwork(cni, host)
	ctx := context.Background()

	web := podSpec("hello-net-1", desired.Container{Name: "web", Image: testenv.HelloImage, Args: []string{"-listen", ":8080", "-message", "from web"},
		Ports: []desired.Port{{Name: "http", ContainerPort: 8080, HostPort: 18080, Protocol: "TCP"}}})
	client := podSpec("hello-net-2", desired.Container{Name: "c", Image: testenv.HelloImage, Args: []string{"-listen", ":8080", "-message", "client"}})
	for _, s := range []protocol.ReplicaSpec{web, client} {
		if err := rt.Start(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	w := waitState(t, rt, web.ID, protocol.StateRunning)
	c := waitState(t, rt, client.ID, protocol.StateRunning)
	_, subnet, _ := net.ParseCIDR(testenv.TestSubnet)
	for _, r := range []protocol.Replica{w, c} {
		if ip := net.ParseIP(r.PodIP); ip == nil || !subnet.Contains(ip) {
			t.Fatalf("replica %s: pod IP %q not in %s", r.ID, r.PodIP, subnet)
		}
	}
	if w.PodIP == c.PodIP {
		t.Fatalf("two pods share %s", w.PodIP)
	}
	if want := (protocol.PortBinding{Container: "web", ContainerPort: 8080, HostPort: 18080, Protocol: "TCP"}); len(w.Ports) != 1 || w.Ports[0] != want {
		t.Fatalf("ports reported %+v, want [%+v]", w.Ports, want)
	}

	// The host reaches the pod on its IP, and on the published port of the
	// bridge's (gateway) address and of its loopback.
	gateway := subnet.IP.To4()
	gateway[3] = 1
	for _, addr := range []string{net.JoinHostPort(w.PodIP, "8080"), net.JoinHostPort(gateway.String(), "18080"), "127.0.0.1:18080"} {
		if body := getIn(t, host, addr); !strings.Contains(body, "from web") {
			t.Fatalf("%s answered %q", addr, body)
		}
	}
	// One pod reaches another across the bridge.
	_, clientNS := rt.Debug(ctx, client.ID)
	if body := getIn(t, clientNS, net.JoinHostPort(w.PodIP, "8080")); !strings.Contains(body, "from web") {
		t.Fatalf("pod to pod answered %q", body)
	}

	// A second pod asking for the same host port is refused.
	clash := podSpec("hello-net-3", desired.Container{Name: "web", Image: testenv.HelloImage, Args: []string{"-listen", ":8080"},
		Ports: []desired.Port{{ContainerPort: 8080, HostPort: 18080, Protocol: "TCP"}}})
	if err := rt.Start(ctx, clash); !errors.Is(err, nodeagent.ErrHostPortInUse) {
		t.Fatalf("start with a used host port: %v, want ErrHostPortInUse", err)
	}

	// Stopping gives the address back and removes the forwarding.
	lease := filepath.Join(cni.Config().StateDir, "ipam", "baton", w.PodIP)
	if _, err := os.Stat(lease); err != nil {
		t.Fatalf("no lease for the running pod: %v", err)
	}
	if err := rt.Stop(ctx, web.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(lease); !os.IsNotExist(err) {
		t.Fatalf("lease of the stopped pod still there: %v", err)
	}
	if err := dialIn(host, net.JoinHostPort(gateway.String(), "18080")); err == nil {
		t.Fatal("the host port still answers after the pod stopped")
	}
	// Now the port is free again.
	if err := rt.Start(ctx, clash); err != nil {
		t.Fatalf("start after the port was freed: %v", err)
	}
	waitState(t, rt, clash.ID, protocol.StateRunning)
}

// TestCNIHostNetwork: a hostNetwork pod joins the host namespace and
// publishes its ports there, with no pod address.
func TestCNIHostNetwork(t *testing.T) {
	cni, host := testenv.CNI(t)
	rt := newRuntime(t)
	rt.SetNetwork(cni, host)
	ctx := context.Background()
	spec := podSpec("hello-hostnet-2", desired.Container{Name: "a", Image: testenv.HelloImage, Args: []string{"-listen", "127.0.0.1:9090", "-message", "host net"},
		Ports: []desired.Port{{ContainerPort: 9090, HostPort: 9090, Protocol: "TCP"}}})
	spec.Pod.HostNetwork = true
	rt.SetPodSecurity(desired.PodSecurityPrivileged)
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	r := waitState(t, rt, spec.ID, protocol.StateRunning)
	if r.PodIP != "" || !r.HostNetwork || len(r.Ports) != 1 {
		t.Fatalf("reported %+v", r)
	}
	pids, _ := rt.Debug(ctx, spec.ID)
	if body := getIn(t, host, "127.0.0.1:9090"); !strings.Contains(body, "host net") {
		t.Fatalf("host answered %q", body)
	}
	if netnsOf(t, pids["a"]) == netnsOf(t, os.Getpid()) {
		t.Fatal("the pod joined the test process's namespace, not the node's host namespace")
	}
}

// dialIn connects to addr from inside the network namespace nsPath, once.
func dialIn(nsPath, addr string) error {
	return netns.LoadNetNS(nsPath).Do(func(cnins.NetNS) error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// TestCNIStopAfterNetnsLost: when a pod's network namespace file is no
// longer a namespace (as after a reboot), stopping the pod still succeeds
// and gives its address back.
func TestCNIStopAfterNetnsLost(t *testing.T) {
	cni, host := testenv.CNI(t)
	rt := newRuntime(t)
	rt.SetNetwork(cni, host)
	ctx := context.Background()
	spec := podSpec("hello-net-lost", desired.Container{Name: "web", Image: testenv.HelloImage, Args: []string{"-listen", ":8080"}})
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	r := waitState(t, rt, spec.ID, protocol.StateRunning)
	_, nsPath := rt.Debug(ctx, spec.ID)
	if err := unix.Unmount(nsPath, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if err := rt.Stop(ctx, spec.ID, time.Second); err != nil {
		t.Fatalf("stop after the namespace was lost: %v", err)
	}
	lease := filepath.Join(cni.Config().StateDir, "ipam", "baton", r.PodIP)
	if _, err := os.Stat(lease); !os.IsNotExist(err) {
		t.Fatalf("lease of the stopped pod still there: %v", err)
	}
}

func TestValidRoutes(t *testing.T) {
	ok := []protocol.Route{{Node: "n2", Subnet: "10.77.2.0/24", Via: "10.0.0.2"}}
	if err := nodeagent.ValidRoutes(ok); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]protocol.Route{
		"bad subnet":    {Node: "n2", Subnet: "10.77.2.0", Via: "10.0.0.2"},
		"ipv6 subnet":   {Node: "n2", Subnet: "fd00::/64", Via: "10.0.0.2"},
		"bad via":       {Node: "n2", Subnet: "10.77.2.0/24", Via: "nowhere"},
		"loopback via":  {Node: "n2", Subnet: "10.77.2.0/24", Via: "127.0.0.1"},
		"unspecified":   {Node: "n2", Subnet: "10.77.2.0/24", Via: "0.0.0.0"},
		"multicast via": {Node: "n2", Subnet: "10.77.2.0/24", Via: "224.0.0.1"},
	} {
		if err := nodeagent.ValidRoutes([]protocol.Route{r}); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	if err := nodeagent.ValidRoutes(make([]protocol.Route, protocol.MaxRoutes+1)); err == nil {
		t.Error("too many routes: want an error")
	}
}

// The Service rules are written whole into a table of the host's
// namespace by the real nft, replaced whole by the next rules, and removed.
func TestNFTablesServices(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		if os.Getenv("BATON_E2E") == "1" {
			t.Fatal("nft not installed")
		}
		t.Skip("nft not installed")
	}
	ns := testenv.HostNetNS(t)
	n := &nodeagent.NFTables{NetNS: ns, PodSubnet: "10.77.1.0/24", ClusterCIDR: "10.77.0.0/16"}
	ctx := context.Background()
	rules := []protocol.ServiceRule{
		{Service: "web", IP: "10.78.0.1", Port: 80, Protocol: "TCP", NodePort: 30080, Endpoints: []string{"10.77.1.2:8080", "10.77.2.2:8080"}},
		{Service: "dns", IP: "10.78.0.2", Port: 53, Protocol: "UDP", Endpoints: []string{"10.77.2.3:53"}},
		{Service: "idle", IP: "10.78.0.3", Port: 80, Protocol: "TCP", Endpoints: []string{}},
	}
	if err := n.Apply(ctx, rules); err != nil {
		t.Fatal(err)
	}
	out, err := n.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"10.78.0.1 . tcp . 80 : goto svc-", "10.78.0.2 . udp . 53 : goto svc-", "numgen random mod 2",
		"0 : 10.77.1.2 . 8080, 1 : 10.77.2.2 . 8080", "dnat ip to numgen random mod 1 map { 0 : 10.77.2.3 . 53 }", "10.78.0.3 . tcp . 80", "reject",
		"ip saddr 10.77.1.0/24 ip daddr 10.77.1.0/24 masquerade", "tcp . 30080 : goto svc-", "fib daddr type local",
		"ip saddr != 10.77.0.0/16 ip daddr != 10.77.1.0/24 masquerade"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// Changes touch only what changed, and leave the table as writing it
	// whole would: an endpoint gone, a Service gone, one added, one that
	// had none now has one, a node port moved.
	changed := []protocol.ServiceRule{
		{Service: "web", IP: "10.78.0.1", Port: 80, Protocol: "TCP", NodePort: 30081, Endpoints: []string{"10.77.2.2:8080"}},
		{Service: "idle", IP: "10.78.0.3", Port: 80, Protocol: "TCP", Endpoints: []string{"10.77.1.9:80"}},
		{Service: "new", IP: "10.78.0.4", Port: 443, Protocol: "TCP", Endpoints: []string{}},
	}
	if err := n.Apply(ctx, changed); err != nil {
		t.Fatal(err)
	}
	whole := &nodeagent.NFTables{NetNS: testenv.HostNetNS(t), PodSubnet: "10.77.1.0/24", ClusterCIDR: "10.77.0.0/16"}
	if err := whole.Apply(ctx, changed); err != nil {
		t.Fatal(err)
	}
	got, _ := n.List(ctx)
	want, _ := whole.List(ctx)
	if sortedLines(got) != sortedLines(want) {
		t.Fatalf("after the changes:\n%s\nwritten whole:\n%s", got, want)
	}
	if err := n.Apply(ctx, rules[1:2]); err != nil {
		t.Fatal(err)
	}
	if out, _ = n.List(ctx); strings.Contains(out, "10.78.0.1 ") || strings.Contains(out, "8080") {
		t.Fatalf("old rules left behind:\n%s", out)
	}
	if err := n.Apply(ctx, []protocol.ServiceRule{{Service: "x", IP: "10.78.0.9", Port: 80, Protocol: "SCTP"}}); err == nil {
		t.Fatal("SCTP: want an error")
	}
	if err := n.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := n.List(ctx); err == nil {
		t.Fatal("the table is still there after Remove")
	}
}

// ClientIP affinity (a set and a chain per endpoint) and traffic policy
// Local (this node's endpoints only) in the real nft: changes made in
// place leave the table as writing it whole would, and an endpoint that
// stays keeps its clients' set.
func TestNFTablesAffinityAndLocal(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not installed")
	}
	ctx := context.Background()
	ns := testenv.HostNetNS(t)
	n := &nodeagent.NFTables{NetNS: ns, PodSubnet: "10.77.1.0/24", ClusterCIDR: "10.77.0.0/16"}
	rules := []protocol.ServiceRule{
		{Service: "sticky", IP: "10.78.0.1", Port: 80, Protocol: "TCP", AffinitySeconds: 600, Endpoints: []string{"10.77.1.2:8080", "10.77.2.2:8080"}},
		{Service: "ext", IP: "10.78.0.2", Port: 80, Protocol: "TCP", NodePort: 30090, ExternalLocal: true, Endpoints: []string{"10.77.1.5:80", "10.77.3.5:80"}},
		{Service: "int", IP: "10.78.0.3", Port: 53, Protocol: "UDP", InternalLocal: true, Endpoints: []string{"10.77.2.9:53"}},
	}
	if err := n.Apply(ctx, rules); err != nil {
		t.Fatal(err)
	}
	out, err := n.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"flags dynamic,timeout", "timeout 10m", "update @aff-", "ip saddr @aff-", "numgen random mod 2 vmap { 0 : goto ep-",
		"dnat to 10.77.1.2:8080", "dnat to 10.77.2.2:8080",
		"tcp . 30090 : goto ext-", "dnat ip to numgen random mod 1 map { 0 : 10.77.1.5 . 80 }", "numgen random mod 2 map { 0 : 10.77.1.5 . 80, 1 : 10.77.3.5 . 80 }",
		"10.78.0.3 . udp . 53"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// A client remembered by the endpoint that stays.
	setOf := func(table, endpoint string) string {
		// The endpoint's chain updates its set, then DNATs to it.
		i := strings.Index(table, "dnat to "+endpoint)
		j := strings.LastIndex(table[:max(i, 0)], "update @")
		if i < 0 || j < 0 {
			return ""
		}
		name, _, _ := strings.Cut(table[j+len("update @"):], " ")
		return name
	}
	kept := setOf(out, "10.77.1.2:8080")
	if kept == "" {
		t.Fatalf("no set for 10.77.1.2:8080:\n%s", out)
	}
	if out, err := exec.Command("nsenter", "--net="+ns, "nft", "add", "element", "ip", "baton", kept, "{ 10.77.9.9 }").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	changed := []protocol.ServiceRule{
		{Service: "sticky", IP: "10.78.0.1", Port: 80, Protocol: "TCP", AffinitySeconds: 600, Endpoints: []string{"10.77.1.2:8080", "10.77.3.3:8080"}},
		{Service: "ext", IP: "10.78.0.2", Port: 80, Protocol: "TCP", NodePort: 30090, Endpoints: []string{"10.77.1.5:80", "10.77.3.5:80"}},
		{Service: "int", IP: "10.78.0.3", Port: 53, Protocol: "UDP", InternalLocal: true, Endpoints: []string{"10.77.1.9:53", "10.77.2.9:53"}},
		{Service: "new", IP: "10.78.0.4", Port: 80, Protocol: "TCP", AffinitySeconds: 30, Endpoints: []string{"10.77.1.7:80"}},
	}
	if err := n.Apply(ctx, changed); err != nil {
		t.Fatal(err)
	}
	got, _ := n.List(ctx)
	if !strings.Contains(got, "10.77.9.9") || strings.Contains(got, "10.77.2.2") || strings.Contains(got, "ext-") {
		t.Fatalf("after the changes (the client kept, 10.77.2.2 and ext- gone):\n%s", got)
	}
	whole := &nodeagent.NFTables{NetNS: testenv.HostNetNS(t), PodSubnet: "10.77.1.0/24", ClusterCIDR: "10.77.0.0/16"}
	if err := whole.Apply(ctx, changed); err != nil {
		t.Fatal(err)
	}
	want, _ := whole.List(ctx)
	// The set's element and its expiry are the only difference.
	strip := func(s string) string {
		var keep []string
		for _, l := range strings.Split(s, "\n") {
			if !strings.Contains(l, "10.77.9.9") && !strings.Contains(l, "elements = {") {
				keep = append(keep, l)
			}
		}
		return sortedLines(strings.Join(keep, "\n"))
	}
	if strip(got) != strip(want) {
		t.Fatalf("after the changes:\n%s\nwritten whole:\n%s", got, want)
	}
	if err := n.Apply(ctx, []protocol.ServiceRule{{Service: "x", IP: "10.78.0.9", Port: 80, Protocol: "TCP", AffinitySeconds: 86401}}); err == nil {
		t.Fatal("affinity over a day: want an error")
	}
}

// The node's DNS answers Services' names in the cluster domain (NXDOMAIN
// for others there) and forwards the rest to its upstream.
func TestPodDNS(t *testing.T) {
	up, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upSrv := &dns.Server{PacketConn: up, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP("192.0.2.9")})
		_ = w.WriteMsg(m)
	})}
	go func() { _ = upSrv.ActivateAndServe() }()
	defer func() { _ = upSrv.Shutdown() }()
	d := &nodeagent.DNS{Listen: "127.0.0.1:0", Upstream: []string{up.LocalAddr().String()}}
	// Port 0 cannot be told to pods; find a free one first.
	probe, _ := net.ListenPacket("udp", "127.0.0.1:0")
	d.Listen = probe.LocalAddr().String()
	probe.Close()
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	d.SetRecords([]protocol.DNSRecord{{Service: "web", IPs: []string{"10.78.0.1"}}, {Service: "db", IPs: []string{"10.77.1.2", "10.77.2.2"}},
		{Service: "db-0.db", IPs: []string{"10.77.1.2"}}, {Service: "shop/web", IPs: []string{"10.78.0.2"}}, {Service: "shop/db-0.db", IPs: []string{"10.77.3.2"}}})
	ask := func(name string) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, d.Listen)
		return r, err
	}
	for name, want := range map[string]string{"web.default.svc.cluster.local.": "[10.78.0.1]", "db.default.svc.cluster.local.": "[10.77.1.2 10.77.2.2]", "db-0.db.default.svc.cluster.local.": "[10.77.1.2]", "example.org.": "[192.0.2.9]",
		"web.shop.svc.cluster.local.": "[10.78.0.2]", "db-0.db.shop.svc.cluster.local.": "[10.77.3.2]"} {
		r, err := ask(name)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range r.Answer {
			got = append(got, a.(*dns.A).A.String())
		}
		if fmt.Sprint(got) != want {
			t.Errorf("%s: %v, want %s", name, got, want)
		}
	}
	if r, err := ask("nosuch.default.svc.cluster.local."); err != nil || r.Rcode != dns.RcodeNameError {
		t.Fatalf("an unknown Service: %v %v, want NXDOMAIN", r, err)
	}
	if r, err := ask("db.shop.svc.cluster.local."); err != nil || r.Rcode != dns.RcodeNameError {
		t.Fatalf("a Service of another namespace: %v %v, want NXDOMAIN", r, err)
	}
	if !strings.Contains(d.ResolvConf("default"), "search default.svc.cluster.local svc.cluster.local cluster.local") ||
		!strings.Contains(d.ResolvConf("shop"), "search shop.svc.cluster.local svc.cluster.local cluster.local") {
		t.Fatalf("resolv.conf:\n%s\n%s", d.ResolvConf("default"), d.ResolvConf("shop"))
	}
	if gw, err := nodeagent.Gateway("10.77.3.0/24"); err != nil || gw != "10.77.3.1" {
		t.Fatalf("Gateway = %s, %v", gw, err)
	}
	if err := nodeagent.ValidDNSRecords([]protocol.DNSRecord{{Service: "a.b", IPs: nil}}); err != nil {
		t.Fatalf("a pod's name under its headless Service: %v", err)
	}
	if err := nodeagent.ValidDNSRecords([]protocol.DNSRecord{{Service: "shop/a.b", IPs: nil}}); err != nil {
		t.Fatalf("a pod's name in a namespace: %v", err)
	}
	for _, bad := range []string{"a.b.c", "a..b", ".a", strings.Repeat("x", 64), "default/a", "Shop/a", "a/b/c", "/a"} {
		if err := nodeagent.ValidDNSRecords([]protocol.DNSRecord{{Service: bad}}); err == nil {
			t.Fatalf("%q: want an error", bad)
		}
	}
}

// Pods on the pod network mount the node DNS's resolv.conf (ClusterFirst);
// a pod with dnsPolicy Default mounts the host's.
func TestPodResolvConf(t *testing.T) {
	cni, host := testenv.CNI(t)
	rt := newRuntime(t)
	rt.SetNetwork(cni, host)
	if err := rt.SetPodResolvConf(func(ns string) string { return "nameserver 10.244.0.1\nsearch " + ns + ".svc.cluster.local\n" }); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first := podSpec("hello-dns-1", desired.Container{Name: "c", Image: testenv.HelloImage})
	node := podSpec("hello-dns-2", desired.Container{Name: "c", Image: testenv.HelloImage})
	node.Pod.DNSPolicy = "Default"
	shop := podSpec("hello-dns-3", desired.Container{Name: "c", Image: testenv.HelloImage})
	shop.Workload = "shop/hello"
	shopJob := podSpec("hello-dns-4", desired.Container{Name: "c", Image: testenv.HelloImage})
	shopJob.Workload = "job/shop/once"
	for _, s := range []protocol.ReplicaSpec{first, node, shop, shopJob} {
		if err := rt.Start(ctx, s); err != nil {
			t.Fatal(err)
		}
		waitState(t, rt, s.ID, protocol.StateRunning)
	}
	cli, err := nodeagent.DialContainerd(ctx, testenv.ContainerdSocket(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	nctx := namespaces.WithNamespace(ctx, rt.Namespace())
	cs, err := cli.Containers(nctx)
	if err != nil {
		t.Fatal(err)
	}
	mounted := map[string]string{}
	for _, c := range cs {
		labels, _ := c.Labels(nctx)
		spec, err := c.Spec(nctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range spec.Mounts {
			if m.Destination == "/etc/resolv.conf" {
				mounted[labels[nodeagent.LabelReplica]] = m.Source
			}
		}
	}
	if got := mounted[first.ID]; got != filepath.Join(rt.DataDir(), "resolv.conf") {
		t.Errorf("a ClusterFirst pod mounts %q", got)
	}
	if got := mounted[node.ID]; got != "/etc/resolv.conf" {
		t.Errorf("a dnsPolicy Default pod mounts %q, want the host's", got)
	}
	// A pod of namespace shop (a Deployment's or a Job's) searches shop first.
	for _, s := range []protocol.ReplicaSpec{shop, shopJob} {
		got := mounted[s.ID]
		b, err := os.ReadFile(got)
		if got != filepath.Join(rt.DataDir(), "resolv-shop.conf") || err != nil || !strings.Contains(string(b), "search shop.svc.cluster.local") {
			t.Errorf("%s of namespace shop mounts %q: %q %v", s.Workload, got, b, err)
		}
	}
}

// sortedLines is s's lines sorted (nft lists map elements in any order).
func sortedLines(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		for _, part := range strings.Split(strings.Trim(strings.TrimSpace(l), "{}"), ", ") {
			lines = append(lines, strings.TrimSpace(part))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
