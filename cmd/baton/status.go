package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler"
	"github.com/batonhq/baton/reconciler/store"
)

func statusCmd() *cobra.Command {
	var (
		pl       plane
		output   string
		all      bool
		workload string
		ns       string
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show workloads (desired and running replicas), nodes and the synced revision",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("-o %q: want text or json", output)
			}
			if ns != "" && workload != "" && !strings.Contains(workload, "/") {
				workload = desired.Qualify(ns, workload) // -n shop -w web is shop/web
			}
			q := reconciler.StatusRequest{Replicas: reconciler.ReplicasAuto, Workload: workload, Namespace: ns}
			if all || workload != "" {
				q.Replicas = reconciler.ReplicasAll
			}
			st, err := pl.resolve(cmd).status(cmd.Context(), q)
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), st)
			}
			printStatus(cmd.OutOrStdout(), st, time.Now())
			return nil
		},
	}
	pl.register(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().BoolVar(&all, "replicas", false, fmt.Sprintf("list every replica (by default only when there are at most %d)", reconciler.AutoReplicas))
	cmd.Flags().StringVarP(&workload, "workload", "w", "", "only this workload (NAME, NAMESPACE/NAME or job/NAME), with its replicas")
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "only the workloads, Jobs and Services of this namespace")
	return cmd
}

// fetchStatus reads the whole status, every replica listed, over NATS.
func fetchStatus(ctx context.Context, nc *nats.Conn) (reconciler.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return reconciler.FetchStatus(ctx, nc, reconciler.StatusRequest{Replicas: reconciler.ReplicasAll})
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// until says when t comes: "in 8s", or "now" once it passed.
func until(t, now time.Time) string {
	if !t.After(now) {
		return "now"
	}
	return "in " + t.Sub(now).Round(time.Second).String()
}

func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Round(100*time.Millisecond).String() + " ago"
}

func printStatus(w io.Writer, st reconciler.Status, now time.Time) {
	if st.Synced.ID == "" {
		fmt.Fprintln(w, "Revision: none synced yet")
	} else {
		ref := ""
		if st.Synced.Ref != "" {
			ref = " on " + st.Synced.Ref
		}
		subject, _, _ := strings.Cut(st.Synced.Message, "\n")
		fmt.Fprintf(w, "Revision: %s%s %q (synced %s)\n", short(st.Synced.ID), ref, subject, ago(st.SyncedAt, now))
	}
	if p := st.Pin; p != nil {
		fmt.Fprintf(w, "PINNED to %s since %s by %s (%s): new commits are not applied until baton unpin\n", short(p.Revision), p.At.Format(time.RFC3339), p.By, p.Reason)
	}
	if b := st.Refused; b != nil {
		fmt.Fprintf(w, "REFUSED %s: its rollout failed before (%s); staying on %s until a new commit (or baton pin)\n", short(b.Revision), b.Reason, short(st.Synced.ID))
	}
	if st.Disruption != "" {
		fmt.Fprintf(w, "Disruption mode: %s\n", st.Disruption)
	}
	if st.Leader != "" {
		fmt.Fprintf(w, "Leader: %s (term %d)\n", st.Leader, st.Term)
	}
	if st.Error != nil {
		fmt.Fprintf(w, "Error: revision %s does not load; %s keeps running:\n", short(st.Error.Revision), short(st.Synced.ID))
		for _, e := range st.Error.Errors {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	for _, warn := range st.Warnings {
		fmt.Fprintf(w, "Warning: %s\n", warn)
	}
	if st.SourceError != "" {
		fmt.Fprintf(w, "Error: fetching the config repository: %s\n", st.SourceError)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tDESIRED\tCURRENT\tRUNNING\tREADY\tTEMPLATE")
	for _, wl := range st.Workloads {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", wl.Name, wl.Desired, wl.Current, wl.Running, wl.Ready, wl.SpecHash)
	}
	tw.Flush()
	for _, wl := range st.Workloads {
		if sc := wl.Scale; sc.Owner != reconciler.OwnerGit {
			line := fmt.Sprintf("Scale: %s: %d replicas, set by %s", wl.Name, sc.Replicas, sc.By())
			if sc.Reason != "" {
				line += " (" + sc.Reason + ")"
			}
			if sc.Floor != "" {
				line += "; floor " + sc.Floor
			}
			switch {
			case sc.Window != "":
				line += fmt.Sprintf("; window %s since %s", sc.Window, sc.Since.Format(time.RFC3339))
			case sc.Owner == reconciler.OwnerSchedule || sc.FloorBy == reconciler.OwnerSchedule:
				line += "; no window has fired yet: spec.replicas"
			}
			if sc.NextWindow != "" {
				line += fmt.Sprintf("; next: %s at %s", sc.NextWindow, sc.Next.Format(time.RFC3339))
			}
			if sc.Error != "" {
				line += "; error: " + sc.Error
			}
			fmt.Fprintln(w, line)
		}
		if ro := wl.Rollout; ro != nil && ro.State != reconciler.RolloutComplete {
			line := fmt.Sprintf("Rollout: %s to template %s: %s", wl.Name, ro.Hash, ro.State)
			if ro.Reason != "" {
				line += ": " + ro.Reason
			}
			fmt.Fprintln(w, line)
		}
		if wl.Pending > 0 {
			fmt.Fprintf(w, "Pending: %s: %d replica(s): %s\n", wl.Name, wl.Pending, wl.PendingReason)
		}
	}
	if len(st.Jobs) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "JOB\tSTATE\tSUCCEEDED\tACTIVE\tFAILED\tREASON")
		for _, j := range st.Jobs {
			fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%d\t%s\n", j.Name, j.State, j.Succeeded, j.Completions, j.Active, j.Failed, j.Reason)
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	if st.ReplicasOmitted > 0 {
		fmt.Fprintf(w, "%d replicas not listed: baton status --replicas lists them all, -w WORKLOAD one workload's\n\n", st.ReplicasOmitted)
	}
	fmt.Fprintln(tw, "REPLICA\tNODE\tSTATE\tREADY\tIP\tPORTS\tRESTARTS\tCPU\tMEMORY\tTEMPLATE\tMESSAGE")
	for _, wl := range st.Workloads {
		for _, r := range wl.Replicas {
			restarts := fmt.Sprint(r.Restarts)
			if r.LastExit != "" {
				restarts += " (last: " + r.LastExit + ")"
			}
			cpu, mem := "-", "-"
			if r.Usage != nil {
				cpu, mem = fmt.Sprintf("%dm", r.Usage.CPUMilli), fmt.Sprintf("%dMi", r.Usage.MemoryBytes>>20)
			}
			ip, ports := "-", "-"
			if r.PodIP != "" {
				ip = r.PodIP
			}
			if len(r.Ports) > 0 {
				ports = strings.Join(r.Ports, ",")
			}
			msg := r.Message
			if !r.RetryAt.IsZero() {
				msg += fmt.Sprintf(" (failed starts: %d; next try %s)", r.Failures, until(r.RetryAt, now))
			}
			ready := yesNo(r.Ready && r.State == protocol.StateRunning)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Node, r.State, ready, ip, ports, restarts, cpu, mem, r.SpecHash, msg)
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "NODE\tREADY\tREPLICAS\tLAST HEARTBEAT")
	for _, n := range st.Nodes {
		ready := "no"
		if n.Ready {
			ready = "yes"
		}
		switch {
		case n.Draining:
			ready += ", draining"
		case n.Cordoned:
			ready += ", cordoned"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", n.Name, ready, n.Replicas, ago(n.LastHeartbeat, now))
	}
	tw.Flush()
	if len(st.Services) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "SERVICE\tADDRESS\tPORT\tREADY ENDPOINTS")
		for _, s := range st.Services {
			switch {
			case s.Error != "":
				fmt.Fprintf(tw, "%s\t-\t-\t%s\n", s.Name, s.Error)
			case len(s.Ports) == 0:
				fmt.Fprintf(tw, "%s\t%s\t-\t-\n", s.Name, orDash(s.IP))
			}
			for _, p := range s.Ports {
				eps := strings.Join(p.Endpoints, ", ")
				if eps == "" {
					eps = "none (refused)"
				}
				port := fmt.Sprintf("%d/%s", p.Port, p.Protocol)
				if p.NodePort != 0 {
					port += fmt.Sprintf(" (node %d)", p.NodePort)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, s.IP, port, eps)
			}
		}
		tw.Flush()
	}
	printPools(w, st.Pools, st.PoolUnserved, now)
	if len(st.Events) > 0 {
		fmt.Fprintln(w, "\nRecent events (baton events lists more):")
		for _, e := range st.Events[max(len(st.Events)-5, 0):] {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
}

func eventsCmd() *cobra.Command {
	var (
		pl   plane
		tail int
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "List the reconcilers' decisions with their reasons, oldest first (kept in JetStream, across leaders)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			evs, err := pl.resolve(cmd).events(ctx, tail)
			for _, e := range evs {
				fmt.Fprintln(cmd.OutOrStdout(), e)
			}
			return err
		},
	}
	pl.register(cmd.Flags())
	cmd.Flags().IntVar(&tail, "tail", 200, fmt.Sprintf("only the last N events (0: all that are kept, at most %d)", store.MaxStoredEvents))
	return cmd
}

// printPools prints the node pools: their size within min and max, the
// machines coming and going, what pending replicas want, the last decision.
func printPools(w io.Writer, pools []reconciler.PoolStatus, unserved []string, now time.Time) {
	if len(pools) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE POOL\tNODES\tMIN\tMAX\tJOINING\tDRAINING\tDELETING\tWANTED\tLAST DECISION")
	for _, p := range pools {
		last := orDash(p.Last)
		if p.Failures > 0 && p.RetryAt.After(now) {
			last += fmt.Sprintf(" (%d failures; next try %s)", p.Failures, until(p.RetryAt, now))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t%s\n", p.Name, len(p.Nodes), p.Min, p.Max, names(p.Joining), names(p.Draining), names(p.Deleting), p.Wanted, last)
	}
	tw.Flush()
	for _, u := range unserved {
		fmt.Fprintf(w, "No node pool can take %s\n", u)
	}
}

// names is a list of names, or "-".
func names(l []string) string {
	if len(l) == 0 {
		return "-"
	}
	return strings.Join(l, ",")
}
