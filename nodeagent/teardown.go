package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// portmapChains are the nat chains the CNI portmap plugin makes once and
// leaves (each pod's own chains go with the pod).
var portmapChains = []string{"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK"}

// Teardown removes what the pod network left on the host once no pod of
// this node is left (baton down): the masquerade chain and its jumps, the
// portmap plugin's chains when no pod of any CNI network maps a port any
// more, the bridge, and the addresses' leases. What is already gone is
// not an error. It returns what it removed.
func (c *CNI) Teardown(ctx context.Context) ([]string, error) {
	var done []string
	var errs []error
	n, err := c.removeChain(ctx, masqChain)
	if err != nil {
		errs = append(errs, err)
	} else if n >= 0 {
		done = append(done, fmt.Sprintf("iptables nat chain %s and %d jumps to it", masqChain, n))
	}
	if rules, err := c.iptablesOut(ctx, "-t", "nat", "-S", "CNI-HOSTPORT-DNAT"); err == nil && !strings.Contains(rules, "-A CNI-HOSTPORT-DNAT") {
		// No pod of any CNI network maps a port: the plugin's chains
		// serve nothing (it makes them again at its next mapping).
		for _, chain := range portmapChains {
			n, err := c.removeChain(ctx, chain)
			if err != nil {
				errs = append(errs, err)
			} else if n >= 0 {
				done = append(done, fmt.Sprintf("iptables nat chain %s and %d jumps to it", chain, n))
			}
		}
	}
	if _, err := runIn(ctx, c.cfg.HostNetNS, "", "ip", "link", "show", c.cfg.Bridge); err == nil {
		if _, err := runIn(ctx, c.cfg.HostNetNS, "", "ip", "link", "del", c.cfg.Bridge); err != nil {
			errs = append(errs, fmt.Errorf("remove the bridge %s: %w", c.cfg.Bridge, err))
		} else {
			done = append(done, "the bridge "+c.cfg.Bridge)
		}
	}
	for _, dir := range []string{"ipam", "cache"} {
		if err := os.RemoveAll(filepath.Join(c.cfg.StateDir, dir)); err != nil {
			errs = append(errs, err)
		}
	}
	return done, errors.Join(errs...)
}

// removeChain deletes every jump to chain from the nat table's built-in
// chains, then the chain: it returns how many jumps it removed, -1 when
// there was no such chain.
func (c *CNI) removeChain(ctx context.Context, chain string) (int, error) {
	if _, err := c.iptablesOut(ctx, "-t", "nat", "-S", chain); err != nil {
		return -1, nil // no such chain
	}
	removed := 0
	for _, from := range []string{"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"} {
		out, err := c.iptablesOut(ctx, "-t", "nat", "-L", from, "-n", "--line-numbers")
		if err != nil {
			return removed, fmt.Errorf("list nat %s: %w", from, err)
		}
		var lines []int
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) > 1 && f[1] == chain {
				if n, err := strconv.Atoi(f[0]); err == nil {
					lines = append(lines, n)
				}
			}
		}
		slices.Reverse(lines) // the last first: the numbers before it hold
		for _, n := range lines {
			if err := c.iptables(ctx, "-t", "nat", "-D", from, strconv.Itoa(n)); err != nil {
				return removed, fmt.Errorf("remove a jump to %s from %s: %w", chain, from, err)
			}
			removed++
		}
	}
	if err := c.iptables(ctx, "-t", "nat", "-F", chain); err != nil {
		return removed, fmt.Errorf("flush %s: %w", chain, err)
	}
	if err := c.iptables(ctx, "-t", "nat", "-X", chain); err != nil {
		return removed, fmt.Errorf("delete %s: %w", chain, err)
	}
	return removed, nil
}

// iptablesOut runs iptables in the host's network namespace and returns
// what it printed.
func (c *CNI) iptablesOut(ctx context.Context, args ...string) (string, error) {
	return runIn(ctx, c.cfg.HostNetNS, "", "iptables", append([]string{"-w"}, args...)...)
}
