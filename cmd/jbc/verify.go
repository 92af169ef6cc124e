package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// verifyRunning re-validates the best chain of the node that holds the
// data directory's chain file (inUse), read through its API.
func (a *app) verifyRunning(inUse error) error {
	api, err := a.runningNode(inUse)
	if err != nil {
		return err
	}
	cj, err := api.chain()
	if err != nil {
		return err
	}
	p := cj.Params
	if err := p.Validate(); err != nil {
		return fmt.Errorf("the running node's network: %w", err)
	}
	start := time.Now()
	g := p.GenesisEntry()
	v, err := chain.NewValidator(p, g, []int64{g.Time})
	if err != nil {
		return err
	}
	var (
		count uint64
		tip   chain.Hash
	)
	err = api.blocks(0, cj.Height, func(b *chain.Block) error {
		if b.Index == 0 {
			if err := p.CheckGenesis(b); err != nil {
				return fmt.Errorf("block 0: %w", err)
			}
		} else if _, err := v.Next(b, time.Now().Unix()); err != nil {
			return fmt.Errorf("block %d (%s): %w", b.Index, b.Hash.Short(), err)
		}
		if b.Index%verifyLogEvery == 0 {
			a.log.Info("verifying", "height", b.Index)
		}
		count++
		tip = b.Hash
		return nil
	})
	if err != nil {
		return fmt.Errorf("the best chain served by the node at %s: %w", api.base, err)
	}
	if count != cj.Height+1 {
		return fmt.Errorf("the node at %s served %d blocks of its best chain, want %d", api.base, count, cj.Height+1)
	}
	if a.json {
		return a.printJSON(struct {
			OK bool `json:"ok"`
			chainSummary
			Seconds   float64 `json:"seconds"`
			Via       string  `json:"via"`
			TimeRules string  `json:"time_rules"`
		}{true, chainSummary{Network: p.ID().String(), Height: cj.Height, Tip: tip.String(), TotalWork: v.Tip().Work.String(), Blocks: cj.Blocks}, time.Since(start).Seconds(), api.base, p.TimeRules.String()})
	}
	a.printf("ok: the best chain of %d blocks verified in %.2fs (network %s, tip %d %s), read from the running node at %s; the store's index is checked when no node runs\n",
		count, time.Since(start).Seconds(), p.Name, cj.Height, tip, api.base)
	if note := timeRulesNote(p); note != "" {
		a.printf("note: %s\n", note)
	}
	return nil
}

// verifyLogEvery is how often verify logs its progress, in blocks.
const verifyLogEvery = 100000

func newVerifyCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Re-validate the whole best chain and the store's index",
		Long: `verify re-validates every block of the best chain from the genesis against
the network's rules and checks the store's index against the blocks. It exits
non-zero, naming the first problem, if anything is wrong.

While a node runs on the data directory (it holds the chain file), verify asks
that node, through its HTTP API, for its whole best chain and re-validates
every block of it from the genesis; the store's own index is checked only
when no node runs (and a node re-checks the blocks below its tip at every
start).

On a retargeting network that keeps the original time rules (jbc-main, and
networks made by jbc init before the anchored rules) it adds a note on what
that means.`,
		Example: `  jbc verify
  jbc --datadir /srv/jbc verify --log-level debug`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			s, err := a.openStore(false)
			if errors.Is(err, storage.ErrInUse) {
				return a.verifyRunning(err)
			}
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
