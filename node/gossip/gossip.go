package gossip

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/p2p"
	"github.com/jbc-project/jbc/node/peering"
	"github.com/jbc-project/jbc/protocol"
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
	// MinedAnnounceGap is the least time between two announcements of
	// blocks a node mined (see AnnounceMined): at most 4 a second, under
	// half of what a peer allows of blocks that add nothing (BlockRate),
	// so that an honest miner, however fast, never costs itself
	// peering.MisFlood; and a quarter of the second within which a
	// network is to agree on the tip once its miners stop. On a network
	// of 30 s blocks it never delays one.
	MinedAnnounceGap = 250 * time.Millisecond
)

// Gossip rate limits per peer. A block that extends or outweighs our
// chain takes no token, however fast a miner makes them (judgeBlock); the
// block bucket is for blocks that add nothing (a duplicate, a side
// branch), which honest peers send on forks and races only, at most as
// often as miners announce (MinedAnnounceGap): the burst covers a peer
// relaying a short fork. Orphans have a bucket of the same size. Entries
// come in bursts when users submit, and a peer relays the entries of every
// node behind it, so their bucket is larger: four times what one node
// takes over POST /data (the HTTP API's submit rate) plus its
// re-announcements (ReannounceRate), so that honest nodes submitting at
// full rate are never penalised. Messages beyond the limit are dropped and
// cost peering.MisFlood (orphans are only dropped).
const (
	BlockRate  = 10
	BlockBurst = 50
	DataRate   = 200
	DataBurst  = 1000
)

// BlockTopic and DataTopic name the gossip topics of a network: per
// genesis, so that networks never mix.
func BlockTopic(id chain.Hash) string { return "/jbc/blocks/" + id.String() }

// DataTopic names the topic on which pending data entries spread.
func DataTopic(id chain.Hash) string { return "/jbc/data/" + id.String() }

// Config is what Gossip needs. All fields but Logger are required.
type Config struct {
	// Host is the node's host, which GossipSub runs on.
	Host host.Host
	// Store is the node's chain: gossiped blocks are looked up and
	// validated against it.
	Store *storage.Store
	// Pool is the node's data pool, which gossiped entries join and whose
	// pending entries are announced again.
	Pool *Pool
	// Interval is how often the entries still pending are announced
	// again (package node defaults it to DefaultReannounceInterval).
	Interval time.Duration
	// Add stores blocks that came by gossip (as the node stores every
	// block: connecting orphans, keeping the pool up to date).
	Add func([]chain.Block) (storage.Result, error)
	// Penalise charges a peer for what it sent.
	Penalise func(peer.ID, peering.Misbehaviour, string)
	// AskStatus asks a peer for its status (its tip), without waiting: the
	// sender of an orphan has its parent.
	AskStatus func(peer.ID)
	// Served records that a peer sent a block that extended our chain.
	Served func(peer.ID, int)
	// Go runs f in a goroutine until the node stops, which waits for it.
	Go func(f func(context.Context))
	// Logger receives gossip's logs.
	Logger *slog.Logger

	// tracer, when not nil, sees GossipSub's events (tests).
	tracer pubsub.RawTracer
}

// Gossip spreads blocks and data entries by GossipSub. Validators do the
// work: a block is validated before it is relayed, an invalid one is rejected
// (which costs its sender in GossipSub's peer score) and never relayed.
// Its methods are safe for concurrent use.
type Gossip struct {
	cfg    Config
	ctx    context.Context
	host   host.Host
	store  *storage.Store
	pool   *Pool
	log    *slog.Logger
	ps     *pubsub.PubSub
	blocks *pubsub.Topic
	data   *pubsub.Topic
	// subs are the subscriptions that keep us in the topics' meshes,
	// made by subscribe.
	subsMu  sync.Mutex
	subs    []*pubsub.Subscription
	closed  bool
	orphans *OrphanPool
	// relayed holds blocks relayed and not yet stored (judgeBlock).
	relayed inFlight
	// Per-peer rate limits of the two topics; blocks that add nothing and
	// orphans are limited apart (see judgeBlock).
	blockLimit, orphanLimit, dataLimit *peering.Limiter
	// interval is how often pending entries are announced again; pace
	// spaces the re-announcements (ReannounceRate, ReannounceBurst);
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
	// MinedAnnounceGap to pass (see AnnounceMined).
	annMu      sync.Mutex
	annLast    time.Time
	annPending *chain.Block
}

// MsgID identifies a gossip message by its content, so the same block
// published by two nodes is one message.
func MsgID(m *pubsubpb.Message) string {
	h := sha256.Sum256(m.Data)
	return string(h[:])
}

// entryMsgID identifies a message of the data topic by its publication:
// author, sequence number and text. Identified by the text alone (MsgID),
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

// Mesh degree bounds of GossipSub (D stays the library's 6). A node
// holds 8 chosen peers and up to 24 that chose it (docs/lan-design.md).
const (
	// meshLow: with 5 peers in the topic the library's Dlo 5 keeps a node
	// grafting at every heartbeat for a sixth it cannot have; 4 is enough
	// for a block to go on by several paths.
	meshLow = 4
	// meshHigh: above this the mesh is pruned back to D; the library's 12.
	meshHigh = 12
)

// meshParams returns the library's GossipSub parameters with meshLow and
// meshHigh.
func meshParams() pubsub.GossipSubParams {
	p := pubsub.DefaultGossipSubParams()
	p.Dlo, p.Dhi = meshLow, meshHigh
	return p
}

// Subscribing to the topics. GossipSub puts a node into a topic's mesh
// when it subscribes, choosing among the peers it already knows to be in
// the topic, and otherwise only at its next heartbeat (once a second). A
// node that subscribed at its start, before its first connection, would
// get no relayed block until that heartbeat: a node joining a running
// network missed the blocks of its first second (docs/lan-design.md,
// section 5). So a node subscribes once it knows meshJoinPeers peers in
// the block topic, or joinSettle after its first connection (time for the
// peers dialled with it to say what they are subscribed to), and at the
// latest joinWait after its start. Until then it relays nothing and is
// sent nothing: no peer knows it to be in the topics.
const (
	// meshJoinPeers is GossipSub's D, what a mesh aims at.
	meshJoinPeers = 6
	joinSettle    = 250 * time.Millisecond
	joinWait      = time.Second
	joinPoll      = 25 * time.Millisecond
)

// subscribe waits as the constants above say, then subscribes to both
// topics and reads the subscriptions until ctx is done.
func (g *Gossip) subscribe(ctx context.Context) {
	start := time.Now()
	var connected time.Time
	tick := time.NewTicker(joinPoll)
	defer tick.Stop()
	for now := start; now.Sub(start) < joinWait; {
		if connected.IsZero() && len(g.host.Network().Peers()) > 0 {
			connected = now
		}
		if len(g.blocks.ListPeers()) >= meshJoinPeers || !connected.IsZero() && now.Sub(connected) >= joinSettle {
			break
		}
		select {
		case <-ctx.Done():
			return
		case now = <-tick.C:
		}
	}
	g.subsMu.Lock()
	defer g.subsMu.Unlock()
	if g.closed {
		return
	}
	for _, t := range []*pubsub.Topic{g.blocks, g.data} {
		sub, err := t.Subscribe()
		if err != nil {
			g.log.Warn("cannot subscribe to a gossip topic", "topic", t.String(), "err", err)
			continue
		}
		g.subs = append(g.subs, sub)
		// The validators did the work; the subscriptions only keep us in
		// the topics' meshes.
		g.cfg.Go(func(ctx context.Context) {
			for {
				if _, err := sub.Next(ctx); err != nil {
					return
				}
			}
		})
	}
	g.log.Debug("subscribed to the gossip topics", "after", time.Since(start), "topic_peers", len(g.blocks.ListPeers()))
}

// New joins the network's topics on cfg.Host and starts the
// re-announcements; it runs until ctx is done.
func New(ctx context.Context, cfg Config) (*Gossip, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	opts := []pubsub.Option{
		pubsub.WithMessageIdFn(MsgID),
		pubsub.WithMaxMessageSize(p2p.MaxGossipBlock),
		// What we publish ourselves (blocks we mined, entries submitted to
		// us) goes to every peer in the topic, not only to the mesh: it
		// reaches them at once, before the first heartbeat forms a mesh.
		pubsub.WithFloodPublish(true),
		pubsub.WithGossipSubParams(meshParams()),
	}
	if cfg.tracer != nil {
		opts = append(opts, pubsub.WithRawTracer(cfg.tracer))
	}
	ps, err := pubsub.NewGossipSub(ctx, cfg.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("node: gossipsub: %w", err)
	}
	g := &Gossip{cfg: cfg, ctx: ctx, host: cfg.Host, store: cfg.Store, pool: cfg.Pool, log: cfg.Logger, ps: ps, orphans: newOrphanPool(),
		blockLimit:  peering.NewLimiter(BlockRate, BlockBurst),
		orphanLimit: peering.NewLimiter(BlockRate, BlockBurst),
		dataLimit:   peering.NewLimiter(DataRate, DataBurst),
		interval:    cfg.Interval,
		pace:        rate.NewLimiter(ReannounceRate, ReannounceBurst),
		restored:    make(chan struct{}, 1)}
	id := cfg.Store.Params().ID()
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
	g.cfg.Go(g.subscribe)
	g.cfg.Go(g.reannounceLoop)
	return g, nil
}

// Orphans returns the blocks kept while their parent is fetched.
func (g *Gossip) Orphans() *OrphanPool { return g.orphans }

// Accepted counts gossiped blocks relayed (see validateBlock).
func (g *Gossip) Accepted() uint64 { return g.accepted.Load() }

// Rejected counts gossiped blocks refused as invalid; see Accepted.
func (g *Gossip) Rejected() uint64 { return g.rejected.Load() }

// Ignored counts gossiped blocks dropped; see Accepted.
func (g *Gossip) Ignored() uint64 { return g.ignored.Load() }

// Reannounced counts the pending entries announced again.
func (g *Gossip) Reannounced() uint64 { return g.reannounced.Load() }

// BlockPeers returns the peers in the block topic.
func (g *Gossip) BlockPeers() []peer.ID { return g.blocks.ListPeers() }

// DataPeers returns the peers in the data topic.
func (g *Gossip) DataPeers() []peer.ID { return g.data.ListPeers() }

// Close leaves the topics.
func (g *Gossip) Close() {
	g.subsMu.Lock()
	defer g.subsMu.Unlock()
	g.closed = true
	for _, s := range g.subs {
		s.Cancel()
	}
}

// AnnounceMined announces a block we mined: at once if the last
// announcement was at least MinedAnnounceGap ago, else when the gap has
// passed, and then only the newest block mined meanwhile, if it is still
// our tip. Peers that lack the blocks in between take the announced tip
// as an orphan, ask us for our status and fetch them by sync, in pages:
// a fast miner's burst reaches them whole, and a peer never sees our
// announcements faster than it allows blocks that add nothing (which
// some of them are to a peer that synced them first).
func (g *Gossip) AnnounceMined(b chain.Block) {
	g.annMu.Lock()
	defer g.annMu.Unlock()
	now := time.Now()
	if g.annPending == nil && now.Sub(g.annLast) >= MinedAnnounceGap {
		g.annLast = now
		g.cfg.Go(func(ctx context.Context) { g.PublishBlock(ctx, &b) })
		return
	}
	if g.annPending == nil {
		time.AfterFunc(g.annLast.Add(MinedAnnounceGap).Sub(now), g.announcePending)
	}
	g.annPending = &b
}

// announcePending publishes the newest block mined since the last
// announcement, if it is still our tip; see AnnounceMined.
func (g *Gossip) announcePending() {
	g.annMu.Lock()
	b := g.annPending
	g.annPending = nil
	g.annLast = time.Now()
	g.annMu.Unlock()
	if b == nil || g.ctx.Err() != nil || g.store.Tip().Hash != b.Hash {
		return
	}
	g.PublishBlock(g.ctx, b)
}

// PublishBlock announces a block we mined.
func (g *Gossip) PublishBlock(ctx context.Context, b *chain.Block) {
	data, err := proto.Marshal(protocol.BlockToPB(b))
	if err == nil {
		err = g.blocks.Publish(ctx, data)
	}
	if err != nil && ctx.Err() == nil {
		g.log.Warn("publish block", "height", b.Index, "err", err)
	}
}

// PublishEntry announces a data entry submitted to us.
func (g *Gossip) PublishEntry(ctx context.Context, text string) {
	if err := g.data.Publish(ctx, []byte(text)); err != nil {
		g.log.Warn("publish entry", "err", err)
	}
}
