package main

import (
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

func newExportCmd(a *app) *cobra.Command {
	var (
		out      string
		from, to uint64
		keyOrder string
	)
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the best chain in the Python JackBlockChain's chaindata layout",
		Long: `export writes the best chain's blocks (heights --from to --to, default all)
into --out as the Python JackBlockChain's chaindata: one file per block,
000000.json, 000001.json, ..., every value a JSON string, byte for byte as the
original writes them: by default with the keys in the order of the original's
own files, which it wrote under Python 2 (nonce, index, hash, timestamp,
prev_hash, data); --key-order python3 writes them in the order the original
writes under Python 3 (index, timestamp, prev_hash, hash, data, nonce). Each
file is written atomically. While a node runs on the data directory, the blocks
come from it, through its HTTP API. Files of other heights
already in --out are left alone: export into an empty directory to replace a
chain.`,
		Example: `  jbc export --out chaindata
  jbc export --out recent --from 1000
  jbc export --out chaindata --key-order python3`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("--out is required")
			}
			if !cmd.Flags().Changed("to") {
				to = ^uint64(0)
			}
			if from > to {
				return usagef("--from %d is above --to %d", from, to)
			}
			order, err := storage.ParseKeyOrder(keyOrder)
			if err != nil {
				return usagef("--key-order: %v", err)
			}
			r, err := a.openReader()
			if err != nil {
				return err
			}
			defer r.close()
			sum, err := r.summary()
			if err != nil {
				return err
			}
			// A running node's chain may grow while it is read: the
			// snapshot read ends at the tip seen here.
			tipHeight := sum.Height
			to = min(to, tipHeight)
			first := min(from, tipHeight)
			bar := a.newProgress("exporting", int64(min(to, tipHeight)-first+1))
			each := func(fn func(*chain.Block) error) error { return r.forEach(from, to, fn) }
			n, err := storage.ExportPythonBlocks(out, each, storage.PythonExport{Keys: order, Progress: func(h uint64) { bar.set(int64(h - first + 1)) }})
			bar.finish()
			if err != nil {
				return err
			}
			last := min(to, tipHeight)
			if _, err := os.Stat(filepath.Join(out, storage.PythonFileName(last+1))); err == nil {
				a.log.Warn("the directory holds blocks past the ones exported, from an earlier export: a reader will see them", "dir", out, "file", storage.PythonFileName(last+1))
			}
			if a.json {
				return a.printJSON(struct {
					Dir    string `json:"dir"`
					Blocks int    `json:"blocks"`
					From   uint64 `json:"from"`
					To     uint64 `json:"to"`
				}{out, n, from, last})
			}
			if n == 0 {
				a.printf("exported no blocks: the tip is at height %d\n", tipHeight)
				return nil
			}
			a.printf("exported %d blocks (heights %d to %d) to %s\n", n, from, last, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "directory to write the block files into (created if missing)")
	f.Uint64Var(&from, "from", 0, "first height")
	f.Uint64Var(&to, "to", 0, "last height (default: the tip)")
	f.StringVar(&keyOrder, "key-order", storage.Python2Keys.String(), "order of the keys in each file: python2 (the original's own files) or python3 (the original run under Python 3)")
	return cmd
}
