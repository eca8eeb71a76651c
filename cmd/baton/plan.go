package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/batonhq/baton/reconciler"
	"github.com/batonhq/baton/reconciler/httpapi"
)

func planCmd() *cobra.Command {
	var repo, path, output, server, tokenFile string
	cmd := &cobra.Command{
		Use:   "plan REVISION|DIR",
		Short: "What a revision would do to the live cluster (exit 0: nothing, 2: changes, 1: errors)",
		Long: `Sends a revision's files (a directory such as a PR checkout, or a revision of --repo)
to the control-plane API, which compares them with the live cluster: per object, a
field-level diff; per workload, replicas now → after and who sets them, how a template
change would roll, and where new replicas would land by the real scheduler. The server
is --server or $BATON_SERVER (default http://127.0.0.1:8420); a token from --token-file
or $BATON_TOKEN.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "markdown" && output != "json" {
				return fmt.Errorf("-o %q: want text, markdown or json", output)
			}
			files, err := revisionFiles(repo, path, args[0])
			if err != nil {
				return err
			}
			body := httpapi.PlanRequest{Files: map[string]string{}}
			for k, v := range files {
				body.Files[k] = string(v)
			}
			b, _ := json.Marshal(body)
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, strings.TrimRight(server, "/")+"/api/v1/plan", bytes.NewReader(b))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			token := os.Getenv("BATON_TOKEN")
			if tokenFile != "" {
				t, err := os.ReadFile(tokenFile)
				if err != nil {
					return fmt.Errorf("--token-file: %w", err)
				}
				token = strings.TrimSpace(string(t))
			}
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
			if err != nil {
				return fmt.Errorf("plan: %w (is the API at %s?)", err, server)
			}
			defer resp.Body.Close()
			rb, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("plan: %s: %s", resp.Status, strings.TrimSpace(string(rb)))
			}
			var p reconciler.Plan
			if err := json.Unmarshal(rb, &p); err != nil {
				return fmt.Errorf("plan: bad answer: %w", err)
			}
			w := cmd.OutOrStdout()
			switch output {
			case "json":
				_, _ = w.Write(rb)
			case "markdown":
				printPlanMarkdown(w, p)
			default:
				printPlan(w, p)
			}
			switch {
			case len(p.Errors) > 0:
				for _, e := range p.Errors {
					fmt.Fprintln(cmd.ErrOrStderr(), e)
				}
				return exitError{code: 1}
			case p.Changed():
				return exitError{code: 2}
			}
			return nil
		},
	}
	def := os.Getenv("BATON_SERVER")
	if def == "" {
		def = "http://127.0.0.1:8420"
	}
	cmd.Flags().StringVar(&server, "server", def, "control-plane API URL ($BATON_SERVER)")
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "file holding an API token ($BATON_TOKEN)")
	cmd.Flags().StringVar(&repo, "repo", ".", "repository whose revision is planned (when the argument is not a directory)")
	cmd.Flags().StringVar(&path, "path", "", "directory of the repository that holds the manifests")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, markdown or json")
	cmd.Flags().StringVar(&output, "format", "text", "same as --output")
	return cmd
}

func printPlan(w io.Writer, p reconciler.Plan) {
	for _, e := range p.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	if len(p.Errors) > 0 {
		return
	}
	fmt.Fprintf(w, "Plan against revision %s (live index %s)\n\n", short(p.Against.Revision), p.Against.Index)
	for _, s := range p.Summary {
		fmt.Fprintf(w, "  %s\n", s)
	}
	fmt.Fprintln(w)
	printChanges(w, p.Changes)
	for _, wp := range p.Workloads {
		if len(wp.Placements) > 0 {
			fmt.Fprintf(w, "%s: new replicas on %s\n", wp.Name, placements(wp.Placements))
		}
	}
	for _, warn := range p.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
}

func placements(m map[string]int) string {
	var parts []string
	for _, n := range sortedStrings(m) {
		parts = append(parts, fmt.Sprintf("%s ×%d", n, m[n]))
	}
	return strings.Join(parts, ", ")
}

func sortedStrings(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// printPlanMarkdown writes a PR comment: a summary table, then a
// collapsible section per workload.
func printPlanMarkdown(w io.Writer, p reconciler.Plan) {
	fmt.Fprintln(w, "### Baton plan")
	if len(p.Errors) > 0 {
		fmt.Fprintln(w, "\n**The revision does not load:**\n\n```")
		for _, e := range p.Errors {
			fmt.Fprintln(w, e)
		}
		fmt.Fprintln(w, "```")
		return
	}
	fmt.Fprintf(w, "\nAgainst revision `%s` (live index `%s`).\n\n", short(p.Against.Revision), p.Against.Index)
	fmt.Fprintln(w, "| workload | replicas | set by | rollout | unplaceable |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, wp := range p.Workloads {
		rollout := wp.Rollout
		if rollout == "" {
			rollout = "-"
		}
		fmt.Fprintf(w, "| %s | %d → %d | %s | %s | %d |\n", wp.Name, wp.Now, wp.After, wp.Owner, rollout, wp.Unplaceable)
	}
	for _, c := range p.Changes {
		fmt.Fprintf(w, "\n<details><summary>%s %s: %s</summary>\n\n```\n", c.Kind, c.Name, c.Op)
		for _, f := range c.Fields {
			fmt.Fprintf(w, "%s: %s → %s\n", f.Path, orNone(f.Old), orNone(f.New))
		}
		fmt.Fprintln(w, "```\n</details>")
	}
	for _, warn := range p.Warnings {
		fmt.Fprintf(w, "\n> warning: %s\n", warn)
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
