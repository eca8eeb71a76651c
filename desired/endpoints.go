package desired

import (
	"fmt"
	"net"
	"strconv"
)

// endpoints reads an Endpoints object: IPv4 addresses (Baton's Services
// are IPv4), each subset's ports; notReadyAddresses are left out, as
// Kubernetes serves none of them.
func (n *norm) endpoints(e k8sEndpoints) Endpoints {
	out := Endpoints{Meta: n.meta(e.Metadata)}
	for i, s := range e.Subsets {
		var sub EndpointSubset
		for j, a := range s.Addresses {
			if ip := net.ParseIP(a.IP); ip == nil || ip.To4() == nil {
				n.fail(fmt.Sprintf("subsets[%d].addresses[%d].ip", i, j), "%q: want an IPv4 address (Baton's Services are IPv4)", a.IP)
				continue
			}
			sub.Addresses = append(sub.Addresses, a.IP)
		}
		for _, p := range s.Ports {
			proto := p.Protocol
			if proto == "" {
				proto = "TCP"
			}
			sub.Ports = append(sub.Ports, EndpointPort{Name: p.Name, Port: p.Port, Protocol: proto})
		}
		out.Subsets = append(out.Subsets, sub)
	}
	return out
}

// EndpointsByName are the Endpoints objects by name (a Service's name):
// made once by each walk over the Services.
func (s *State) EndpointsByName() map[string]Endpoints {
	m := make(map[string]Endpoints, len(s.Endpoints))
	for _, e := range s.Endpoints {
		m[e.Name] = e
	}
	return m
}

// Serving are the "address:port" endpoints of a Service port named
// portName (and of protocol proto): each subset's addresses on its port of
// that name, as Kubernetes matches them.
func (e Endpoints) Serving(portName, proto string) []string {
	var out []string
	for _, sub := range e.Subsets {
		for _, p := range sub.Ports {
			if p.Name != portName || p.Protocol != proto {
				continue
			}
			for _, a := range sub.Addresses {
				out = append(out, net.JoinHostPort(a, strconv.Itoa(p.Port)))
			}
		}
	}
	return out
}
