package node

import (
	"context"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/disk"
	"github.com/jbc-project/jbc/storage"
)

// Storing blocks, whoever brings them (sync, gossip, the miner, a legacy
// peer), and keeping the data pool in step with the best chain.

// settledTip returns the best chain's tip once no block is being stored.
func (n *Node) settledTip() chain.Entry {
	n.chainMu.Lock()
	defer n.chainMu.Unlock()
	return n.store.Tip()
}

// addBlocksVia stores blocks that came via sync, gossip or the miner; then
// it connects orphans waiting for them, brings the data pool up to date
// with the new best chain, and wakes everything waiting on the tip.
func (n *Node) addBlocksVia(via string, blocks []chain.Block) (storage.Result, error) {
	n.chainMu.Lock()
	defer n.chainMu.Unlock()
	res, err := n.store.AddBlocks(blocks)
	n.metrics.observe(via, len(blocks), res, err)
	if res.Added > 0 {
		n.disk.OK()
	}
	if disk.LocalError(err) {
		n.disk.Failed(err)
	}
	if res.Extended {
		n.log.Debug("new tip", "height", res.Tip.Height, "hash", res.Tip.Hash.Short(), "added", res.Added, "reorg", res.Reorg)
		n.updatePool(res)
	}
	extended := res.Extended
	push := pushesStatus(via, res)
	if res.Added > 0 && n.gossip != nil && n.gossip.Orphans().Len() > 0 {
		for {
			kids := n.gossip.Orphans().TakeChildren(n.store.Has)
			if len(kids) == 0 {
				break
			}
			for _, b := range kids {
				r, oerr := n.store.AddBlocks([]chain.Block{b})
				n.metrics.observe(viaOrphan, 1, r, oerr)
				if disk.LocalError(oerr) {
					n.disk.Failed(oerr)
				}
				if oerr != nil {
					n.log.Debug("orphan refused", "hash", b.Hash.Short(), "err", oerr)
				}
				if r.Extended {
					n.updatePool(r)
					extended, push = true, true
				}
			}
		}
	}
	if extended {
		n.tips.Fire()
	}
	if push {
		n.pushTips.Fire()
	}
	return res, err
}

// pushesStatus reports whether a store result, of blocks that came by via,
// calls for a status push to the peers: a new tip, unless it came by
// gossip or we mined it (gossip announced it to every peer in the topic)
// and it is no reorg.
func pushesStatus(via string, res storage.Result) bool {
	return res.Extended && (res.Reorg || (via != viaGossip && via != viaMiner))
}

// updatePool applies a change of the best chain to the data pool: entries
// of blocks a reorg dropped go back (unless the new chain holds them too)
// and are announced again, entries of blocks now on the best chain leave.
func (n *Node) updatePool(res storage.Result) {
	if res.Reorg {
		restored := false
		h := res.OldTip.Hash
		for height := res.OldTip.Height; height > res.ForkHeight; height-- {
			b, err := n.store.Block(h)
			if err != nil {
				n.log.Warn("reading dropped block", "hash", h.Short(), "err", err)
				break
			}
			for _, e := range chain.UnpackEntries(b.Data) {
				// A block may hold entries we would not take: empty, or
				// too big once packed alone (escaping grows them). In the
				// pool they would jam the miner's packing, which stops at
				// the first entry that does not fit.
				if n.store.Params().CheckEntry(e) != nil {
					continue
				}
				if _, _, found, _ := n.store.EntryBlock(chain.EntryID(e)); !found && n.pool.Restore(e) {
					restored = true
				}
			}
			h = b.PrevHash
		}
		// The nodes that mined the new chain may never have heard of them.
		if restored && n.gossip != nil {
			n.gossip.EntriesRestored()
		}
	}
	if n.pool.Size() == 0 {
		return
	}
	err := n.store.ForEach(res.ForkHeight+1, res.Tip.Height, func(b *chain.Block) error {
		n.pool.Remove(chain.UnpackEntries(b.Data))
		return nil
	})
	if err != nil {
		n.log.Warn("reading new blocks", "err", err)
	}
}

// Submit hands a data entry to the node: it joins the pool and is gossiped
// to the other nodes (and announced again while it stays pending), and
// some miner puts it in a block. Submitting an entry already pending or
// already mined is not an error.
func (n *Node) Submit(ctx context.Context, text string) (chain.Hash, error) {
	if err := n.store.Params().CheckEntry(text); err != nil {
		return chain.Hash{}, err
	}
	id := chain.EntryID(text)
	if _, _, found, err := n.store.EntryBlock(id); err != nil || found {
		return id, err
	}
	_, added, err := n.pool.Add(text)
	if err != nil {
		return id, err
	}
	if added && n.gossip != nil {
		n.gossip.PublishEntry(ctx, text)
	}
	return id, nil
}
