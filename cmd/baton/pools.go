package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/batonhq/baton/internal/identity"
	"github.com/batonhq/baton/internal/join"
	"github.com/batonhq/baton/reconciler"
)

// poolMachines is what node pools need of this server's join authority
// (reconciler.Machines): node-bound tokens, the join address, removals.
type poolMachines struct {
	auth *join.Authority
	addr string
}

// newPoolMachines is auth's, or nil when this server serves no join
// endpoint (pools then say they cannot add machines).
func newPoolMachines(auth *join.Authority, o joinOptions) reconciler.Machines {
	addr := joinAdvertise(o)
	if auth == nil || addr == "" {
		return nil
	}
	return &poolMachines{auth: auth, addr: addr}
}

// joinAdvertise is the address machines are told to join at: the flag's,
// else the endpoint's, an unspecified host replaced by the machine's
// first global unicast address.
func joinAdvertise(o joinOptions) string {
	if o.advertise != "" {
		return o.advertise
	}
	host, port, err := net.SplitHostPort(o.bound)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		addrs, _ := net.InterfaceAddrs()
		host = ""
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() && n.IP.To4() != nil {
				host = n.IP.String()
				break
			}
		}
		if host == "" {
			return ""
		}
	}
	return net.JoinHostPort(host, port)
}

func (m *poolMachines) JoinToken(ctx context.Context, node string, ttl time.Duration) (string, error) {
	ans, err := m.auth.CreateToken(ctx, join.TokenRequest{Role: identity.RoleAgent, TTL: min(ttl, join.MaxTokenTTL).String(), By: "node pool", Node: node})
	return ans.Token, err
}

func (m *poolMachines) JoinAddress() string { return m.addr }

func (m *poolMachines) RemoveNode(ctx context.Context, node string) error {
	var errs []error
	if _, err := m.auth.DropTokens(ctx, node); err != nil {
		errs = append(errs, fmt.Errorf("drop node %s's join tokens: %w", node, err))
	}
	if _, err := m.auth.Remove(ctx, identity.RoleAgent, node); err != nil { // whatever became of the tokens
		errs = append(errs, fmt.Errorf("revoke node %s: %w", node, err))
	}
	return errors.Join(errs...)
}
