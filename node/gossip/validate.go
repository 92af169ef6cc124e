package gossip

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/peering"
	"github.com/jbc-project/jbc/protocol"
	"github.com/jbc-project/jbc/protocol/pb"
	"github.com/jbc-project/jbc/storage"
)

// validateBlock decides a gossiped block's fate. Accept (relay) blocks
// that could outweigh our chain once valid against their stored parent
// (stored right after), other blocks once stored, and blocks published by
// us; ignore known blocks and orphans (keeping the orphan and syncing from
// its sender); reject blocks that break a rule.
func (g *Gossip) validateBlock(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if msg.ReceivedFrom == g.host.ID() {
		return pubsub.ValidationAccept
	}
	r := g.judgeBlock(msg)
	switch r {
	case pubsub.ValidationAccept:
		g.accepted.Add(1)
	case pubsub.ValidationReject:
		g.rejected.Add(1)
		g.cfg.Penalise(msg.ReceivedFrom, peering.MisInvalidGossip, "block")
	default:
		g.ignored.Add(1)
	}
	return r
}

// judgeBlock validates a gossiped block, cheapest check first, and charges
// its sender's rate limit by outcome. A block that extends our best chain,
// or makes a branch outweigh it, is what gossip is for: it is never
// dropped by the rate limit and never costs its sender anything, however
// fast it comes (a miner on an easy network makes hundreds a second).
// Blocks that cost without contributing take a token from the sender's
// bucket (BlockRate, BlockBurst) before any expensive work: a
// duplicate of a block we hold, a side-branch block that cannot outweigh
// our chain. With no token left such a block is dropped and costs
// peering.MisFlood. An orphan takes a token from a bucket of its own, and past it
// is only dropped (see below). Invalid blocks
// are rejected (and ban their sender) at the first check they fail:
// decoding, then the hash, data size and minimum difficulty, which need no
// parent and no disk, then consensus.
func (g *Gossip) judgeBlock(msg *pubsub.Message) pubsub.ValidationResult {
	from := msg.ReceivedFrom
	b, err := decodeGossipBlock(msg.Data)
	if err != nil {
		return pubsub.ValidationReject
	}
	// A copy of a block relayed a moment ago is judged as known once
	// that one is stored.
	g.relayed.wait(g.ctx, b.Hash)
	if known, err := g.store.Block(b.Hash); err == nil {
		if !g.charge(from, "duplicate") {
			return pubsub.ValidationIgnore
		}
		v := knownBlockVerdict(&b, known, g.store.Tip().Height)
		if v == pubsub.ValidationReject {
			g.log.Info("forged copy of a stored block from gossip", "from", from, "hash", b.Hash.Short())
		}
		return v
	}
	if b.Index == 0 {
		// A genesis block, and not ours: another network's, or forged.
		return pubsub.ValidationReject
	}
	params := g.store.Params()
	// A block failing the checks that need no parent is invalid whatever
	// its parent: refused before any lookup, and before it can be kept as
	// an orphan and make us ask its sender for a status.
	if !orphanPlausible(params, &b) {
		g.log.Info("implausible block from gossip", "from", from, "hash", b.Hash.Short(), "height", b.Index)
		return pubsub.ValidationReject
	}
	// A child of a block relayed and not yet stored waits for it.
	g.relayed.wait(g.ctx, b.PrevHash)
	parent, err := g.store.Entry(b.PrevHash)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		// An orphan may extend our chain once its parent comes (a fast
		// miner's announced tip is one, see AnnounceMined), so it costs
		// no score; but keeping it and asking its sender for a status are
		// work, so past the sender's orphan bucket it is dropped. Sync
		// brings the branch if it matters.
		if !g.orphanLimit.Allow(from) {
			return pubsub.ValidationIgnore
		}
		g.orphans.add(b, from)
		// Its sender has the parent: learn its tip, which wakes the syncer.
		g.cfg.AskStatus(from)
		return pubsub.ValidationIgnore
	case err != nil:
		g.log.Warn("reading a gossiped block's parent", "err", err)
		return pubsub.ValidationIgnore
	}
	contributes := couldOutweigh(params, parent, &b, g.store.Tip())
	if !contributes && !g.charge(from, "side branch") {
		return pubsub.ValidationIgnore
	}
	if contributes {
		// Validated against its parent and relayed at once; stored right
		// after, off GossipSub's validation path: a hop costs the
		// validation, not the commit's fsync.
		v, err := g.store.Validator(b.PrevHash)
		if err != nil {
			g.log.Debug("validating a gossiped block", "err", err)
			return pubsub.ValidationIgnore
		}
		if _, err := v.Next(&b, g.store.Now().Unix()); err != nil {
			g.log.Info("invalid block from gossip", "from", from, "err", fmt.Errorf("block %d (%s): %w", b.Index, b.Hash.Short(), err))
			return pubsub.ValidationReject
		}
		if !g.relayed.begin(b.Hash) {
			return pubsub.ValidationIgnore // validated from another peer a moment ago
		}
		g.cfg.Go(func(context.Context) {
			defer g.relayed.done(b.Hash)
			g.storeBlock(b, from, contributes)
		})
		return pubsub.ValidationAccept
	}
	return g.storeBlock(b, from, contributes)
}

// storeBlock stores b, a valid-looking gossiped block from from, and says what
// becomes of it: Accept if stored, Reject if it broke a rule, else Ignore.
// contributes is couldOutweigh's verdict when it was judged.
func (g *Gossip) storeBlock(b chain.Block, from peer.ID, contributes bool) pubsub.ValidationResult {
	res, err := g.cfg.Add([]chain.Block{b})
	var re *chain.RuleError
	switch {
	case err == nil && res.Added > 0:
		g.log.Debug("block from gossip", "height", b.Index, "hash", b.Hash.Short(), "from", from, "best", res.Extended)
		if res.Extended {
			g.cfg.Served(from, 1)
		} else if contributes {
			// It could have outweighed our chain and did not: the tip
			// moved meanwhile, or it was required less work than the
			// bound. Charged now, after the fact, never dropped.
			g.charge(from, "side branch")
		}
		return pubsub.ValidationAccept
	case err == nil:
		return pubsub.ValidationIgnore
	case errors.As(err, &re):
		g.log.Info("invalid block from gossip", "from", from, "err", err)
		return pubsub.ValidationReject
	case errors.Is(err, storage.ErrOrphan):
		// The parent went between the lookup and the store: impossible
		// while blocks are never deleted, but harmless.
		return pubsub.ValidationIgnore
	default:
		// A failure of our store: logged once, at ERROR, by package
		// disk (the node's Add reports it).
		g.log.Debug("storing gossiped block", "err", err)
		return pubsub.ValidationIgnore
	}
}

// inFlight is the set of gossiped blocks relayed and not yet stored. A
// block whose parent is among them waits for the parent's store (its
// validation needs the parent's entry); a second copy of one is a
// duplicate. Its methods are safe for concurrent use.
type inFlight struct {
	mu sync.Mutex
	m  map[chain.Hash]chan struct{}
}

// begin marks h in flight; false if it already is.
func (f *inFlight) begin(h chain.Hash) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.m[h]; ok {
		return false
	}
	if f.m == nil {
		f.m = map[chain.Hash]chan struct{}{}
	}
	f.m[h] = make(chan struct{})
	return true
}

// done marks h stored (or failed to store).
func (f *inFlight) done(h chain.Hash) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.m[h]; ok {
		close(c)
		delete(f.m, h)
	}
}

// wait waits until h, if in flight, is done, or ctx ends; it reports
// whether h was in flight.
func (f *inFlight) wait(ctx context.Context, h chain.Hash) bool {
	f.mu.Lock()
	c, ok := f.m[h]
	f.mu.Unlock()
	if !ok {
		return false
	}
	select {
	case <-c:
	case <-ctx.Done():
	}
	return true
}

// charge takes a token from from's gossip block bucket for a block that
// adds nothing to our chain, and reports whether there was one; when there
// is none the sender is charged peering.MisFlood and the block is to be dropped.
func (g *Gossip) charge(from peer.ID, what string) bool {
	if g.blockLimit.Allow(from) {
		return true
	}
	g.cfg.Penalise(from, peering.MisFlood, "gossip blocks that add nothing over the rate limit: "+what)
	return false
}

// couldOutweigh reports whether b, a child of the stored block parent,
// could make its branch heavier than our best chain, whose tip is tip:
// whether parent's work plus the most work b can prove exceeds tip's. A
// block on our tip always could. b can prove at most the difficulty it may
// be required: its parent's, except at a retarget height, where it may
// rise by MaxRetargetStep up to MaxBits; and no more than its hash's zero
// bits, or it is invalid. The bound needs no disk read beyond parent's
// index entry, so a flood of side-branch blocks is charged before any is
// validated or stored.
func couldOutweigh(p *chain.Params, parent chain.Entry, b *chain.Block, tip chain.Entry) bool {
	if parent.Hash == tip.Hash {
		return true
	}
	bits := int(parent.Bits)
	if h := parent.Height + 1; p.Spacing > 0 && p.RetargetInterval >= 2 && h%p.RetargetInterval == 0 {
		bits = min(int(p.MaxBits), bits+int(p.MaxRetargetStep))
	}
	bits = min(bits, chain.LeadingZeroBits(&b.Hash))
	work := new(big.Int).Add(parent.Work, chain.BlockWork(uint8(bits)))
	return work.Cmp(tip.Work) > 0
}

// decodeGossipBlock decodes a message of the block topic: a wire block
// (pb.Block) of the shape protocol.BlockFromPB accepts. It checks form, not
// consensus.
func decodeGossipBlock(data []byte) (chain.Block, error) {
	var m pb.Block
	if err := proto.Unmarshal(data, &m); err != nil {
		return chain.Block{}, err
	}
	return protocol.BlockFromPB(&m)
}

// knownBlockVerdict decides the fate of a gossiped block b whose hash names
// stored, a block we hold, when our best chain is tipHeight high.
func knownBlockVerdict(b, stored *chain.Block, tipHeight uint64) pubsub.ValidationResult {
	// Only the very block we stored passes as it. A message naming a
	// stored hash with other fields is forged (no valid block differs from
	// a stored one yet has its hash): relayed, it would reach peers without
	// that block, which would find it invalid and blame us.
	if *b != *stored {
		return pubsub.ValidationReject
	}
	// Known: validated when we stored it (perhaps by sync, before its
	// gossip copy came). Relay it if it is recent, so that a block we
	// happened to sync first still spreads; old blocks replayed by a
	// peer are not worth the bandwidth. Each message is relayed once:
	// GossipSub drops copies it has seen.
	if stored.Index+recentRelay >= tipHeight {
		return pubsub.ValidationAccept
	}
	return pubsub.ValidationIgnore
}

// orphanPlausible reports whether b, whose parent is unknown, passes the
// consensus checks that need no parent: its data fits, its hash
// recomputes, and the hash has at least the network's minimum difficulty,
// below which no parent can set the requirement.
func orphanPlausible(p *chain.Params, b *chain.Block) bool {
	return len(b.Data) <= p.MaxDataSize && b.ComputeHash() == b.Hash && chain.LeadingZeroBits(&b.Hash) >= int(p.MinBits)
}

// validateData adds a gossiped entry to the pool; only entries new to us
// are relayed. An entry we hold, as pending or mined, is ignored: that is
// the common fate of a re-announcement, so the pool, in memory, is asked
// before the store.
func (g *Gossip) validateData(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if msg.ReceivedFrom == g.host.ID() {
		return pubsub.ValidationAccept
	}
	if !g.dataLimit.Allow(msg.ReceivedFrom) {
		g.cfg.Penalise(msg.ReceivedFrom, peering.MisFlood, "gossip entries over the rate limit")
		return pubsub.ValidationIgnore
	}
	text, err := decodeGossipEntry(g.store.Params(), msg.Data)
	if err != nil {
		g.cfg.Penalise(msg.ReceivedFrom, peering.MisInvalidGossip, "entry: "+err.Error())
		return pubsub.ValidationReject
	}
	id := chain.EntryID(text)
	if g.pool.Has(id) {
		return pubsub.ValidationIgnore
	}
	if _, _, found, err := g.store.EntryBlock(id); err != nil || found {
		return pubsub.ValidationIgnore
	}
	// Every connected peer may send us entries (ListPeers would ask the
	// pubsub loop, which runs validators).
	_, added, err := g.pool.AddGossip(text, msg.ReceivedFrom, len(g.host.Network().Peers()))
	switch {
	case errors.Is(err, errOverShare):
		g.cfg.Penalise(msg.ReceivedFrom, peering.MisPoolShare, "gossip entries over its share of the data pool")
		return pubsub.ValidationIgnore
	case err != nil || !added:
		return pubsub.ValidationIgnore
	}
	return pubsub.ValidationAccept
}

// decodeGossipEntry returns the entry a message of the data topic carries:
// the message's bytes as text, which must pass p.CheckEntry. The error is
// CheckEntry's *chain.RuleError.
func decodeGossipEntry(p *chain.Params, data []byte) (string, error) {
	text := string(data)
	if err := p.CheckEntry(text); err != nil {
		return "", err
	}
	return text, nil
}
