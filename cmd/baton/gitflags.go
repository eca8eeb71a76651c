package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"

	"github.com/batonhq/baton/gitsource"
	"github.com/batonhq/baton/reconciler"
)

// gitFlags are the flags that say what to follow and how to authenticate.
// Secrets are read from files or environment variables, never given on the
// command line (where ps would show them).
type gitFlags struct {
	tag, semver, commit string
	shallow             bool
	username            string
	passwordFile        string
	passwordEnv         string
	caFile              string
	sshKey, sshPassFile string
	knownHosts          []string
	verifyKeyring       string
	webhookListen       string
	webhookSecretFile   string
	notes, autoRevert   bool
	author              string
}

func (g *gitFlags) register(f *pflag.FlagSet) {
	f.StringVar(&g.tag, "tag", "", "follow this tag instead of a branch")
	f.StringVar(&g.semver, "semver", "", `follow the highest tag in this semver range, e.g. ">=1.2.0 <2"`)
	f.StringVar(&g.commit, "commit", "", "pin this commit (full hash)")
	f.BoolVar(&g.shallow, "shallow", false, "fetch only the tip (depth 1): for long histories")
	f.StringVar(&g.username, "git-username", "", "HTTP(S) user name (default git when a password is set)")
	f.StringVar(&g.passwordFile, "git-password-file", "", "file holding the HTTP(S) password or token")
	f.StringVar(&g.passwordEnv, "git-password-env", "", "environment variable holding the HTTP(S) password or token")
	f.StringVar(&g.caFile, "git-ca-file", "", "PEM certificates to trust for HTTPS, besides the system's")
	f.StringVar(&g.sshKey, "git-ssh-key", "", "private key file for ssh remotes")
	f.StringVar(&g.sshPassFile, "git-ssh-passphrase-file", "", "file holding the ssh key's passphrase")
	f.StringArrayVar(&g.knownHosts, "git-known-hosts", nil, "known_hosts file for ssh remotes (default ~/.ssh/known_hosts); host keys are always checked")
	f.StringVar(&g.verifyKeyring, "verify-keyring", "", "armored OpenPGP public keys: deploy only commits signed by one of them")
	f.StringVar(&g.webhookListen, "webhook-listen", "", "a separate address for push webhooks (POST /hooks/git), e.g. :9090; the API serves them at POST /api/v1/hooks/git in any case")
	f.StringVar(&g.webhookSecretFile, "webhook-secret-file", "", "file holding the push webhooks' shared secret (at least 16 bytes): turns the webhook on")
	f.BoolVar(&g.notes, "git-notes", false, "write each revision's outcome to the repository as a git note (refs/notes/baton; needs push rights)")
	f.BoolVar(&g.autoRevert, "auto-revert", false, "when a revision's rollout fails, push a commit reverting it onto the followed branch (needs push rights)")
	f.StringVar(&g.author, "git-author", "Baton <baton@localhost>", "author of the notes and revert commits Baton pushes")
}

// writeBack gives the reconciler the git notes and auto-revert the flags
// ask for, through src.
func (g *gitFlags) writeBack(cfg *reconciler.Config, src *gitsource.Source) error {
	if !g.notes && !g.autoRevert {
		return nil
	}
	by, err := gitsource.ParseSignature(g.author)
	if err != nil {
		return fmt.Errorf("--git-author: %w", err)
	}
	w := gitWriter{src: src, by: by}
	if g.notes {
		cfg.Notes = w
	}
	if g.autoRevert {
		cfg.Reverter = w
	}
	return nil
}

type gitWriter struct {
	src *gitsource.Source
	by  gitsource.Signature
}

func (w gitWriter) Note(ctx context.Context, rev, text string) error {
	return w.src.Note(ctx, rev, text, w.by)
}

func (w gitWriter) Revert(ctx context.Context, rev, reason string) (string, error) {
	sha, err := w.src.Revert(ctx, rev, reason, w.by)
	if sha != "" {
		w.src.Trigger() // apply the revert now rather than at the next poll
	}
	return sha, err
}

func readSecret(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// apply fills the source config from the flags.
func (g *gitFlags) apply(cfg *gitsource.Config) error {
	cfg.Tag, cfg.SemVer, cfg.Commit, cfg.Shallow = g.tag, g.semver, g.commit, g.shallow
	a := &cfg.Auth
	a.Username = g.username
	var err error
	switch {
	case g.passwordFile != "" && g.passwordEnv != "":
		return errors.New("use --git-password-file or --git-password-env, not both")
	case g.passwordFile != "":
		if a.Password, err = readSecret(g.passwordFile); err != nil {
			return fmt.Errorf("--git-password-file: %w", err)
		}
	case g.passwordEnv != "":
		if a.Password = os.Getenv(g.passwordEnv); a.Password == "" {
			return fmt.Errorf("--git-password-env: %s is empty", g.passwordEnv)
		}
	}
	if g.caFile != "" {
		if a.CABundle, err = os.ReadFile(g.caFile); err != nil {
			return fmt.Errorf("--git-ca-file: %w", err)
		}
	}
	if g.sshKey != "" {
		if a.SSHKey, err = os.ReadFile(g.sshKey); err != nil {
			return fmt.Errorf("--git-ssh-key: %w", err)
		}
	}
	if g.sshPassFile != "" {
		if a.SSHPassphrase, err = readSecret(g.sshPassFile); err != nil {
			return fmt.Errorf("--git-ssh-passphrase-file: %w", err)
		}
	}
	a.KnownHosts = g.knownHosts
	if g.verifyKeyring != "" {
		b, err := os.ReadFile(g.verifyKeyring)
		if err != nil {
			return fmt.Errorf("--verify-keyring: %w", err)
		}
		cfg.VerifyKeyring = string(b)
	}
	if g.autoRevert && (g.tag != "" || g.semver != "" || g.commit != "") {
		return errors.New("--auto-revert needs a branch to push to: not with --tag, --semver or --commit")
	}
	if g.autoRevert && g.shallow {
		return errors.New("--auto-revert needs the parent of a failed commit: not with --shallow")
	}
	if g.autoRevert && g.verifyKeyring != "" {
		return errors.New("--auto-revert with --verify-keyring: Baton does not sign its revert commits, so it would refuse to deploy them")
	}
	if g.webhookListen != "" && g.webhookSecretFile == "" {
		return errors.New("--webhook-listen needs --webhook-secret-file")
	}
	return nil
}

// webhook returns the push webhook that makes src poll at once (nil
// without --webhook-secret-file); it is served on the API at POST
// /api/v1/hooks/git and, with --webhook-listen, on its own listener too.
func (g *gitFlags) webhook(log zerolog.Logger, src *gitsource.Source) (http.Handler, func(), error) {
	if g.webhookSecretFile == "" {
		return nil, func() {}, nil
	}
	secret, err := readSecret(g.webhookSecretFile)
	if err != nil {
		return nil, nil, fmt.Errorf("--webhook-secret-file: %w", err)
	}
	hook, err := gitsource.NewWebhook([]byte(secret), src.Trigger, 5, 20, log)
	if err != nil {
		return nil, nil, err
	}
	if g.webhookListen == "" {
		return hook, func() {}, nil
	}
	mux := http.NewServeMux()
	mux.Handle("/hooks/git", hook)
	ln, err := net.Listen("tcp", g.webhookListen)
	if err != nil {
		return nil, nil, fmt.Errorf("webhook listener: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second}
	log.Info().Str("address", ln.Addr().String()).Msg("webhook endpoint POST /hooks/git")
	return hook, serveHTTP(log, srv, ln, "webhook endpoint"), nil
}
