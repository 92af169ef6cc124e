package main

import (
	"bufio"
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/jbc-project/jbc/chain"
)

func newBlocksCmd(a *app) *cobra.Command {
	var from, to uint64
	cmd := &cobra.Command{
		Use:   "blocks",
		Short: "Print the best chain's blocks as a JSON list",
		Long: `blocks prints the best chain's blocks at heights --from to --to (inclusive;
default: all) as a JSON list in jbc's form (integers as numbers), one block per
line, streamed: memory use does not grow with the chain. While a node runs on
the data directory, the blocks come from it, through its HTTP API.`,
		Example: `  jbc blocks --from 0 --to 10
  jbc blocks | jq length`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("to") {
				to = ^uint64(0)
			}
			if from > to {
				return usagef("--from %d is above --to %d", from, to)
			}
			r, err := a.openReader()
			if err != nil {
				return err
			}
			defer r.close()
			w := bufio.NewWriter(a.stdout)
			sep := "[\n"
			err = r.forEach(from, to, func(b *chain.Block) error {
				j, err := json.Marshal(b)
				if err != nil {
					return err
				}
				w.WriteString(sep)
				sep = ",\n"
				_, err = w.Write(j)
				return err
			})
			if err != nil {
				return err
			}
			if sep == "[\n" {
				w.WriteString("[]\n")
			} else {
				w.WriteString("\n]\n")
			}
			return w.Flush()
		},
	}
	cmd.Flags().Uint64Var(&from, "from", 0, "first height")
	cmd.Flags().Uint64Var(&to, "to", 0, "last height (default: the tip)")
	return cmd
}
