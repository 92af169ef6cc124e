package gossip

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jbc-project/jbc/chain"
)

// OrphanPool holds a few blocks whose parent is unknown, until the parent
// arrives or they expire. It is safe for concurrent use.
type OrphanPool struct {
	mu     sync.Mutex
	blocks map[chain.Hash]orphan
}

type orphan struct {
	block chain.Block
	from  peer.ID
	at    time.Time
}

func newOrphanPool() *OrphanPool { return &OrphanPool{blocks: map[chain.Hash]orphan{}} }

func (o *OrphanPool) add(b chain.Block, from peer.ID) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.expire()
	if len(o.blocks) >= MaxOrphans {
		// Drop the oldest: the newest are likelier to connect soon.
		var oldest chain.Hash
		var at time.Time
		for h, x := range o.blocks {
			if at.IsZero() || x.at.Before(at) {
				oldest, at = h, x.at
			}
		}
		delete(o.blocks, oldest)
	}
	o.blocks[b.Hash] = orphan{block: b, from: from, at: time.Now()}
}

func (o *OrphanPool) expire() {
	for h, x := range o.blocks {
		if time.Since(x.at) > orphanTTL {
			delete(o.blocks, h)
		}
	}
}

// Len returns how many orphans are kept.
func (o *OrphanPool) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.blocks)
}

// TakeChildren removes and returns the orphans whose parent is stored.
func (o *OrphanPool) TakeChildren(has func(chain.Hash) bool) []chain.Block {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.expire()
	var out []chain.Block
	for h, x := range o.blocks {
		if has(x.block.PrevHash) {
			out = append(out, x.block)
			delete(o.blocks, h)
		}
	}
	return out
}
