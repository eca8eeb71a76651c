package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
	// The nat table, read once: the chains that are there, and the rules.
	nat, err := c.iptablesOut(ctx, "-t", "nat", "-S")
	if err != nil {
		return nil, fmt.Errorf("read the nat table: %w", err)
	}
	rules := strings.Split(strings.TrimSpace(nat), "\n")
	chains := []string{masqChain}
	if !slices.ContainsFunc(rules, func(r string) bool { return strings.HasPrefix(r, "-A CNI-HOSTPORT-DNAT ") }) {
		// No pod of any CNI network maps a port: the plugin's chains
		// serve nothing (it makes them again at its next mapping).
		chains = append(chains, portmapChains...)
	}
	chains = slices.DeleteFunc(chains, func(ch string) bool { return !slices.Contains(rules, "-N "+ch) })
	for _, chain := range chains {
		n, err := c.removeChain(ctx, rules, chain, chains)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, fmt.Sprintf("iptables nat chain %s and %d jumps to it", chain, n))
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

// removeChain deletes the rules of the nat table (rules, as iptables -S
// lists them) that jump to chain, each by its own spec, but those in the
// chains going too (flushed with them), then the chain; it returns how
// many jumps it removed.
func (c *CNI) removeChain(ctx context.Context, rules []string, chain string, going []string) (int, error) {
	removed := 0
	for _, r := range rules {
		f := ruleFields(r)
		if len(f) < 4 || f[0] != "-A" || slices.Contains(going, f[1]) || f[len(f)-2] != "-j" || f[len(f)-1] != chain {
			continue
		}
		if err := c.iptables(ctx, append([]string{"-t", "nat", "-D"}, f[1:]...)...); err != nil {
			return removed, fmt.Errorf("remove a jump to %s from %s: %w", chain, f[1], err)
		}
		removed++
	}
	if err := c.iptables(ctx, "-t", "nat", "-F", chain); err != nil {
		return removed, fmt.Errorf("flush %s: %w", chain, err)
	}
	if err := c.iptables(ctx, "-t", "nat", "-X", chain); err != nil {
		return removed, fmt.Errorf("delete %s: %w", chain, err)
	}
	return removed, nil
}

// ruleFields splits a rule as iptables -S prints it, a double-quoted
// field (a comment) kept whole.
func ruleFields(rule string) []string {
	var out []string
	for rule = strings.TrimSpace(rule); rule != ""; rule = strings.TrimSpace(rule) {
		if rule[0] == '"' {
			end := strings.IndexByte(rule[1:], '"')
			if end < 0 {
				return append(out, rule[1:])
			}
			out = append(out, rule[1:end+1])
			rule = rule[end+2:]
			continue
		}
		field, rest, _ := strings.Cut(rule, " ")
		out, rule = append(out, field), rest
	}
	return out
}

// iptablesOut runs iptables in the host's network namespace and returns
// what it printed.
func (c *CNI) iptablesOut(ctx context.Context, args ...string) (string, error) {
	return runIn(ctx, c.cfg.HostNetNS, "", "iptables", append([]string{"-w"}, args...)...)
}
