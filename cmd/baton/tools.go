package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent"
)

func validateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate DIR",
		Short: "Check the manifests under DIR; print every error as file:line:col: field: message",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := desired.ReadDir(args[0])
			if err != nil {
				return err
			}
			st, err := desired.Load(files)
			var errs desired.Errors
			if errors.As(err, &errs) {
				for _, e := range errs {
					fmt.Fprintln(cmd.ErrOrStderr(), e)
				}
				return exitError{code: 1}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ok: %d workloads\n", len(st.Workloads))
			for _, w := range st.Workloads {
				fmt.Fprintf(cmd.OutOrStdout(), "  %s: %d replicas, template %s (%s)\n", w.Name, w.Replicas, w.Hash, w.Source)
			}
			return nil
		},
	}
}

func imageCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Manage images on this node"}
	var socket, namespace string
	imp := &cobra.Command{
		Use:   "import FILE...",
		Short: "Import OCI image archives into the local containerd",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return importImages(cmd.Context(), socket, namespace, args)
		},
	}
	imp.Flags().StringVar(&socket, "containerd", DefaultContainerdSocket, "containerd socket")
	imp.Flags().StringVar(&namespace, "namespace", "baton", "containerd namespace of the node agent")
	cmd.AddCommand(imp)
	return cmd
}

func importImages(ctx context.Context, socket, namespace string, archives []string) error {
	if len(archives) == 0 {
		return nil
	}
	c, err := nodeagent.DialContainerd(ctx, socket)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, a := range archives {
		names, err := nodeagent.Import(ctx, c, namespace, a)
		if err != nil {
			return err
		}
		for _, n := range names {
			zerolog.Ctx(ctx).Info().Str("image", n).Str("archive", a).Msg("imported image")
		}
	}
	return nil
}
