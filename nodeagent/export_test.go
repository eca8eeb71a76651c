package nodeagent

// SetStageHook calls hook at stages of every start ("network": the pod's
// network is made, no container yet; "container": a container is made, its
// task not yet), so a test can stop there as a kill -9 would.
func SetStageHook(r *Containerd, hook func(stage string)) { r.testHook = hook }
