package nodeagent

import (
	"reflect"
	"testing"
)

// A rule as iptables -S prints it, its quoted comment one field.
func TestRuleFields(t *testing.T) {
	got := ruleFields(`-A POSTROUTING -s 10.77.0.0/24 -m comment --comment "baton: pods leaving the cluster" -j BATON-MASQ`)
	want := []string{"-A", "POSTROUTING", "-s", "10.77.0.0/24", "-m", "comment", "--comment", "baton: pods leaving the cluster", "-j", "BATON-MASQ"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q", got)
	}
	if got := ruleFields("-N BATON-MASQ"); !reflect.DeepEqual(got, []string{"-N", "BATON-MASQ"}) {
		t.Fatalf("%q", got)
	}
}
