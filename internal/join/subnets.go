package join

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultClusterCIDR holds every pod address of the cluster; each node's
// pods get one /24 of it.
const DefaultClusterCIDR = "10.77.0.0/16"

// NodeSubnetBits is the size of a node's pod subnet.
const NodeSubnetBits = 24

// ErrNoSubnet is a join when every node subnet of the cluster CIDR is held.
var ErrNoSubnet = errors.New("no free node subnet")

// NodeSubnet is the n-th /24 of cidr (n from 0). The 0th is baton up's own
// node's; joined nodes lease the others.
func NodeSubnet(cidr string, n int) (string, error) {
	_, ipn, err := net.ParseCIDR(cidr)
	if err != nil {
		return "", fmt.Errorf("cluster CIDR %q: %w", cidr, err)
	}
	ones, bits := ipn.Mask.Size()
	if bits != 32 || ones > NodeSubnetBits {
		return "", fmt.Errorf("cluster CIDR %q: want IPv4 and a prefix of at most /%d", cidr, NodeSubnetBits)
	}
	if n < 0 || n >= 1<<(NodeSubnetBits-ones) {
		return "", fmt.Errorf("%w: %s holds %d node subnets", ErrNoSubnet, cidr, 1<<(NodeSubnetBits-ones))
	}
	base := new(big.Int).SetBytes(ipn.IP.To4())
	base.Add(base, new(big.Int).Lsh(big.NewInt(int64(n)), 32-NodeSubnetBits))
	b := base.FillBytes(make([]byte, 4))
	return fmt.Sprintf("%s/%d", net.IP(b), NodeSubnetBits), nil
}

func subnetKey(node string) string { return "subnet.node." + node }
func subnetIndexKey(n int) string  { return "subnet.index." + strconv.Itoa(n) }

// LeaseSubnet gives node a /24 of cidr: the one it holds already, else the
// first free one from the 1st (claimed with a create: two joins never
// share one).
func (s *Store) LeaseSubnet(ctx context.Context, cidr, node string) (string, error) {
	if e, err := s.kv.Get(ctx, subnetKey(node)); err == nil {
		subnet, _, err := parseLease(e.Value())
		return subnet, err
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", err
	}
	for n := 1; ; n++ {
		subnet, err := NodeSubnet(cidr, n)
		if err != nil {
			return "", err
		}
		if _, err := s.kv.Create(ctx, subnetIndexKey(n), []byte(node)); errors.Is(err, jetstream.ErrKeyExists) {
			continue
		} else if err != nil {
			return "", err
		}
		if _, err := s.kv.Put(ctx, subnetKey(node), []byte(subnet+" "+strconv.Itoa(n))); err != nil {
			_ = s.kv.Delete(ctx, subnetIndexKey(n))
			return "", err
		}
		return subnet, nil
	}
}

// parseLease reads a lease record, "<subnet> <index>".
func parseLease(b []byte) (string, int, error) {
	var subnet string
	var n int
	if _, err := fmt.Sscanf(string(b), "%s %d", &subnet, &n); err != nil {
		return "", 0, fmt.Errorf("node subnet record %q: %w", b, err)
	}
	return subnet, n, nil
}

// ReleaseSubnet frees node's subnet (removed from the cluster).
func (s *Store) ReleaseSubnet(ctx context.Context, node string) error {
	e, err := s.kv.Get(ctx, subnetKey(node))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, n, err := parseLease(e.Value()); err == nil {
		if err := s.kv.Delete(ctx, subnetIndexKey(n)); err != nil {
			return err
		}
	}
	return s.kv.Delete(ctx, subnetKey(node))
}
