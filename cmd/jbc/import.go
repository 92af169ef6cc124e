package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/chainsync"
	"github.com/jbc-project/jbc/storage"
)

// importURL fetches the chain a Python node serves at rawURL, whole, then
// imports it as a chaindata directory is imported.
func (a *app) importURL(ctx context.Context, rawURL string, cfg storage.PythonImport) (storage.ImportResult, error) {
	u, err := chainsync.LegacyChainURL(rawURL)
	if err != nil {
		return storage.ImportResult{}, usagef("--from: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, chainsync.LegacyFetchTimeout)
	defer cancel()
	var blocks []chain.Block
	p := a.newProgress("fetching", -1)
	err = chainsync.FetchLegacyChain(ctx, u, func(b chain.Block) error {
		blocks = append(blocks, b)
		p.set(int64(len(blocks)))
		return nil
	})
	p.finish()
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("%w (the fetch may take at most %s)", err, chainsync.LegacyFetchTimeout)
		}
		return storage.ImportResult{}, fmt.Errorf("import: %w", err)
	}
	a.log.Info("fetched the chain", "url", u, "blocks", len(blocks))
	return storage.ImportPythonList(a.dataDir, u, blocks, cfg)
}

func newImportCmd(a *app) *cobra.Command {
	var (
		from  string
		zeros int
	)
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Import a Python JackBlockChain chain: its chaindata directory, or a running node's /blockchain.json",
		Long: `import reads a Python JackBlockChain chaindata directory (000000.json,
000001.json, ...), or, when --from is an http:// URL, the chain a running
Python node serves at /blockchain.json (http://HOST:PORT, or the URL of the
list itself; read as it streams, at most 1 GiB within 10 minutes, following
no redirect). It validates the whole chain before writing anything. If it is
malformed or breaks a rule, the error names the file (or the block) and the
rule, and the data directory is left unchanged.

Into a data directory without a chain it creates a new network, named
"imported", whose genesis is the chain's first block, with a fixed difficulty
of --zeros leading hex zeros (the original's NUM_ZEROS; 4 bits each). Without
--zeros the difficulty is inferred as the most the chain meets: the fewest
leading hex zeros of any block after the genesis. The chain appears whole or
not at all, and the network's genesis file is written as genesis.json.

Into a data directory with a chain, the blocks must be that network's (the
first is its genesis) and meet its rules; they are committed 1000 at a time, so
an interrupted import can simply be run again. They become the best chain only
if they have more work. To import a chain jbc exported from one of its own
networks, join that network first (jbc init --genesis FILE), so that its rules
are kept rather than replaced by the "imported" ones.`,
		Example: `  jbc --datadir imported import --from ../JackBlockChain/chaindata
  jbc import --from chaindata --zeros 4
  jbc --datadir imported import --from http://127.0.0.1:5000`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" {
				return usagef("--from is required")
			}
			if strings.Contains(from, "://") {
				if _, err := chainsync.LegacyChainURL(from); err != nil {
					return usagef("--from: %v", err)
				}
			}
			var err error
			z := storage.InferZeros
			if cmd.Flags().Changed("zeros") {
				if zeros < 0 || zeros > storage.MaxZeros {
					return usagef("--zeros %d: want 0 to %d", zeros, storage.MaxZeros)
				}
				z = zeros
			}
			cfg := storage.PythonImport{
				Zeros:   z,
				Options: []storage.Option{storage.WithLogger(a.log)},
			}
			var bar *progress
			cfg.Validated = func(n int) {
				if !a.json {
					a.printf("validated %d blocks\n", n)
				}
				bar = a.newProgress("importing", int64(n))
			}
			cfg.Progress = func(r storage.Result) {
				switch {
				case bar != nil && bar.bar != nil:
					bar.set(int64(r.Tip.Height) + 1)
				case !a.json:
					// Scripts (and the crash test) read what is committed.
					a.printf("stored through height %d\n", r.Tip.Height)
				}
			}
			var res storage.ImportResult
			if strings.Contains(from, "://") {
				res, err = a.importURL(cmd.Context(), from, cfg)
			} else {
				res, err = storage.ImportPython(a.dataDir, from, cfg)
			}
			if bar != nil {
				bar.finish()
			}
			if err != nil {
				return err
			}
			genesisPath := ""
			if res.Created && res.Params.Name == storage.ImportedName {
				if genesisPath, err = writeGenesis(a.dataDir, res.Params); err != nil {
					return err
				}
			}
			p := res.Params
			if a.json {
				return a.printJSON(struct {
					Network     string `json:"network"`
					Name        string `json:"name"`
					Created     bool   `json:"created"`
					Bits        uint8  `json:"bits"`
					Read        int    `json:"read"`
					Added       int    `json:"added"`
					Height      uint64 `json:"height"`
					Tip         string `json:"tip"`
					Best        bool   `json:"best"`
					GenesisFile string `json:"genesis_file,omitempty"`
				}{p.ID().String(), p.Name, res.Created, p.Bits, res.Blocks, res.Added, res.Tip.Height, res.Tip.Hash.String(), res.Best, genesisPath})
			}
			switch {
			case res.Created && p.Name != storage.ImportedName:
				a.printf("the chain is of the built-in network %q (%s): created its chain in %s\n", p.Name, p.ID(), a.dataDir)
			case res.Created:
				a.printf("created network %q (%s) in %s: %s (%d hex zeros)\n", p.Name, p.ID(), a.dataDir, describeRules(p), p.Bits/4)
				a.printf("genesis file: %s\n", genesisPath)
			}
			a.printf("imported %d blocks from %s, %d new; tip %d %s\n", res.Blocks, from, res.Added, res.Tip.Height, res.Tip.Hash)
			switch {
			case res.Best:
			case res.Imported.Work != nil && res.Imported.Work.Cmp(res.Tip.Work) == 0:
				a.printf("the data directory's chain has as much work as the imported one (equal work: the chain already held stays best): the imported blocks are kept as a side branch\n")
			default:
				a.printf("the data directory's chain has more work: the imported blocks are kept as a side branch\n")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "chaindata directory, or http:// URL of a running Python node, to import")
	f.IntVar(&zeros, "zeros", 0, "difficulty of a new network in leading hex zeros (default: inferred from the chain)")
	return cmd
}
