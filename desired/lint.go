package desired

import (
	"fmt"
	"strings"
)

// Lint names what a reviewer should look at twice in a valid state: images
// not pinned to a version (no tag or "latest"), containers without resource
// requests (the scheduler counts them as free), and Deployments without a
// readiness probe (a rollout then counts a replica available as soon as it
// runs). Each line starts with the object's file:line. The state is not
// changed; `baton validate` and `baton plan` print these as warnings.
func Lint(st *State) []string {
	var out []string
	pod := func(src, what string, p PodSpec, needProbe bool) {
		probe := false
		for _, c := range p.Containers {
			if unpinned(c.Image) {
				out = append(out, fmt.Sprintf("%s: %s: container %s: image %q is not pinned to a version (no tag or latest)", src, what, c.Name, c.Image))
			}
			if r := c.Resources.Requests; r.CPUMilli == 0 && r.MemoryBytes == 0 && len(r.Extra) == 0 {
				out = append(out, fmt.Sprintf("%s: %s: container %s: no resource requests: placement counts it as using nothing", src, what, c.Name))
			}
			probe = probe || c.ReadinessProbe != nil
		}
		if needProbe && !probe {
			out = append(out, fmt.Sprintf("%s: %s: no readiness probe: a rollout counts a replica available as soon as it runs", src, what))
		}
		for _, v := range CheckPodSecurity(PodSecurityBaseline, p) {
			out = append(out, fmt.Sprintf("%s: %s: %s (nodes enforce baseline unless started with --pod-security privileged)", src, what, v))
		}
	}
	for _, w := range st.Workloads {
		pod(w.Source, w.Kind+" "+w.Name, w.Pod, w.Kind == "Deployment")
	}
	for _, j := range st.Jobs {
		kind := "Job"
		if j.Kind != "" {
			kind = j.Kind
		}
		pod(j.Source, kind+" "+j.Name, j.Spec.Pod, false)
	}
	for _, c := range st.CronJobs {
		pod(c.Source, "CronJob "+c.Name, c.Job.Pod, false)
	}
	return out
}

// unpinned reports an image reference with no tag or digest, or tag latest.
func unpinned(image string) bool {
	if strings.Contains(image, "@") {
		return false
	}
	last := image[strings.LastIndex(image, "/")+1:]
	_, tag, ok := strings.Cut(last, ":")
	return !ok || tag == "latest"
}
