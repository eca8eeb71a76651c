package desired

import (
	"encoding/json"
	"testing"
)

func TestParseQuantity(t *testing.T) {
	tests := []struct {
		in    any
		scale int64
		want  int64
		bad   bool
	}{
		{"500m", 1000, 500, false},
		{"0.5", 1000, 500, false},
		{0.5, 1000, 500, false},
		{"2", 1000, 2000, false},
		{2, 1000, 2000, false},
		{"1.5", 1000, 1500, false},
		{"100m", 1, 1, false}, // rounded up
		{"128Mi", 1, 128 << 20, false},
		{"1Gi", 1, 1 << 30, false},
		{"1G", 1, 1e9, false},
		{"1k", 1, 1000, false},
		{"1e3", 1, 1000, false},
		{"1E", 1, 1e18, false},
		{"+3", 1, 3, false},
		{".5Ki", 1, 512, false},
		{"x", 1, 0, true},
		{"-1", 1, 0, true},
		{"", 1, 0, true},
		{"9Ei", 1000, 0, true},
		{true, 1, 0, true},
		{json.Number("1e3"), 1000, 1000000, false},
		{json.Number("4611686018427387904"), 1, 1 << 62, false}, // exact past float64's 2^53
		{json.Number("9223372036854775808"), 1, 0, true},
	}
	for _, tt := range tests {
		got, err := ParseQuantity(tt.in, tt.scale)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseQuantity(%v) = %d, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseQuantity(%v, %d) = %d, %v; want %d", tt.in, tt.scale, got, err, tt.want)
		}
	}
}
