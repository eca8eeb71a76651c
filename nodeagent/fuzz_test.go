package nodeagent

import (
	"context"
	"testing"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/nodeagent/simruntime"
)

// FuzzAgentCommand: no command, however malformed, panics in the agent's
// handler (a recovered panic would answer internal), and whatever it
// accepts passes ValidateSpec.
func FuzzAgentCommand(f *testing.F) {
	good := spec("web-1")
	good.Pod.Containers[0].ReadinessProbe = &desired.Probe{HTTPGet: &desired.HTTPGet{Path: "/", Port: "8080"},
		PeriodSeconds: 1, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 1}
	good.Pod.Volumes = []desired.Volume{{Name: "data", Claim: &desired.ClaimMount{Claim: "data"}}}
	good.Pod.Containers[0].VolumeMounts = []desired.VolumeMount{{Name: "data", MountPath: "/data", SubPath: "x"}}
	f.Add(protocol.Encode(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: good}))
	f.Add(protocol.Encode(protocol.Command{Version: protocol.Version, Op: protocol.OpStop, StopID: "web-1"}))
	f.Add([]byte(`{"version":1,"op":"start","start":{"id":"a","workload":"w","specHash":"ab","pod":{"containers":[{"name":"c","image":"i","livenessProbe":{"exec":["x"],"periodSeconds":0}}]}}}`))
	f.Add([]byte(`{"version":1,"op":"start","start":{"id":"a","workload":"w","specHash":"ab","pod":{"containers":[{"name":"c","image":"i"}],"volumes":[{"name":"../x","hostPath":"/etc"}]}}}`))
	a, err := New(Config{Node: "n1", Runtime: simruntime.New()})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		r := a.handle(ctx, data)
		if r.Code == protocol.CodeInternal {
			t.Fatalf("the handler failed: %s", r.Error)
		}
		var cmd protocol.Command
		if r.OK && protocol.Decode(data, &cmd) == nil && cmd.Op == protocol.OpStart {
			if err := ValidateSpec(*cmd.Start); err != nil {
				t.Fatalf("accepted a start that ValidateSpec refuses: %v", err)
			}
		}
	})
}
