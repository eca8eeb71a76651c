package desired

import (
	"fmt"
	"maps"
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
		ev.Value = n.d.namespace()
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

// downwardFiles reads a downwardAPI volume's items: fields known from the
// manifest become values (metadata.labels and metadata.annotations whole,
// as key="value" lines, as Kubernetes writes them), the node's are kept.
func (n *norm) downwardFiles(f string, items []downwardItem, pm podMeta) []DownwardFile {
	var out []DownwardFile
	for i, it := range items {
		itf := fmt.Sprintf("%s[%d]", f, i)
		df := DownwardFile{Path: it.Path, Mode: intOr(it.Mode, 0)}
		switch {
		case it.FieldRef != nil && (it.FieldRef.FieldPath == "metadata.labels" || it.FieldRef.FieldPath == "metadata.annotations"):
			m := pm.labels
			if it.FieldRef.FieldPath == "metadata.annotations" {
				m = pm.annotations
			}
			var b strings.Builder
			for _, k := range slices.Sorted(maps.Keys(m)) {
				fmt.Fprintf(&b, "%s=%q\n", k, m[k])
			}
			df.Value = b.String()
		case it.FieldRef != nil:
			var ev EnvVar
			n.fieldRef(itf+".fieldRef.fieldPath", it.FieldRef.FieldPath, &ev, pm)
			df.Value, df.FieldRef = ev.Value, ev.FieldRef
		case it.ResourceFieldRef != nil:
			r := it.ResourceFieldRef
			if r.ContainerName == "" {
				n.fail(itf+".resourceFieldRef.containerName", "required in a volume")
			}
			df.ResourceFieldRef = &ResourceFieldRef{Container: r.ContainerName, Resource: r.Resource,
				Divisor: n.quantity(itf+".resourceFieldRef.divisor", r.Divisor, resourceScale(r.Resource))}
		default:
			n.fail(itf, "needs fieldRef or resourceFieldRef")
		}
		out = append(out, df)
	}
	return out
}
