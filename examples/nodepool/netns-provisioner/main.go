// Command netns-provisioner is Baton's reference node-pool provisioner: it
// makes a "machine" on this host as a network namespace plugged into a
// switch (a bridge in another network namespace) and runs the real
// `baton agent --join` in it, with the one-time token Baton minted for it.
// It speaks the provisioner protocol (docs/nodepools.md): one JSON request
// on stdin (create, delete or list), one JSON answer on stdout.
//
//	netns-provisioner --switch NETNS [--bridge br0] --subnet 10.99.0.0/24 --state DIR --baton BIN
//	  [--containerd SOCKET] [--first 100] [--agent-arg ARG]...
//
// Machines are recorded in --state (one NAME.json each); delete and list
// read them, and delete of an unknown machine succeeds (Baton may ask
// again after a leader change). It needs root, iproute2, util-linux and
// containerd's ctr.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"
)

type template struct {
	Extra  map[string]int64  `json:"extra"`
	Labels map[string]string `json:"labels"`
	Taints []struct {
		Key    string `json:"key"`
		Value  string `json:"value"`
		Effect string `json:"effect"`
	} `json:"taints"`
}

type request struct {
	Version  int       `json:"version"`
	Op       string    `json:"op"`
	Pool     string    `json:"pool"`
	Join     string    `json:"join"`
	Template *template `json:"template"`
	Create   []struct {
		Name      string `json:"name"`
		JoinToken string `json:"joinToken"`
	} `json:"create"`
	Delete *machine `json:"delete"`
}

type machine struct {
	Name string `json:"name"`
	ID   string `json:"id,omitempty"`
}

type answer struct {
	Machines []machine `json:"machines"`
	Error    string    `json:"error,omitempty"`
}

// record is a machine made here.
type record struct {
	Name   string `json:"name"`
	Pool   string `json:"pool"`
	NetNS  string `json:"netns"`
	Port   string `json:"port"` // its veth on the switch
	Index  int    `json:"index"`
	IP     string `json:"ip"`
	PID    int    `json:"pid"`
	Socket string `json:"socket"`
	CtrNS  string `json:"containerdNamespace"`
}

type config struct {
	sw, bridge, subnet, state, baton, socket string
	first                                    int
	agentArgs                                []string
}

func main() {
	var c config
	var agentArgs multi
	flag.StringVar(&c.sw, "switch", "", "network namespace of the switch (holds --bridge)")
	flag.StringVar(&c.bridge, "bridge", "br0", "bridge in the switch namespace")
	flag.StringVar(&c.subnet, "subnet", "10.99.0.0/24", "the machines' subnet")
	flag.IntVar(&c.first, "first", 100, "host number of the first machine's address in --subnet")
	flag.StringVar(&c.state, "state", "", "directory of the machines' records and data")
	flag.StringVar(&c.baton, "baton", "baton", "the baton binary the machines run")
	flag.StringVar(&c.socket, "containerd", "/run/containerd/containerd.sock", "containerd socket the machines' agents use")
	flag.Var(&agentArgs, "agent-arg", "another argument for baton agent (repeatable)")
	flag.Parse()
	c.agentArgs = agentArgs
	a := run(c)
	_ = json.NewEncoder(os.Stdout).Encode(a)
}

func run(c config) answer {
	if c.sw == "" || c.state == "" {
		return answer{Error: "--switch and --state are required"}
	}
	var req request
	dec := json.NewDecoder(os.Stdin)
	if err := dec.Decode(&req); err != nil {
		return answer{Error: "read the request: " + err.Error()}
	}
	if req.Version != 1 {
		return answer{Error: fmt.Sprintf("protocol version %d: this provisioner speaks 1", req.Version)}
	}
	if err := os.MkdirAll(c.state, 0o700); err != nil {
		return answer{Error: err.Error()}
	}
	// One call at a time on a state dir (Baton may call for two pools at once).
	lock, err := os.OpenFile(filepath.Join(c.state, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return answer{Error: err.Error()}
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return answer{Error: "lock the state dir: " + err.Error()}
	}
	var out []machine
	switch req.Op {
	case "create":
		out, err = create(c, req)
	case "delete":
		if req.Delete == nil {
			return answer{Error: "delete: no machine named"}
		}
		err = remove(c, req.Delete.Name)
		out = []machine{}
	case "list":
		out, err = list(c, req.Pool)
	default:
		err = fmt.Errorf("unknown op %q", req.Op)
	}
	if err != nil {
		return answer{Machines: out, Error: err.Error()}
	}
	if out == nil {
		out = []machine{}
	}
	return answer{Machines: out}
}

// create makes each machine: a namespace plugged into the switch, and the
// agent joining as its name. Machines made before one fails are answered.
func create(c config, req request) ([]machine, error) {
	out := []machine{}
	for _, m := range req.Create {
		rec, err := makeMachine(c, req, m.Name, m.JoinToken)
		if err != nil {
			return out, fmt.Errorf("machine %s: %w", m.Name, err)
		}
		out = append(out, machine{Name: m.Name, ID: rec.NetNS})
	}
	return out, nil
}

// validName is a node name (a DNS label): it names files and namespaces.
var validName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

func makeMachine(c config, req request, name, token string) (rec record, retErr error) {
	if !validName.MatchString(name) || !validName.MatchString(req.Pool) {
		return rec, fmt.Errorf("machine %q of pool %q: not a node name", name, req.Pool)
	}
	if _, err := os.Stat(recordPath(c, name)); err == nil {
		return rec, errors.New("a machine of that name exists")
	}
	prefix, err := netip.ParsePrefix(c.subnet)
	if err != nil {
		return rec, fmt.Errorf("--subnet: %w", err)
	}
	idx, addr, err := freeAddress(c, prefix.Masked())
	if err != nil {
		return rec, err
	}
	rec = record{Name: name, Pool: req.Pool, NetNS: "bm-" + name, Port: fmt.Sprintf("pm%d", idx), Index: idx, IP: addr.String(),
		Socket: c.socket, CtrNS: "baton-" + name}
	dir := filepath.Join(c.state, name)
	defer func() {
		if retErr != nil {
			_ = exec.Command("ip", "netns", "del", rec.NetNS).Run()
			_ = os.RemoveAll(dir)
		}
	}()
	steps := [][]string{
		{"netns", "add", rec.NetNS},
		{"-n", rec.NetNS, "link", "set", "lo", "up"},
		{"-n", c.sw, "link", "add", rec.Port, "type", "veth", "peer", "name", "eth0", "netns", rec.NetNS},
		{"-n", c.sw, "link", "set", rec.Port, "master", c.bridge},
		{"-n", c.sw, "link", "set", rec.Port, "up"},
		{"-n", rec.NetNS, "addr", "add", fmt.Sprintf("%s/%d", rec.IP, prefix.Bits()), "dev", "eth0"},
		{"-n", rec.NetNS, "link", "set", "eth0", "up"},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			return rec, fmt.Errorf("ip %s: %v: %s", strings.Join(s, " "), err, strings.TrimSpace(string(out)))
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return rec, err
	}
	args := []string{"--net=/var/run/netns/" + rec.NetNS, "--", c.baton, "agent", "--join", req.Join, "--token", token, "--node", name,
		"--data-dir", dir, "--containerd", c.socket, "--namespace", rec.CtrNS}
	if t := req.Template; t != nil {
		for _, k := range sortedKeys(t.Labels) {
			args = append(args, "--label", k+"="+t.Labels[k])
		}
		for _, tt := range t.Taints {
			kv := tt.Key
			if tt.Value != "" {
				kv += "=" + tt.Value
			}
			args = append(args, "--taint", kv+":"+tt.Effect)
		}
		// What the template has beyond cpu and memory, advertised (all
		// these machines share one host: nothing else would say it).
		for _, k := range sortedKeys(t.Extra) {
			args = append(args, "--resource", fmt.Sprintf("%s=%d", k, t.Extra[k]))
		}
	}
	args = append(args, c.agentArgs...)
	logf, err := os.OpenFile(filepath.Join(dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return rec, err
	}
	defer logf.Close()
	cmd := exec.Command("nsenter", args...)
	// Its own session: it outlives this provisioner, and the provisioner's
	// process group being killed at a timeout does not take it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return rec, fmt.Errorf("start the agent: %w", err)
	}
	rec.PID = cmd.Process.Pid
	_ = cmd.Process.Release()
	b, _ := json.Marshal(rec)
	if err := os.WriteFile(recordPath(c, name), b, 0o600); err != nil {
		_ = syscall.Kill(-rec.PID, syscall.SIGKILL)
		return rec, err
	}
	return rec, nil
}

// remove stops the machine's agent, removes what is left of its
// containers, and unplugs and removes its namespace.
func remove(c config, name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("machine %q: not a node name", name)
	}
	b, err := os.ReadFile(recordPath(c, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil // never made, or deleted already
	}
	if err != nil {
		return err
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return fmt.Errorf("record of %s: %w", name, err)
	}
	if rec.PID > 0 && isAgent(rec.PID, name) {
		_ = syscall.Kill(-rec.PID, syscall.SIGTERM)
		for i := 0; i < 100 && syscall.Kill(rec.PID, 0) == nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		_ = syscall.Kill(-rec.PID, syscall.SIGKILL)
	}
	// What the drained machine still runs (nothing, usually): its tasks
	// and containers in its own containerd namespace.
	ctr := func(args ...string) (string, error) {
		out, err := exec.Command("ctr", append([]string{"--address", rec.Socket, "--namespace", rec.CtrNS}, args...)...).CombinedOutput()
		return string(out), err
	}
	if ids, err := ctr("containers", "list", "--quiet"); err == nil {
		for _, id := range strings.Fields(ids) {
			_, _ = ctr("tasks", "kill", "--signal", "SIGKILL", id)
			_, _ = ctr("tasks", "delete", "--force", id)
			_, _ = ctr("containers", "delete", id)
		}
	}
	// Its images (each gone with its content before the answer), then its
	// containerd namespace: a namespace left is a failed delete, which
	// Baton asks again.
	if refs, err := ctr("images", "list", "--quiet"); err == nil && len(strings.Fields(refs)) > 0 {
		if out, err := ctr(append([]string{"images", "remove", "--sync"}, strings.Fields(refs)...)...); err != nil {
			return fmt.Errorf("remove the images of containerd namespace %s: %v: %s", rec.CtrNS, err, strings.TrimSpace(out))
		}
	}
	if out, err := exec.Command("ctr", "--address", rec.Socket, "namespaces", "remove", rec.CtrNS).CombinedOutput(); err != nil && !strings.Contains(string(out), "not found") {
		return fmt.Errorf("remove containerd namespace %s: %v: %s", rec.CtrNS, err, strings.TrimSpace(string(out)))
	}
	// Its disk goes with it: what the agent mounted there (pods' network
	// namespaces) first.
	dir := filepath.Join(c.state, name)
	if err := unmountUnder(dir); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if out, err := exec.Command("ip", "netns", "del", rec.NetNS).CombinedOutput(); err != nil && !strings.Contains(string(out), "No such file") {
		return fmt.Errorf("ip netns del %s: %v: %s", rec.NetNS, err, strings.TrimSpace(string(out)))
	}
	_ = exec.Command("ip", "-n", c.sw, "link", "del", rec.Port).Run() // gone with its peer, usually
	return os.Remove(recordPath(c, name))
}

// isAgent reports whether process pid is this machine's agent (after a
// reboot, or once the agent died, the number may be another process's).
func isAgent(pid int, name string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(b), "\x00agent\x00") && strings.Contains(string(b), "\x00--node\x00"+name+"\x00")
}

// unmountUnder unmounts every mount point under dir, deepest first.
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	return nil
}

func list(c config, pool string) ([]machine, error) {
	recs, err := records(c)
	out := []machine{}
	for _, r := range recs {
		if pool == "" || r.Pool == pool {
			out = append(out, machine{Name: r.Name, ID: r.NetNS})
		}
	}
	return out, err
}

func records(c config) ([]record, error) {
	paths, err := filepath.Glob(filepath.Join(c.state, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []record
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return out, err
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil {
			return out, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// freeAddress is the lowest host number from --first that no machine
// holds, with its address in prefix (short of its broadcast address).
func freeAddress(c config, prefix netip.Prefix) (int, netip.Addr, error) {
	recs, err := records(c)
	if err != nil {
		return 0, netip.Addr{}, err
	}
	used := map[int]bool{}
	for _, r := range recs {
		used[r.Index] = true
	}
	addr := prefix.Addr()
	for range c.first {
		addr = addr.Next()
	}
	for i := c.first; prefix.Contains(addr) && prefix.Contains(addr.Next()); i, addr = i+1, addr.Next() {
		if !used[i] {
			return i, addr, nil
		}
	}
	return 0, netip.Addr{}, fmt.Errorf("no free address left in %s from host %d", prefix, c.first)
}

func recordPath(c config, name string) string { return filepath.Join(c.state, name+".json") }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, " ") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }
