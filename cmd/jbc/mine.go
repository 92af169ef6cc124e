package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/spf13/cobra"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// defaultMineData is what mined blocks carry when --data is not given.
const defaultMineData = "mined by jbc"

// mined is one line of mine --json: a committed block, or the summary.
type mined struct {
	Event  string  `json:"event"` // "block"
	Height uint64  `json:"height"`
	Hash   string  `json:"hash"`
	Bits   uint8   `json:"bits"`
	Nonce  uint64  `json:"nonce"`
	Secs   float64 `json:"seconds"` // to mine it
}

type mineSummary struct {
	Event        string  `json:"event"` // "done"
	Blocks       int     `json:"blocks"`
	Seconds      float64 `json:"seconds"`
	BlocksPerSec float64 `json:"blocks_per_sec"`
	Hashes       uint64  `json:"hashes"`
	HashesPerSec float64 `json:"hashes_per_sec"`
	Height       uint64  `json:"height"`
	Tip          string  `json:"tip"`
}

func newMineCmd(a *app) *cobra.Command {
	var (
		blocks  int
		data    string
		threads int
	)
	cmd := &cobra.Command{
		Use:   "mine",
		Short: "Mine blocks on the local best chain, offline",
		Long: `mine mines --blocks blocks on top of the local best chain, without a network,
and stores each. It prints each block as soon as it is committed (with --json,
one JSON object per line), then blocks/s and hashes/s.`,
		Example: `  jbc mine --blocks 5
  jbc mine --blocks 100 --threads 1 --data "offline batch" --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if blocks < 1 {
				return usagef("--blocks %d: want at least 1", blocks)
			}
			if threads < 0 {
				return usagef("--threads %d: want 0 (all CPUs) or more", threads)
			}
			s, err := a.openStore(true)
			if err != nil {
				return err
			}
			defer s.Close()
			return a.mine(cmd.Context(), s, blocks, data, threads)
		},
	}
	f := cmd.Flags()
	f.IntVar(&blocks, "blocks", 1, "number of blocks to mine")
	f.StringVar(&data, "data", defaultMineData, "data each block carries")
	f.IntVar(&threads, "threads", 0, "mining goroutines; 0 means one per CPU")
	return cmd
}

func (a *app) mine(ctx context.Context, s *storage.Store, n int, data string, threads int) error {
	m := &chain.Miner{Threads: threads}
	start := time.Now()
	done := 0
	summary := func() error {
		el := time.Since(start).Seconds()
		tip := s.Tip()
		sum := mineSummary{Event: "done", Blocks: done, Seconds: el, Hashes: m.Attempts(), Height: tip.Height, Tip: tip.Hash.String()}
		if el > 0 {
			sum.BlocksPerSec, sum.HashesPerSec = float64(done)/el, float64(sum.Hashes)/el
		}
		if a.json {
			return a.printJSONLine(sum)
		}
		a.printf("mined %d blocks in %.2fs: %.2f blocks/s, %s (%d hashes); tip %d %s\n",
			done, el, sum.BlocksPerSec, hashRate(sum.HashesPerSec), sum.Hashes, tip.Height, tip.Hash)
		return nil
	}
	for done < n {
		tmpl, bits, err := s.Template(data)
		if err != nil {
			return err
		}
		// When the rules want a timestamp ahead of the clock and of the
		// chain's newest (blocks mined faster than the strict median
		// rule's pace), wait rather than run the chain's time ahead.
		d, err := s.StampDelay(tmpl)
		if err != nil {
			return err
		}
		if d > 0 {
			a.log.Debug("chain time is ahead of the clock: waiting", "wait", d)
			if err := sleep(ctx, d); err != nil {
				summary()
				return fmt.Errorf("interrupted after %d blocks", done)
			}
			continue
		}
		t0 := time.Now()
		b, err := m.Solve(ctx, tmpl, bits)
		if errors.Is(err, chain.ErrNonceSpace) {
			continue // a new template has a new timestamp
		}
		if err != nil {
			if ctx.Err() != nil {
				summary()
				return fmt.Errorf("interrupted after %d blocks", done)
			}
			return err
		}
		if _, err := s.AddBlock(b); err != nil {
			return fmt.Errorf("mined block %d refused: %w", b.Index, err)
		}
		done++
		el := time.Since(t0)
		if a.json {
			if err := a.printJSONLine(mined{"block", b.Index, b.Hash.String(), bits, b.Nonce, math.Round(el.Seconds()*1000) / 1000}); err != nil {
				return err
			}
		} else {
			a.printf("block %d %s bits=%d nonce=%d %.3fs\n", b.Index, b.Hash, bits, b.Nonce, el.Seconds())
		}
	}
	return summary()
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// hashRate formats hashes per second with a unit.
func hashRate(hps float64) string {
	switch {
	case hps >= 1e9:
		return fmt.Sprintf("%.2f GH/s", hps/1e9)
	case hps >= 1e6:
		return fmt.Sprintf("%.2f MH/s", hps/1e6)
	case hps >= 1e3:
		return fmt.Sprintf("%.2f kH/s", hps/1e3)
	}
	return fmt.Sprintf("%.0f H/s", hps)
}
