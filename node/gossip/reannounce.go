package gossip

import (
	"context"
	"time"

	"github.com/jbc-project/jbc/chain"
)

// Re-announcement of pending entries. An entry is gossiped when it reaches
// a node (submitted, or gossiped to it); a node that was not connected then
// (it joined later, or was across a partition) hears of it only when some
// node that holds it announces it again. The bounds keep an honest node
// well inside every peer's rate limit for entries (DataRate, DataBurst),
// so that re-announcing never costs it peering.MisFlood.
const (
	// DefaultReannounceInterval is how often a node announces again the
	// entries still in its pool (Config.Interval). An entry is
	// normally mined within a few blocks, so one pending for half a minute
	// has likely missed a miner; and a node that joins learns the pending
	// entries within about that long.
	DefaultReannounceInterval = 30 * time.Second
	// MaxReannounce caps one round. A larger pool is covered over several
	// rounds, least recently announced first (Pool.Due).
	MaxReannounce = 100
	// ReannounceRate and ReannounceBurst pace the re-announcements of all
	// rounds, periodic and after reorgs, whatever the interval: 20 a
	// second is two fifths of the rate a peer allows us (DataRate),
	// leaving the rest to new entries and relays; and bursts of 10 stay
	// far below GossipSub's per-peer queues (32 messages, the sender's
	// outbound queue and the receiver's validation queue), which drop
	// what overflows. A full round takes 5 seconds.
	ReannounceRate  = 20
	ReannounceBurst = 10
	// restoredAnnounceDelay: entries a reorg returned to the pool are
	// announced this long after it, at once for a burst of reorgs, and
	// after the peers that a reorg often follows (a healed partition)
	// have had time to join the topic.
	restoredAnnounceDelay = time.Second
)

// EntriesRestored tells the re-announcer that a reorg returned entries to
// the pool. It does not block.
func (g *Gossip) EntriesRestored() {
	select {
	case g.restored <- struct{}{}:
	default:
	}
}

// reannounceLoop runs the re-announcement rounds: every interval for the
// entries not announced in the last half interval (those just submitted or
// gossiped, which every connected peer has just heard, wait a round), and
// restoredAnnounceDelay after a reorg for the entries it restored. One
// goroutine runs the rounds in turn, so a round that takes longer than the
// interval (a large pool, paced) delays the next instead of adding to it.
func (g *Gossip) reannounceLoop(ctx context.Context) {
	t := time.NewTicker(g.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.reannounce(ctx, time.Now().Add(-g.interval/2))
		case <-g.restored:
			select {
			case <-ctx.Done():
				return
			case <-time.After(restoredAnnounceDelay):
			}
			g.reannounce(ctx, time.Time{})
		}
	}
}

// reannounce publishes again up to MaxReannounce pending entries last
// announced at or before notAfter (zero: only entries a reorg restored),
// paced by ReannounceRate. The entries left wait for the next round.
func (g *Gossip) reannounce(ctx context.Context, notAfter time.Time) {
	if len(g.data.ListPeers()) == 0 {
		// Nobody to tell: the entries stay due for when a peer comes.
		return
	}
	texts := g.pool.Due(notAfter, MaxReannounce, time.Now())
	if len(texts) == 0 {
		return
	}
	params := g.store.Params()
	sent := 0
	defer func() {
		g.log.Debug("re-announced pending entries", "entries", sent, "of", len(texts), "restored", notAfter.IsZero())
	}()
	for _, text := range texts {
		id := chain.EntryID(text)
		// A peer would penalise an entry that breaks the rules (a reorg may
		// restore one from a block); one mined since the round began is on
		// its way out of the pool, or out already.
		if !g.pool.Has(id) || params.CheckEntry(text) != nil {
			continue
		}
		if _, _, found, err := g.store.EntryBlock(id); err != nil || found {
			continue
		}
		if err := g.pace.Wait(ctx); err != nil {
			return
		}
		if err := g.data.Publish(ctx, []byte(text)); err != nil {
			if ctx.Err() == nil {
				g.log.Warn("re-announce entry", "err", err)
			}
			return
		}
		sent++
		g.reannounced.Add(1)
	}
}
