package nodeagent

import (
	"runtime"
	"strconv"
	"strings"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// downward is an environment variable's value, filling in the downward
// API's fields the node knows: the pod's name and uid (its replica ID),
// the node's name and address, the pod's address (the node's with
// hostNetwork), and a container's request or limit (an unset limit is the
// node's capacity), in divisor units rounded up.
func (r *Containerd) downward(e desired.EnvVar, spec protocol.ReplicaSpec, net podNet) string {
	switch e.FieldRef {
	case "":
	case "metadata.name", "metadata.uid":
		return spec.ID
	case "spec.nodeName":
		return r.nodeName
	case "status.hostIP", "status.hostIPs":
		return r.nodeAddress
	case "status.podIP", "status.podIPs":
		if net.host {
			return r.nodeAddress
		}
		return net.ip
	}
	f := e.ResourceFieldRef
	if f == nil {
		return e.Value
	}
	var c desired.Container
	for _, cc := range spec.Pod.AllContainers() {
		if cc.Name == f.Container {
			c = cc
		}
	}
	kind, name, _ := strings.Cut(f.Resource, ".")
	amount := c.Resources.Limits
	if kind == "requests" {
		amount = c.Resources.Requests
	}
	var v int64
	switch name {
	case "cpu":
		v = amount.CPUMilli
		if v == 0 && kind == "limits" {
			v = int64(runtime.NumCPU()) * 1000
		}
	case "memory":
		v = amount.MemoryBytes
		if v == 0 && kind == "limits" {
			v = machineMemory()
		}
	default:
		v = amount.Extra[name]
	}
	div := f.Divisor
	if div <= 0 {
		div = 1
		if name == "cpu" {
			div = 1000
		}
	}
	return strconv.FormatInt((v+div-1)/div, 10)
}
