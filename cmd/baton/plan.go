package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func planCmd() *cobra.Command {
	var (
		pl                                    plane
		repo, path, output, color, checkIndex string
	)
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
			p, err := pl.plan(cmd.Context(), files)
			if err != nil {
				return err
			}
			if checkIndex != "" && len(p.Errors) == 0 && p.Against.Index != checkIndex {
				return fmt.Errorf("the cluster moved since the plan was made: live index %s, not %s (review the new plan)", p.Against.Index, checkIndex)
			}
			w := cmd.OutOrStdout()
			switch output {
			case "json":
				if err := printJSON(w, p); err != nil {
					return err
				}
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
	f := cmd.Flags()
	f.StringVar(&pl.server, "server", os.Getenv("BATON_SERVER"), "control-plane API URL ($BATON_SERVER; default http://127.0.0.1:8420)")
	f.StringVar(&pl.tokenFile, "token-file", "", "file holding an API bearer token ($BATON_TOKEN)")
	f.StringVar(&checkIndex, "check-index", "", "fail (exit 1) unless the live index is still this one (from an earlier plan), as nomad job plan -check-index")
	f.StringVar(&repo, "repo", ".", "repository whose revision is planned (when the argument is not a directory)")
	cmd.Flags().StringVar(&path, "path", "", "directory of the repository that holds the manifests")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, markdown or json")
	cmd.Flags().StringVar(&output, "format", "text", "same as --output")
	cmd.Flags().StringVar(&color, "color", "auto", "colour the text output: auto (on a terminal, unless $NO_COLOR is set), always or never")
	return cmd
}
