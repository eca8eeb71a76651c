package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/batonhq/baton/desired"
)

// Version is the version of the wire contract this build speaks.
const Version = 1

// MaxMessageBytes caps every message Baton decodes from NATS.
const MaxMessageBytes = 1 << 20

// Subjects.
const (
	subjectPrefix = "baton.node."
	// HeartbeatWildcard matches the heartbeats of every node.
	HeartbeatWildcard = subjectPrefix + "*.heartbeat"
	// ReportWildcard matches the reports of every node.
	ReportWildcard = subjectPrefix + "*.report"
	// StatusSubject answers requests for the reconciler's status.
	StatusSubject = "baton.api.status"
	// ResyncSubject asks every agent to send a full report now (a reconciler
	// that just started, or that has no report of a node, publishes it).
	ResyncSubject = "baton.agents.resync"
	// Operators' requests to the servers, answered by any server (queue
	// group APIQueue): reads under baton.api.read., changes under
	// baton.api.admin. (the roles' permissions follow these prefixes).
	EventsSubject  = "baton.api.read.events"
	HistorySubject = "baton.api.read.history"
	PinReadSubject = "baton.api.read.pin"
	PinSubject     = "baton.api.admin.pin"
	UnpinSubject   = "baton.api.admin.unpin"
	// Joining (the servers holding the cluster identity answer): a join
	// token, the credentials issued, removing a node.
	TokenSubject      = "baton.api.admin.token"
	NodeRemoveSubject = "baton.api.admin.node.rm"
	UserRemoveSubject = "baton.api.admin.user.rm"
	// ImagesPushedSubject is where servers announce an image pushed to the
	// image store (its reference): nodes waiting for it try at once.
	ImagesPushedSubject = "baton.images.pushed"
	// NodeControlSubject cordons, drains or uncordons a node (any server).
	NodeControlSubject = "baton.api.admin.node.control"
	CredentialsSubject = "baton.api.read.credentials"
	// The cluster's servers: list them, remove a stopped one for good.
	ServersSubject      = "baton.api.read.servers"
	ServerRemoveSubject = "baton.api.admin.server.rm"
	// APIQueue is the queue group of the servers answering those.
	APIQueue = "baton-api"
)

// IsInbox reports whether subject is a requester's inbox (nats.go's
// _INBOX., or a user's own prefix _I.<role>.<name>.), with no wildcard.
// Answers go only there: a request naming another subject as its reply
// must not make a server or an agent publish on that subject with its own
// permissions.
func IsInbox(subject string) bool {
	if !strings.HasPrefix(subject, "_INBOX.") && !strings.HasPrefix(subject, "_I.") {
		return false
	}
	for _, tok := range strings.Split(subject, ".") {
		if tok == "" || tok == "*" || tok == ">" {
			return false
		}
	}
	return true
}

// HeartbeatSubject is where node publishes its heartbeats.
func HeartbeatSubject(node string) string { return subjectPrefix + node + ".heartbeat" }

// ReportSubject is where node publishes the replicas it runs.
func ReportSubject(node string) string { return subjectPrefix + node + ".report" }

// CommandSubject is where node answers start and stop requests.
func CommandSubject(node string) string { return subjectPrefix + node + ".cmd" }

// LogsSubject is where node takes requests for container logs.
func LogsSubject(node string) string { return subjectPrefix + node + ".logs" }

// LogsAliveSubject is where the follower of session says it is still
// there: a subject of the node's own, as exec input's.
func LogsAliveSubject(node, session string) string { return LogsSubject(node) + ".alive." + session }

// LogsRequest asks a node for the logs of a replica's containers. The node
// publishes LogChunks to Inbox; with Follow it keeps sending new output
// while the requester publishes to LogsAliveSubject(node, Session) at
// least every LogsKeepAlive, and stops when it does not.
type LogsRequest struct {
	Version   int    `json:"version"`
	Session   string `json:"session,omitempty"` // a follower's (a subject token)
	Replica   string `json:"replica"`
	Container string `json:"container,omitempty"` // "" for all
	Tail      int    `json:"tail,omitempty"`      // last lines; 0 for all that is kept
	Follow    bool   `json:"follow,omitempty"`
	Inbox     string `json:"inbox"`
}

// LogsKeepAlive is how often a follower says it is still there.
const LogsKeepAlive = 3 * time.Second

// LogChunk is a piece of a container's output.
type LogChunk struct {
	Version   int    `json:"version"`
	Container string `json:"container,omitempty"`
	Data      []byte `json:"data,omitempty"`
	// EOF ends the stream (without Follow); Error ends it with a reason.
	EOF   bool   `json:"eof,omitempty"`
	Error string `json:"error,omitempty"`
}

// Errors returned by Decode.
var (
	ErrTooLarge = errors.New("message too large")
	ErrVersion  = errors.New("unsupported message version")
)

// Resources is an amount of compute.
type Resources struct {
	CPUMilli    int64 `json:"cpuMilli"`
	MemoryBytes int64 `json:"memoryBytes"`
	// Extra is what the node has of other resources, by name:
	// ephemeral-storage and hugepages-<size> in bytes, extended resources
	// (nvidia.com/gpu) in units.
	Extra map[string]int64 `json:"extra,omitempty"`
}

// MaxTaints bounds a node's taints.
const MaxTaints = 64

// MaxExtraResources bounds the extra resources a node advertises.
const MaxExtraResources = 64

// Valid checks what a node says it has.
func (r Resources) Valid() error {
	if r.CPUMilli < 0 || r.MemoryBytes < 0 {
		return errors.New("capacity: negative cpu or memory")
	}
	if len(r.Extra) > MaxExtraResources {
		return fmt.Errorf("capacity: %d extra resources, at most %d", len(r.Extra), MaxExtraResources)
	}
	for name, v := range r.Extra {
		if v < 0 || name == "" || len(name) > 253 {
			return fmt.Errorf("capacity: resource %.60q: a name of at most 253 bytes and a count of at least 0", name)
		}
	}
	return nil
}

// Heartbeat says a node is alive.
type Heartbeat struct {
	Version  int               `json:"version"`
	Node     string            `json:"node"`
	Labels   map[string]string `json:"labels,omitempty"`
	Capacity Resources         `json:"capacity"`
	// Taints keep pods that do not tolerate them off the node.
	Taints       []desired.Taint `json:"taints,omitempty"`
	AgentVersion string          `json:"agentVersion"`
	Time         time.Time       `json:"time"`
	// Address is the node's address on the network between nodes; PodSubnet
	// its pods' addresses (the routes of the cluster's pod network).
	Address   string `json:"address,omitempty"`
	PodSubnet string `json:"podSubnet,omitempty"`
}

// ReplicaState is the lifecycle state of a replica on a node.
type ReplicaState string

// Replica states.
const (
	StateCreating ReplicaState = "creating"
	StateRunning  ReplicaState = "running"
	StateExited   ReplicaState = "exited"
	// StateWaiting: a container exited and waits for its restart back-off
	// (Kubernetes' CrashLoopBackOff), or the pod's start failed and waits
	// for its next try (Code says why, RetryAt when); the node restarts or
	// retries it by itself.
	StateWaiting ReplicaState = "waiting"
	// StateFailed: the pod does not run and the node will not try again:
	// its start failed for good (Code is terminal), or it was found half
	// made after an agent restart and removed.
	StateFailed   ReplicaState = "failed"
	StateStopping ReplicaState = "stopping"
)

// Replica is one pod as a node sees it.
type Replica struct {
	ID       string       `json:"id"`
	Workload string       `json:"workload"`
	SpecHash string       `json:"specHash"`
	State    ReplicaState `json:"state"`
	// Ready: every container runs and passes its readiness probe.
	Ready    bool `json:"ready,omitempty"`
	ExitCode int  `json:"exitCode,omitempty"`
	// Reason says why a replica exited: OOMKilled, Error or Completed.
	Reason string `json:"reason,omitempty"`
	// Restarts counts in-place restarts of the pod's containers; LastExit
	// is "<code> <reason>" of the last one.
	Restarts int    `json:"restarts,omitempty"`
	LastExit string `json:"lastExit,omitempty"`
	// PodIP is the pod's address on the node's pod network ("" with
	// hostNetwork or without a pod network); Ports are its published host ports.
	PodIP       string        `json:"podIP,omitempty"`
	HostNetwork bool          `json:"hostNetwork,omitempty"`
	Ports       []PortBinding `json:"ports,omitempty"`
	// Usage is the pod's use of CPU and memory, from its cgroups.
	Usage     *Usage    `json:"usage,omitempty"`
	Message   string    `json:"message,omitempty"`
	StartedAt time.Time `json:"startedAt,omitzero"`
	// Code says why the pod's start failed (image_not_found,
	// host_port_in_use, invalid_spec, not_allowed, runtime_error); Failures
	// counts the failed starts in a row, and RetryAt is the node's next try
	// (with StateWaiting; sooner if a missing image arrives on the node).
	Code     ErrorCode `json:"code,omitempty"`
	Failures int       `json:"failures,omitempty"`
	RetryAt  time.Time `json:"retryAt,omitzero"`
}

// PortBinding is a container port published on the node.
type PortBinding struct {
	Container     string `json:"container,omitempty"`
	ContainerPort int    `json:"containerPort"`
	HostPort      int    `json:"hostPort"`
	HostIP        string `json:"hostIP,omitempty"`
	Protocol      string `json:"protocol,omitempty"`
}

// HostPorts lists the host ports a pod publishes.
func HostPorts(pod desired.PodSpec) []PortBinding {
	var out []PortBinding
	for _, c := range pod.Containers {
		for _, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			proto := p.Protocol
			if proto == "" {
				proto = "TCP"
			}
			out = append(out, PortBinding{Container: c.Name, ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIP: p.HostIP, Protocol: proto})
		}
	}
	return out
}

// Usage is what a pod uses: CPUMilli averaged since the previous sample,
// MemoryBytes its working set (usage less inactive file cache).
type Usage struct {
	CPUMilli    int64     `json:"cpuMilli"`
	MemoryBytes int64     `json:"memoryBytes"`
	SampledAt   time.Time `json:"sampledAt"`
}

// Report is the full list of replicas a node holds.
type Report struct {
	Version  int       `json:"version"`
	Node     string    `json:"node"`
	Time     time.Time `json:"time"`
	Replicas []Replica `json:"replicas"`
	// Volumes are the PersistentVolumeClaims whose local volumes the node holds.
	Volumes []string `json:"volumes,omitempty"`
}

// Op names a command.
type Op string

// Commands.
const (
	OpStart Op = "start"
	OpStop  Op = "stop"
	// OpBatch carries every start and stop a reconciler pass has for one
	// node, in one message; the reply has one result per item.
	OpBatch Op = "batch"
	// OpNetwork gives a node the routes of the cluster's pod network.
	OpNetwork Op = "network"
	// OpServices gives a node every Service's virtual address and its
	// ready endpoints, which it programs as a whole.
	OpServices Op = "services"
)

// MaxServiceRules bounds the rules of one services command, and
// MaxEndpoints the endpoints of one rule.
const (
	MaxServiceRules = 10_000
	MaxEndpoints    = 1_000
)

// DNSRecord is a Service's name and its addresses: its virtual address,
// or a headless Service's ready pods'.
type DNSRecord struct {
	Service string   `json:"service"`
	IPs     []string `json:"ips"`
}

// ServiceRule is one port of one Service as every node programs it:
// traffic to IP:Port/Protocol goes to one of the endpoints, at random.
type ServiceRule struct {
	Service  string `json:"service"` // its name
	IP       string `json:"ip"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol"` // TCP or UDP
	// NodePort, when set, is the port on every node's addresses that
	// leads to the Service too (type NodePort).
	NodePort int `json:"nodePort,omitempty"`
	// Endpoints are the ready pods' "ip:port" (none: refused).
	Endpoints []string `json:"endpoints"`
	// AffinitySeconds, when set, sends a client (by address) to the
	// endpoint it reached last, for this long after its last connection
	// (sessionAffinity: ClientIP).
	AffinitySeconds int `json:"affinitySeconds,omitempty"`
	// ExternalLocal keeps traffic to the node port on the endpoints of the
	// node it came in by, with the client's address
	// (externalTrafficPolicy: Local); InternalLocal keeps pods' traffic to
	// the Service's address on their own node's endpoints
	// (internalTrafficPolicy: Local).
	ExternalLocal bool `json:"externalLocal,omitempty"`
	InternalLocal bool `json:"internalLocal,omitempty"`
}

// MaxAffinitySeconds bounds AffinitySeconds (as Kubernetes' one day).
const MaxAffinitySeconds = 86400

// MaxBatch bounds the items of one batch.
const MaxBatch = 10_000

// MaxRoutes bounds the routes of one network command.
const MaxRoutes = 4096

// Network is the cluster's pod network as one node programs it: a route
// to every other node's pod subnet through that node's address (flannel's
// host-gw, for nodes on one link). The routes replace those sent before.
type Network struct {
	Routes []Route `json:"routes"`
}

// Route is one other node's pod subnet and the address it is reached by.
type Route struct {
	Node   string `json:"node"`
	Subnet string `json:"subnet"` // CIDR
	Via    string `json:"via"`    // the node's address
}

// Batch is the starts and stops of one pass for one node. Stops are
// carried out before starts (a stop may free what a start needs).
type Batch struct {
	Starts []ReplicaSpec `json:"starts,omitempty"`
	Stops  []string      `json:"stops,omitempty"`
}

// ItemResult is the answer to one item of a batch.
type ItemResult struct {
	ID    string    `json:"id"`
	OK    bool      `json:"ok"`
	Code  ErrorCode `json:"code,omitempty"`
	Error string    `json:"error,omitempty"`
}

// Err returns the item's error, or nil when it is OK.
func (r ItemResult) Err() error {
	if r.OK {
		return nil
	}
	return &CommandError{Code: r.Code, Msg: r.Error}
}

// ReplicaSpec is everything a node needs to run a replica.
type ReplicaSpec struct {
	ID       string          `json:"id"`
	Workload string          `json:"workload"`
	SpecHash string          `json:"specHash"`
	Pod      desired.PodSpec `json:"pod"`
}

// Command asks a node to start or stop a replica. Commands are idempotent.
type Command struct {
	Version int          `json:"version"`
	Op      Op           `json:"op"`
	Start   *ReplicaSpec `json:"start,omitempty"`
	// StopID is the replica to stop, with Op == OpStop.
	StopID string `json:"stopId,omitempty"`
	// Batch is the starts and stops of OpBatch.
	Batch *Batch `json:"batch,omitempty"`
	// Network is the routes of OpNetwork.
	Network *Network `json:"network,omitempty"`
	// Services are the rules of OpServices (all of them: they replace
	// those sent before), and DNS the Services' names.
	Services []ServiceRule `json:"services,omitempty"`
	DNS      []DNSRecord   `json:"dns,omitempty"`
	// Term is the issuing leader's term: a node refuses commands of a term
	// older than the newest it has seen (0 with no leader election).
	Term uint64 `json:"term,omitempty"`
}

// Resync asks every node for a full report; a new leader sends its term
// with it, so nodes refuse the commands of older leaders from then on.
type Resync struct {
	Version int    `json:"version"`
	Term    uint64 `json:"term,omitempty"`
	Leader  string `json:"leader,omitempty"`
}

// ErrorCode classifies a failed command.
type ErrorCode string

// Error codes of a Reply, and of a replica whose start failed.
const (
	// CodeBadRequest: the command is not one the node understands.
	CodeBadRequest ErrorCode = "bad_request"
	// CodeInvalidSpec: the pod breaks the rules of desired.ValidatePod; it
	// is not tried again until the template changes.
	CodeInvalidSpec ErrorCode = "invalid_spec"
	// CodeNotAllowed: this node's policy refuses the pod (a hostPath outside
	// --host-path-allow, a privileged container); not tried again there.
	CodeNotAllowed ErrorCode = "not_allowed"
	// CodeImageNotFound: an image is neither on the node, nor in the
	// cluster's image store, nor pullable; tried again with back-off, and at
	// once when the image arrives on the node.
	CodeImageNotFound ErrorCode = "image_not_found"
	// CodeHostPortInUse: another pod of the node publishes a host port of
	// the pod; tried again with back-off.
	CodeHostPortInUse ErrorCode = "host_port_in_use"
	// CodeRuntimeError: containerd, the network or a volume failed; tried
	// again with back-off.
	CodeRuntimeError ErrorCode = "runtime_error"
	CodeInternal     ErrorCode = "internal"
	// CodeStaleTerm: the command's term is older than one the node has
	// seen; its sender is no longer the leader.
	CodeStaleTerm ErrorCode = "stale_term"
)

// Terminal reports whether a start that failed with c is not worth trying
// again with the same pod spec (on the same node, for CodeNotAllowed).
func (c ErrorCode) Terminal() bool { return c == CodeInvalidSpec || c == CodeNotAllowed }

// Reply answers a Command.
type Reply struct {
	Version int       `json:"version"`
	OK      bool      `json:"ok"`
	Code    ErrorCode `json:"code,omitempty"`
	Error   string    `json:"error,omitempty"`
	// Results answer a batch's stops, then its starts, in order.
	Results []ItemResult `json:"results,omitempty"`
}

// CommandError is the error carried by a failed Reply.
type CommandError struct {
	Code ErrorCode
	Msg  string
}

func (e *CommandError) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Msg) }

// Err returns the reply's error, or nil when it is OK.
func (r Reply) Err() error {
	if r.OK {
		return nil
	}
	return &CommandError{Code: r.Code, Msg: r.Error}
}

type versioned interface {
	*Heartbeat | *Report | *Command | *Reply | *LogsRequest | *LogChunk | *Resync | *ExecRequest | *ExecInput | *ExecOutput
}

// Decode parses one message of type T, refusing oversized messages and
// versions other than Version.
func Decode[T versioned](data []byte, v T) error {
	if len(data) > MaxMessageBytes {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, len(data), MaxMessageBytes)
	}
	var hdr struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(data, &hdr); err != nil {
		return fmt.Errorf("decode message: %w", err)
	}
	if hdr.Version != Version {
		return fmt.Errorf("%w: %d (this build speaks %d)", ErrVersion, hdr.Version, Version)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode message: %w", err)
	}
	return nil
}

// Encode marshals a message; callers set its Version.
func Encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only plain structs are encoded here.
		panic("protocol: encode: " + err.Error())
	}
	return b
}
