package desired

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
)

var quantitySuffixes = map[string]*big.Rat{
	"m": big.NewRat(1, 1000), "": big.NewRat(1, 1),
	"k": big.NewRat(1e3, 1), "M": big.NewRat(1e6, 1), "G": big.NewRat(1e9, 1),
	"T": big.NewRat(1e12, 1), "P": big.NewRat(1e15, 1), "E": big.NewRat(1e18, 1),
	"Ki": big.NewRat(1<<10, 1), "Mi": big.NewRat(1<<20, 1), "Gi": big.NewRat(1<<30, 1),
	"Ti": big.NewRat(1<<40, 1), "Pi": big.NewRat(1<<50, 1), "Ei": big.NewRat(1<<60, 1),
}

// ParseQuantity parses a Kubernetes quantity (500m, 0.5, 128Mi, 1e3, or a
// number) and returns it multiplied by scale, rounded up, as Kubernetes
// does: ParseQuantity("500m", 1000) is 500 (milli-CPU), ParseQuantity("1Ki", 1)
// is 1024 (bytes).
func ParseQuantity(q any, scale int64) (int64, error) {
	var s string
	switch v := q.(type) {
	case string:
		s = strings.TrimPrefix(strings.TrimSpace(v), "+")
	case json.Number:
		s = v.String()
	case float64:
		s = fmt.Sprint(v)
	case int:
		s = fmt.Sprint(v)
	case int64:
		s = fmt.Sprint(v)
	default:
		return 0, fmt.Errorf("invalid quantity %v", q)
	}
	num := s
	mult := quantitySuffixes[""]
	for suffix, m := range quantitySuffixes {
		if suffix != "" && strings.HasSuffix(s, suffix) && len(suffix) >= len(s)-len(num) {
			if rest := strings.TrimSuffix(s, suffix); rest != "" && (len(suffix) == 2 || !strings.ContainsAny(rest[len(rest)-1:], "eE")) {
				num, mult = rest, m
			}
		}
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok || r.Sign() < 0 {
		return 0, fmt.Errorf("invalid quantity %q", s)
	}
	r.Mul(r, mult)
	r.Mul(r, big.NewRat(scale, 1))
	// Round up to an integer.
	n := new(big.Int).Quo(r.Num(), r.Denom())
	if new(big.Rat).SetInt(n).Cmp(r) < 0 {
		n.Add(n, big.NewInt(1))
	}
	if !n.IsInt64() || n.Int64() > 1<<62 {
		return 0, fmt.Errorf("quantity %q is too large", s)
	}
	return n.Int64(), nil
}
