package identity

import (
	"time"

	"github.com/nats-io/jwt/v2"
)

// Role is what a credential may do on the bus.
type Role string

// Roles.
const (
	// RoleServer: the control plane (reconciler, API, git source): every
	// subject of the account, and JetStream (only servers write KV).
	RoleServer Role = "server"
	// RoleAgent: one node. It publishes its own heartbeats and reports,
	// receives its own commands and log requests and the resyncs, answers
	// only what it was asked (allow_responses), renews its own credential,
	// and of JetStream only reads the image object store.
	RoleAgent Role = "agent"
	// RoleAdmin: an operator who may change the cluster through the
	// servers' API subjects (pin, remove nodes, join tokens), push images
	// to the image object store, and read everything a viewer reads.
	RoleAdmin Role = "admin"
	// RoleViewer: an operator who may read: status, history, events, logs.
	RoleViewer Role = "viewer"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	switch r {
	case RoleServer, RoleAgent, RoleAdmin, RoleViewer:
		return true
	}
	return false
}

// Subjects of the bus that the roles are built on (nodeagent/protocol has
// the messages).
const (
	apiRead  = "baton.api.status"
	apiReads = "baton.api.read.>"
	apiAdmin = "baton.api.admin.>"
	nodeLogs = "baton.node.*.logs"
	// A log follower's keep-alive: on the node's own subject.
	nodeLogsAlive = "baton.node.*.logs.alive.*"
	nodeExec      = "baton.node.*.exec"
	// An exec session's input: on the node's own subject, which no other
	// node may hear.
	nodeExecInput = "baton.node.*.exec.in.*"
	resync        = "baton.agents.resync"

	// The image object store (nodeagent.ImageBucket): agents read it, admins
	// push to it; nothing else of JetStream is theirs.
	imageStream = "OBJ_baton-images"
	imageObjs   = "$O.baton-images.>"
)

// imageRead are the JetStream API subjects that read the image object store
// (stream info and direct gets), and nothing else.
var imageRead = []string{
	"$JS.API.STREAM.INFO." + imageStream,
	"$JS.API.STREAM.MSG.GET." + imageStream,
	"$JS.API.DIRECT.GET." + imageStream,
	"$JS.API.DIRECT.GET." + imageStream + ".>",
	// No consumer: a consumer's delivery subject is not checked against
	// its maker's permissions, so making one could deliver the store's
	// data onto a node's command subject.
}

// imageWrite adds what pushing an image needs: its chunks and metadata, and
// purging an image's old chunks when it is pushed again.
var imageWrite = []string{imageObjs, "$JS.API.STREAM.PURGE." + imageStream}

// InboxPrefix is the inbox prefix a user of role and name must use
// (nats.CustomInboxPrefix): each user receives replies on its own prefix
// only, so no one reads or forges another's replies.
func InboxPrefix(role Role, name string) string { return "_I." + string(role) + "." + name }

// agentTemplate is the scoped signing key's template for agents: the
// server fills in {{name()}}, the node name in the agent's JWT.
func agentTemplate() jwt.UserPermissionLimits {
	var l jwt.UserPermissionLimits
	l.Pub.Allow.Add(
		"baton.node.{{name()}}.heartbeat",
		"baton.node.{{name()}}.report",
		"baton.node.{{name()}}.renew",
	)
	l.Pub.Allow.Add(imageRead...)
	l.Sub.Allow.Add(
		"baton.node.{{name()}}.cmd",
		"baton.node.{{name()}}.logs",
		"baton.node.{{name()}}.exec",
		"baton.node.{{name()}}.exec.in.*",
		resync,
		"baton.images.pushed",
		"_I.agent.{{name()}}.>",
		// A log follower's keep-alive.
		"baton.node.{{name()}}.logs.alive.*",
	)
	// Replies to what it was asked: command replies (one each) and log
	// chunks (many, for as long as a follower stays).
	l.Resp = &jwt.ResponsePermission{MaxMsgs: -1, Expires: 24 * time.Hour}
	l.Limits.Payload = -1
	l.Limits.Subs = -1
	l.Limits.Data = -1
	return l
}

// operatorPermissions are an admin's or a viewer's, named name.
func operatorPermissions(role Role, name string) jwt.Permissions {
	var p jwt.Permissions
	inbox := InboxPrefix(role, name) + ".>"
	p.Pub.Allow.Add(apiRead, apiReads, nodeLogs, nodeLogsAlive, inbox)
	if role == RoleAdmin {
		p.Pub.Allow.Add(apiAdmin, nodeExec, nodeExecInput)
		p.Pub.Allow.Add(imageRead...)
		p.Pub.Allow.Add(imageWrite...)
	}
	p.Sub.Allow.Add(inbox)
	return p
}
