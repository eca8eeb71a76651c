package desired

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
)

// State is the desired state rendered from one revision of the config
// repository: every object normalized (defaults applied, quantities parsed,
// references checked). Lists are sorted by name.
type State struct {
	// Revision is the commit the state was rendered from ("" for a local directory).
	Revision    string            `json:"revision,omitempty"`
	Workloads   []Workload        `json:"workloads"`
	Jobs        []Job             `json:"jobs,omitempty"`
	CronJobs    []CronJob         `json:"cronJobs,omitempty"`
	ConfigMaps  []ConfigMap       `json:"configMaps,omitempty"`
	Secrets     []Secret          `json:"secrets,omitempty"`
	Claims      []Claim           `json:"persistentVolumeClaims,omitempty"`
	Services    []Service         `json:"services,omitempty"`
	Autoscalers []Autoscaler      `json:"horizontalPodAutoscalers,omitempty"`
	Schedules   []ScalingSchedule `json:"scalingSchedules,omitempty"`
	// Endpoints are the endpoints of Services without a selector.
	Endpoints []Endpoints `json:"endpoints,omitempty"`
	// Budgets are the PodDisruptionBudgets, honoured by node drain.
	Budgets []DisruptionBudget `json:"podDisruptionBudgets,omitempty"`
	// Namespaces are the Namespace objects of the revision.
	Namespaces []Namespace `json:"namespaces,omitempty"`
	// Pools are the NodePools: machines the leader adds and removes.
	Pools []NodePool `json:"nodePools,omitempty"`
	// Ignored are objects of kinds Baton accepts and does not act on.
	Ignored []Ignored `json:"ignored,omitempty"`
	// Warnings are accepted objects or fields that Baton does not act on yet.
	Warnings []string `json:"warnings,omitempty"`
}

// Ignored is an object Baton accepts and does not act on, and why.
type Ignored struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Source string `json:"source"`
	Why    string `json:"why"`
}

// acceptedKinds are the kinds Baton accepts and does not act on, and why.
var acceptedKinds = map[string]string{
	"ServiceAccount":     "Baton gives pods no service accounts or API tokens",
	"Role":               "pods have no Kubernetes API to call, so RBAC has nothing to govern",
	"ClusterRole":        "pods have no Kubernetes API to call, so RBAC has nothing to govern",
	"RoleBinding":        "pods have no Kubernetes API to call, so RBAC has nothing to govern",
	"ClusterRoleBinding": "pods have no Kubernetes API to call, so RBAC has nothing to govern",
	"PriorityClass":      "there is no preemption: every replica has the same priority",
	"NetworkPolicy":      "pod traffic is not filtered",
	"Ingress":            "there is no HTTP routing into the cluster yet",
	"StorageClass":       "volumes are each node's local disk",
	"PersistentVolume":   "Baton has no persistent volumes to bind: a claim is a directory on the node that holds it",
}

// Workload returns the workload with the given name.
func (s *State) Workload(name string) (Workload, bool) {
	for _, w := range s.Workloads {
		if w.Name == name {
			return w, true
		}
	}
	return Workload{}, false
}

// Meta is what every object has.
type Meta struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Source is "file:line" of the object's definition.
	Source string `json:"source"`
}

// Workload is a Deployment: a replicated pod template.
type Workload struct {
	Name        string            `json:"name"`
	Kind        string            `json:"kind"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Replicas    int               `json:"replicas"`
	// Selector defaults to the template's labels.
	Selector map[string]string `json:"selector,omitempty"`
	// PodLabels are the template's labels.
	PodLabels               map[string]string `json:"podLabels,omitempty"`
	Pod                     PodSpec           `json:"pod"`
	Strategy                Strategy          `json:"strategy"`
	MinReadySeconds         int               `json:"minReadySeconds"`
	RevisionHistoryLimit    int               `json:"revisionHistoryLimit"`
	ProgressDeadlineSeconds int               `json:"progressDeadlineSeconds"`
	Paused                  bool              `json:"paused,omitempty"`
	// Stateful is set for a StatefulSet: its replicas are ordinals.
	Stateful *Stateful `json:"stateful,omitempty"`
	// Hash is the canonical hash of Pod and of the data of the ConfigMaps and
	// Secrets it references: equal hashes mean nothing to roll out.
	Hash string `json:"hash"`
	// Source is "file:line" of the document the workload came from.
	Source string `json:"source"`
}

// Stateful is what a StatefulSet adds to a workload: each replica is an
// ordinal (Start to Start+Replicas-1) with a stable name,
// <name>-<ordinal>, its hostname under ServiceName (the pods' subdomain),
// and its own claim of each of Claims, <claim>-<name>-<ordinal>, that stays
// with the ordinal.
type Stateful struct {
	ServiceName string `json:"serviceName,omitempty"`
	// Parallel (podManagementPolicy Parallel) starts and stops replicas
	// all at once; otherwise one at a time, in order, each after the one
	// before is ready (OrderedReady).
	Parallel bool `json:"parallel,omitempty"`
	// Partition: a new template replaces only ordinals from Partition up.
	Partition int `json:"partition,omitempty"`
	// Start is the first ordinal (spec.ordinals.start).
	Start  int             `json:"start,omitempty"`
	Claims []ClaimTemplate `json:"claims,omitempty"`
	// DeleteClaims says when persistentVolumeClaimRetentionPolicy asks
	// for the claims to be deleted ("whenDeleted", "whenScaled"): accepted,
	// and said not acted on.
	DeleteClaims string `json:"deleteClaims,omitempty"`
}

// ClaimTemplate is a claim made for each replica of a StatefulSet.
type ClaimTemplate struct {
	Name         string   `json:"name"`
	StorageBytes int64    `json:"storageBytes"`
	AccessModes  []string `json:"accessModes"`
}

// Endpoints are the addresses a Service without a selector sends to (its
// name is the Service's): each subset's addresses on each of its ports.
type Endpoints struct {
	Meta
	Subsets []EndpointSubset `json:"subsets,omitempty"`
}

// EndpointSubset is addresses (IPv4) that all serve Ports.
type EndpointSubset struct {
	Addresses []string       `json:"addresses,omitempty"`
	Ports     []EndpointPort `json:"ports,omitempty"`
}

// EndpointPort is a port of an Endpoints subset; Name matches the
// Service port's name.
type EndpointPort struct {
	Name     string `json:"name,omitempty"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
}

// DisruptionBudget is a PodDisruptionBudget: a node drain stops a ready
// replica of the pods it selects (in its namespace) only while at least
// MinAvailable of them stay ready, or at most MaxUnavailable are not
// (an int or a percent of the replicas their workloads want; at most one
// is set: neither allows every disruption).
type DisruptionBudget struct {
	Meta
	// Selector nil selects nothing, empty every pod of the namespace.
	Selector       *LabelSelector `json:"selector,omitempty"`
	MinAvailable   string         `json:"minAvailable,omitempty"`
	MaxUnavailable string         `json:"maxUnavailable,omitempty"`
	// AlwaysAllowUnhealthy (unhealthyPodEvictionPolicy AlwaysAllow): a
	// pod that is not ready may go even while the budget is not met (by
	// default only while it is, Kubernetes' IfHealthyBudget).
	AlwaysAllowUnhealthy bool `json:"alwaysAllowUnhealthy,omitempty"`
}

// Selects tells whether the budget covers the pods of workload w.
func (b DisruptionBudget) Selects(w Workload) bool {
	return b.Selector != nil && SelectsPods(b.Name, b.Selector.MatchLabels, b.Selector.MatchExpressions, w)
}

// Strategy is how a Deployment replaces its pods.
type Strategy struct {
	Type           string `json:"type"` // RollingUpdate or Recreate
	MaxSurge       string `json:"maxSurge,omitempty"`
	MaxUnavailable string `json:"maxUnavailable,omitempty"`
}

// RegistryAuth is one registry's credentials for pulling a pod's images.
type RegistryAuth struct {
	Host     string `json:"host"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// Sysctl is a namespaced kernel parameter set in a pod's namespaces.
type Sysctl struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// PodSpec is a group of containers that share one network namespace.
type PodSpec struct {
	// Waiting names the objects the pod needs that the revision lacks
	// ("Secret hf-secret"), made outside Git as Kubernetes allows: its
	// replicas are not started until a revision has them.
	Waiting []string `json:"waiting,omitempty"`
	// InitContainers run one after another, each to success, before
	// Containers start; sidecars among them start in their turn and keep
	// running.
	InitContainers []Container `json:"initContainers,omitempty"`
	Containers     []Container `json:"containers"`
	// FSGroup owns the pod's writable volumes (emptyDir, claims: group
	// and setgid) and is among every container's groups, with
	// SupplementalGroups. Sysctls are set in the pod's namespaces.
	FSGroup *int64 `json:"fsGroup,omitempty"`
	// ImagePullSecrets name Secrets (type kubernetes.io/dockerconfigjson)
	// whose registry credentials the node pulls the pod's images with;
	// ResolvePod puts them in RegistryAuth, which holds secret values:
	// never log it.
	ImagePullSecrets              []string          `json:"imagePullSecrets,omitempty"`
	RegistryAuth                  []RegistryAuth    `json:"registryAuth,omitempty"`
	SupplementalGroups            []int64           `json:"supplementalGroups,omitempty"`
	Sysctls                       []Sysctl          `json:"sysctls,omitempty"`
	Volumes                       []Volume          `json:"volumes,omitempty"`
	RestartPolicy                 string            `json:"restartPolicy,omitempty"`
	NodeSelector                  map[string]string `json:"nodeSelector,omitempty"`
	TerminationGracePeriodSeconds int               `json:"terminationGracePeriodSeconds,omitempty"`
	HostNetwork                   bool              `json:"hostNetwork,omitempty"`
	// HostPID and HostIPC put the pod in the node's process and IPC
	// namespaces (refused below the privileged level).
	HostPID bool `json:"hostPID,omitempty"`
	HostIPC bool `json:"hostIPC,omitempty"`
	// Subdomain, with a headless Service of that name selecting the pod,
	// gives the pod the DNS name <hostname>.<subdomain> (its hostname, else
	// its replica ID).
	Subdomain string `json:"subdomain,omitempty"`
	// DNSPolicy is "Default" for a pod that keeps the node's resolv.conf
	// ("": the node's DNS for Services' names, Kubernetes' ClusterFirst).
	DNSPolicy      string             `json:"dnsPolicy,omitempty"`
	Hostname       string             `json:"hostname,omitempty"`
	TopologySpread []TopologySpread   `json:"topologySpread,omitempty"`
	AntiAffinity   []AntiAffinityTerm `json:"antiAffinity,omitempty"`
	// Affinity keeps pods with the pods its terms select (podAffinity).
	Affinity []AntiAffinityTerm `json:"affinity,omitempty"`
	// NodeAffinity and Tolerations narrow and widen the nodes a pod may
	// go to (nodeAffinity, taints).
	NodeAffinity *NodeAffinity `json:"nodeAffinity,omitempty"`
	Tolerations  []Toleration  `json:"tolerations,omitempty"`
	// Accepted and not acted on (warnings say so); part of the template.
	ServiceAccountName           string `json:"serviceAccountName,omitempty"`
	AutomountServiceAccountToken *bool  `json:"automountServiceAccountToken,omitempty"`
	PriorityClassName            string `json:"priorityClassName,omitempty"`
}

// Container is one process image within a pod.
type Container struct {
	Name string `json:"name"`
	// Sidecar marks an init container with restartPolicy Always (a native
	// sidecar): started in its turn, then kept running beside the others.
	Sidecar         bool             `json:"sidecar,omitempty"`
	Image           string           `json:"image"`
	ImagePullPolicy string           `json:"imagePullPolicy,omitempty"`
	Command         []string         `json:"command,omitempty"`
	Args            []string         `json:"args,omitempty"`
	WorkingDir      string           `json:"workingDir,omitempty"`
	Env             []EnvVar         `json:"env,omitempty"`
	EnvFrom         []EnvFrom        `json:"envFrom,omitempty"`
	Ports           []Port           `json:"ports,omitempty"`
	Resources       Resources        `json:"resources,omitzero"`
	SecurityContext *SecurityContext `json:"securityContext,omitempty"`
	LivenessProbe   *Probe           `json:"livenessProbe,omitempty"`
	ReadinessProbe  *Probe           `json:"readinessProbe,omitempty"`
	StartupProbe    *Probe           `json:"startupProbe,omitempty"`
	// Lifecycle hooks: PostStart runs once the container started (its
	// failure kills it), PreStop before it is stopped, within its grace.
	Lifecycle    *Lifecycle    `json:"lifecycle,omitempty"`
	VolumeMounts []VolumeMount `json:"volumeMounts,omitempty"`
}

// SecurityContext restricts (or, with the node's permission, widens) what
// a container may do.
type SecurityContext struct {
	// Seccomp is the seccomp profile: "" (RuntimeDefault, containerd's
	// default profile), "Unconfined", or "Localhost/<path>" (a profile
	// under the node's seccomp directory).
	Seccomp                  string   `json:"seccomp,omitempty"`
	RunAsUser                *int64   `json:"runAsUser,omitempty"`
	RunAsGroup               *int64   `json:"runAsGroup,omitempty"`
	RunAsNonRoot             bool     `json:"runAsNonRoot,omitempty"`
	ReadOnlyRootFilesystem   bool     `json:"readOnlyRootFilesystem,omitempty"`
	Privileged               bool     `json:"privileged,omitempty"`
	AllowPrivilegeEscalation bool     `json:"allowPrivilegeEscalation,omitempty"`
	CapAdd                   []string `json:"capAdd,omitempty"`
	CapDrop                  []string `json:"capDrop,omitempty"`
}

// EnvVar is one environment variable: a value, or a reference to a key of a
// ConfigMap or Secret.
type EnvVar struct {
	Name            string  `json:"name"`
	Value           string  `json:"value,omitempty"`
	ConfigMapKeyRef *KeyRef `json:"configMapKeyRef,omitempty"`
	SecretKeyRef    *KeyRef `json:"secretKeyRef,omitempty"`
	// FieldRef is a field of the pod the node fills in when it starts it
	// (the downward API): metadata.name, metadata.uid, spec.nodeName,
	// status.podIP(s), status.hostIP(s). The fields known from the
	// manifest (labels, annotations, namespace, serviceAccountName) are
	// resolved into Value when it loads.
	FieldRef string `json:"fieldRef,omitempty"`
	// ResourceFieldRef is a container's request or limit, in divisor units
	// (rounded up); an unset limit is the node's capacity.
	ResourceFieldRef *ResourceFieldRef `json:"resourceFieldRef,omitempty"`
}

// ResourceFieldRef names a container's request or limit for the
// downward API.
type ResourceFieldRef struct {
	Container string `json:"container"`
	Resource  string `json:"resource"` // limits.cpu, requests.memory, ...
	// Divisor in the resource's unit (thousandths of a core for cpu, bytes
	// otherwise); 0 is 1 (one core, one byte).
	Divisor int64 `json:"divisor,omitempty"`
}

// KeyRef names one key of a ConfigMap or Secret.
type KeyRef struct {
	Name     string `json:"name"`
	Key      string `json:"key"`
	Optional bool   `json:"optional,omitempty"`
}

// EnvFrom imports every key of a ConfigMap or Secret as variables.
type EnvFrom struct {
	Prefix    string `json:"prefix,omitempty"`
	ConfigMap string `json:"configMap,omitempty"`
	Secret    string `json:"secret,omitempty"`
	Optional  bool   `json:"optional,omitempty"`
}

// Port is a container port, optionally published on the host.
type Port struct {
	Name          string `json:"name,omitempty"`
	ContainerPort int    `json:"containerPort"`
	HostPort      int    `json:"hostPort,omitempty"`
	HostIP        string `json:"hostIP,omitempty"`
	Protocol      string `json:"protocol"`
}

// Resources are requests and limits, parsed.
type Resources struct {
	Requests Amount `json:"requests,omitzero"`
	Limits   Amount `json:"limits,omitzero"`
}

// Amount is CPU in thousandths of a core and memory in bytes; 0 is unset.
// Extra holds the other resources by name: ephemeral-storage and
// hugepages-<size> in bytes, extended resources (nvidia.com/gpu) in units.
type Amount struct {
	CPUMilli    int64            `json:"cpuMilli,omitempty"`
	MemoryBytes int64            `json:"memoryBytes,omitempty"`
	Extra       map[string]int64 `json:"extra,omitempty"`
}

// Probe checks a container, with Kubernetes' defaults applied.
type Probe struct {
	HTTPGet             *HTTPGet   `json:"httpGet,omitempty"`
	TCPSocket           *TCPSocket `json:"tcpSocket,omitempty"`
	GRPC                *GRPCProbe `json:"grpc,omitempty"`
	Exec                []string   `json:"exec,omitempty"`
	InitialDelaySeconds int        `json:"initialDelaySeconds"`
	PeriodSeconds       int        `json:"periodSeconds"`
	TimeoutSeconds      int        `json:"timeoutSeconds"`
	SuccessThreshold    int        `json:"successThreshold"`
	FailureThreshold    int        `json:"failureThreshold"`
}

// HTTPGet probes with an HTTP GET; Port is a number or a port name.
type HTTPGet struct {
	Path    string            `json:"path"`
	Port    string            `json:"port"`
	Host    string            `json:"host,omitempty"`
	Scheme  string            `json:"scheme"`
	Headers map[string]string `json:"headers,omitempty"`
}

// Lifecycle is a container's hooks.
type Lifecycle struct {
	PostStart *Handler `json:"postStart,omitempty"`
	PreStop   *Handler `json:"preStop,omitempty"`
}

// Handler is a lifecycle hook: a command in the container, an HTTP GET
// to the pod, or a sleep.
type Handler struct {
	Exec         []string `json:"exec,omitempty"`
	HTTPGet      *HTTPGet `json:"httpGet,omitempty"`
	SleepSeconds int      `json:"sleepSeconds,omitempty"`
}

// Probe is the hook's command or HTTP GET as a probe with a timeout, to
// run it as one (nil for a sleep).
func (h Handler) Probe(timeoutSeconds int) *Probe {
	if len(h.Exec) == 0 && h.HTTPGet == nil {
		return nil
	}
	return &Probe{Exec: h.Exec, HTTPGet: h.HTTPGet, TimeoutSeconds: timeoutSeconds, PeriodSeconds: 1, SuccessThreshold: 1, FailureThreshold: 1}
}

// GRPCProbe probes with the gRPC health checking protocol
// (grpc.health.v1.Health/Check): SERVING passes. Port is a number (as in
// Kubernetes); Service "" asks for the server as a whole.
type GRPCProbe struct {
	Port    int    `json:"port"`
	Service string `json:"service,omitempty"`
}

// TCPSocket probes by opening a connection.
type TCPSocket struct {
	Port string `json:"port"`
}

// VolumeMount mounts a pod volume into a container.
type VolumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
	SubPath   string `json:"subPath,omitempty"`
}

// Volume is a pod volume; exactly one source is set.
type Volume struct {
	Name     string    `json:"name"`
	EmptyDir *EmptyDir `json:"emptyDir,omitempty"`
	HostPath string    `json:"hostPath,omitempty"`
	// HostPathType is what the node checks (or makes) at HostPath before
	// mounting it: Directory, DirectoryOrCreate, File, FileOrCreate,
	// Socket, CharDevice, BlockDevice ("": nothing).
	HostPathType string      `json:"hostPathType,omitempty"`
	ConfigMap    *FilesFrom  `json:"configMap,omitempty"`
	Secret       *FilesFrom  `json:"secret,omitempty"`
	Claim        *ClaimMount `json:"persistentVolumeClaim,omitempty"`
	// Projected is a projected volume, or a downwardAPI one (Downward
	// only): files from ConfigMaps, Secrets and the pod's own fields in
	// one directory.
	Projected *Projected `json:"projected,omitempty"`
}

// Projected is the sources of a projected (or downwardAPI) volume.
type Projected struct {
	ConfigMaps  []*FilesFrom   `json:"configMaps,omitempty"`
	Secrets     []*FilesFrom   `json:"secrets,omitempty"`
	Downward    []DownwardFile `json:"downward,omitempty"`
	DefaultMode int            `json:"defaultMode"`
	// NoToken: a serviceAccountToken source was asked for and is not
	// written (Baton gives pods no service accounts), said as a warning.
	NoToken bool `json:"noToken,omitempty"`
}

// DownwardFile is a file of the pod's own fields: Value (known when the
// revision loads: labels, annotations, namespace) or a field or resource
// the node fills in.
type DownwardFile struct {
	Path             string            `json:"path"`
	Value            string            `json:"value,omitempty"`
	FieldRef         string            `json:"fieldRef,omitempty"`
	ResourceFieldRef *ResourceFieldRef `json:"resourceFieldRef,omitempty"`
	Mode             int               `json:"mode,omitempty"`
}

// EmptyDir is scratch space removed with the pod.
type EmptyDir struct {
	Memory         bool  `json:"memory,omitempty"`
	SizeLimitBytes int64 `json:"sizeLimitBytes,omitempty"`
}

// FilesFrom projects the keys of a ConfigMap or Secret as files.
type FilesFrom struct {
	Name        string            `json:"name"`
	Items       map[string]string `json:"items,omitempty"` // key -> path
	DefaultMode int               `json:"defaultMode"`
	Optional    bool              `json:"optional,omitempty"`
	// Files are the projected files, path -> content; State.ResolvePod fills
	// them for a start command (they may hold secret values: never log them).
	Files map[string][]byte `json:"files,omitempty"`
}

// ClaimMount mounts a PersistentVolumeClaim.
type ClaimMount struct {
	Claim    string `json:"claim"`
	ReadOnly bool   `json:"readOnly,omitempty"`
	// PerOrdinal: a StatefulSet's claim template; each replica mounts its
	// own, Claim-<ordinal> (see Stateful.PodFor).
	PerOrdinal bool `json:"perOrdinal,omitempty"`
}

// TopologySpread limits the skew of a workload's pods across a node label.
type TopologySpread struct {
	MaxSkew           int               `json:"maxSkew"`
	TopologyKey       string            `json:"topologyKey"`
	WhenUnsatisfiable string            `json:"whenUnsatisfiable"`
	MatchLabels       map[string]string `json:"matchLabels,omitempty"`
	MatchExpressions  []Requirement     `json:"matchExpressions,omitempty"`
}

// AntiAffinityTerm keeps pods matching its selector apart across
// TopologyKey (in PodSpec.Affinity: together); Weight 0 means required.
type AntiAffinityTerm struct {
	TopologyKey      string            `json:"topologyKey"`
	MatchLabels      map[string]string `json:"matchLabels,omitempty"`
	MatchExpressions []Requirement     `json:"matchExpressions,omitempty"`
	Weight           int               `json:"weight,omitempty"`
	// Namespaces are those whose pods the term looks at, with those whose
	// labels NamespaceSelector matches (empty: every namespace); neither
	// set: the pod's own namespace.
	Namespaces        []string       `json:"namespaces,omitempty"`
	NamespaceSelector *LabelSelector `json:"namespaceSelector,omitempty"`
}

// LabelSelector selects by labels: every one of MatchLabels and every
// expression.
type LabelSelector struct {
	MatchLabels      map[string]string `json:"matchLabels,omitempty"`
	MatchExpressions []Requirement     `json:"matchExpressions,omitempty"`
}

// Job runs pods to completion.
type Job struct {
	Meta
	// Kind is "Pod" for a bare Pod that runs to completion ("": a Job).
	Kind string  `json:"kind,omitempty"`
	Spec JobSpec `json:"spec"`
	Hash string  `json:"hash"`
}

// JobSpec is the normalized spec of a Job or of a CronJob's jobs.
type JobSpec struct {
	Pod                     PodSpec           `json:"pod"`
	PodLabels               map[string]string `json:"podLabels,omitempty"`
	Completions             int               `json:"completions"`
	Parallelism             int               `json:"parallelism"`
	BackoffLimit            int               `json:"backoffLimit"`
	ActiveDeadlineSeconds   int               `json:"activeDeadlineSeconds,omitempty"`
	TTLSecondsAfterFinished *int              `json:"ttlSecondsAfterFinished,omitempty"`
	// Indexed (completionMode: Indexed): each index 0..completions-1
	// succeeds once; its pods have JOB_COMPLETION_INDEX.
	Indexed bool `json:"indexed,omitempty"`
	// Suspend stops the Job's active pods and starts none; it is not part
	// of the template (the Job resumes where it was).
	Suspend bool `json:"suspend,omitempty"`
}

// CronJob creates Jobs on a cron schedule.
type CronJob struct {
	Meta
	Schedule                   string  `json:"schedule"`
	TimeZone                   string  `json:"timeZone"`
	ConcurrencyPolicy          string  `json:"concurrencyPolicy"`
	Suspend                    bool    `json:"suspend,omitempty"`
	StartingDeadlineSeconds    *int    `json:"startingDeadlineSeconds,omitempty"`
	SuccessfulJobsHistoryLimit int     `json:"successfulJobsHistoryLimit"`
	FailedJobsHistoryLimit     int     `json:"failedJobsHistoryLimit"`
	Job                        JobSpec `json:"job"`
	Hash                       string  `json:"hash"`
	// Cron is Schedule parsed in TimeZone when the revision loaded.
	Cron *Cron `json:"-"`
}

// ConfigMap is configuration data.
type ConfigMap struct {
	Meta
	Data       map[string]string `json:"data,omitempty"`
	BinaryData map[string][]byte `json:"binaryData,omitempty"`
	Immutable  bool              `json:"immutable,omitempty"`
}

// Secret is secret data: from a v1 Secret, or decrypted from a SealedSecret.
type Secret struct {
	Meta
	Type string `json:"type"`
	// Data holds the values; it is never printed (see Redacted).
	Data map[string][]byte `json:"-"`
	// Keys are the names of the keys in Data, sorted.
	Keys []string `json:"keys"`
	// Sealed is true for a SealedSecret; Data is empty when it was loaded
	// without the cluster's key.
	Sealed    bool   `json:"sealed,omitempty"`
	Immutable bool   `json:"immutable,omitempty"`
	digest    string // hash input: the data, or the ciphertext of a sealed secret
}

// Claim is a PersistentVolumeClaim of a local volume.
type Claim struct {
	Meta
	StorageBytes     int64    `json:"storageBytes"`
	AccessModes      []string `json:"accessModes"`
	StorageClassName string   `json:"storageClassName,omitempty"`
	// Binds says what the claim asks to bind to (volumeName, selector):
	// accepted, and said not to be acted on (no PersistentVolumes).
	Binds string `json:"binds,omitempty"`
}

// Service routes to the pods its selector matches.
type Service struct {
	Meta
	Type string `json:"type"`
	// ClusterIP is the address asked for ("": one is allocated; "None": a
	// headless Service, no virtual address).
	ClusterIP string `json:"clusterIP,omitempty"`
	// AffinitySeconds, when set, is ClientIP session affinity: a client
	// goes back to the pod it reached last for this long
	// (sessionAffinityConfig.clientIP.timeoutSeconds, 3 hours by default).
	AffinitySeconds int `json:"affinitySeconds,omitempty"`
	// ExternalLocal (externalTrafficPolicy: Local): a node port reaches the
	// pods of the node it is reached on only, and they see the client's
	// address. InternalLocal (internalTrafficPolicy: Local): pods reach
	// the Service's pods on their own node only.
	ExternalLocal bool `json:"externalLocal,omitempty"`
	InternalLocal bool `json:"internalLocal,omitempty"`
	// Unserved says what of the Service Baton accepts and does not do
	// (warnings): a LoadBalancer's external address,
	// publishNotReadyAddresses.
	Unserved []string          `json:"unserved,omitempty"`
	Selector map[string]string `json:"selector,omitempty"`
	Ports    []ServicePort     `json:"ports"`
}

// DefaultAffinitySeconds is ClientIP session affinity's timeout when the
// manifest gives none (Kubernetes' 10800).
const DefaultAffinitySeconds = 10800

// ServicePort is one port of a Service.
type ServicePort struct {
	Name       string `json:"name,omitempty"`
	Protocol   string `json:"protocol"`
	Port       int    `json:"port"`
	TargetPort string `json:"targetPort"`
	NodePort   int    `json:"nodePort,omitempty"`
}

// Autoscaler is a HorizontalPodAutoscaler on CPU utilization.
type Autoscaler struct {
	Meta
	Target           string `json:"target"`
	MinReplicas      int    `json:"minReplicas"`
	MaxReplicas      int    `json:"maxReplicas"`
	TargetCPUPercent int    `json:"targetCPUUtilizationPercent"`
	// TargetMemoryPercent, when set, is a memory utilization target too:
	// the count is the larger of the two (as Kubernetes takes the largest
	// recommendation of its metrics).
	TargetMemoryPercent int `json:"targetMemoryUtilizationPercent,omitempty"`
	// Unmeasured are the metrics Baton has no source for (Pods, Object,
	// External, ContainerResource): accepted and said not acted on, as on
	// a Kubernetes cluster without a metrics adapter.
	Unmeasured []string     `json:"unmeasured,omitempty"`
	ScaleUp    ScalingRules `json:"scaleUp"`
	ScaleDown  ScalingRules `json:"scaleDown"`
}

// ScalingRules bound how fast an autoscaler moves.
type ScalingRules struct {
	StabilizationWindowSeconds int             `json:"stabilizationWindowSeconds"`
	SelectPolicy               string          `json:"selectPolicy"`
	Policies                   []ScalingPolicy `json:"policies,omitempty"`
}

// ScalingPolicy allows a change of Value pods or percent per PeriodSeconds.
type ScalingPolicy struct {
	Type          string `json:"type"`
	Value         int    `json:"value"`
	PeriodSeconds int    `json:"periodSeconds"`
}

// ScalingSchedule sets a workload's replicas at cron times.
type ScalingSchedule struct {
	Meta
	Target   string          `json:"target"`
	TimeZone string          `json:"timeZone"`
	Windows  []ScalingWindow `json:"windows"`
}

// ScalingWindow scales the target to Replicas each time Schedule fires.
type ScalingWindow struct {
	Name     string `json:"name"`
	Schedule string `json:"schedule"`
	Replicas int    `json:"replicas"`
	// Cron is Schedule parsed in the ScalingSchedule's zone when the
	// revision loaded.
	Cron *Cron `json:"-"`
}

// HashLen is the number of hex digits kept of a pod spec hash.
const HashLen = 16

// Hash returns the canonical hash of a pod spec: its normalized form encoded
// as JSON, whose field order is fixed by the struct definitions and whose map
// keys encoding/json sorts.
func (p PodSpec) Hash() string { return hashOf(p.normalized()) }

func hashOf(parts ...any) string {
	h := sha256.New()
	for _, p := range parts {
		b, err := json.Marshal(p)
		if err != nil {
			// Only plain data types are hashed: Marshal cannot fail.
			panic("desired: hash: " + err.Error())
		}
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:HashLen]
}

// AllContainers are the init containers, then the others.
func (p PodSpec) AllContainers() []Container {
	if len(p.InitContainers) == 0 {
		return p.Containers
	}
	return append(slices.Clone(p.InitContainers), p.Containers...)
}

// normalized makes empty and nil lists and maps the same.
func (p PodSpec) normalized() PodSpec {
	out := p
	norm := func(cs []Container) []Container {
		if len(cs) == 0 {
			return nil
		}
		out := make([]Container, len(cs))
		for i, c := range cs {
			c.Command = emptyToNil(c.Command)
			c.Args = emptyToNil(c.Args)
			if len(c.Env) == 0 {
				c.Env = nil
			}
			out[i] = c
		}
		return out
	}
	out.Containers = norm(p.Containers)
	out.InitContainers = norm(p.InitContainers)
	if len(out.NodeSelector) == 0 {
		out.NodeSelector = nil
	}
	return out
}

func emptyToNil(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
