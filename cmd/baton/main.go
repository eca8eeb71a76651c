// Command baton is Baton's single binary: the all-in-one `up`, the
// reconciler (`server`), the node agent (`agent`), and the operator commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/batonhq/baton/desired"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

// exitError carries a process exit code through cobra.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	// First: this process may be a child evaluating a revision's CUE.
	desired.ServeChild()
	logger := newLogger()
	ctx, cancel := context.WithCancel(logger.WithContext(context.Background()))
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go onSignals(sigs, cancel, &logger, os.Exit)
	err := rootCmd().ExecuteContext(ctx)
	var ee exitError
	switch {
	case errors.As(err, &ee):
		os.Exit(ee.code)
	case err != nil:
		fmt.Fprintln(os.Stderr, "baton:", err)
		os.Exit(1)
	}
}

// daemon is set by the commands that run until interrupted (up, server,
// agent): their interrupt says what it waits for.
var daemon atomic.Bool

// onSignals ends the command on the first interrupt (what is under way
// finishes: a stop within its pods' grace periods, a lease handed over),
// saying so for a daemon, and quits at once on the second, with the
// signal's exit status (130 for SIGINT, 143 for SIGTERM).
func onSignals(sigs <-chan os.Signal, cancel context.CancelFunc, log *zerolog.Logger, exit func(int)) {
	<-sigs
	if daemon.Load() {
		log.Info().Msg("stopping: what is under way finishes first (a stop within its grace period); interrupt again to quit at once (an embedded containerd keeps running)")
	}
	cancel()
	sig := <-sigs
	log.Warn().Msg("quitting at once")
	code := 130
	if s, ok := sig.(syscall.Signal); ok {
		code = 128 + int(s)
	}
	exit(code)
}

func newLogger() zerolog.Logger {
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}).With().Timestamp().Logger()
	}
	return zerolog.New(os.Stderr).With().Timestamp().Logger()
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "baton",
		Short:         "Baton keeps a fleet of machines running exactly what a Git repository says",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(upCmd(), downCmd(), execCmd(), serverCmd(), agentCmd(), statusCmd(), topCmd(), eventsCmd(), historyCmd(), waitCmd(), diffCmd(), planCmd(), pinCmd(), unpinCmd(), logsCmd(), validateCmd(), renderCmd(), schemaCmd(), secretCmd(), imageCmd(), tokenCmd(), nodeCmd(), userCmd(), loginCmd(), backupCmd(), restoreCmd(), versionCmd())
	return root
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "baton", Version)
		},
	}
}
