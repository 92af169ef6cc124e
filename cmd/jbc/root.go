package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// dataDirEnv names the environment variable that sets the default data
// directory.
const dataDirEnv = "JBC_DATADIR"

// app holds the global flags and what every command shares.
type app struct {
	dataDir   string
	json      bool
	logLevel  string
	logFormat string

	stdout, stderr io.Writer
	log            *slog.Logger
}

// newRootCmd returns the jbc command with every subcommand. A new command
// goes in its own file as newXxxCmd(a *app) and is added below.
func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr, log: slog.New(slog.DiscardHandler)}
	root := &cobra.Command{
		Use:   "jbc",
		Short: "jbc is a proof-of-work blockchain node, the successor of the Python JackBlockChain",
		Long: `jbc keeps a proof-of-work chain in a data directory (--datadir, default
$` + dataDirEnv + ` or ~/.jbc). "jbc node" and "jbc mine" start the built-in network
in a data directory that holds no chain; "jbc init" makes a private network
instead, and "jbc import" one from a Python chain. The other commands only
read, and say so when there is no chain.`,
		Example: `  jbc node --mine                       # join the built-in network and mine
  jbc --datadir /tmp/p init --difficulty 16   # a private network
  jbc status                            # ask the running node`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return a.setup(cmd) },
		// An unknown command is a usage error (exit 2); cobra's own check
		// returns a plain error.
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for \"jbc\"", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.dataDir, "datadir", "", "data directory holding the chain (default $"+dataDirEnv+", else ~/.jbc)")
	pf.BoolVar(&a.json, "json", false, "print results as JSON, for scripts")
	pf.StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn or error (logs go to stderr)")
	pf.StringVar(&a.logFormat, "log-format", "text", "log format: text or json")

	root.AddCommand(
		newInitCmd(a),
		newMineCmd(a),
		newChainCmd(a),
		newBlocksCmd(a),
		newVerifyCmd(a),
		newExportCmd(a),
		newImportCmd(a),
		newVersionCmd(a),
		newNodeCmd(a),
		newIDCmd(a),
		newStatusCmd(a),
		newSubmitCmd(a),
		newDoctorCmd(a),
	)
	addCobraExamples(root)
	return root
}

// addCobraExamples makes cobra's own help and completion commands now,
// instead of when the command runs, and gives them examples like every
// jbc command has.
func addCobraExamples(root *cobra.Command) {
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		switch c.Name() {
		case "help":
			c.Example = "  jbc help node\n  jbc node --help"
		case "completion":
			c.Example = "  jbc completion bash > /etc/bash_completion.d/jbc\n  source <(jbc completion zsh)"
			for _, sh := range c.Commands() {
				sh.Example = "  jbc completion " + sh.Name() + " --help   # where to install it"
			}
		}
	}
}

// defaultDataDir is $JBC_DATADIR, else ~/.jbc. Without either (no HOME)
// there is no default: a data directory in whatever the current directory
// happens to be would be a chain nobody finds again.
func defaultDataDir() (string, error) {
	if d := os.Getenv(dataDirEnv); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", fmt.Errorf("no data directory: $%s is not set and there is no home directory ($HOME is not set); give --datadir DIR or set %s", dataDirEnv, dataDirEnv)
	}
	return filepath.Join(home, ".jbc"), nil
}

// usesDataDir names the commands that read or write the data directory;
// the others (status, submit, doctor, version, help, completion) run
// without one.
var usesDataDir = map[string]bool{
	"init": true, "mine": true, "chain": true, "blocks": true, "verify": true,
	"export": true, "import": true, "node": true, "id": true,
}

// setup checks the global flags, builds the logger and, for commands
// that use one, settles the data directory.
func (a *app) setup(cmd *cobra.Command) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
		return usagef("--log-level %q: want debug, info, warn or error", a.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch a.logFormat {
	case "text":
		a.log = slog.New(slog.NewTextHandler(a.stderr, opts))
	case "json":
		a.log = slog.New(slog.NewJSONHandler(a.stderr, opts))
	default:
		return usagef("--log-format %q: want text or json", a.logFormat)
	}
	// Libraries that write with the standard log package (the mDNS and
	// QUIC ones do) go through the same handler, at debug level.
	slog.SetDefault(a.log)
	slog.SetLogLoggerLevel(slog.LevelDebug)
	switch {
	case cmd.Flags().Changed("datadir"):
		if strings.TrimSpace(a.dataDir) == "" {
			return usagef("--datadir is empty")
		}
	case usesDataDir[cmd.Name()] && cmd.Parent() == cmd.Root():
		d, err := defaultDataDir()
		if err != nil {
			return usageError{err}
		}
		a.dataDir = d
	}
	return nil
}

// exactArgs is cobra.ExactArgs(n) as a usage error, naming what is
// missing.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %d argument%s (%s), got %d", cmd.CommandPath(), n, plural(n), what, len(args))
		}
		return nil
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// noArgs refuses positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}

// printJSON writes v as indented JSON and a newline.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printf writes human-readable output.
func (a *app) printf(format string, args ...any) {
	fmt.Fprintf(a.stdout, format, args...)
}

// printJSONLine writes v as one line of compact JSON, for streams of
// events.
func (a *app) printJSONLine(v any) error {
	return json.NewEncoder(a.stdout).Encode(v)
}
