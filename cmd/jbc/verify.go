package main

import (
	"time"

	"github.com/spf13/cobra"
)

// verifyLogEvery is how often verify logs its progress, in blocks.
const verifyLogEvery = 100000

func newVerifyCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Re-validate the whole best chain and the store's index",
		Long: `verify re-validates every block of the best chain from the genesis against
the network's rules and checks the store's index against the blocks. It exits
non-zero, naming the first problem, if anything is wrong.`,
		Example: `  jbc verify
  jbc --datadir /srv/jbc verify --log-level debug`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			s, err := a.openStore(false)
			if err != nil {
				return err
			}
			defer s.Close()
			start := time.Now()
			err = s.Verify(func(h uint64) {
				if h%verifyLogEvery == 0 {
					a.log.Info("verifying", "height", h)
				}
			})
			if err != nil {
				return err
			}
			sum, err := summarize(s)
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(struct {
					OK bool `json:"ok"`
					chainSummary
					Seconds float64 `json:"seconds"`
				}{true, sum, time.Since(start).Seconds()})
			}
			a.printf("ok: the best chain of %d blocks verified in %.2fs (network %s, tip %d %s)\n",
				sum.Height+1, time.Since(start).Seconds(), s.Params().Name, sum.Height, sum.Tip)
			return nil
		},
	}
}
