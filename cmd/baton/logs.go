package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler"
)

func logsCmd() *cobra.Command {
	var (
		bus                busFlags
		replica, container string
		follow             bool
		tail               int
	)
	cmd := &cobra.Command{
		Use:   "logs WORKLOAD",
		Short: "Print (or follow) the output of a workload's containers, from their nodes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			nc, err := dialCLI(bus, "baton-logs")
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			st, err := reconciler.FetchStatus(ctx, nc.Conn, reconciler.StatusRequest{Replicas: reconciler.ReplicasAll, Workload: args[0]})
			cancel()
			if err != nil {
				return err
			}
			type target struct{ id, node string }
			var targets []target
			pods := st.Replicas()
			for _, r := range pods[args[0]] {
				if replica == "" || r.ID == replica {
					targets = append(targets, target{r.ID, r.Node})
				}
			}
			if len(targets) == 0 {
				err := fmt.Errorf("no replica of %q%s on any node", args[0], map[bool]string{true: " with id " + replica}[replica != ""])
				if job := reconciler.JobWorkload(args[0]); !strings.HasPrefix(args[0], desired.ReservedNamespace+"/") {
					// A Job's pods go by job/NAME: say so when one has that name.
					ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
					js, jerr := reconciler.FetchStatus(ctx, nc.Conn, reconciler.StatusRequest{Replicas: reconciler.ReplicasNone, Workload: job})
					cancel()
					if jerr == nil && len(js.Jobs) > 0 {
						err = fmt.Errorf("%w: %s is a Job: baton logs %s", err, args[0], job)
					}
				}
				return err
			}
			out := &syncWriter{w: cmd.OutOrStdout()}
			var wg sync.WaitGroup
			errs := make([]error, len(targets))
			for i, t := range targets {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req := protocol.LogsRequest{Replica: t.id, Container: container, Tail: tail, Follow: follow}
					errs[i] = nodeagent.StreamLogs(cmd.Context(), nc.Conn, t.node, req, 10*time.Second, func(c protocol.LogChunk) {
						prefix := ""
						if len(targets) > 1 || container == "" {
							prefix = "[" + t.id + "/" + c.Container + "] "
						}
						out.lines(prefix, c.Data)
					})
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					return fmt.Errorf("logs of %s: %w", targets[i].id, err)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	bus.register(f)
	f.StringVar(&replica, "replica", "", "only this replica")
	f.StringVarP(&container, "container", "c", "", "only this container of each pod")
	f.BoolVarP(&follow, "follow", "f", false, "keep printing new output until interrupted")
	f.IntVar(&tail, "tail", 0, "only the last N lines of each container (0: all that is kept)")
	return cmd
}

// syncWriter writes whole prefixed lines from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) lines(prefix string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if line != "" {
			fmt.Fprint(s.w, prefix+line)
		}
	}
}
