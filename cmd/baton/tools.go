package main

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/batonhq/baton/nodeagent"
)

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
	var bus busFlags
	push := &cobra.Command{
		Use:   "push FILE...",
		Short: "Share OCI image archives with every node through the NATS object store (no registry needed)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			nc, err := dialCLI(bus, "baton-image-push")
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc.Conn)
			if err != nil {
				return err
			}
			store, err := nodeagent.ExistingImageStore(cmd.Context(), js, 1)
			if err != nil {
				return err
			}
			for _, a := range args {
				refs, err := store.Push(cmd.Context(), a)
				if err != nil {
					return err
				}
				for _, r := range refs {
					fmt.Fprintf(cmd.OutOrStdout(), "pushed %s from %s\n", r, a)
				}
			}
			return nil
		},
	}
	bus.register(push.Flags())
	cmd.AddCommand(imp, push)
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
