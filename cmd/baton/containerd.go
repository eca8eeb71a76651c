package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/batonhq/baton/nodeagent"
)

// DefaultContainerdSocket is where Debian's containerd listens.
const DefaultContainerdSocket = "/run/containerd/containerd.sock"

var errNoContainerd = errors.New("containerd is not running and no containerd binary is installed.\n" +
	"Install it with:  sudo apt-get install -y containerd runc\n" +
	"(baton up starts containerd itself when it is installed but not running)")

// ensureContainerd returns the socket of a containerd that answers: the one at
// socket, or one baton starts as a child process with its root, state and
// socket under dataDir (like k3s). stop ends the child, if any.
func ensureContainerd(ctx context.Context, socket, dataDir string) (sock string, stop func(), err error) {
	if c, err := nodeagent.DialContainerd(ctx, socket); err == nil {
		c.Close()
		return socket, func() {}, nil
	}
	bin, err := exec.LookPath("containerd")
	if err != nil {
		return "", nil, errNoContainerd
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return "", nil, errors.New("runc is not installed; install it with: sudo apt-get install -y runc")
	}
	dir := filepath.Join(dataDir, "containerd")
	sock = filepath.Join(dir, "containerd.sock")
	if c, err := nodeagent.DialContainerd(ctx, sock); err == nil {
		c.Close() // ours, left from an earlier run
		return sock, func() {}, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	conf := filepath.Join(dir, "config.toml")
	body := fmt.Sprintf("version = 2\nroot = %q\nstate = %q\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = %q\n",
		filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return "", nil, err
	}
	logf, err := os.OpenFile(filepath.Join(dir, "containerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "--config", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a Ctrl-C for baton must not kill containerd first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return "", nil, fmt.Errorf("start containerd: %w", err)
	}
	zerolog.Ctx(ctx).Info().Str("socket", sock).Str("log", logf.Name()).Msg("started containerd")
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logf.Close()
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if c, err := nodeagent.DialContainerd(ctx, sock); err == nil {
			c.Close()
			return sock, stop, nil
		}
	}
	stop()
	return "", nil, fmt.Errorf("containerd did not answer at %s within 30s; see %s", sock, logf.Name())
}
