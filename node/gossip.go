package node

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/p2p"
	"github.com/jbc-project/jbc/node/peering"
	"github.com/jbc-project/jbc/protocol"
	"github.com/jbc-project/jbc/protocol/pb"
	"github.com/jbc-project/jbc/storage"
)

// Gossip limits.
const (
	// MaxOrphans bounds blocks kept while their parent is fetched: enough
	// for a burst of blocks arriving out of order, too few to matter as
	// memory.
	MaxOrphans = 64
	// orphanTTL: an orphan whose parent has not come by then is dropped;
	// sync will bring the branch if it matters.
	orphanTTL = 2 * time.Minute
	// recentRelay is how far below our tip a block we already hold may be
	// and still be relayed: a few blocks covers the forks of a busy network.
	recentRelay = 6
	// minedAnnounceGap is the least time between two announcements of
	// blocks a node mined (see announceMined): at most 4 a second, under
	// half of what a peer allows of blocks that add nothing
	// (gossipBlockRate), so that an honest miner, however fast, never
	// costs itself peering.MisFlood; and a quarter of the second within which a
	// network is to agree on the tip once its miners stop. On a network
	// of 30 s blocks it never delays one.
	minedAnnounceGap = 250 * time.Millisecond
)

// Gossip rate limits per peer. A block that extends or outweighs our
// chain takes no token, however fast a miner makes them (judgeBlock); the
// block bucket is for blocks that add nothing (a duplicate, a side
// branch), which honest peers send on forks and races only, at most as
// often as miners announce (minedAnnounceGap): the burst covers a peer
// relaying a short fork. Orphans have a bucket of the same size. Entries
// come in bursts when users submit, and a peer relays the entries of every
// node behind it, so their bucket is larger: four times what one node
// takes over POST /data (submitRate) plus its re-announcements
// (reannounceRate), so that honest nodes submitting at full rate are never
// penalised. Messages beyond the limit are dropped and cost peering.MisFlood
// (orphans are only dropped).
const (
	gossipBlockRate  = 10
	gossipBlockBurst = 50
	gossipDataRate   = 200
	gossipDataBurst  = 1000
)

// Re-announcement of pending entries. An entry is gossiped when it reaches
// a node (submitted, or gossiped to it); a node that was not connected then
// (it joined later, or was across a partition) hears of it only when some
// node that holds it announces it again. The bounds keep an honest node
// well inside every peer's rate limit for entries (gossipDataRate,
// gossipDataBurst), so that re-announcing never costs it peering.MisFlood.
const (
	// DefaultReannounceInterval is how often a node announces again the
	// entries still in its pool (Config.ReannounceInterval). An entry is
	// normally mined within a few blocks, so one pending for half a minute
	// has likely missed a miner; and a node that joins learns the pending
	// entries within about that long.
	DefaultReannounceInterval = 30 * time.Second
	// maxReannounce caps one round. A larger pool is covered over several
	// rounds, least recently announced first (pool.due).
	maxReannounce = 100
	// reannounceRate and reannounceBurst pace the re-announcements of all
	// rounds, periodic and after reorgs, whatever the interval: 20 a
	// second is two fifths of the rate a peer allows us (gossipDataRate),
	// leaving the rest to new entries and relays; and bursts of 10 stay
	// far below GossipSub's per-peer queues (32 messages, the sender's
	// outbound queue and the receiver's validation queue), which drop
	// what overflows. A full round takes 5 seconds.
	reannounceRate  = 20
	reannounceBurst = 10
	// restoredAnnounceDelay: entries a reorg returned to the pool are
	// announced this long after it, at once for a burst of reorgs, and
	// after the peers that a reorg often follows (a healed partition)
	// have had time to join the topic.
	restoredAnnounceDelay = time.Second
)

// BlockTopic and DataTopic name the gossip topics of a network: per
// genesis, so that networks never mix.
func BlockTopic(id chain.Hash) string { return "/jbc/blocks/" + id.String() }

// DataTopic names the topic on which pending data entries spread.
func DataTopic(id chain.Hash) string { return "/jbc/data/" + id.String() }

// gossip spreads blocks and data entries by GossipSub. Validators do the
// work: a block is stored before it is relayed, an invalid one is rejected
// (which costs its sender in GossipSub's peer score) and never relayed.
type gossip struct {
	n       *Node
	ps      *pubsub.PubSub
	blocks  *pubsub.Topic
	data    *pubsub.Topic
	subs    []*pubsub.Subscription
	orphans *orphanPool
	// Per-peer rate limits of the two topics; blocks that add nothing and
	// orphans are limited apart (see judgeBlock).
	blockLimit, orphanLimit, dataLimit *peering.Limiter
	// interval is how often pending entries are announced again; pace
	// spaces the re-announcements (reannounceRate, reannounceBurst);
	// restored wakes the re-announcer after a reorg returned entries.
	interval time.Duration
	pace     *rate.Limiter
	restored chan struct{}

	// Counters of gossiped blocks by outcome, for /status and tests.
	accepted, rejected, ignored atomic.Uint64
	// reannounced counts entries announced again, for tests.
	reannounced atomic.Uint64

	// annMu guards the announcement of mined blocks: when the last was
	// made, and the newest block mined since, waiting for
	// minedAnnounceGap to pass (see announceMined).
	annMu      sync.Mutex
	annLast    time.Time
	annPending *chain.Block
}

// msgID identifies a gossip message by its content, so the same block
// published by two nodes is one message.
func msgID(m *pubsubpb.Message) string {
	h := sha256.Sum256(m.Data)
	return string(h[:])
}

// entryMsgID identifies a message of the data topic by its publication:
// author, sequence number and text. Identified by the text alone (msgID),
// an entry announced again would be a copy that GossipSub drops unseen for
// its seen-messages TTL (two minutes, at every node including the
// publisher); as a new message it reaches the peers that lack the entry,
// while those that have it ignore it in validateData at the cost of a
// lookup, and do not relay it. The author and sequence number are signed
// (GossipSub's default strict signing), so nobody else can take a
// publication's ID.
func entryMsgID(m *pubsubpb.Message) string {
	h := sha256.New()
	h.Write(binary.AppendUvarint(nil, uint64(len(m.From))))
	h.Write(m.From)
	h.Write(binary.AppendUvarint(nil, uint64(len(m.Seqno))))
	h.Write(m.Seqno)
	h.Write(m.Data)
	return string(h.Sum(nil))
}

func newGossip(ctx context.Context, n *Node) (*gossip, error) {
	ps, err := pubsub.NewGossipSub(ctx, n.host,
		pubsub.WithMessageIdFn(msgID),
		pubsub.WithMaxMessageSize(p2p.MaxGossipBlock),
		// What we publish ourselves (blocks we mined, entries submitted to
		// us) goes to every peer in the topic, not only to the mesh: it
		// reaches them at once, before the first heartbeat forms a mesh.
		pubsub.WithFloodPublish(true),
	)
	if err != nil {
		return nil, fmt.Errorf("node: gossipsub: %w", err)
	}
	g := &gossip{n: n, ps: ps, orphans: newOrphanPool(),
		blockLimit:  peering.NewLimiter(gossipBlockRate, gossipBlockBurst),
		orphanLimit: peering.NewLimiter(gossipBlockRate, gossipBlockBurst),
		dataLimit:   peering.NewLimiter(gossipDataRate, gossipDataBurst),
		interval:    n.cfg.ReannounceInterval,
		pace:        rate.NewLimiter(reannounceRate, reannounceBurst),
		restored:    make(chan struct{}, 1)}
	id := n.store.Params().ID()
	if err := ps.RegisterTopicValidator(BlockTopic(id), g.validateBlock); err != nil {
		return nil, err
	}
	if err := ps.RegisterTopicValidator(DataTopic(id), g.validateData); err != nil {
		return nil, err
	}
	if g.blocks, err = ps.Join(BlockTopic(id)); err != nil {
		return nil, err
	}
	if g.data, err = ps.Join(DataTopic(id), pubsub.WithTopicMessageIdFn(entryMsgID)); err != nil {
		return nil, err
	}
	for _, t := range []*pubsub.Topic{g.blocks, g.data} {
		sub, err := t.Subscribe()
		if err != nil {
			return nil, err
		}
		g.subs = append(g.subs, sub)
		// The validators did the work; the subscriptions only keep us in
		// the topics' meshes.
		n.goRun(func(ctx context.Context) {
			for {
				if _, err := sub.Next(ctx); err != nil {
					return
				}
			}
		})
	}
	n.goRun(g.reannounceLoop)
	return g, nil
}

func (g *gossip) close() {
	for _, s := range g.subs {
		s.Cancel()
	}
}

// announceMined announces a block we mined: at once if the last
// announcement was at least minedAnnounceGap ago, else when the gap has
// passed, and then only the newest block mined meanwhile, if it is still
// our tip. Peers that lack the blocks in between take the announced tip
// as an orphan, ask us for our status and fetch them by sync, in pages:
// a fast miner's burst reaches them whole, and a peer never sees our
// announcements faster than it allows blocks that add nothing (which
// some of them are to a peer that synced them first).
func (g *gossip) announceMined(b chain.Block) {
	g.annMu.Lock()
	defer g.annMu.Unlock()
	now := time.Now()
	if g.annPending == nil && now.Sub(g.annLast) >= minedAnnounceGap {
		g.annLast = now
		g.n.goRun(func(ctx context.Context) { g.publishBlock(ctx, &b) })
		return
	}
	if g.annPending == nil {
		time.AfterFunc(g.annLast.Add(minedAnnounceGap).Sub(now), g.announcePending)
	}
	g.annPending = &b
}

// announcePending publishes the newest block mined since the last
// announcement, if it is still our tip; see announceMined.
func (g *gossip) announcePending() {
	g.annMu.Lock()
	b := g.annPending
	g.annPending = nil
	g.annLast = time.Now()
	g.annMu.Unlock()
	if b == nil || g.n.ctx.Err() != nil || g.n.store.Tip().Hash != b.Hash {
		return
	}
	g.publishBlock(g.n.ctx, b)
}

// publishBlock announces a block we mined.
func (g *gossip) publishBlock(ctx context.Context, b *chain.Block) {
	data, err := proto.Marshal(protocol.BlockToPB(b))
	if err == nil {
		err = g.blocks.Publish(ctx, data)
	}
	if err != nil && ctx.Err() == nil {
		g.n.log.Warn("publish block", "height", b.Index, "err", err)
	}
}

// publishEntry announces a data entry submitted to us.
func (g *gossip) publishEntry(ctx context.Context, text string) {
	if err := g.data.Publish(ctx, []byte(text)); err != nil {
		g.n.log.Warn("publish entry", "err", err)
	}
}

// entriesRestored tells the re-announcer that a reorg returned entries to
// the pool. It does not block.
func (g *gossip) entriesRestored() {
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
func (g *gossip) reannounceLoop(ctx context.Context) {
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

// reannounce publishes again up to maxReannounce pending entries last
// announced at or before notAfter (zero: only entries a reorg restored),
// paced by reannounceRate. The entries left wait for the next round.
func (g *gossip) reannounce(ctx context.Context, notAfter time.Time) {
	if len(g.data.ListPeers()) == 0 {
		// Nobody to tell: the entries stay due for when a peer comes.
		return
	}
	texts := g.n.pool.due(notAfter, maxReannounce, time.Now())
	if len(texts) == 0 {
		return
	}
	params := g.n.store.Params()
	sent := 0
	defer func() {
		g.n.log.Debug("re-announced pending entries", "entries", sent, "of", len(texts), "restored", notAfter.IsZero())
	}()
	for _, text := range texts {
		id := chain.EntryID(text)
		// A peer would penalise an entry that breaks the rules (a reorg may
		// restore one from a block); one mined since the round began is on
		// its way out of the pool, or out already.
		if !g.n.pool.has(id) || params.CheckEntry(text) != nil {
			continue
		}
		if _, _, found, err := g.n.store.EntryBlock(id); err != nil || found {
			continue
		}
		if err := g.pace.Wait(ctx); err != nil {
			return
		}
		if err := g.data.Publish(ctx, []byte(text)); err != nil {
			if ctx.Err() == nil {
				g.n.log.Warn("re-announce entry", "err", err)
			}
			return
		}
		sent++
		g.reannounced.Add(1)
	}
}

// validateBlock decides a gossiped block's fate. Accept (relay) blocks
// stored now or published by us; ignore known blocks and orphans (keeping
// the orphan and syncing from its sender); reject blocks that break a rule.
func (g *gossip) validateBlock(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if msg.ReceivedFrom == g.n.host.ID() {
		return pubsub.ValidationAccept
	}
	r := g.judgeBlock(msg)
	switch r {
	case pubsub.ValidationAccept:
		g.accepted.Add(1)
	case pubsub.ValidationReject:
		g.rejected.Add(1)
		g.n.scores.Penalise(msg.ReceivedFrom, peering.MisInvalidGossip, "block")
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
// bucket (gossipBlockRate, gossipBlockBurst) before any expensive work: a
// duplicate of a block we hold, a side-branch block that cannot outweigh
// our chain. With no token left such a block is dropped and costs
// peering.MisFlood. An orphan takes a token from a bucket of its own, and past it
// is only dropped (see below). Invalid blocks
// are rejected (and ban their sender) at the first check they fail:
// decoding, then the hash, data size and minimum difficulty, which need no
// parent and no disk, then consensus.
func (g *gossip) judgeBlock(msg *pubsub.Message) pubsub.ValidationResult {
	from := msg.ReceivedFrom
	b, err := decodeGossipBlock(msg.Data)
	if err != nil {
		return pubsub.ValidationReject
	}
	if known, err := g.n.store.Block(b.Hash); err == nil {
		if !g.charge(from, "duplicate") {
			return pubsub.ValidationIgnore
		}
		v := knownBlockVerdict(&b, known, g.n.store.Tip().Height)
		if v == pubsub.ValidationReject {
			g.n.log.Info("forged copy of a stored block from gossip", "from", from, "hash", b.Hash.Short())
		}
		return v
	}
	if b.Index == 0 {
		// A genesis block, and not ours: another network's, or forged.
		return pubsub.ValidationReject
	}
	params := g.n.store.Params()
	// A block failing the checks that need no parent is invalid whatever
	// its parent: refused before any lookup, and before it can be kept as
	// an orphan and make us ask its sender for a status.
	if !orphanPlausible(params, &b) {
		g.n.log.Info("implausible block from gossip", "from", from, "hash", b.Hash.Short(), "height", b.Index)
		return pubsub.ValidationReject
	}
	parent, err := g.n.store.Entry(b.PrevHash)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		// An orphan may extend our chain once its parent comes (a fast
		// miner's announced tip is one, see announceMined), so it costs
		// no score; but keeping it and asking its sender for a status are
		// work, so past the sender's orphan bucket it is dropped. Sync
		// brings the branch if it matters.
		if !g.orphanLimit.Allow(from) {
			return pubsub.ValidationIgnore
		}
		g.orphans.add(b, from)
		// Its sender has the parent: learn its tip, which wakes the syncer.
		g.n.requestStatus(from)
		return pubsub.ValidationIgnore
	case err != nil:
		g.n.log.Warn("reading a gossiped block's parent", "err", err)
		return pubsub.ValidationIgnore
	}
	contributes := couldOutweigh(params, parent, &b, g.n.store.Tip())
	if !contributes && !g.charge(from, "side branch") {
		return pubsub.ValidationIgnore
	}
	res, err := g.n.addBlocksVia(viaGossip, []chain.Block{b})
	var re *chain.RuleError
	switch {
	case err == nil && res.Added > 0:
		g.n.log.Debug("block from gossip", "height", b.Index, "hash", b.Hash.Short(), "from", from, "best", res.Extended)
		if res.Extended {
			g.n.adm.Served(from, 1)
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
		g.n.log.Info("invalid block from gossip", "from", from, "err", err)
		return pubsub.ValidationReject
	case errors.Is(err, storage.ErrOrphan):
		// The parent went between the lookup and the store: impossible
		// while blocks are never deleted, but harmless.
		return pubsub.ValidationIgnore
	default:
		// A failure of our store: logged once, at ERROR, by n.disk.
		g.n.log.Debug("storing gossiped block", "err", err)
		return pubsub.ValidationIgnore
	}
}

// charge takes a token from from's gossip block bucket for a block that
// adds nothing to our chain, and reports whether there was one; when there
// is none the sender is charged peering.MisFlood and the block is to be dropped.
func (g *gossip) charge(from peer.ID, what string) bool {
	if g.blockLimit.Allow(from) {
		return true
	}
	g.n.scores.Penalise(from, peering.MisFlood, "gossip blocks that add nothing over the rate limit: "+what)
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
func (g *gossip) validateData(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if msg.ReceivedFrom == g.n.host.ID() {
		return pubsub.ValidationAccept
	}
	if !g.dataLimit.Allow(msg.ReceivedFrom) {
		g.n.scores.Penalise(msg.ReceivedFrom, peering.MisFlood, "gossip entries over the rate limit")
		return pubsub.ValidationIgnore
	}
	text, err := decodeGossipEntry(g.n.store.Params(), msg.Data)
	if err != nil {
		g.n.scores.Penalise(msg.ReceivedFrom, peering.MisInvalidGossip, "entry: "+err.Error())
		return pubsub.ValidationReject
	}
	id := chain.EntryID(text)
	if g.n.pool.has(id) {
		return pubsub.ValidationIgnore
	}
	if _, _, found, err := g.n.store.EntryBlock(id); err != nil || found {
		return pubsub.ValidationIgnore
	}
	// Every connected peer may send us entries (ListPeers would ask the
	// pubsub loop, which runs validators).
	_, added, err := g.n.pool.addGossip(text, msg.ReceivedFrom, len(g.n.host.Network().Peers()))
	switch {
	case errors.Is(err, errOverShare):
		g.n.scores.Penalise(msg.ReceivedFrom, peering.MisPoolShare, "gossip entries over its share of the data pool")
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

// orphanPool holds a few blocks whose parent is unknown, until the parent
// arrives or they expire. It is safe for concurrent use.
type orphanPool struct {
	mu     sync.Mutex
	blocks map[chain.Hash]orphan
}

type orphan struct {
	block chain.Block
	from  peer.ID
	at    time.Time
}

func newOrphanPool() *orphanPool { return &orphanPool{blocks: map[chain.Hash]orphan{}} }

func (o *orphanPool) add(b chain.Block, from peer.ID) {
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

func (o *orphanPool) expire() {
	for h, x := range o.blocks {
		if time.Since(x.at) > orphanTTL {
			delete(o.blocks, h)
		}
	}
}

func (o *orphanPool) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.blocks)
}

// takeChildren removes and returns the orphans whose parent is stored.
func (o *orphanPool) takeChildren(has func(chain.Hash) bool) []chain.Block {
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
