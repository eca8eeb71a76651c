package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"filippo.io/age"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/desired/schema"
)

// loadDir loads the manifests under dir, decrypting SealedSecrets when keyFile is set.
func loadDir(cmd *cobra.Command, dir, keyFile string) (*desired.State, error) {
	files, err := desired.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	return loadFiles(cmd, files, keyFile)
}

// loadFiles loads a revision's files, printing every error as file:line:col.
func loadFiles(cmd *cobra.Command, files map[string][]byte, keyFile string) (*desired.State, error) {
	opts := desired.Options{}
	if keyFile != "" {
		u, err := unsealer(keyFile)
		if err != nil {
			return nil, err
		}
		opts.Unsealer = u
	}
	st, err := desired.LoadWith(cmd.Context(), files, opts)
	var errs desired.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(cmd.ErrOrStderr(), e)
		}
		return nil, exitError{code: 1}
	}
	return st, err
}

// unsealer reads the cluster's age identity file.
func unsealer(keyFile string) (desired.Unsealer, error) {
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	ids, err := desired.ParseIdentities(string(b))
	if err != nil {
		return nil, fmt.Errorf("secret key %s: %w", keyFile, err)
	}
	return desired.AgeUnsealer{Identities: ids}, nil
}

func validateCmd() *cobra.Command {
	var keyFile string
	cmd := &cobra.Command{
		Use:   "validate DIR",
		Short: "Check the manifests (YAML and CUE) under DIR; print every error as file:line:col: field: message",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := loadDir(cmd, args[0], keyFile)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "ok: %d workloads, %d jobs, %d cron jobs, %d config maps, %d secrets, %d claims, %d services, %d autoscalers, %d scaling schedules",
				len(st.Workloads), len(st.Jobs), len(st.CronJobs), len(st.ConfigMaps), len(st.Secrets), len(st.Claims),
				len(st.Services), len(st.Autoscalers), len(st.Schedules))
			for _, more := range []struct {
				n    int
				what string
			}{{len(st.Endpoints), "endpoints"}, {len(st.Budgets), "disruption budgets"}, {len(st.Namespaces), "namespaces"}, {len(st.Pools), "node pools"}} {
				if more.n > 0 {
					fmt.Fprintf(w, ", %d %s", more.n, more.what)
				}
			}
			fmt.Fprintln(w)
			for _, wl := range st.Workloads {
				count := fmt.Sprintf("%d replicas", wl.Replicas)
				switch {
				case wl.Kind == "DaemonSet":
					count = "DaemonSet: one replica on each node it may go to"
				case wl.Stateful != nil:
					count = fmt.Sprintf("StatefulSet, ordinals %s", statefulNames(wl))
				case wl.Kind != "Deployment":
					count = wl.Kind + ", " + count
				}
				fmt.Fprintf(w, "  %s: %s, template %s (%s)\n", wl.Name, count, wl.Hash, wl.Source)
			}
			for _, p := range st.Pools {
				fmt.Fprintf(w, "  NodePool %s: %d to %d machines (%s)\n", p.Name, p.Min, p.Max, p.Source)
			}
			for _, warn := range append(st.Warnings, desired.Lint(st)...) {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", warn)
			}
			if keyFile == "" {
				for _, s := range st.Secrets {
					if s.Sealed {
						fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s: SealedSecret %s not decrypted here (no --secret-key): a server refuses a revision whose SealedSecrets it cannot decrypt\n", s.Source, s.Name)
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "secret-key", "", "age identity file: also check that SealedSecrets decrypt")
	return cmd
}

func renderCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "render DIR",
		Short: "Print the normalized objects of the manifests under DIR (secret values are never printed)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := loadDir(cmd, args[0], "")
			if err != nil {
				return err
			}
			return writeState(cmd.OutOrStdout(), st, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "yaml or json")
	return cmd
}

func writeState(w io.Writer, st *desired.State, format string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	switch format {
	case "json":
		_, err = fmt.Fprintln(w, string(b))
		return err
	case "yaml":
		// Numbers stay as written (64Mi is 67108864, not 6.7108864e+07).
		var v any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return err
		}
		v = yamlNumbers(v)
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		defer enc.Close()
		return enc.Encode(v)
	}
	return fmt.Errorf("-o %q: want yaml or json", format)
}

// statefulNames are a StatefulSet's ordinals and their claims, as
// validate shows them: "db-0..db-2, claims data-db-N".
func statefulNames(w desired.Workload) string {
	sf := w.Stateful
	if w.Replicas == 0 {
		return "none (0 replicas)"
	}
	out := desired.ShortName(desired.OrdinalName(w.Name, sf.Start))
	if w.Replicas > 1 {
		out += ".." + desired.ShortName(desired.OrdinalName(w.Name, sf.Start+w.Replicas-1))
	}
	for i, c := range sf.Claims {
		if i == 0 {
			out += ", claims "
		} else {
			out += ", "
		}
		out += c.Name + "-" + desired.ShortName(w.Name) + "-N"
	}
	return out
}

func schemaCmd() *cobra.Command {
	var fields bool
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Print the embedded CUE schema (package baton.dev/schema), or with --fields every field path",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !fields {
				_, err := io.WriteString(cmd.OutOrStdout(), schema.Source)
				return err
			}
			fs, err := desired.SchemaFields()
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), strings.Join(fs, "\n"))
			return nil
		},
	}
	cmd.Flags().BoolVar(&fields, "fields", false, "list every field path of every kind instead")
	return cmd
}

func secretCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "secret", Short: "Seal secrets so they can live in Git"}
	keygen := &cobra.Command{
		Use:   "keygen FILE",
		Short: "Create the cluster's age key pair: the private key in FILE (for the reconciler), the public key on stdout",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := age.GenerateX25519Identity()
			if err != nil {
				return err
			}
			f, err := os.OpenFile(args[0], os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("write key: %w", err)
			}
			if _, err := fmt.Fprintf(f, "# public key: %s\n%s\n", id.Recipient(), id); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), id.Recipient())
			return nil
		},
	}
	var recipient, name, typ string
	seal := &cobra.Command{
		Use:   "seal KEY=VALUE|KEY=@FILE...",
		Short: "Write a SealedSecret with the values encrypted to the cluster's public key",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := age.ParseX25519Recipient(recipient)
			if err != nil {
				return fmt.Errorf("--recipient: %w", err)
			}
			data := map[string]string{}
			for _, a := range args {
				k, v, ok := strings.Cut(a, "=")
				if !ok || k == "" {
					return fmt.Errorf("%q: want KEY=VALUE or KEY=@FILE", k)
				}
				value := []byte(v)
				if strings.HasPrefix(v, "@") {
					if value, err = os.ReadFile(v[1:]); err != nil {
						return err
					}
				}
				if data[k], err = desired.Seal(r, value); err != nil {
					return err
				}
			}
			keys := make([]string, 0, len(data))
			for k := range data {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "apiVersion: baton.dev/v1\nkind: SealedSecret\nmetadata:\n  name: %s\nspec:\n", name)
			if typ != "" {
				fmt.Fprintf(w, "  type: %s\n", typ)
			}
			fmt.Fprintln(w, "  encryptedData:")
			for _, k := range keys {
				fmt.Fprintf(w, "    %s: %s\n", k, data[k])
			}
			return nil
		},
	}
	seal.Flags().StringVar(&recipient, "recipient", "", "the cluster's public key (age1...), printed by 'baton secret keygen'")
	seal.Flags().StringVar(&name, "name", "", "the secret's name")
	seal.Flags().StringVar(&typ, "type", "", "the secret's type (default Opaque)")
	_ = seal.MarkFlagRequired("recipient")
	_ = seal.MarkFlagRequired("name")
	cmd.AddCommand(keygen, seal)
	return cmd
}

// yamlNumbers turns the json.Numbers of v into int64 (or float64 when they
// have a fraction), so YAML prints integers as integers.
func yamlNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = yamlNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = yamlNumbers(e)
		}
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	}
	return v
}
