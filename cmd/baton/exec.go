package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler"
)

func execCmd() *cobra.Command {
	var (
		bus        busFlags
		container  string
		stdin, tty bool
	)
	cmd := &cobra.Command{
		Use:   "exec WORKLOAD|REPLICA [-c CONTAINER] [-i] [-t] -- COMMAND [ARG...]",
		Short: "Run a command in a running container, through its node's agent (admins only); its exit code is baton's",
		Long: `exec runs COMMAND in a container of a replica (a workload's first running
replica when given a workload; job/NAME for a Job's), as the container's
user, with its environment, as kubectl exec does: -i sends standard input,
-t gives the command a terminal (when standard input is one) that follows
this terminal's size. The node's agent runs it; only an admin's credential
may ask. baton exits with the command's exit code.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if dash := cmd.ArgsLenAtDash(); dash != 1 || len(args) < 2 {
				return errors.New("want WORKLOAD|REPLICA -- COMMAND [ARG...] (the command after --)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			nc, err := dialCLI(bus, "baton-exec")
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			replica, node, err := execTarget(ctx, nc, args[0])
			cancel()
			if err != nil {
				return err
			}
			req := protocol.ExecRequest{Replica: replica, Container: container, Command: args[1:]}
			eio := nodeagent.ExecIO{Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr()}
			if stdin {
				eio.Stdin = cmd.InOrStdin()
			}
			if tty {
				f, isFile := cmd.InOrStdin().(*os.File)
				if !isFile || !term.IsTerminal(int(f.Fd())) {
					fmt.Fprintln(cmd.ErrOrStderr(), "Unable to use a TTY: standard input is not a terminal (running without one)")
				} else {
					fd := int(f.Fd())
					req.TTY = true
					if w, h, err := term.GetSize(fd); err == nil {
						req.Cols, req.Rows = uint16(w), uint16(h)
					}
					if stdin {
						old, err := term.MakeRaw(fd)
						if err != nil {
							return fmt.Errorf("terminal: %w", err)
						}
						defer func() { _ = term.Restore(fd, old) }()
					}
					resize := make(chan [2]uint16, 1)
					winch := make(chan os.Signal, 1)
					signal.Notify(winch, syscall.SIGWINCH)
					defer signal.Stop(winch)
					go func() {
						for range winch {
							if w, h, err := term.GetSize(fd); err == nil {
								select {
								case resize <- [2]uint16{uint16(h), uint16(w)}:
								default:
								}
							}
						}
					}()
					eio.Resize = resize
				}
			}
			// A refusal by the bus (not an admin) ends it at once.
			var code int
			err = nc.guard(cmd.Context(), "exec (admins only)", func(ctx context.Context) (err error) {
				code, err = nodeagent.Exec(ctx, nc.Conn, node, req, eio)
				return err
			})
			if errors.Is(err, nats.ErrPermissionViolation) {
				return err
			}
			if err != nil {
				return fmt.Errorf("exec in %s on %s: %w", replica, node, err)
			}
			if code != 0 {
				return exitError{code: code}
			}
			return nil
		},
	}
	bus.register(cmd.Flags())
	cmd.Flags().StringVarP(&container, "container", "c", "", "container of the pod (default: its first)")
	cmd.Flags().BoolVarP(&stdin, "stdin", "i", false, "send standard input to the command")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "give the command a terminal (when standard input is one)")
	return cmd
}

// execTarget finds the replica that target names (a replica ID, or a
// workload's first running replica) and its node.
func execTarget(ctx context.Context, nc *cliConn, target string) (replica, node string, err error) {
	st, err := reconciler.FetchStatus(ctx, nc.Conn, reconciler.StatusRequest{Replicas: reconciler.ReplicasAll})
	if err != nil {
		return "", "", err
	}
	pods := st.Replicas()
	if reps, ok := pods[target]; ok {
		for _, r := range reps { // sorted by ID: the first running one
			if r.State == protocol.StateRunning {
				return r.ID, r.Node, nil
			}
		}
		return "", "", fmt.Errorf("%s has no running replica", target)
	}
	for _, reps := range pods {
		for _, r := range reps {
			if r.ID == target {
				return r.ID, r.Node, nil
			}
		}
	}
	return "", "", fmt.Errorf("no workload or replica named %q (baton status lists them)", target)
}
