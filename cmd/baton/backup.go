package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/batonhq/baton/internal/backup"
	"github.com/batonhq/baton/internal/fsutil"
	"github.com/batonhq/baton/internal/identity"
	"github.com/batonhq/baton/internal/join"
	"github.com/batonhq/baton/reconciler/store"
)

// backedUp are the buckets a backup keeps.
var backedUp = []string{store.Bucket, join.Bucket}

// restorePath is where baton restore leaves the state for the server's
// first start.
func restorePath(dataDir string) string { return filepath.Join(dataDir, "restore.json.gz") }

func backupCmd() *cobra.Command {
	var dataDir, url, out string
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Write the cluster's state and identity to a file (run as root on a server)",
		Long: `backup reads the state the config repository cannot give back (revision
history, pins, refused revisions, node controls, join tokens, the record of
credentials) from the running cluster, with a credential it makes from the
identity in --data-dir, and writes it with that identity, gzipped, 0600: the
file holds every key of the cluster; keep it as you keep the identity.
baton restore makes a new cluster from it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--output FILE is required")
			}
			id, err := openExisting(dataDir)
			if err != nil {
				return err
			}
			c, err := id.Local(identity.RoleServer, "backup")
			if err != nil {
				return err
			}
			nc, err := nats.Connect(url, append(c.Options(), nats.Secure(id.ClientTLS()), nats.Name("baton-backup"), nats.Timeout(5*time.Second))...)
			if err != nil {
				return fmt.Errorf("connect to the cluster at %s: %w", url, err)
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			files, err := id.Files()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			snap, err := backup.Take(ctx, js, files, backedUp...)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := snap.Write(&buf); err != nil {
				return err
			}
			if out == "-" {
				if _, err := cmd.OutOrStdout().Write(buf.Bytes()); err != nil {
					return err
				}
			} else if err := fsutil.WriteFileAtomic(out, buf.Bytes(), 0o600); err != nil {
				return err
			}
			keys := 0
			for _, e := range snap.Buckets {
				keys += len(e)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "backed up %d keys and the identity to %s (%d bytes)\n", keys, out, buf.Len())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "/var/lib/baton", "a server's data dir (its identity makes the credential)")
	f.StringVar(&url, "nats", "tls://127.0.0.1:4222", "the server's NATS address")
	f.StringVarP(&out, "output", "o", "", "file to write (0600), or - for standard output")
	return cmd
}

func restoreCmd() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Make a fresh data dir from a backup: baton server then starts a cluster with that state and identity",
		Long: `restore installs the backup's identity in --data-dir, which must be fresh,
and leaves the state beside it; baton server (with --servers 3 for a cluster
of three) loads it into the store before it leads. Machines and operators
keep their credentials (same identity); agents reconnect once a server
answers at the address they joined through (give the new server that
address, or join them again).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			snap, err := backup.Read(f)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if len(snap.Identity) == 0 {
				return fmt.Errorf("%s holds no identity: not a backup of baton backup", args[0])
			}
			for _, p := range []string{identityDir(dataDir), filepath.Join(dataDir, "nats"), clusterStatePath(dataDir)} {
				if fileExists(p) {
					return fmt.Errorf("%s exists: restore into a fresh data dir", p)
				}
			}
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				return err
			}
			if _, err := identity.Install(identityDir(dataDir), snap.Identity); err != nil {
				return err
			}
			snap.Identity = nil // kept in the identity directory only
			var buf bytes.Buffer
			if err := snap.Write(&buf); err != nil {
				return err
			}
			if err := fsutil.WriteFileAtomic(restorePath(dataDir), buf.Bytes(), 0o600); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored the identity into %s; baton server --data-dir %s loads the state of %s when it starts\n",
				identityDir(dataDir), dataDir, snap.Taken.Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "/var/lib/baton", "the new server's data dir (fresh)")
	return cmd
}

// openExisting opens the identity of a server's data dir, which must hold one.
func openExisting(dataDir string) (*identity.Identity, error) {
	if !fileExists(filepath.Join(identityDir(dataDir), "ca.key")) {
		return nil, fmt.Errorf("%s holds no cluster identity (run this on a server, as root, with its --data-dir)", dataDir)
	}
	return identity.Open(identityDir(dataDir))
}

// applyRestore loads the state baton restore left in the data dir into the
// store, once, before the server does anything else with it.
func applyRestore(ctx context.Context, js jetstream.JetStream, o serverOptions) error {
	p := restorePath(o.dataDir)
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	snap, err := backup.Read(f)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	var n int
	err = untilFormed(ctx, o.cluster, "restore", func(ctx context.Context) error {
		var err error
		n, err = snap.Apply(ctx, js, o.bucketReplicas)
		if errors.Is(err, backup.ErrNotEmpty) {
			return &fatalError{fmt.Errorf("restore %s: %w: this cluster has a state already (remove the file to keep it)", p, err)}
		}
		return err
	})
	if err != nil {
		return err
	}
	if err := os.Rename(p, p+".applied"); err != nil {
		return err
	}
	zerolog.Ctx(ctx).Info().Int("keys", n).Time("taken", snap.Taken).Msg("state restored from a backup")
	return nil
}
