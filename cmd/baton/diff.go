package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/gitsource"
)

func diffCmd() *cobra.Command {
	var repo, path, output, keyFile, color string
	cmd := &cobra.Command{
		Use:   "diff A B",
		Short: "Compare two revisions offline, object by object and field by field (exit 0: none, 2: changes, 1: error)",
		Long: `A and B are directories, or revisions (branch, tag, commit, HEAD~1...) of the
repository --repo. Objects are compared in their normalized form, so reordering and
formatting are not changes; Secret values are never shown.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" && output != "markdown" {
				return fmt.Errorf("-o %q: want text, json or markdown", output)
			}
			var states [2]*desired.State
			for i, arg := range args {
				files, err := revisionFiles(repo, path, arg)
				if err != nil {
					return err
				}
				if states[i], err = loadFiles(cmd, files, keyFile); err != nil {
					return err
				}
			}
			changes := desired.Diff(states[0], states[1])
			switch output {
			case "json":
				if err := printJSON(cmd.OutOrStdout(), map[string]any{"from": args[0], "to": args[1], "changes": changes}); err != nil {
					return err
				}
			case "markdown":
				printChangesMarkdown(cmd.OutOrStdout(), args[0], args[1], changes)
			default:
				c, err := colorsFor(color, cmd.OutOrStdout())
				if err != nil {
					return err
				}
				printChangesColored(cmd.OutOrStdout(), changes, c)
			}
			if len(changes) > 0 {
				return exitError{code: 2}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&repo, "repo", ".", "repository whose revisions A and B name (when they are not directories)")
	cmd.Flags().StringVar(&path, "path", "", "directory of the repository that holds the manifests")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, json or markdown (a pull-request comment, as baton plan -o markdown)")
	cmd.Flags().StringVar(&color, "color", "auto", "colour the text output: auto (on a terminal, unless $NO_COLOR is set), always or never")
	cmd.Flags().StringVar(&keyFile, "secret-key", "", "age identity file, to compare SealedSecrets by their decrypted data")
	return cmd
}

// revisionFiles reads a directory, or a revision of repo.
func revisionFiles(repo, path, arg string) (map[string][]byte, error) {
	if fi, err := os.Stat(arg); err == nil && fi.IsDir() {
		return desired.ReadDir(arg)
	}
	snap, err := gitsource.ReadLocal(repo, path, arg)
	if err != nil {
		return nil, err
	}
	return snap.Files, nil
}
