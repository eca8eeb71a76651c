package nodeagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/netns"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	cnins "github.com/containernetworking/plugins/pkg/ns"
	"github.com/distribution/reference"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/fsutil"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// Container labels: the live state is read back from them.
const (
	LabelReplica   = "baton.replica"
	LabelWorkload  = "baton.workload"
	LabelSpecHash  = "baton.spec-hash"
	LabelContainer = "baton.container"
	LabelNetNS     = "baton.netns"
	// LabelPodIP is the pod's address; LabelPorts its published host ports
	// (JSON); LabelHostNetwork marks hostNetwork pods.
	LabelPodIP       = "baton.pod-ip"
	LabelPorts       = "baton.ports"
	LabelHostNetwork = "baton.host-network"
	// LabelGrace is the pod's terminationGracePeriodSeconds.
	LabelGrace = "baton.grace-seconds"
)

// Snapshotter is the containerd snapshotter Baton unpacks images into.
const Snapshotter = "overlayfs"

// Containerd is the Runtime backed by a containerd daemon. Each agent uses
// its own containerd namespace, so several agents can share one daemon.
type Containerd struct {
	client      *client.Client
	namespace   string
	dataDir     string // logs and network namespaces
	backoff     Backoff
	maxLogBytes int64
	usage       *usageTracker

	probeMu sync.Mutex
	probers map[string]*prober // by container ID

	hostPathAllow []string
	images        ImageStore
	podSecurity   desired.PodSecurity // what pods may ask of this node (baseline by default)
	changed       chan struct{}       // container exits and readiness flips

	stopMu   sync.Mutex
	stopping map[string]int // replicas being stopped: Supervise leaves them alone

	pulls chan struct{} // at most cap(pulls) pulls at once

	metrics *Metrics // nil: none

	network Network // nil: pods get a loopback-only network namespace
	// nodeName and nodeAddress answer the downward API.
	nodeName, nodeAddress string
	hostNS                string // the namespace hostNetwork pods join; "" for the agent's own
	// resolvConf makes the pods' resolv.conf of a namespace
	// (SetPodResolvConf; nil: the host's); resolvFiles are those written.
	resolvConf  func(ns string) string
	resolvMu    sync.Mutex
	resolvFiles map[string]string
	portMu      sync.Mutex
	ports       map[string]string // host ports reserved by starts under way: "tcp/8080" -> replica

	events   sync.Once
	imageArr chan string // images that arrived on the node

	// recovering: Recover holds it to write, a start to read, so Recover
	// never takes a pod being made for a half-made one.
	recovering sync.RWMutex

	testHook func(stage string) // tests: called at stages of a start
}

// DialContainerd connects to the containerd socket and checks that it answers.
func DialContainerd(ctx context.Context, socket string) (*client.Client, error) {
	c, err := client.New(socket, client.WithTimeout(3*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w", socket, err)
	}
	vctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := c.Version(vctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("containerd at %s does not answer: %w", socket, err)
	}
	return c, nil
}

// NewContainerd returns a Runtime on c in the given containerd namespace,
// keeping container logs and network namespaces under dataDir.
func NewContainerd(c *client.Client, namespace, dataDir string) (*Containerd, error) {
	for _, d := range []string{"logs", "netns"} {
		if err := os.MkdirAll(filepath.Join(dataDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("create agent data dir: %w", err)
		}
	}
	return &Containerd{client: c, namespace: namespace, dataDir: dataDir, backoff: DefaultBackoff, maxLogBytes: MaxLogBytes, usage: newUsageTracker(), probers: map[string]*prober{}, changed: make(chan struct{}, 1), stopping: map[string]int{}, pulls: make(chan struct{}, MaxConcurrentPulls), imageArr: make(chan string, 64)}, nil
}

func (r *Containerd) ctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, r.namespace)
}

// SetBackoff changes the restart back-off (tests use short ones).
func (r *Containerd) SetBackoff(b Backoff) { r.backoff = b }

// SetPodSecurity sets the Pod Security Standards level this node enforces
// (baseline by default): a pod asking for more is refused as not_allowed.
func (r *Containerd) SetPodSecurity(l desired.PodSecurity) { r.podSecurity = l }

// PodSecurity is the level this node enforces.
func (r *Containerd) PodSecurity() desired.PodSecurity {
	if r.podSecurity == "" {
		return desired.PodSecurityBaseline
	}
	return r.podSecurity
}

// ErrPodSecurity is matched (errors.Is) by the refusal of a pod that asks
// for more than the node's pod security level allows; so is ErrNotAllowed.
var ErrPodSecurity = errors.New("refused by the node's pod security level")

// PodSecurityError is a pod refused by the node's pod security level, with
// every field at fault.
type PodSecurityError struct {
	Level      desired.PodSecurity
	Violations []desired.Violation
}

func (e *PodSecurityError) Error() string {
	msgs := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		msgs[i] = v.String()
	}
	return fmt.Sprintf("this node enforces pod security %s: %s", e.Level, strings.Join(msgs, "; "))
}

// Is makes the refusal match ErrPodSecurity and ErrNotAllowed.
func (e *PodSecurityError) Is(target error) bool {
	return target == ErrPodSecurity || target == ErrNotAllowed
}

// SetNode tells the runtime its node's name and address, for the
// downward API (spec.nodeName, status.hostIP).
func (r *Containerd) SetNode(name, address string) { r.nodeName, r.nodeAddress = name, address }

// SetNetwork attaches pods to n. hostNS is the network namespace that plays
// the host for hostNetwork pods ("" for the agent's own).
func (r *Containerd) SetNetwork(n Network, hostNS string) { r.network, r.hostNS = n, hostNS }

// SetPodResolvConf gives pods on the pod network the resolv.conf conf
// makes for their namespace (the node's DNS, as Kubernetes' ClusterFirst)
// instead of the host's: resolv.conf in the data dir for the default
// namespace, written now, resolv-<namespace>.conf for others, written for
// the first pod of each.
func (r *Containerd) SetPodResolvConf(conf func(ns string) string) error {
	r.resolvMu.Lock()
	r.resolvConf, r.resolvFiles = conf, map[string]string{}
	r.resolvMu.Unlock()
	_, err := r.podResolvConf(desired.DefaultNamespace)
	return err
}

// podResolvConf is the file of namespace ns's pods' resolv.conf.
func (r *Containerd) podResolvConf(ns string) (string, error) {
	r.resolvMu.Lock()
	defer r.resolvMu.Unlock()
	if p, ok := r.resolvFiles[ns]; ok {
		return p, nil
	}
	p := filepath.Join(r.dataDir, "resolv.conf")
	if ns != desired.DefaultNamespace {
		p = filepath.Join(r.dataDir, "resolv-"+ns+".conf")
	}
	if err := fsutil.WriteFileAtomic(p, []byte(r.resolvConf(ns)), 0o644); err != nil {
		return "", fmt.Errorf("pods' resolv.conf: %w", err)
	}
	r.resolvFiles[ns] = p
	return p, nil
}

// Namespace is the containerd namespace of the runtime.
func (r *Containerd) Namespace() string { return r.namespace }

// DataDir is where the runtime keeps logs and network namespaces.
func (r *Containerd) DataDir() string { return r.dataDir }

// SetMaxLogBytes changes the size at which container logs rotate.
func (r *Containerd) SetMaxLogBytes(n int64) { r.maxLogBytes = n }

// MaxConcurrentPulls caps the image pulls a node runs at once.
const MaxConcurrentPulls = 2

// LocalRegistry is the domain of images that exist only as archives
// (baton image import, baton image push): never asked of the network.
const LocalRegistry = "baton.local"

// pull fetches and unpacks an image. Registries on loopback are spoken to
// over plain HTTP, as containerd's ctr does with --plain-http.
func (r *Containerd) pull(ctx context.Context, name string, auth []desired.RegistryAuth) (client.Image, error) {
	if strings.HasPrefix(name, LocalRegistry+"/") {
		return nil, fmt.Errorf("%s is a local image: it comes from an archive (baton image import or baton image push), never from a registry", name)
	}
	select {
	case r.pulls <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-r.pulls }()
	// The pod's image pull secrets answer the registries' challenges.
	creds := func(host string) (string, string, error) {
		for _, a := range auth {
			if a.Host == host || (a.Host == "docker.io" && host == "registry-1.docker.io") {
				return a.Username, a.Password, nil
			}
		}
		return "", "", nil
	}
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchLocalhost),
			docker.WithAuthorizer(docker.NewDockerAuthorizer(docker.WithAuthCreds(creds)))),
	})
	img, err := r.client.Pull(ctx, name, client.WithPullUnpack, client.WithPullSnapshotter(Snapshotter), client.WithResolver(resolver))
	r.metrics.imageFetched("registry", err)
	return img, err
}

// SetMetrics counts restarts, probe failures and image fetches in m.
func (r *Containerd) SetMetrics(m *Metrics) { r.metrics = m }

// containerID names the containerd container of one container of a replica.
func containerID(replica, container string) string { return replica + "." + container }

// Start implements Runtime.
func (r *Containerd) Start(ctx context.Context, spec protocol.ReplicaSpec) (retErr error) {
	if err := ValidateSpec(spec); err != nil {
		return err
	}
	if v := desired.CheckPodSecurity(r.PodSecurity(), spec.Pod); len(v) > 0 {
		return &PodSecurityError{Level: r.PodSecurity(), Violations: v}
	}
	r.recovering.RLock()
	defer r.recovering.RUnlock()
	ctx = r.ctx(ctx)
	existing, err := r.containersOf(ctx, spec.ID)
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			// Leave nothing half-made: the next start begins from scratch.
			cctx, cancel := cleanupContext(ctx)
			defer cancel()
			if err := r.Stop(cctx, spec.ID, 0); err != nil {
				zerolog.Ctx(ctx).Warn().Err(err).Str("replica", spec.ID).Msg("clean up failed start")
			}
		}
	}()
	net := podNet{ports: protocol.HostPorts(spec.Pod), host: spec.Pod.HostNetwork}
	for _, c := range existing {
		if p := c.labels[LabelNetNS]; p != "" {
			net.nsPath, net.ip = p, c.labels[LabelPodIP]
		}
	}
	if len(existing) == 0 && len(net.ports) > 0 {
		// Reserved in memory until the containers carry the ports in their
		// labels: no lock is held across the image pull below.
		release, err := r.reserveHostPorts(ctx, spec.ID, net.ports)
		if err != nil {
			return err
		}
		defer release()
	}
	if len(existing) == 0 {
		if err := r.writeRecord(spec, net); err != nil {
			return err
		}
	}
	if net.nsPath == "" && !net.host {
		ns, err := netns.NewNetNS(filepath.Join(r.dataDir, "netns"))
		if err != nil {
			return fmt.Errorf("create network namespace: %w", err)
		}
		net.nsPath = ns.GetPath()
		// Recorded before anything is attached: an agent killed from here on
		// finds the namespace and the address at its next start (Recover).
		if err := r.writeRecord(spec, net); err != nil {
			_ = ns.Remove()
			return err
		}
		attached := false
		defer func() {
			// Stop finds a pod's namespace through its containers' labels:
			// undo here what no container records.
			if retErr != nil {
				if attached {
					cctx, cancel := cleanupContext(ctx)
					defer cancel()
					_ = r.network.Detach(cctx, spec.ID, net.nsPath, net.ports)
				}
				_ = ns.Remove()
			}
		}()
		if err := ns.Do(LoopbackUp); err != nil {
			return fmt.Errorf("bring up loopback: %w", err)
		}
		if r.network != nil {
			attached = true // a failed ADD still needs its DEL (CNI spec)
			ip, err := r.network.Attach(ctx, spec.ID, net.nsPath, net.ports)
			if err != nil {
				return err
			}
			net.ip = ip
		}
	}
	r.hook("network")
	volumes, err := r.prepareVolumes(spec, net)
	if err != nil {
		return fmt.Errorf("volumes of replica %s: %w", spec.ID, err)
	}
	// With init containers every container is made now (an image that
	// cannot be had fails the start at once) and started in its turn
	// (advanceInit, then Supervise).
	later := len(spec.Pod.InitContainers) > 0
	for _, c := range spec.Pod.AllContainers() {
		if err := r.startContainer(ctx, spec, c.Name, net, volumes, !later); err != nil {
			return fmt.Errorf("start container %s of replica %s: %w", c.Name, spec.ID, err)
		}
	}
	if later {
		if err := r.advanceInit(ctx, spec.ID); err != nil {
			return fmt.Errorf("start init containers of replica %s: %w", spec.ID, err)
		}
	}
	return nil
}

// hook runs the test hook at a stage of a start (tests stop an agent there,
// as a kill -9 would).
func (r *Containerd) hook(stage string) {
	if r.testHook != nil {
		r.testHook(stage)
	}
}

// LoopbackUp brings up the loopback interface of the network namespace the
// calling thread is in (use it with NetNS.Do).
func LoopbackUp(cnins.NetNS) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// podNet is a pod's network: its namespace (none with hostNetwork), address
// and published ports.
type podNet struct {
	nsPath string
	ip     string
	host   bool
	ports  []protocol.PortBinding
}

func (n podNet) labels() map[string]string {
	l := map[string]string{LabelNetNS: n.nsPath}
	if n.ip != "" {
		l[LabelPodIP] = n.ip
	}
	if n.host {
		l[LabelHostNetwork] = "true"
	}
	if len(n.ports) > 0 {
		b, _ := json.Marshal(n.ports)
		l[LabelPorts] = string(b)
	}
	return l
}

func portsOf(labels map[string]string) []protocol.PortBinding {
	var ports []protocol.PortBinding
	if s := labels[LabelPorts]; s != "" {
		_ = json.Unmarshal([]byte(s), &ports)
	}
	return ports
}

// reserveHostPorts checks that no other replica publishes ports (their
// containers' labels, and the starts under way) and reserves them for
// replica until release is called.
func (r *Containerd) reserveHostPorts(ctx context.Context, replica string, ports []protocol.PortBinding) (release func(), err error) {
	r.portMu.Lock()
	defer r.portMu.Unlock()
	for _, p := range ports {
		if other, ok := r.ports[portKey(p)]; ok && other != replica {
			return nil, fmt.Errorf("%w: %s/%d is published by replica %s", ErrHostPortInUse, p.Protocol, p.HostPort, other)
		}
	}
	if err := r.checkHostPorts(ctx, replica, ports); err != nil {
		return nil, err
	}
	if r.ports == nil {
		r.ports = map[string]string{}
	}
	for _, p := range ports {
		r.ports[portKey(p)] = replica
	}
	return func() {
		r.portMu.Lock()
		defer r.portMu.Unlock()
		for _, p := range ports {
			if r.ports[portKey(p)] == replica {
				delete(r.ports, portKey(p))
			}
		}
	}, nil
}

func portKey(p protocol.PortBinding) string {
	return fmt.Sprintf("%s/%d", protocolName(p.Protocol), p.HostPort)
}

// cleanupTimeout bounds the clean-up of a failed start or a stop that
// outlives its caller's context.
const cleanupTimeout = 30 * time.Second

// cleanupContext keeps ctx's values (namespace, logger) without its
// cancellation, with a deadline of its own.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}

// checkHostPorts refuses host ports that another pod of the node publishes.
func (r *Containerd) checkHostPorts(ctx context.Context, replica string, ports []protocol.PortBinding) error {
	cs, err := r.list(ctx, fmt.Sprintf("labels.%q", LabelPorts))
	if err != nil {
		return err
	}
	for _, c := range cs {
		if c.labels[LabelReplica] == replica {
			continue
		}
		for _, used := range portsOf(c.labels) {
			for _, p := range ports {
				if portKey(p) == portKey(used) {
					return fmt.Errorf("%w: %s/%d is published by replica %s", ErrHostPortInUse, p.Protocol, p.HostPort, c.labels[LabelReplica])
				}
			}
		}
	}
	return nil
}

func (r *Containerd) startContainer(ctx context.Context, spec protocol.ReplicaSpec, name string, net podNet, volumes map[string]string, start bool) error {
	var c = spec.Pod.Containers[0]
	initIndex := -1
	for i, cc := range spec.Pod.AllContainers() {
		if cc.Name == name {
			c = cc
			if i < len(spec.Pod.InitContainers) {
				initIndex = i
			}
		}
	}
	id := containerID(spec.ID, c.Name)
	cont, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		img, err := r.image(ctx, c.Image, c.ImagePullPolicy, spec.Pod.RegistryAuth)
		if err != nil {
			return err
		}
		if err := checkNonRoot(ctx, img, c); err != nil {
			return err
		}
		opts := []oci.SpecOpts{oci.WithImageConfig(img)}
		switch {
		case len(c.Command) > 0:
			opts = append(opts, oci.WithProcessArgs(append(append([]string{}, c.Command...), c.Args...)...))
		case len(c.Args) > 0:
			opts = append(opts, oci.WithImageConfigArgs(img, c.Args))
		}
		env := make([]string, 0, len(c.Env))
		for _, e := range c.Env {
			env = append(env, e.Name+"="+r.downward(e, spec, net))
		}
		opts = append(opts, oci.WithEnv(env))
		if c.WorkingDir != "" {
			opts = append(opts, oci.WithProcessCwd(c.WorkingDir))
		}
		switch {
		case net.host && r.hostNS != "":
			host, _ := os.Hostname()
			opts = append(opts, oci.WithHostname(host), oci.WithHostHostsFile, oci.WithHostResolvconf,
				oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: r.hostNS}))
		case net.host:
			// The node's network, as Kubernetes' hostNetwork: its interfaces,
			// hostname, /etc/hosts and resolv.conf.
			host, _ := os.Hostname()
			opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace), oci.WithHostname(host),
				oci.WithHostHostsFile, oci.WithHostResolvconf)
		default:
			switch {
			case r.resolvConf != nil && r.network != nil && spec.Pod.DNSPolicy != "Default":
				conf, err := r.podResolvConf(desired.WorkloadNamespace(spec.Workload))
				if err != nil {
					return err
				}
				opts = append(opts, oci.WithMounts([]specs.Mount{{Destination: "/etc/resolv.conf", Type: "bind", Source: conf, Options: []string{"rbind", "ro"}}}))
			case r.network != nil || spec.Pod.DNSPolicy == "Default":
				if _, err := os.Stat("/etc/resolv.conf"); err == nil {
					opts = append(opts, oci.WithHostResolvconf)
				}
			}
			host := spec.ID // a pod's hostname, as Kubernetes', is its name unless it sets one
			if spec.Pod.Hostname != "" {
				host = spec.Pod.Hostname
			}
			opts = append(opts, oci.WithHostname(host),
				oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: net.nsPath}))
		}
		if spec.Pod.HostPID {
			opts = append(opts, oci.WithHostNamespace(specs.PIDNamespace))
		}
		if spec.Pod.HostIPC {
			opts = append(opts, oci.WithHostNamespace(specs.IPCNamespace))
		}
		mounts, err := volumeMounts(c, spec.Pod, volumes)
		if err != nil {
			return err
		}
		opts = append(opts, mounts)
		sec := securityOpts(c.SecurityContext, filepath.Join(r.dataDir, "seccomp"))
		opts = append(opts, sec...)
		opts = append(opts, podGroupsAndSysctls(spec.Pod))
		opts = append(opts, resourceLimits(c.Resources)...)
		labels := net.labels()
		for k, v := range map[string]string{
			LabelReplica: spec.ID, LabelWorkload: spec.Workload, LabelSpecHash: spec.SpecHash,
			LabelContainer: c.Name, LabelRestartPolicy: restartPolicy(spec.Pod.RestartPolicy),
			LabelProbes: probesLabel(c), LabelGrace: strconv.Itoa(spec.Pod.TerminationGracePeriodSeconds), LabelLifecycle: lifecycleLabel(c),
		} {
			labels[k] = v
		}
		switch {
		case initIndex >= 0:
			labels[LabelInit] = strconv.Itoa(initIndex)
			labels[LabelRestartPolicy] = initRestartPolicy(spec.Pod.RestartPolicy, c.Sidecar)
			if c.Sidecar {
				labels[LabelSidecar] = "true"
			}
		case len(spec.Pod.InitContainers) > 0:
			labels[LabelAwaitsInit] = "true"
		}
		cont, err = r.client.NewContainer(ctx, id,
			client.WithImage(img),
			client.WithSnapshotter(Snapshotter),
			client.WithNewSnapshot(id, img),
			client.WithContainerLabels(labels),
			client.WithNewSpec(opts...))
		if err != nil {
			return fmt.Errorf("create container: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("load container: %w", err)
	}
	if !start {
		return nil // started in its turn (advanceInit)
	}

	task, err := cont.Task(ctx, nil)
	switch {
	case errdefs.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("load task: %w", err)
	default:
		st, err := task.Status(ctx)
		if err != nil {
			return fmt.Errorf("task status: %w", err)
		}
		if st.Status == client.Running {
			return nil // already started: Start is idempotent
		}
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete old task: %w", err)
		}
	}
	r.hook("container")
	return r.runTask(ctx, cont, nil, 0)
}

// runTask makes and starts a container's task (trying again up to retries
// times 100 ms apart: the shim of an old task may still be cleaning up its
// bundle), logging to logs/<container>.log, then runs its postStart hook.
// labels are the container's (nil: read them).
func (r *Containerd) runTask(ctx context.Context, c client.Container, labels map[string]string, retries int) error {
	var task client.Task
	var err error
	for attempt := 0; ; attempt++ {
		task, err = c.NewTask(ctx, cio.LogFile(filepath.Join(r.dataDir, "logs", c.ID()+".log")))
		if err == nil || attempt >= retries || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("create task: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		_, _ = task.Delete(ctx, client.WithProcessKill)
		return fmt.Errorf("start task: %w", err)
	}
	if labels == nil {
		if labels, err = c.Labels(ctx); err != nil {
			return nil // started; its hook is not known
		}
	}
	r.postStart(ctx, c, labels, task)
	return nil
}

// image returns the image ref, pulling it as policy says: Never uses only
// what is present, IfNotPresent pulls when it is absent, Always pulls every
// time (falling back to the present image when the registry cannot be
// reached, so imported images keep working on an air-gapped node).
func (r *Containerd) image(ctx context.Context, ref, policy string, auth []desired.RegistryAuth) (client.Image, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", ref, err)
	}
	name := named.String()
	img, err := r.client.GetImage(ctx, name)
	present := err == nil
	if err != nil && !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("image %s: %w", name, err)
	}
	// The cluster's image store (baton image push) comes before registries.
	if !present && r.images != nil && policy != "Always" {
		if err := r.fromStore(ctx, name); err == nil {
			if img, err = r.client.GetImage(ctx, name); err != nil {
				return nil, fmt.Errorf("image %s: %w", name, err)
			}
			present = true
		}
	}
	switch {
	case policy == "Never" && !present:
		return nil, &MissingImageError{Image: name, Detail: "is not present on the node and imagePullPolicy is Never"}
	case policy == "Always" || !present:
		pulled, perr := r.pull(ctx, name, auth)
		switch {
		case perr == nil:
			img = pulled
		case present:
			zerolog.Ctx(ctx).Warn().Err(perr).Str("image", name).Msg("pull failed; using the image present on the node")
		case r.images != nil && r.fromStore(ctx, name) == nil:
			if img, err = r.client.GetImage(ctx, name); err != nil {
				return nil, fmt.Errorf("image %s: %w", name, err)
			}
		default:
			return nil, &MissingImageError{Image: name, Detail: "is not present on the node, nor in the cluster's image store, and pulling it failed: " + perr.Error()}
		}
	}
	ok, err := img.IsUnpacked(ctx, Snapshotter)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", name, err)
	}
	if !ok {
		if err := img.Unpack(ctx, Snapshotter); err != nil {
			return nil, fmt.Errorf("unpack image %s: %w", name, err)
		}
	}
	return img, nil
}

type labeled struct {
	c       client.Container
	labels  map[string]string
	created time.Time
}

func (r *Containerd) containersOf(ctx context.Context, replica string) ([]labeled, error) {
	return r.list(ctx, fmt.Sprintf("labels.%q==%q", LabelReplica, replica))
}

func (r *Containerd) list(ctx context.Context, filter string) ([]labeled, error) {
	cs, err := r.client.Containers(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]labeled, 0, len(cs))
	for _, c := range cs {
		info, err := c.Info(ctx, client.WithoutRefreshedMetadata)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", c.ID(), err)
		}
		out = append(out, labeled{c: c, labels: info.Labels, created: info.CreatedAt})
	}
	return out, nil
}

// Stop implements Runtime.
func (r *Containerd) Stop(ctx context.Context, id string, grace time.Duration) error {
	defer r.markStopping(id)()
	ctx = r.ctx(ctx)
	cs, err := r.containersOf(ctx, id)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(cs))
	for i, c := range cs {
		// The pod's own grace period wins over the agent's default.
		g := grace
		if s, err := strconv.Atoi(c.labels[LabelGrace]); err == nil && s > 0 && grace > 0 {
			g = time.Duration(s) * time.Second
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.stopContainer(ctx, c, g)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop replica %s: %w", id, err)
	}
	// The network goes before the containers: their labels (or the pod's
	// network record, when no container was made) are the record of it, so a
	// failed detach is retried by the next stop.
	net, hasNet := r.readNetRecord(id)
	for _, c := range cs {
		if p := c.labels[LabelNetNS]; p != "" {
			net, hasNet = podNet{nsPath: p, ip: c.labels[LabelPodIP], ports: portsOf(c.labels)}, true
			break
		}
	}
	if hasNet && net.nsPath != "" {
		if r.network != nil {
			nsArg := net.nsPath
			if gone, err := netns.LoadNetNS(net.nsPath).Closed(); err != nil || gone {
				// Not a live namespace any more (the machine rebooted), or
				// never made: DEL without one still frees the address and
				// the rules.
				nsArg = ""
			}
			if err := r.network.Detach(ctx, id, nsArg, net.ports); err != nil {
				return fmt.Errorf("stop replica %s: %w", id, err)
			}
		}
		if err := netns.LoadNetNS(net.nsPath).Remove(); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("stop replica %s: remove network namespace: %w", id, err)
		}
	}
	for _, c := range cs {
		if err := c.c.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("stop replica %s: delete container %s: %w", id, c.c.ID(), err)
		}
		_ = os.Remove(filepath.Join(r.dataDir, "logs", c.c.ID()+".log"))
		_ = os.Remove(filepath.Join(r.dataDir, "logs", c.c.ID()+".log.1"))
	}
	if err := r.removeVolumes(id); err != nil {
		return fmt.Errorf("stop replica %s: %w", id, err)
	}
	return nil
}

func (r *Containerd) stopContainer(ctx context.Context, lc labeled, grace time.Duration) error {
	c := lc.c
	task, err := c.Task(ctx, nil)
	if err == nil {
		if lc.labels[LabelLifecycle] != "" {
			if st, serr := task.Status(ctx); serr == nil && st.Status == client.Running {
				grace = r.preStop(ctx, lc, task, grace)
			}
		}
		if err := killTask(ctx, task, grace); err != nil {
			return fmt.Errorf("container %s: %w", c.ID(), err)
		}
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("container %s: delete task: %w", c.ID(), err)
		}
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("container %s: load task: %w", c.ID(), err)
	}
	return nil
}

// killTask sends SIGTERM, waits up to grace, then SIGKILL.
func killTask(ctx context.Context, task client.Task, grace time.Duration) error {
	st, err := task.Status(ctx)
	if err != nil {
		return fmt.Errorf("task status: %w", err)
	}
	if st.Status == client.Stopped {
		return nil
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		return fmt.Errorf("wait task: %w", err)
	}
	if grace > 0 {
		if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("send SIGTERM: %w", err)
		}
		select {
		case <-exited:
			return nil
		case <-time.After(grace):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := task.Kill(ctx, syscall.SIGKILL, client.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("send SIGKILL: %w", err)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("task did not exit after SIGKILL")
	case <-ctx.Done():
		return fmt.Errorf("wait for exit after SIGKILL: %w", ctx.Err())
	}
}

// List implements Runtime.
func (r *Containerd) List(ctx context.Context) ([]protocol.Replica, error) {
	ctx = r.ctx(ctx)
	cs, err := r.list(ctx, fmt.Sprintf("labels.%q", LabelReplica))
	if err != nil {
		return nil, err
	}
	byID := map[string]*protocol.Replica{}
	// The tasks of running containers, read once here for readiness and usage.
	running := map[string]client.Task{}
	states := make([]cstate, len(cs))
	for i, c := range cs {
		states[i].state, states[i].code, states[i].msg, states[i].task = containerState(ctx, c.c)
		if why := c.labels[LabelKilledBy]; why != "" && states[i].state == protocol.StateExited && states[i].code == sigkillExit &&
			!strings.HasPrefix(states[i].msg, "OOMKilled") {
			states[i].msg = fmt.Sprintf("killed: %s (exit code %d)", why, states[i].code)
		}
	}
	pods := initStatus(cs, states)
	for i, c := range cs {
		id := c.labels[LabelReplica]
		rep, ok := byID[id]
		if !ok {
			rep = &protocol.Replica{ID: id, Workload: c.labels[LabelWorkload], SpecHash: c.labels[LabelSpecHash],
				State: protocol.StateRunning, StartedAt: c.created.UTC(),
				PodIP: c.labels[LabelPodIP], HostNetwork: c.labels[LabelHostNetwork] == "true", Ports: portsOf(c.labels)}
			byID[id] = rep
		}
		if c.created.Before(rep.StartedAt) {
			rep.StartedAt = c.created.UTC()
		}
		state, code, msg, task := states[i].state, states[i].code, states[i].msg, states[i].task
		if state == protocol.StateRunning {
			running[c.c.ID()] = task
		}
		restarts, _ := strconv.Atoi(c.labels[LabelRestarts])
		rep.Restarts += restarts
		var skip bool
		state, msg, skip = pods[id].view(c, state, code, msg, task)
		if skip {
			continue
		}
		if state == protocol.StateExited && c.labels[LabelRestartPolicy] != "" {
			if ok, _, _ := restartDecision(c.labels[LabelRestartPolicy], code, restarts, 0, r.backoff); ok {
				state, msg = protocol.StateWaiting, fmt.Sprintf("back-off restarting (%s, %d restarts)", msg, restarts)
			}
		}
		if last := c.labels[LabelLastExit]; last != "" && rep.LastExit == "" {
			rep.LastExit = last
		}
		// A pod is as bad as its worst container.
		if severity(state) > severity(rep.State) {
			rep.State, rep.ExitCode, rep.Message = state, code, fmt.Sprintf("container %s: %s", c.labels[LabelContainer], msg)
			rep.Reason = exitReason(protocol.StateExited, code, msg)
			if state != protocol.StateExited && state != protocol.StateWaiting {
				rep.Reason = ""
			}
		}
	}
	// Readiness: every container running and, where it has probes, started
	// and ready.
	ready, problems := r.syncProbers(ctx, cs, running)
	for id, rep := range byID {
		rep.Ready = rep.State == protocol.StateRunning && ready[id]
		if msg, ok := problems[id]; ok && rep.State == protocol.StateRunning {
			rep.Message = msg
		}
	}

	// Usage, every usageEvery per replica: the sum over its running containers.
	now := time.Now()
	sums := map[string]*sample{}
	keep := map[string]bool{}
	for _, c := range cs {
		id := c.labels[LabelReplica]
		keep[id] = true
		t, ok := running[c.c.ID()]
		if !ok || byID[id].State != protocol.StateRunning || !r.usage.due(id, now) {
			continue
		}
		if cpu, mem, ok := containerUsage(ctx, t); ok {
			if sums[id] == nil {
				sums[id] = &sample{at: now}
			}
			sums[id].cpuNano += cpu
			sums[id].memory += mem
		}
	}
	r.usage.forget(keep)
	out := make([]protocol.Replica, 0, len(byID))
	for id, rep := range byID {
		if s := sums[id]; s != nil {
			rep.Usage = r.usage.observe(id, *s)
		} else if rep.State == protocol.StateRunning {
			rep.Usage = r.usage.lastFor(id)
		}
		out = append(out, *rep)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func severity(s protocol.ReplicaState) int {
	switch s {
	case protocol.StateRunning:
		return 0
	case protocol.StateCreating:
		return 1
	case protocol.StateWaiting:
		return 2
	case protocol.StateExited:
		return 3
	default:
		return 4
	}
}

// restartPolicy is the label value of a pod's policy ("Always" by default).
func restartPolicy(p string) string {
	if p == "" {
		return "Always"
	}
	return p
}

// containerState reads a container's task: its state, exit code, a message,
// and the task itself when there is one.
func containerState(ctx context.Context, c client.Container) (protocol.ReplicaState, int, string, client.Task) {
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return protocol.StateExited, -1, "no task", nil
	}
	if err != nil {
		return protocol.StateFailed, -1, err.Error(), nil
	}
	st, err := task.Status(ctx)
	if errdefs.IsNotFound(err) {
		// Deleted since it was loaded: being stopped or restarted, not failed.
		return protocol.StateExited, -1, "no task", nil
	}
	if err != nil {
		return protocol.StateFailed, -1, err.Error(), task
	}
	switch st.Status {
	case client.Running, client.Paused, client.Pausing:
		return protocol.StateRunning, 0, "running", task
	case client.Created:
		return protocol.StateCreating, 0, "created", task
	case client.Stopped:
		if oomKilled(ctx, c) {
			return protocol.StateExited, int(st.ExitStatus), "OOMKilled: out of memory (exit code 137)", task
		}
		return protocol.StateExited, int(st.ExitStatus), fmt.Sprintf("exited with code %d", st.ExitStatus), task
	default:
		return protocol.StateFailed, -1, "unknown task status " + string(st.Status), task
	}
}

// Changes implements Runtime: containerd's task exit events, and readiness
// changes found by the probers. The channel is never closed.
func (r *Containerd) Changes(ctx context.Context) <-chan struct{} {
	r.watch(ctx)
	return r.changed
}

// Import imports an OCI (or Docker) image archive into namespace and unpacks
// it, returning the names of the images it held.
func Import(ctx context.Context, c *client.Client, namespace, archive string) ([]string, error) {
	ctx = namespaces.WithNamespace(ctx, namespace)
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	imgs, err := c.Import(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", archive, err)
	}
	var names []string
	for _, im := range imgs {
		img := client.NewImage(c, im)
		if err := img.Unpack(ctx, Snapshotter); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", im.Name, err)
		}
		names = append(names, im.Name)
	}
	return names, nil
}

// Debug returns the process IDs of a replica's running containers, by
// container name, and the path of its network namespace; for tests and
// troubleshooting.
func (r *Containerd) Debug(ctx context.Context, id string) (map[string]int, string) {
	ctx = r.ctx(ctx)
	pids := map[string]int{}
	nsPath := ""
	cs, err := r.containersOf(ctx, id)
	if err != nil {
		return pids, ""
	}
	for _, c := range cs {
		nsPath = c.labels[LabelNetNS]
		if t, err := c.c.Task(ctx, nil); err == nil {
			pids[c.labels[LabelContainer]] = int(t.Pid())
		}
	}
	return pids, nsPath
}

// OCISpec returns the runtime spec of one container of a replica.
func (r *Containerd) OCISpec(ctx context.Context, id, container string) (*oci.Spec, error) {
	ctx = r.ctx(ctx)
	c, err := r.client.LoadContainer(ctx, containerID(id, container))
	if err != nil {
		return nil, err
	}
	return c.Spec(ctx)
}
