package provision_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/reconciler/provision"
)

// The AWS example (examples/nodepool/aws-provisioner.sh) against a
// stand-in aws command that records its arguments and answers as the AWS
// CLI does: create makes an instance a machine with the join command in
// its user data, a partial failure answers the machines made, delete
// terminates by ID or finds the instance by its tag, list reads the tags.
func TestAWSExample(t *testing.T) {
	testenv.RequireCommands(t, "bash", "jq")
	bin := t.TempDir()
	calls := filepath.Join(bin, "calls")
	fake := `#!/bin/sh
printf '%s\n' "$*" >> ` + calls + `
case "$2" in
run-instances)
	n=$(grep -c run-instances ` + calls + `)
	if [ -n "$FAIL_AFTER" ] && [ "$n" -gt "$FAIL_AFTER" ]; then echo "An error occurred (InstanceLimitExceeded)" >&2; exit 254; fi
	echo "i-000$n" ;;
describe-instances)
	case "$*" in
	*tag:Name*) echo "i-0999" ;;
	*) echo '[{"id": "i-0001", "name": "workers-a1"}, {"id": "i-0002", "name": "workers-b2"}]' ;;
	esac ;;
esac
`
	if err := os.WriteFile(filepath.Join(bin, "aws"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	for k, v := range map[string]string{"BATON_AMI": "ami-1", "BATON_INSTANCE_TYPE": "m7i.xlarge", "BATON_SUBNET": "subnet-1", "BATON_URL": "https://example.test/baton"} {
		t.Setenv(k, v)
	}
	p := provision.Command{Argv: []string{"bash", "../../examples/nodepool/aws-provisioner.sh"}, Timeout: 20 * time.Second}
	ctx := context.Background()
	// A label from the repository that would run a command in a shell
	// that did not quote it.
	tmpl := provision.Template{CPUMilli: 4000, MemoryBytes: 16 << 30, Labels: map[string]string{"baton.dev/pool": "workers", "zone": "z1", "team": "a b;touch /tmp/pwned"},
		Taints: []desired.Taint{{Key: "dedicated", Value: "batch", Effect: "NoSchedule"}}, Extra: map[string]int64{"nvidia.com/gpu": 1}}
	made, err := provision.Create(ctx, p, "workers", "10.0.0.5:8421", tmpl, asked)
	if err != nil {
		t.Fatal(err)
	}
	if want := []provision.Machine{{Name: "workers-a1", ID: "i-0001"}, {Name: "workers-b2", ID: "i-0002"}}; !reflect.DeepEqual(made, want) {
		t.Fatalf("made %+v, want %+v", made, want)
	}
	b, _ := os.ReadFile(calls)
	for _, want := range []string{"ec2 run-instances --image-id ami-1 --instance-type m7i.xlarge --subnet-id subnet-1",
		"exec '/usr/local/bin/baton' 'agent' '--join' '10.0.0.5:8421' '--token' 'baton1.x.y.z' '--node' 'workers-a1' '--label' 'baton.dev/pool=workers' '--label' 'team=a b;touch /tmp/pwned' '--label' 'zone=z1' '--taint' 'dedicated=batch:NoSchedule' '--resource' 'nvidia.com/gpu=1'",
		"curl -fsSL 'https://example.test/baton' -o /usr/local/bin/baton",
		"Tags=[{Key=Name,Value=workers-b2},{Key=baton-pool,Value=workers}]"} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("%q not in the aws calls:\n%s", want, b)
		}
	}
	// The quota runs out after one more: the machine made is answered, the
	// other is left for Baton to count as failed.
	t.Setenv("FAIL_AFTER", "3")
	made, err = provision.Create(ctx, p, "workers", "10.0.0.5:8421", tmpl, asked)
	if err != nil || len(made) != 1 || made[0].ID != "i-0003" {
		t.Fatalf("a partial failure: %+v, %v", made, err)
	}
	made, err = provision.Create(ctx, p, "workers", "10.0.0.5:8421", tmpl, asked[:1])
	if !errors.Is(err, provision.ErrFailed) || !strings.Contains(err.Error(), "InstanceLimitExceeded") {
		t.Fatalf("none made: %+v, %v", made, err)
	}
	t.Setenv("FAIL_AFTER", "")
	if err := provision.Delete(ctx, p, "workers", provision.Machine{Name: "workers-a1", ID: "i-0001"}); err != nil {
		t.Fatal(err)
	}
	if err := provision.Delete(ctx, p, "workers", provision.Machine{Name: "workers-zz"}); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(calls)
	for _, want := range []string{"ec2 terminate-instances --instance-ids i-0001", "Name=tag:Name,Values=workers-zz", "ec2 terminate-instances --instance-ids i-0999"} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("%q not in the aws calls:\n%s", want, b)
		}
	}
	list, err := provision.List(ctx, p, "workers")
	if err != nil || len(list) != 2 || list[1] != (provision.Machine{Name: "workers-b2", ID: "i-0002"}) {
		t.Fatalf("list: %+v, %v", list, err)
	}
}
