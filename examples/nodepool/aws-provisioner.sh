#!/usr/bin/env bash
# An example Baton node-pool provisioner for AWS EC2, with the AWS CLI and
# jq: one JSON request on stdin, one JSON answer on stdout (the protocol is
# in docs/nodepools.md). Adapt the run-instances line to your AMI, subnet,
# security group and instance profile.
#
#   NodePool: provisioner: {command: [/usr/local/lib/baton-provisioners/aws-provisioner.sh], timeout: 5m}
#
# Settings, from the server's environment:
#   BATON_AMI            an AMI with containerd and runc (Debian: apt-get install containerd runc)
#   BATON_INSTANCE_TYPE  e.g. m7i.xlarge (match the pool's template capacity)
#   BATON_SUBNET         a subnet from which the machines reach the server's join endpoint and NATS
#   BATON_URL            where the machines download the baton binary
#
# The join token travels in the instance's user data: it works once, for
# that node name only, and expires at the pool's joinTimeout.
set -euo pipefail

errf=$(mktemp)
trap 'rm -f "$errf"' EXIT
req=$(cat)
op=$(jq -r '.op' <<<"$req")
pool=$(jq -r '.pool' <<<"$req")

answer_error() { jq -cn --arg e "$1" '{machines: [], error: $e}'; exit 0; }

case "$op" in
create)
	: "${BATON_AMI:?}" "${BATON_INSTANCE_TYPE:?}" "${BATON_SUBNET:?}" "${BATON_URL:?}"
	made='[]'
	# The agent's command line, each argument quoted for sh by jq (@sh):
	# labels and taints come from the repository and reach a root shell.
	while read -r name; do
		cmdline=$(jq -r --arg name "$name" '
			(.create[] | select(.name == $name) | .joinToken) as $token
			| ["/usr/local/bin/baton", "agent", "--join", .join, "--token", $token, "--node", $name]
			+ [.template.labels // {} | to_entries[] | "--label", "\(.key)=\(.value)"]
			+ [.template.taints // [] | .[] | "--taint", "\(.key)\(if .value then "=" + .value else "" end):\(.effect)"]
			+ [.template.extra // {} | to_entries[] | "--resource", "\(.key)=\(.value)"]
			| @sh' <<<"$req")
		url=$(jq -rn --arg u "$BATON_URL" '$u | @sh')
		userdata=$(printf '#!/bin/sh\nset -e\ncurl -fsSL %s -o /usr/local/bin/baton\nchmod +x /usr/local/bin/baton\nsystemctl start containerd\nexec %s\n' "$url" "$cmdline")
		if ! id=$(aws ec2 run-instances --image-id "$BATON_AMI" --instance-type "$BATON_INSTANCE_TYPE" --subnet-id "$BATON_SUBNET" \
			--user-data "$userdata" \
			--tag-specifications "ResourceType=instance,Tags=[{Key=Name,Value=$name},{Key=baton-pool,Value=$pool}]" \
			--query 'Instances[0].InstanceId' --output text 2>"$errf"); then
			echo "run-instances for $name: $(cat "$errf")" >&2
			break # answer the machines made: Baton counts the others as failed
		fi
		made=$(jq -c --arg n "$name" --arg i "$id" '. + [{name: $n, id: $i}]' <<<"$made")
	done < <(jq -r '.create[].name' <<<"$req")
	if [ "$made" = '[]' ]; then
		answer_error "no machine made: $(cat "$errf" 2>/dev/null || true)"
	fi
	jq -cn --argjson m "$made" '{machines: $m}'
	;;
delete)
	name=$(jq -r '.delete.name' <<<"$req")
	ids=$(jq -r '.delete.id // ""' <<<"$req")
	if [ -z "$ids" ]; then # never heard of by Baton: find it by its tag
		ids=$(aws ec2 describe-instances --filters "Name=tag:Name,Values=$name" "Name=tag:baton-pool,Values=$pool" \
			"Name=instance-state-name,Values=pending,running,stopping,stopped" \
			--query 'Reservations[].Instances[].InstanceId' --output text) || answer_error "describe-instances failed"
	fi
	if [ -n "$ids" ]; then
		# shellcheck disable=SC2086 # one argument per instance ID
		aws ec2 terminate-instances --instance-ids $ids >/dev/null || answer_error "terminate-instances $ids failed"
	fi
	echo '{"machines": []}' # deleting a machine that is not there is success
	;;
list)
	aws ec2 describe-instances --filters "Name=tag:baton-pool,Values=$pool" "Name=instance-state-name,Values=pending,running" \
		--query 'Reservations[].Instances[].{id: InstanceId, name: Tags[?Key==`Name`] | [0].Value}' --output json |
		jq -c '{machines: map({name, id})}' || answer_error "describe-instances failed"
	;;
*)
	answer_error "unknown op $op"
	;;
esac
