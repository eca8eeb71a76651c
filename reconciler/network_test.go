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
