package main

import (
	"github.com/spf13/cobra"
)

func newChainCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "chain",
		Short: "Show the network, height, tip and total work of the local chain",
		Long: `chain shows the local chain: the network's id (its genesis hash), the best
chain's height (the genesis alone is height 0) and tip, its total work (the
expected number of hashes it took, a decimal integer) and how many blocks are
stored, side branches included. With --json the keys are network, height, tip,
total_work (a string) and blocks. While a node runs on the data directory
(it holds the chain file), chain asks that node, through the HTTP API address
it wrote into the data directory (api.json).`,
		Example: `  jbc chain
  jbc chain --json | jq -r .tip`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			r, err := a.openReader()
			if err != nil {
				return err
			}
			defer r.close()
			sum, err := r.summary()
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(sum)
			}
			p := r.params()
			a.printf("network     %s (%s)\n", sum.Network, p.Name)
			a.printf("rules       %s\n", describeRules(p))
			a.printf("height      %d\n", sum.Height)
			a.printf("tip         %s\n", sum.Tip)
			a.printf("total work  %s\n", sum.TotalWork)
			a.printf("blocks      %d\n", sum.Blocks)
			return nil
		},
	}
}
