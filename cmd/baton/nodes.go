package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/batonhq/baton/internal/fsutil"
	"github.com/batonhq/baton/internal/identity"
	"github.com/batonhq/baton/internal/join"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler"
	"github.com/batonhq/baton/reconciler/store"
)

func tokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Join tokens: how a machine or an operator gets a credential of the cluster"}
	var (
		bus  busFlags
		role string
		ttl  time.Duration
	)
	create := &cobra.Command{
		Use:   "create",
		Short: "Print a one-time join token (baton agent --join ADDR --token T, or baton login)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ans join.TokenAnswer
			req := join.TokenRequest{Role: identity.Role(role), TTL: ttl.String(), By: os.Getenv("USER")}
			if err := ask(cmd.Context(), bus, "baton-token", protocol.TokenSubject, req, &ans); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), ans.Token)
			article := "a"
			if ans.Role == string(identity.RoleAgent) || ans.Role == string(identity.RoleAdmin) {
				article = "an"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s %s token, for one use, until %s\n", article, ans.Role, ans.Expires.Local().Format(time.RFC3339))
			return nil
		},
	}
	bus.register(create.Flags())
	create.Flags().StringVar(&role, "role", "agent", "what the credential may do: agent (one node), admin, viewer, or server (joins a cluster of servers: hands out the identity)")
	create.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token may be used")
	cmd.AddCommand(create)
	return cmd
}

// ask makes one request to the servers over NATS.
func ask(ctx context.Context, bus busFlags, name, subject string, body, out any) error {
	nc, err := dialCLI(bus, name)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return nc.ask(ctx, subject, body, out)
}

func nodeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "The cluster's nodes: list, cordon, drain, uncordon, remove"}
	var bus busFlags
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the nodes: what the leader sees of each, and its credential",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nc, err := dialCLI(bus, "baton-node-ls")
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			st, err := reconciler.FetchStatus(ctx, nc.Conn, reconciler.StatusRequest{Replicas: reconciler.ReplicasNone})
			if err != nil {
				return err
			}
			var creds []join.Credential
			if err := nc.ask(ctx, protocol.CredentialsSubject, nil, &creds); err != nil {
				zerolog.Ctx(cmd.Context()).Debug().Err(err).Msg("credentials")
				creds = nil // a bus without the identity: no joined credentials
			}
			printNodes(cmd, st.Nodes, creds)
			return nil
		},
	}
	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a node: revoke its credential at once (it is disconnected and refused) and place its replicas elsewhere",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ans map[string]string
			if err := ask(cmd.Context(), bus, "baton-node-rm", protocol.NodeRemoveSubject, map[string]string{"name": args[0]}, &ans); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node %s removed (%s credentials revoked); its replicas are placed elsewhere\n", args[0], ans["revoked"])
			return nil
		},
	}
	bus.register(ls.Flags())
	bus.register(rm.Flags())
	cmd.AddCommand(ls, rm)
	for _, op := range []string{"cordon", "uncordon"} {
		c := &cobra.Command{
			Use:   op + " NAME",
			Short: map[string]string{"cordon": "Place no new replica on a node (its replicas keep running)", "uncordon": "Let a cordoned or drained node take replicas again"}[op],
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := setNodeControl(cmd.Context(), bus, args[0], op == "cordon", false); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "node %s %sed\n", args[0], op)
				return nil
			},
		}
		bus.register(c.Flags())
		cmd.AddCommand(c)
	}
	var timeout time.Duration
	drain := &cobra.Command{
		Use:   "drain NAME",
		Short: "Move a node's replicas to other nodes (within each workload's maxUnavailable) and keep new ones off it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := setNodeControl(cmd.Context(), bus, args[0], true, true); err != nil {
				return err
			}
			return waitDrained(cmd, bus, args[0], timeout)
		},
	}
	bus.register(drain.Flags())
	drain.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the node to hold no replica (0: do not wait)")
	cmd.AddCommand(drain)
	return cmd
}

func setNodeControl(ctx context.Context, bus busFlags, node string, cordon, drain bool) error {
	c := store.NodeControl{Node: node, Cordoned: cordon, Draining: drain, By: os.Getenv("USER")}
	return ask(ctx, bus, "baton-node-control", protocol.NodeControlSubject, c, nil)
}

// waitDrained shows a drain's progress until the node holds no replica.
func waitDrained(cmd *cobra.Command, bus busFlags, node string, timeout time.Duration) error {
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "node %s draining\n", node)
	if timeout == 0 {
		return nil
	}
	nc, err := dialCLI(bus, "baton-node-drain")
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
	defer cancel()
	last := -1
	for {
		st, err := reconciler.FetchStatus(ctx, nc.Conn, reconciler.StatusRequest{Replicas: reconciler.ReplicasNone})
		if err == nil {
			n, ok := nodeOfStatus(st, node)
			switch {
			case !ok:
				return fmt.Errorf("node %s is no longer known", node)
			case n.Replicas-n.DaemonReplicas == 0:
				fmt.Fprintf(w, "node %s drained%s\n", node, daemonNote(n.DaemonReplicas))
				return nil
			case n.Replicas-n.DaemonReplicas != last:
				last = n.Replicas - n.DaemonReplicas
				fmt.Fprintf(w, "%s: %d replicas left%s\n", time.Now().Format(time.TimeOnly), last, pendingNote(st))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s still holds %d replicas after %s%s (it stays cordoned and draining; baton node uncordon %s to stop)", node, last, timeout, pendingNote(st), node)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func nodeOfStatus(st reconciler.Status, name string) (reconciler.NodeStatus, bool) {
	for _, n := range st.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return reconciler.NodeStatus{}, false
}

// pendingNote says why replicas wait for a place, if any do.
func pendingNote(st reconciler.Status) string {
	var notes []string
	for _, w := range st.Workloads {
		if w.Pending > 0 {
			notes = append(notes, fmt.Sprintf("%s: %d pending (%s)", w.Name, w.Pending, w.PendingReason))
		}
	}
	if len(notes) == 0 {
		return ""
	}
	return "; " + strings.Join(notes, "; ")
}

func printNodes(cmd *cobra.Command, nodes []reconciler.NodeStatus, creds []join.Credential) {
	type row struct {
		name, ready, seen, replicas, cred, addr, subnet string
	}
	rows := map[string]*row{}
	for _, n := range nodes {
		r := &row{name: n.Name, ready: "not ready", seen: time.Since(n.LastHeartbeat).Round(100*time.Millisecond).String() + " ago", replicas: fmt.Sprint(n.Replicas), cred: "-",
			addr: orDash(n.Address), subnet: orDash(n.PodSubnet)}
		if n.Ready {
			r.ready = "ready"
		}
		switch {
		case n.Draining:
			r.ready += ", draining"
		case n.Cordoned:
			r.ready += ", cordoned"
		}
		if n.LastHeartbeat.IsZero() {
			r.seen = "never"
		}
		rows[n.Name] = r
	}
	for _, c := range creds {
		if c.Role != identity.RoleAgent {
			continue
		}
		r := rows[c.Name]
		if r == nil {
			r = &row{name: c.Name, ready: "not seen", seen: "never", replicas: "0", addr: "-", subnet: "-"}
			rows[c.Name] = r
		}
		r.cred = "joined " + c.Joined.Local().Format(time.DateTime)
		if !c.Expires.IsZero() {
			r.cred += ", renews before " + c.Expires.Local().Format(time.DateTime)
		}
	}
	names := make([]string, 0, len(rows))
	for n := range rows {
		names = append(names, n)
	}
	slices.Sort(names)
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tSTATE\tHEARTBEAT\tREPLICAS\tADDRESS\tPOD SUBNET\tCREDENTIAL")
	for _, n := range names {
		r := rows[n]
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.name, r.ready, r.seen, r.replicas, r.addr, r.subnet, r.cred)
	}
	w.Flush()
}

func loginCmd() *cobra.Command {
	var (
		token, name, creds string
	)
	cmd := &cobra.Command{
		Use:   "login ADDR",
		Short: "Redeem an admin or viewer join token for an operator credential (ADDR: a server's join endpoint, host:8421)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if token == "" {
				return fmt.Errorf("--token is required (baton token create --role admin|viewer, on a server)")
			}
			if creds == "" {
				home, err := os.UserHomeDir()
				if err != nil {
					return fmt.Errorf("--creds: %w", err)
				}
				creds = filepath.Join(home, ".baton", "baton.creds")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			j, err := join.Join(ctx, args[0], token, []identity.Role{identity.RoleAdmin, identity.RoleViewer}, name, creds)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s credential for %s written to %s (CA: %s)\n", j.Credential.Role, name, creds, j.CAPath)
			fmt.Fprintf(cmd.OutOrStdout(), "Use it: export BATON_CREDS=%s BATON_NATS=%s\n", creds, j.NATSURL)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&token, "token", "", "join token (baton token create --role admin|viewer)")
	f.StringVar(&name, "name", os.Getenv("USER"), "your name in the cluster (what revoking you names)")
	f.StringVar(&creds, "creds", "", "where to write the credential (default ~/.baton/baton.creds; the CA goes beside it)")
	return cmd
}

// joinedState is what an agent keeps of its join, beside its credential:
// where the bus is (a restart with the same flags does not join again).
type joinedState struct {
	NATS string `json:"nats"`
	// PodSubnet is the node's own pod addresses, leased at join.
	PodSubnet string `json:"podSubnet,omitempty"`
}

func joinedPath(agentDir string) string { return filepath.Join(agentDir, "joined.json") }

// readJoined is what the agent in agentDir kept of its join (zero: none).
func readJoined(agentDir string) joinedState {
	var js joinedState
	if b, err := os.ReadFile(joinedPath(agentDir)); err == nil {
		_ = json.Unmarshal(b, &js)
	}
	return js
}

// joinOnce joins with token through addr, unless this agent's data dir
// holds a credential already; it returns the bus flags to connect with.
func joinOnce(ctx context.Context, bus busFlags, addr, token, node, dataDir string, natsGiven bool) (busFlags, error) {
	credsPath := nodeCredsPath(dataDir)
	var js joinedState
	if fileExists(credsPath) {
		zerolog.Ctx(ctx).Info().Str("creds", credsPath).Msg("joined already; using the node's credential (baton node rm, then remove it, to join again)")
		js = readJoined(dataDir)
	} else {
		if token == "" {
			return bus, fmt.Errorf("--join needs --token (baton token create, on a server)")
		}
		jctx, cancel := context.WithTimeout(ctx, time.Minute)
		j, err := join.Join(jctx, addr, token, []identity.Role{identity.RoleAgent}, node, credsPath)
		cancel()
		if err != nil {
			return bus, err
		}
		js.NATS, js.PodSubnet = j.NATSURL, j.PodSubnet
		b, _ := json.Marshal(js)
		if err := fsutil.WriteFileAtomic(joinedPath(dataDir), b, 0o600); err != nil {
			return bus, err
		}
		zerolog.Ctx(ctx).Info().Str("node", node).Str("nats", j.NATSURL).Str("podSubnet", j.PodSubnet).Time("expires", j.Credential.Expires).Msg("joined the cluster")
	}
	bus.creds, bus.ca = credsPath, filepath.Join(dataDir, "ca.crt")
	if !natsGiven && js.NATS != "" {
		bus.url = js.NATS
	}
	return bus, nil
}

func userCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Operators' credentials: list them, revoke one"}
	var (
		bus  busFlags
		role string
	)
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the operators' credentials (admins and viewers)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var creds []join.Credential
			if err := ask(cmd.Context(), bus, "baton-user-ls", protocol.CredentialsSubject, nil, &creds); err != nil {
				return err
			}
			slices.SortFunc(creds, func(a, b join.Credential) int { return strings.Compare(a.Name, b.Name) })
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "USER\tROLE\tSINCE\tKEY")
			for _, c := range creds {
				if c.Role == identity.RoleAdmin || c.Role == identity.RoleViewer {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", c.Name, c.Role, c.Joined.Local().Format(time.DateTime), c.PublicKey)
				}
			}
			return w.Flush()
		},
	}
	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Revoke an operator's credential at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ans map[string]string
			if err := ask(cmd.Context(), bus, "baton-user-rm", protocol.UserRemoveSubject, map[string]string{"name": args[0], "role": role}, &ans); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s revoked\n", role, args[0])
			return nil
		},
	}
	bus.register(ls.Flags())
	bus.register(rm.Flags())
	rm.Flags().StringVar(&role, "role", "viewer", "the credential's role: admin or viewer")
	cmd.AddCommand(ls, rm)
	return cmd
}

// daemonNote says what a drain leaves: the replicas of DaemonSets.
func daemonNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d replica(s) of DaemonSets stay, as kubectl drain --ignore-daemonsets leaves them)", n)
}
