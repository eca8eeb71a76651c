package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/batonhq/baton/reconciler"
	"github.com/batonhq/baton/reconciler/httpapi"
)

func planCmd() *cobra.Command {
	var repo, path, output, server, tokenFile, color string
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
				c, err := colorsFor(color, w)
				if err != nil {
					return err
				}
				printPlan(w, p, c)
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
	cmd.Flags().StringVar(&color, "color", "auto", "colour the text output: auto (on a terminal, unless $NO_COLOR is set), always or never")
	return cmd
}
