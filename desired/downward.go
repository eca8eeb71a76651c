package desired

import (
	"regexp"
	"slices"
	"strings"
)

// podMeta is what the downward API may read of a pod from its manifest.
type podMeta struct {
	labels, annotations map[string]string
	serviceAccount      string
}

// NodeFields are the pod fields a node fills in when it starts the pod.
var NodeFields = []string{"metadata.name", "metadata.uid", "spec.nodeName", "status.podIP", "status.podIPs", "status.hostIP", "status.hostIPs"}

var metaKeyPath = regexp.MustCompile(`^metadata\.(labels|annotations)\['([^']+)'\]$`)

// fieldRef resolves a downward API field known from the manifest into
// ev.Value, keeps one the node knows in ev.FieldRef, and refuses others.
func (n *norm) fieldRef(f, path string, ev *EnvVar, pm podMeta) {
	switch {
	case path == "metadata.namespace":
		ev.Value = "default"
	case path == "spec.serviceAccountName":
		ev.Value = pm.serviceAccount
		if ev.Value == "" {
			ev.Value = "default"
		}
	case metaKeyPath.MatchString(path):
		mm := metaKeyPath.FindStringSubmatch(path)
		if mm[1] == "labels" {
			ev.Value = pm.labels[mm[2]]
		} else {
			ev.Value = pm.annotations[mm[2]]
		}
	case isNodeField(path):
		ev.FieldRef = path
	default:
		n.fail(f, "%q is not a field the downward API gives (metadata.name, metadata.namespace, metadata.uid, metadata.labels['KEY'], metadata.annotations['KEY'], spec.nodeName, spec.serviceAccountName, status.podIP, status.podIPs, status.hostIP, status.hostIPs)", path)
	}
}

func isNodeField(p string) bool { return slices.Contains(NodeFields, p) }

// resourceScale is the unit a resourceFieldRef's divisor is read in:
// thousandths of a core for cpu, bytes otherwise.
func resourceScale(resource string) int64 {
	if strings.HasSuffix(resource, ".cpu") {
		return 1000
	}
	return 1
}
