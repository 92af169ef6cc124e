// Command jbc runs and inspects a jbc chain: it creates or joins networks,
// mines offline, prints and verifies the stored chain, and imports and
// exports the Python JackBlockChain's chaindata layout.
//
// The command is wiring only: consensus lives in package chain, storage and
// the Python layout in package storage. Each subcommand is one file here
// (init.go, mine.go, ...) with a constructor called from newRootCmd; the
// data directory helpers are in datadir.go.
//
// Exit codes: 0 on success, 1 on failure, 2 on a usage error (an unknown
// command or flag, a missing or extra argument, a malformed value). Results
// go to stdout (human-readable, or JSON with --json); errors and logs go to
// stderr. Only init, import, node and mine make a chain; the commands that
// read reach a running node's chain through its API (running.go).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// run runs jbc with args, writing results to stdout and errors and logs
// to stderr, and returns the exit code. Tests call it in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "jbc: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(stderr, "Run 'jbc --help' for usage.")
			return exitUsage
		}
		return exitError
	}
	return exitOK
}

// usageError marks an error in how jbc was called, as opposed to one met
// while doing the work.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}
