package node

import (
	"context"
	"errors"
	"time"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/disk"
)

// storePausePoll is how often a miner paused by a failing store (package
// disk) looks again: as often as the syncer does (chainsync's syncTick).
const storePausePoll = time.Second

// MinedBy returns the data a miner puts in a block when it has nothing else
// to carry: which node mined it, as the Python original did.
func MinedBy(n *Node) string { return "mined by " + n.ID().String() }

// SetMining starts or stops the miner of a started node. It is safe for
// concurrent use; stopping waits for nothing, the current attempt is
// abandoned.
func (n *Node) SetMining(on bool) {
	n.mineMu.Lock()
	defer n.mineMu.Unlock()
	switch {
	case on && n.mineStop == nil && n.ctx != nil:
		ctx, cancel := context.WithCancel(n.ctx)
		n.mineStop = cancel
		n.goRun(func(context.Context) { n.mineLoop(ctx) })
	case !on && n.mineStop != nil:
		n.mineStop()
		n.mineStop = nil
	}
}

// Mining reports whether the miner runs.
func (n *Node) Mining() bool {
	n.mineMu.Lock()
	defer n.mineMu.Unlock()
	return n.mineStop != nil
}

// mineLoop mines on the best tip until ctx ends. Work on a template stops
// as soon as the tip changes (a block from a peer, a sync), and mining
// restarts on the new tip.
func (n *Node) mineLoop(ctx context.Context) {
	log := n.rootLog.With("component", "miner")
	log.Info("mining", "threads", n.miner.Workers())
	defer log.Info("mining stopped")
	for ctx.Err() == nil {
		if n.disk.Paused(time.Now()) {
			// Our store cannot take the block: wait rather than mine it
			// again and again.
			select {
			case <-ctx.Done():
			case <-time.After(storePausePoll):
			}
			continue
		}
		tipCh := n.tips.Wait()
		poolCh := n.pool.Changed()
		localCh := n.pool.LocalAdded()
		fallback := MinedBy(n)
		data := n.pool.BlockData(n.store.Params().MaxDataSize, fallback)
		tmpl, bits, err := n.store.Template(data)
		if err != nil {
			log.Error("template", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		// When the rules want a timestamp ahead of the clock and of the
		// chain's newest, wait for the clock rather than run the chain's
		// time ahead of it.
		d, err := n.store.StampDelay(tmpl)
		if err != nil {
			log.Error("template", "err", err)
			d = time.Second
		}
		if d > 0 {
			log.Debug("chain time is ahead of the clock: waiting", "wait", d)
			select {
			case <-ctx.Done():
			case <-tipCh:
			case <-time.After(d):
			}
			continue
		}
		mctx, cancel := context.WithCancel(ctx)
		// A new tip makes the work stale; new entries do too when the
		// template carries none, and an entry submitted here always does
		// (local entries are packed first), so that submitted data is mined
		// in the next block.
		if data != fallback {
			poolCh = nil
		}
		go func() {
			select {
			case <-tipCh:
				cancel()
			case <-poolCh:
				cancel()
			case <-localCh:
				cancel()
			case <-mctx.Done():
			}
		}()
		b, err := n.miner.Solve(mctx, tmpl, bits)
		cancel()
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				log.Warn("mining", "err", err)
			}
			continue
		}
		res, err := n.addBlocksVia(viaMiner, []chain.Block{b})
		if err != nil {
			if !disk.LocalError(err) { // which n.disk has logged
				log.Warn("mined block refused", "height", b.Index, "err", err)
			}
			continue
		}
		if res.Extended {
			log.Info("mined block", "height", b.Index, "hash", b.Hash.Short(), "bits", bits, "entries", len(chain.UnpackEntries(b.Data)))
			n.gossip.AnnounceMined(b)
		}
	}
}

// HashAttempts returns the number of hashes the node's miner has tried.
func (n *Node) HashAttempts() uint64 { return n.miner.Attempts() }
