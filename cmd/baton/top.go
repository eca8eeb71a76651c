package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/batonhq/baton/reconciler"
)

func topCmd() *cobra.Command {
	var pl plane
	cmd := &cobra.Command{
		Use:   "top [nodes|workloads]",
		Short: "CPU and memory in use, per node or per workload, from what the agents report (every 5 s)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			what := "workloads"
			if len(args) == 1 {
				what = args[0]
			}
			if what != "nodes" && what != "workloads" {
				return fmt.Errorf("%q: want nodes or workloads", what)
			}
			st, err := pl.resolve(cmd).status(cmd.Context(), reconciler.StatusRequest{Replicas: reconciler.ReplicasAll})
			if err != nil {
				return err
			}
			if what == "nodes" {
				return printTopNodes(cmd.OutOrStdout(), st)
			}
			return printTopWorkloads(cmd.OutOrStdout(), st)
		},
	}
	pl.register(cmd.Flags())
	return cmd
}

// usageOf sums what the replicas of a list use, and counts those that
// reported usage.
func usageOf(reps []reconciler.ReplicaStatus, node string) (cpu, mem int64, n int) {
	for _, r := range reps {
		if r.Usage == nil || (node != "" && r.Node != node) {
			continue
		}
		cpu, mem, n = cpu+r.Usage.CPUMilli, mem+r.Usage.MemoryBytes, n+1
	}
	return cpu, mem, n
}

// printTopWorkloads prints each workload's usage, as kubectl top pods
// summed per workload.
func printTopWorkloads(w io.Writer, st reconciler.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tREPLICAS\tCPU\tMEMORY")
	for _, wl := range st.Workloads {
		cpu, mem, n := usageOf(wl.Replicas, "")
		fmt.Fprintf(tw, "%s\t%d/%d reporting\t%dm\t%dMi\n", wl.Name, n, len(wl.Replicas), cpu, mem>>20)
	}
	if st.ReplicasOmitted > 0 {
		fmt.Fprintf(tw, "(%d replicas not listed by the server: their usage is not counted)\n", st.ReplicasOmitted)
	}
	return tw.Flush()
}

// printTopNodes prints each node's usage by its replicas against its
// capacity, as kubectl top nodes.
func printTopNodes(w io.Writer, st reconciler.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tREADY\tCPU\tCPU%\tMEMORY\tMEMORY%\tREPLICAS")
	for _, n := range st.Nodes {
		var cpu, mem int64
		for _, wl := range st.Workloads {
			c, m, _ := usageOf(wl.Replicas, n.Name)
			cpu, mem = cpu+c, mem+m
		}
		fmt.Fprintf(tw, "%s\t%v\t%dm\t%s\t%dMi\t%s\t%d\n", n.Name, n.Ready, cpu, percent(cpu, n.Capacity.CPUMilli), mem>>20,
			percent(mem, n.Capacity.MemoryBytes), n.Replicas)
	}
	return tw.Flush()
}

func percent(used, of int64) string {
	if of <= 0 {
		return "-"
	}
	return fmt.Sprintf("%d%%", (used*100+of/2)/of)
}
