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
$` + dataDirEnv + ` or ~/.jbc). A command that needs a chain and finds none there
starts the built-in network; "jbc init" makes a private network instead.`,
		Example: `  jbc node --mine                       # join the built-in network and mine
  jbc --datadir /tmp/p init --difficulty 16   # a private network
  jbc status                            # ask the running node`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: func(*cobra.Command, []string) error { return a.setup() },
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.dataDir, "datadir", defaultDataDir(), "data directory holding the chain (env "+dataDirEnv+")")
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

// defaultDataDir is $JBC_DATADIR, else ~/.jbc.
func defaultDataDir() string {
	if d := os.Getenv(dataDirEnv); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".jbc"
	}
	return filepath.Join(home, ".jbc")
}

// setup checks the global flags and builds the logger.
func (a *app) setup() error {
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
	if strings.TrimSpace(a.dataDir) == "" {
		return usagef("--datadir is empty")
	}
	return nil
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
