package reconciler

import (
	"fmt"
	"testing"

	"github.com/batonhq/baton/nodeagent/protocol"
)

func TestNetworkRoutes(t *testing.T) {
	hbs := map[string]protocol.Heartbeat{
		"n1":   {Address: "10.0.0.1", PodSubnet: "10.77.1.0/24"},
		"n2":   {Address: "10.0.0.2", PodSubnet: "10.77.2.0/24"},
		"n3":   {Address: "10.0.0.3", PodSubnet: "10.77.3.0/24"},
		"none": {Address: "10.0.0.4"},       // --network none: no subnet
		"old":  {PodSubnet: "10.77.9.0/24"}, // no address: cannot be reached
	}
	for _, tc := range []struct {
		node string
		want string
	}{
		{"n1", "[{n2 10.77.2.0/24 10.0.0.2} {n3 10.77.3.0/24 10.0.0.3}]"},
		{"n3", "[{n1 10.77.1.0/24 10.0.0.1} {n2 10.77.2.0/24 10.0.0.2}]"},
		{"none", "[{n1 10.77.1.0/24 10.0.0.1} {n2 10.77.2.0/24 10.0.0.2} {n3 10.77.3.0/24 10.0.0.3}]"},
	} {
		if got := fmt.Sprint(NetworkRoutes(hbs, tc.node)); got != tc.want {
			t.Errorf("NetworkRoutes(%s) = %s, want %s", tc.node, got, tc.want)
		}
	}
	if got := NetworkRoutes(map[string]protocol.Heartbeat{"n1": hbs["n1"]}, "n1"); len(got) != 0 {
		t.Errorf("a lone node: %v, want no route", got)
	}
}

func TestEndpointChanges(t *testing.T) {
	a := []protocol.ServiceRule{{Service: "web", Port: 80, Endpoints: []string{"10.77.1.2:8080", "10.77.2.2:8080"}}, {Service: "db", Port: 5432, Endpoints: []string{"10.77.1.3:5432"}}}
	b := []protocol.ServiceRule{{Service: "web", Port: 80, Endpoints: []string{"10.77.1.2:8080"}}, {Service: "db", Port: 5432, Endpoints: []string{"10.77.1.3:5432"}}, {Service: "new", Port: 1}}
	if got := endpointChanges(a, b); got != "web:80 1 ready, new:1 0 ready" {
		t.Fatalf("endpointChanges = %q", got)
	}
	if got := endpointChanges(a, a); got != "" {
		t.Fatalf("no change: %q", got)
	}
	w := changedKeys("svcip.", map[string]string{"a": "1", "b": "2"}, map[string]string{"a": "1", "b": "3", "c": "4"})
	if fmt.Sprint(len(w)) != "2" {
		t.Fatalf("changedKeys: %v", w)
	}
	if w := changedKeys("svcip.", map[string]string{"a": "1"}, map[string]string{}); len(w) != 1 || w[0].key != "svcip.a" || w[0].value != nil {
		t.Fatalf("a key gone: %v", w)
	}
}
