package desired

import (
	"maps"
	"slices"
	"strings"
)

// ResourceEphemeralStorage is the scratch space of a pod (its writable
// layers, logs and emptyDir volumes).
const ResourceEphemeralStorage = "ephemeral-storage"

// IsHugePages tells whether name is a huge pages resource (hugepages-2Mi).
func IsHugePages(name string) bool { return strings.HasPrefix(name, "hugepages-") }

// IsExtended tells whether name is an extended resource: a name with a
// domain (nvidia.com/gpu, google.com/tpu) outside kubernetes.io.
func IsExtended(name string) bool {
	domain, _, ok := strings.Cut(name, "/")
	return ok && !strings.HasSuffix(domain, "kubernetes.io")
}

// amount reads cpu and memory of a requests or limits list, and the
// other resources into Extra.
func (n *norm) amount(field string, l resourceList) Amount {
	a := Amount{CPUMilli: n.quantity(field+".cpu", l["cpu"], 1000), MemoryBytes: n.quantity(field+".memory", l["memory"], 1)}
	for _, name := range slices.Sorted(maps.Keys(l)) {
		if name == "cpu" || name == "memory" {
			continue
		}
		v := n.quantity(field+"."+name, l[name], 1)
		if IsExtended(name) {
			// Counted in whole devices (as Kubernetes).
			if q, err := ParseQuantity(l[name], 1000); err == nil && q%1000 != 0 {
				n.fail(field+"."+name, "an extended resource is counted in whole units")
			}
		}
		if a.Extra == nil {
			a.Extra = map[string]int64{}
		}
		a.Extra[name] = v
	}
	return a
}

// extraResources applies Kubernetes' rules to the resources beyond cpu and
// memory: a limit without a request requests the limit; huge pages and
// extended resources cannot be overcommitted (request = limit), and huge
// pages need a limit.
func (n *norm) extraResources(field string, r *Resources) {
	for name, l := range r.Limits.Extra {
		req, ok := r.Requests.Extra[name]
		switch {
		case !ok:
			if r.Requests.Extra == nil {
				r.Requests.Extra = map[string]int64{}
			}
			r.Requests.Extra[name] = l
		case (IsExtended(name) || IsHugePages(name)) && req != l:
			n.fail(field+".requests."+name, "must equal its limit (%s cannot be overcommitted)", name)
		case req > l:
			n.fail(field+".requests."+name, "a request is above its limit")
		}
	}
	for name := range r.Requests.Extra {
		if _, ok := r.Limits.Extra[name]; !ok && IsExtended(name) {
			n.fail(field+".limits."+name, "required: an extended resource is given as a limit (the request, if any, equal to it)")
		}
		if _, ok := r.Limits.Extra[name]; !ok && IsHugePages(name) {
			n.fail(field+".limits."+name, "required: huge pages are given as a limit")
		}
	}
}
