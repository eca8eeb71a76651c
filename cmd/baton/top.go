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

// printTopWorkloads prints each workload's (and Job's) usage, as kubectl
// top pods summed per workload.
func printTopWorkloads(w io.Writer, st reconciler.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tREPLICAS\tCPU\tMEMORY")
	for _, g := range st.ReplicaGroups() {
		var cpu, mem int64
		n := 0
		for _, r := range g.Replicas {
			if r.Usage != nil {
				cpu, mem, n = cpu+r.Usage.CPUMilli, mem+r.Usage.MemoryBytes, n+1
			}
		}
		fmt.Fprintf(tw, "%s\t%d/%d reporting\t%dm\t%dMi\n", g.Workload, n, len(g.Replicas), cpu, mem>>20)
	}
	if st.ReplicasOmitted > 0 {
		fmt.Fprintf(tw, "(%d replicas not listed by the server: their usage is not counted)\n", st.ReplicasOmitted)
	}
	return tw.Flush()
}

// printTopNodes prints each node's usage by its replicas (of workloads
// and Jobs) against its capacity, as kubectl top nodes.
func printTopNodes(w io.Writer, st reconciler.Status) error {
	type use struct{ cpu, mem int64 }
	byNode := map[string]use{}
	for _, g := range st.ReplicaGroups() {
		for _, r := range g.Replicas {
			if r.Usage != nil {
				u := byNode[r.Node]
				byNode[r.Node] = use{u.cpu + r.Usage.CPUMilli, u.mem + r.Usage.MemoryBytes}
			}
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tREADY\tCPU\tCPU%\tMEMORY\tMEMORY%\tREPLICAS")
	for _, n := range st.Nodes {
		u := byNode[n.Name]
		fmt.Fprintf(tw, "%s\t%s\t%dm\t%s\t%dMi\t%s\t%d\n", n.Name, yesNo(n.Ready), u.cpu, percent(u.cpu, n.Capacity.CPUMilli), u.mem>>20,
			percent(u.mem, n.Capacity.MemoryBytes), n.Replicas)
	}
	return tw.Flush()
}

func percent(used, of int64) string {
	if of <= 0 {
		return "-"
	}
	return fmt.Sprintf("%d%%", (used*100+of/2)/of)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
