package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/reconciler"
	"github.com/batonhq/baton/reconciler/store"
	"github.com/spf13/cobra"
)

func historyCmd() *cobra.Command {
	var (
		pl     plane
		output string
		wide   bool
	)
	cmd := &cobra.Command{
		Use:   "history",
		Short: "Every revision applied: commit, author, message, applied, converged, outcome",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := pl.resolve(cmd).history(cmd.Context())
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), h)
			}
			// Cut to fit a terminal; whole into a pipe or a file.
			return printHistory(cmd.OutOrStdout(), h, wide || !isTerminal(cmd.OutOrStdout()))
		},
	}
	pl.register(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().BoolVar(&wide, "wide", false, "print outcomes and messages whole (on a terminal they are cut to fit it)")
	return cmd
}

// History columns are cut to these many characters unless --wide, so
// that a long outcome does not push each row past a terminal's width.
const (
	historyOutcomeWidth = 60
	historyMessageWidth = 40
)

// printHistory prints the history table, newest first.
func printHistory(w io.Writer, h []store.HistoryEntry, wide bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REVISION\tAPPLIED\tCONVERGED IN\tOUTCOME\tAUTHOR\tMESSAGE")
	cut := false
	fit := func(s string, n int) string {
		if r := []rune(s); !wide && len(r) > n {
			cut = true
			return string(r[:n-1]) + "…"
		}
		return s
	}
	for i := len(h) - 1; i >= 0; i-- {
		e := h[i]
		took := "-"
		if !e.Converged.IsZero() {
			took = e.Converged.Sub(e.Applied).Round(10 * time.Millisecond).String()
		}
		outcome := e.Outcome
		if e.Reason != "" {
			outcome += ": " + e.Reason
		}
		if e.AlreadyFailed != "" {
			outcome += " (already failed before: " + e.AlreadyFailed + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", short(e.Revision), e.Applied.Local().Format(time.RFC3339), took,
			fit(outcome, historyOutcomeWidth), e.Author, fit(e.Message, historyMessageWidth))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if cut {
		_, err := fmt.Fprintln(w, "(long outcomes and messages cut: baton history --wide, or -o json, prints them whole)")
		return err
	}
	return nil
}

// errNotConverged makes `baton wait` exit 1.
var errNotConverged = errors.New("revision did not converge")

func waitCmd() *cobra.Command {
	var (
		pl       plane
		timeout  time.Duration
		progress string
	)
	cmd := &cobra.Command{
		Use:   "wait [REVISION]",
		Short: "Wait until a revision (default: the latest applied) has converged (exit 0) or failed (exit 1)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pl.resolve(cmd).keep = true // it polls: one connection throughout
			defer pl.closeConn()
			show := progress == "always" || (progress == "auto" && isTerminal(cmd.ErrOrStderr()))
			if progress != "auto" && progress != "always" && progress != "never" {
				return fmt.Errorf("--progress %q: want auto, always or never", progress)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			want := ""
			if len(args) == 1 {
				want = args[0]
			}
			last := ""
			for {
				if show {
					// Each workload's ready replicas against its count, when
					// it changes.
					if st, err := pl.status(ctx, reconciler.StatusRequest{Replicas: reconciler.ReplicasNone}); err == nil {
						if line := waitProgress(st); line != last {
							fmt.Fprintln(cmd.ErrOrStderr(), line)
							last = line
						}
					}
				}
				h, err := pl.history(ctx)
				if err != nil && ctx.Err() == nil {
					return err
				}
				if e, ok := findRevision(h, want); ok {
					switch e.Outcome {
					case store.OutcomeConverged:
						fmt.Fprintf(cmd.OutOrStdout(), "revision %s converged in %s\n", short(e.Revision), e.Converged.Sub(e.Applied).Round(10*time.Millisecond))
						if e.AlreadyFailed != "" {
							fmt.Fprintf(cmd.OutOrStdout(), "already failed before this revision, and left alone by it: %s\n", e.AlreadyFailed)
						}
						return nil
					case store.OutcomeFailed, store.OutcomeSuperseded, store.OutcomeDegraded:
						return fmt.Errorf("%w: %s %s: %s", errNotConverged, short(e.Revision), e.Outcome, e.Reason)
					}
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("%w: still not converged after %s", errNotConverged, timeout)
				case <-time.After(500 * time.Millisecond):
				}
			}
		},
	}
	pl.register(cmd.Flags())
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "give up (exit 1) after this long")
	cmd.Flags().StringVar(&progress, "progress", "auto", "print each workload's updated and ready replicas as they change, on stderr: auto (on a terminal), always or never")
	return cmd
}

// waitProgress is one line of baton wait's progress: each workload's
// replicas of the wanted template against its count, those ready, and
// what is pending.
func waitProgress(st reconciler.Status) string {
	var parts []string
	for _, w := range st.Workloads {
		if strings.HasPrefix(w.Name, desired.ReservedNamespace+"/") {
			continue // a Job's pods: not a count to reach
		}
		// Updated (of the template wanted now) and ready: during a rollout
		// the old replicas are ready and not updated.
		p := fmt.Sprintf("%s %d/%d updated, %d ready", w.Name, w.Current, w.Desired, w.Ready)
		if w.Pending > 0 {
			p += fmt.Sprintf(" (%d pending)", w.Pending)
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "no workloads"
	}
	return strings.Join(parts, ", ")
}

// findRevision finds rev (a full or abbreviated commit; "" for the latest)
// in the history, newest first.
func findRevision(h []store.HistoryEntry, rev string) (store.HistoryEntry, bool) {
	for i := len(h) - 1; i >= 0; i-- {
		if rev == "" || strings.HasPrefix(h[i].Revision, rev) {
			return h[i], true
		}
	}
	return store.HistoryEntry{}, false
}

func pinCmd() *cobra.Command {
	var (
		pl     plane
		reason string
	)
	cmd := &cobra.Command{
		Use:   "pin REVISION",
		Short: "Apply an earlier revision from the servers' cache and stop following the branch (until baton unpin)",
		Long: `For incidents, e.g. when the Git host is down: REVISION (a full or abbreviated commit)
must be one the cluster applied before (see baton history). The pin shows in baton status,
the API and the metrics until baton unpin.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			by, _ := os.Hostname()
			if u := os.Getenv("USER"); u != "" {
				by = u + "@" + by
			}
			e, err := pl.resolve(cmd).pin(cmd.Context(), args[0], by, reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pinned to %s %q; baton unpin follows the branch again\n", short(e.Revision), e.Message)
			return nil
		},
	}
	pl.register(cmd.Flags())
	cmd.Flags().StringVar(&reason, "reason", "", "why (shown with the pin)")
	return cmd
}

func unpinCmd() *cobra.Command {
	var pl plane
	cmd := &cobra.Command{
		Use:   "unpin",
		Short: "Follow the branch again after baton pin",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := pl.resolve(cmd).unpin(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "unpinned: the servers follow the branch again")
			return nil
		},
	}
	pl.register(cmd.Flags())
	return cmd
}
