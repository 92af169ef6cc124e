package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/jbc-project/jbc/chain"
)

// verifyLogEvery is how often verify logs its progress, in blocks.
const verifyLogEvery = 100000

func newVerifyCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Re-validate the whole best chain and the store's index",
		Long: `verify re-validates every block of the best chain from the genesis against
the network's rules and checks the store's index against the blocks. It exits
non-zero, naming the first problem, if anything is wrong. On a retargeting
network that keeps the original time rules (jbc-main, and networks made by
jbc init before the anchored rules) it adds a note on what that means.`,
		Example: `  jbc verify
  jbc --datadir /srv/jbc verify --log-level debug`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			s, err := a.openStore()
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
			p := s.Params()
			if a.json {
				return a.printJSON(struct {
					OK bool `json:"ok"`
					chainSummary
					Seconds   float64 `json:"seconds"`
					TimeRules string  `json:"time_rules"`
				}{true, sum, time.Since(start).Seconds(), p.TimeRules.String()})
			}
			a.printf("ok: the best chain of %d blocks verified in %.2fs (network %s, tip %d %s)\n",
				sum.Height+1, time.Since(start).Seconds(), p.Name, sum.Height, sum.Tip)
			if note := timeRulesNote(p); note != "" {
				a.printf("note: %s\n", note)
			}
			return nil
		},
	}
}

// timeRulesNote says, for a retargeting network that keeps the original
// time rules (the built-in jbc-main, networks made by jbc init before the
// anchored rules), what that means; "" for any other network.
func timeRulesNote(p *chain.Params) string {
	if p.TimeRules != chain.TimeRulesOriginal || p.Spacing == 0 {
		return ""
	}
	return fmt.Sprintf("network %s keeps the original time rules (its genesis file names no time_rules), "+
		"under which its difficulty retargeting is open to a time warp: a miner with a large share of the hash rate "+
		"can stamp blocks so that the difficulty falls by up to 4x a window (docs/protocol.md, section 13). "+
		"Networks made by jbc init now use the anchored rules; this one keeps its rules, as changing them would fork it.", p.Name)
}
