package natsserver

import (
	"strings"
	"testing"
)

func TestClusterOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		c       Cluster
		routes  []string
		wantErr string
	}{
		{name: "peers", c: Cluster{Name: "baton", Listen: "10.0.0.1:8422", Routes: []string{"tls://10.0.0.2:8422", "tls://10.0.0.3:8422"}},
			routes: []string{"tls://10.0.0.2:8422", "tls://10.0.0.3:8422"}},
		// A first server with no peer yet routes to itself (JetStream in a
		// cluster needs a route), on the address it listens on.
		{name: "alone on an address", c: Cluster{Name: "baton", Listen: "10.0.0.1:8422"}, routes: []string{"tls://10.0.0.1:8422"}},
		{name: "alone on every address", c: Cluster{Name: "baton", Listen: ":8422"}, routes: []string{"tls://127.0.0.1:8422"}},
		{name: "port 0", c: Cluster{Name: "baton", Listen: "10.0.0.1:0"}, wantErr: "want a port number"},
		{name: "no name", c: Cluster{Listen: "10.0.0.1:8422"}, wantErr: "without a name"},
		{name: "bad route", c: Cluster{Name: "baton", Listen: ":8422", Routes: []string{"10.0.0.2"}}, wantErr: "want tls://host:port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			o, err := Options(Config{Listen: "127.0.0.1:0", Cluster: &c})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range o.Routes {
				got = append(got, u.String())
			}
			if strings.Join(got, ",") != strings.Join(tc.routes, ",") || o.Cluster.Name != "baton" || o.Cluster.Port != 8422 {
				t.Fatalf("routes %v, cluster %+v; want routes %v", got, o.Cluster, tc.routes)
			}
		})
	}
}
