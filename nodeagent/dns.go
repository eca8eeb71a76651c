package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// ClusterDomain is the domain of the Services' names.
const ClusterDomain = "cluster.local"

// DNS answers the pods of a node: `<service>.<namespace>.svc.cluster.local`
// (and the short forms, through the search path of the pods' resolv.conf)
// with the Service's virtual address, or a headless Service's ready pods;
// every other name is forwarded to the upstream resolvers.
type DNS struct {
	// Listen is the address it answers on (the pod bridge's gateway).
	Listen string
	// NetNS is the host's network namespace ("": the agent's own).
	NetNS string
	// Upstream are the resolvers other names are forwarded to
	// ("host:port").
	Upstream []string

	mu      sync.RWMutex
	records map[string][]net.IP // FQDN (lower case, trailing dot) → addresses
	servers []*dns.Server
}

// SetRecords replaces the names answered.
func (d *DNS) SetRecords(records []protocol.DNSRecord) {
	m := make(map[string][]net.IP, len(records))
	for _, r := range records {
		var ips []net.IP
		for _, s := range r.IPs {
			if ip := net.ParseIP(s).To4(); ip != nil {
				ips = append(ips, ip)
			}
		}
		ns, name := desired.SplitName(strings.ToLower(r.Service))
		m[name+"."+ns+".svc."+ClusterDomain+"."] = ips
	}
	d.mu.Lock()
	d.records = m
	d.mu.Unlock()
}

// ResolvConf is the resolv.conf of a pod of namespace ns on this node
// (Kubernetes' ClusterFirst): a Service's bare name is its namespace's.
func (d *DNS) ResolvConf(ns string) string {
	host, _, _ := net.SplitHostPort(d.Listen)
	return fmt.Sprintf("nameserver %s\nsearch %s.svc.%s svc.%s %s\noptions ndots:5\n", host, ns, ClusterDomain, ClusterDomain, ClusterDomain)
}

// Start answers on Listen (UDP and TCP) until Stop. The address need not
// exist yet (the bridge is made with the first pod): the sockets are bound
// with IP_FREEBIND.
func (d *DNS) Start(ctx context.Context) error {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_IP, syscall.IP_FREEBIND, 1)
		})
		return errors.Join(err, serr)
	}}
	var pc net.PacketConn
	var ln net.Listener
	bind := func() error {
		var err error
		if pc, err = lc.ListenPacket(ctx, "udp", d.Listen); err != nil {
			return err
		}
		if ln, err = lc.Listen(ctx, "tcp", d.Listen); err != nil {
			pc.Close()
			return err
		}
		return nil
	}
	if err := inNetNS(d.NetNS, bind); err != nil {
		return fmt.Errorf("pod DNS on %s: %w", d.Listen, err)
	}
	log := zerolog.Ctx(ctx)
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) { d.serve(ctx, w, q) })
	d.servers = []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h, ReadTimeout: 5 * time.Second}}
	for _, s := range d.servers {
		go func() {
			if err := s.ActivateAndServe(); err != nil {
				log.Error().Err(err).Msg("pod DNS stopped")
			}
		}()
	}
	log.Info().Str("listen", d.Listen).Strs("upstream", d.Upstream).Msg("pod DNS")
	return nil
}

// Stop ends the servers.
func (d *DNS) Stop() {
	for _, s := range d.servers {
		_ = s.Shutdown()
	}
}

func (d *DNS) serve(ctx context.Context, w dns.ResponseWriter, q *dns.Msg) {
	if len(q.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(q, dns.RcodeFormatError)
		_ = w.WriteMsg(m)
		return
	}
	name := strings.ToLower(q.Question[0].Name)
	if strings.HasSuffix(name, "."+ClusterDomain+".") {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		d.mu.RLock()
		ips, ok := d.records[name]
		d.mu.RUnlock()
		if !ok {
			m.Rcode = dns.RcodeNameError
		} else if q.Question[0].Qtype == dns.TypeA || q.Question[0].Qtype == dns.TypeANY {
			for _, ip := range ips {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: ip})
			}
		}
		_ = w.WriteMsg(m)
		return
	}
	d.forward(ctx, w, q)
}

// forward asks the upstream resolvers, in turn, over the protocol the
// question came by.
func (d *DNS) forward(ctx context.Context, w dns.ResponseWriter, q *dns.Msg) {
	network := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		network = "tcp"
	}
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	for _, up := range d.Upstream {
		var r *dns.Msg
		var err error
		_ = inNetNS(d.NetNS, func() error { r, _, err = c.ExchangeContext(ctx, q, up); return nil })
		if err == nil && r != nil {
			_ = w.WriteMsg(r)
			return
		}
	}
	m := new(dns.Msg)
	m.SetRcode(q, dns.RcodeServerFailure)
	_ = w.WriteMsg(m)
}

// HostUpstream are the resolvers of a resolv.conf (the node's: questions
// are forwarded from the host's namespace, so a loopback resolver such as
// systemd-resolved's works).
func HostUpstream(path string) []string {
	cfg, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range cfg.Servers {
		out = append(out, net.JoinHostPort(s, cfg.Port))
	}
	return out
}

// ValidDNSRecords checks records as a node receives them.
func ValidDNSRecords(records []protocol.DNSRecord) error {
	if len(records) > protocol.MaxServiceRules {
		return fmt.Errorf("%d names: at most %d", len(records), protocol.MaxServiceRules)
	}
	for _, r := range records {
		// A Service's name, or a pod's under its headless Service
		// (<hostname>.<service>): one or two DNS labels, after its
		// namespace and a '/' outside the default namespace.
		name, nsOK := desired.CutNamespace(r.Service)
		labels := strings.Split(name, ".")
		if _, ok := dns.IsDomainName(name); !ok || !nsOK || len(labels) > 2 || strings.Contains(name, "/") ||
			slices.ContainsFunc(labels, func(l string) bool { return l == "" || len(l) > 63 }) {
			return fmt.Errorf("service name %q: want a DNS label, or two (a pod's name under a headless Service), after NAMESPACE/ outside the default namespace", cutString(r.Service))
		}
		if len(r.IPs) > protocol.MaxEndpoints {
			return fmt.Errorf("service %q: %d addresses: at most %d", r.Service, len(r.IPs), protocol.MaxEndpoints)
		}
		for _, ip := range r.IPs {
			if p := net.ParseIP(ip); p == nil || p.To4() == nil {
				return fmt.Errorf("service %q: address %q: want IPv4", r.Service, cutString(ip))
			}
		}
	}
	return nil
}

// Gateway is the pod bridge's address on subnet: its first.
func Gateway(subnet string) (string, error) {
	_, ipn, err := net.ParseCIDR(subnet)
	if err != nil || ipn.IP.To4() == nil {
		return "", fmt.Errorf("pod subnet %q: want IPv4", subnet)
	}
	ip := ipn.IP.To4()
	ip[3]++
	return ip.String(), nil
}
