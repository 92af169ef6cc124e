package node

import (
	"context"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/mining"
	"github.com/jbc-project/jbc/storage"
)

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
		cfg := mining.Config{Store: n.store, Miner: n.miner, Pool: n.pool, Disk: n.disk, Tips: n.tips.Wait, Fallback: MinedBy(n),
			Add:      func(b chain.Block) (storage.Result, error) { return n.addBlocksVia(viaMiner, []chain.Block{b}) },
			Announce: n.gossip.AnnounceMined,
			Logger:   n.rootLog}
		n.goRun(func(context.Context) { mining.Run(ctx, cfg) })
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

// HashAttempts returns the number of hashes the node's miner has tried.
func (n *Node) HashAttempts() uint64 { return n.miner.Attempts() }
