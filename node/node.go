package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/api"
	"github.com/jbc-project/jbc/node/chainsync"
	"github.com/jbc-project/jbc/node/discovery"
	"github.com/jbc-project/jbc/node/disk"
	"github.com/jbc-project/jbc/node/gossip"
	"github.com/jbc-project/jbc/node/internal/notify"
	"github.com/jbc-project/jbc/node/p2p"
	"github.com/jbc-project/jbc/node/peering"
	"github.com/jbc-project/jbc/protocol"
	"github.com/jbc-project/jbc/storage"
)

// Timing of the node's background work. Each is a trade between how fast
// news spreads and how much chatter idle nodes make.
const (
	// StatusInterval: how often statuses are refreshed with every peer,
	// so tips spread even when a push was missed.
	StatusInterval = 10 * time.Second
	// statusTimeout bounds one status round trip.
	statusTimeout = 5 * time.Second
	// tipPushDelay gathers tip changes that come in bursts (a synced page,
	// a fast miner) into one status push.
	tipPushDelay = 100 * time.Millisecond
	// wrongNetworkLinger is how long a peer found to be on another network
	// stays connected: the status that told us is handled before its
	// response is written, and the peer's own status request may be in
	// flight, so closing at once can cut both, leaving the peer without
	// the WRONG_NETWORK answer that tells it to ban us. Well within the
	// second allowed for the disconnect.
	wrongNetworkLinger = 200 * time.Millisecond
)

// Config holds what a Node needs. Store is required; the rest have
// defaults.
type Config struct {
	// Store is the chain the node serves and extends. The node does not
	// close it.
	Store *storage.Store
	// DataDir holds the identity key (p2p.KeyFile). Required unless Host is set.
	DataDir string
	// Host, if set, is used instead of building one from DataDir, Listen
	// and Announce (tests use mocknet hosts). The node closes it.
	Host host.Host
	// Listen and Announce are multiaddrs; Listen defaults to
	// p2p.DefaultListenAddrs, Announce to the listen addresses.
	Listen, Announce []string
	// Bootstrap peers (multiaddrs with /p2p/) seed the DHT.
	Bootstrap []string
	// Peers (multiaddrs with /p2p/) are dialled directly and kept.
	Peers []string
	// MDNS turns on LAN discovery.
	MDNS bool
	// DHT turns on the Kademlia DHT; DHTPrefix is its protocol prefix
	// (default p2p.DefaultDHTPrefix); DHTClient puts it in client mode.
	DHT       bool
	DHTPrefix string
	DHTClient bool
	// Mine turns on the miner with MineThreads goroutines (0: all CPUs).
	Mine        bool
	MineThreads int
	// HTTPAddr is the HTTP API's listen address; empty disables it.
	HTTPAddr string
	// ReannounceInterval is how often the entries still pending are
	// announced again, so that nodes that missed them (joined later, or
	// were across a partition) learn them; 0 means
	// gossip.DefaultReannounceInterval.
	ReannounceInterval time.Duration
	// LegacyPeers are the URLs of Python JackBlockChain nodes to follow
	// (legacy.go): http://HOST:PORT or the URL of their /blockchain.json.
	// The node dials these and no other HTTP address.
	LegacyPeers []string
	// LegacyPollInterval is how often each legacy peer is polled; 0 means
	// chainsync.DefaultLegacyPollInterval.
	LegacyPollInterval time.Duration
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
}

// Node is a running jbc node: a libp2p host speaking /jbc/chain/1.0.0,
// discovery, sync, an optional miner and an optional HTTP API. Its methods
// are safe for concurrent use.
type Node struct {
	cfg    Config
	store  *storage.Store
	host   host.Host
	log    *slog.Logger
	peers  *peering.Set
	scores *peering.Scores
	// adm decides who gets and keeps a connection (admission.go).
	adm *peering.Admission
	// rootLog is the logger given in Config, for parts that name their own
	// component (the miner).
	rootLog *slog.Logger
	// statusBusy holds the peers a status exchange is under way with, so
	// that a burst of tip changes or a dead peer does not pile them up.
	statusBusy sync.Map
	metrics    *nodeMetrics
	server     *protocol.Server
	client     *protocol.Client
	disc       *discovery.Discovery
	sync       *chainsync.Syncer
	pool       *gossip.Pool
	gossip     *gossip.Gossip
	miner      *chain.Miner
	// chainMu serialises adding blocks with the pool and orphan upkeep
	// that follows, so that a reorg's restored entries and an append's
	// removed ones are applied in the order the store applied the blocks.
	chainMu sync.Mutex
	// mineMu guards mineStop, which cancels the running miner (nil: off).
	mineMu   sync.Mutex
	mineStop context.CancelFunc
	tips     notify.Watch
	// api is the HTTP API; http serves it while Config.HTTPAddr is set.
	api  *api.API
	http *api.Server
	// reqLimit rate-limits each peer's /jbc/chain/1.0.0 requests.
	reqLimit *peering.Limiter
	// disk records failures of the store, which pause syncing and mining.
	disk *disk.Health

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds a node from cfg; Start runs it.
func New(cfg Config) (*Node, error) {
	if cfg.Store == nil {
		return nil, errors.New("node: Config.Store is required")
	}
	switch {
	case cfg.ReannounceInterval < 0:
		return nil, fmt.Errorf("node: Config.ReannounceInterval %s is negative", cfg.ReannounceInterval)
	case cfg.ReannounceInterval == 0:
		cfg.ReannounceInterval = gossip.DefaultReannounceInterval
	}
	switch {
	case cfg.LegacyPollInterval < 0:
		return nil, fmt.Errorf("node: Config.LegacyPollInterval %s is negative", cfg.LegacyPollInterval)
	case cfg.LegacyPollInterval == 0:
		cfg.LegacyPollInterval = chainsync.DefaultLegacyPollInterval
	}
	legacy := make([]string, 0, len(cfg.LegacyPeers))
	for _, u := range cfg.LegacyPeers {
		cu, err := chainsync.LegacyChainURL(u)
		if err != nil {
			return nil, fmt.Errorf("--legacy-peer: %w", err)
		}
		legacy = append(legacy, cu)
	}
	cfg.LegacyPeers = legacy
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, store: cfg.Store, log: log.With("component", "node"), rootLog: log, peers: peering.NewSet(), pool: gossip.NewPool(),
		reqLimit: peering.NewLimiter(peering.RequestRate, peering.RequestBurst)}
	n.miner = &chain.Miner{Threads: cfg.MineThreads}
	n.disk = disk.New(cfg.Store, n.log)
	n.metrics = newNodeMetrics(n)
	n.api = api.New(api.Config{Backend: backend{n}, Store: cfg.Store, Metrics: n.metrics.reg, Logger: n.log})
	n.adm = peering.NewAdmission(n.peers, n.log, n.metrics.admission)
	if cfg.Host != nil {
		n.host = cfg.Host
	} else {
		if cfg.DataDir == "" {
			return nil, errors.New("node: Config.DataDir is required")
		}
		key, err := p2p.LoadOrCreateKey(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		ls := cfg.Listen
		if len(ls) == 0 {
			ls = p2p.DefaultListenAddrs()
		}
		listen, err := p2p.ParseAddrs(ls)
		if err != nil {
			return nil, fmt.Errorf("--listen: %w", err)
		}
		if err := p2p.CheckListenAddrs(listen); err != nil {
			return nil, err
		}
		announce, err := p2p.ParseAddrs(cfg.Announce)
		if err != nil {
			return nil, fmt.Errorf("--announce: %w", err)
		}
		h, err := p2p.NewHost(key, listen, announce, cfg.DHTPrefix, n.adm, n.metrics.bandwidth)
		if err != nil {
			return nil, fmt.Errorf("node: libp2p host: %w", err)
		}
		n.host = h
	}
	n.adm.SetHost(n.host)
	n.scores = peering.NewScores(peering.ScoresConfig{Host: n.host, Peers: n.peers, Logger: n.log,
		Count: func(m peering.Misbehaviour) { n.metrics.misbehaved.WithLabelValues(string(m)).Inc() }})
	var err error
	n.server, err = protocol.NewServer(protocol.ServerConfig{
		Host:     n.host,
		Source:   n.store,
		Agent:    p2p.Agent(),
		OnStatus: n.onStatus,
		Allow: func(p peer.ID) bool {
			if n.peers.IsBanned(p) {
				// Banned for a bad request, its connection stays open
				// only until the answer is out (badRequestLinger).
				return false
			}
			if n.reqLimit.Allow(p) {
				return true
			}
			n.scores.Penalise(p, peering.MisFlood, "requests over the rate limit")
			return false
		},
		OnMalformed: func(p peer.ID, err error) { n.scores.Penalise(p, peering.MisBadRequest, err.Error()) },
		Logger:      log,
	})
	if err != nil {
		n.host.Close()
		return nil, err
	}
	n.client, err = protocol.NewClient(n.host, n.store, p2p.Agent(), log)
	if err != nil {
		n.host.Close()
		return nil, err
	}
	n.sync = chainsync.New(chainsync.Config{Store: n.store, Client: n.client, Peers: n.peers, Disk: n.disk,
		Add:        n.addBlocks,
		SettledTip: n.settledTip,
		Penalise:   n.scores.Penalise,
		Served:     n.adm.Served,
		Logger:     n.log})
	n.disc, err = discovery.New(discovery.Config{Host: n.host, Network: cfg.Store.Params().ID(), Peers: n.peers,
		Bootstrap: cfg.Bootstrap, Direct: cfg.Peers, MDNS: cfg.MDNS, DHT: cfg.DHT, DHTPrefix: cfg.DHTPrefix, DHTClient: cfg.DHTClient,
		Go: n.goRun, Logger: n.log})
	if err != nil {
		n.host.Close()
		return nil, err
	}
	return n, nil
}

// Host returns the node's libp2p host.
func (n *Node) Host() host.Host { return n.host }

// Store returns the node's chain store.
func (n *Node) Store() *storage.Store { return n.store }

// ID returns the node's peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Addrs returns the node's full multiaddrs, each ending in /p2p/<id>.
func (n *Node) Addrs() []ma.Multiaddr { return p2p.FullAddrs(n.host.ID(), n.host.Addrs()) }

// HTTPAddr returns the address the HTTP API listens on, or "" if off.
func (n *Node) HTTPAddr() string {
	if n.http == nil {
		return ""
	}
	return n.http.Addr()
}

// Start starts serving, discovery, sync and (if configured) mining and the
// HTTP API. It returns once everything is listening; the work goes on until
// Close.
func (n *Node) Start(ctx context.Context) error {
	n.ctx, n.cancel = context.WithCancel(ctx)
	var err error
	n.gossip, err = gossip.New(n.ctx, gossip.Config{Host: n.host, Store: n.store, Pool: n.pool, Interval: n.cfg.ReannounceInterval,
		Add:       func(blocks []chain.Block) (storage.Result, error) { return n.addBlocksVia(viaGossip, blocks) },
		Penalise:  n.scores.Penalise,
		AskStatus: n.requestStatus,
		Served:    n.adm.Served,
		Go:        n.goRun,
		Logger:    n.log})
	if err != nil {
		n.cancel()
		return err
	}
	n.server.Start()
	n.host.Network().Notify(&network.NotifyBundle{
		ConnectedF:    func(_ network.Network, c network.Conn) { n.onConnected(c) },
		DisconnectedF: func(nw network.Network, c network.Conn) { n.onDisconnected(nw, c) },
	})
	if n.cfg.HTTPAddr != "" {
		if n.http, err = api.Listen(n.cfg.HTTPAddr, n.api.Handler(), n.log); err != nil {
			n.cancel()
			return err
		}
	}
	n.goRun(n.sync.Run)
	n.goRun(n.statusLoop)
	if len(n.cfg.LegacyPeers) > 0 {
		n.goRun(func(ctx context.Context) {
			chainsync.FollowLegacy(ctx, chainsync.LegacyConfig{Store: n.store, URLs: n.cfg.LegacyPeers, Interval: n.cfg.LegacyPollInterval,
				Add:    func(blocks []chain.Block) (storage.Result, error) { return n.addBlocksVia(viaLegacy, blocks) },
				Logger: n.log})
		})
	}
	n.goRun(n.adm.Run)
	if n.cfg.Mine {
		n.SetMining(true)
	}
	if err := n.disc.Start(n.ctx); err != nil {
		n.cancel()
		return err
	}
	// Peers already connected (a host handed to us) get a status too.
	for _, p := range n.host.Network().Peers() {
		n.peers.Found(p, nil, peering.SourceDirect)
		n.goRun(func(ctx context.Context) { n.exchangeStatus(ctx, p) })
	}
	return nil
}

func (n *Node) goRun(f func(context.Context)) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f(n.ctx)
	}()
}

// Doctor checks the running node: why it does or does not see peers
// (package discovery), and whether it can write its chain. It takes up to
// a few seconds, dialling the peers not connected.
func (n *Node) Doctor(ctx context.Context) discovery.Report {
	return n.disc.Doctor(ctx, n.disk.Problem)
}

// Close stops the node and its host. It does not close the store.
func (n *Node) Close() error {
	if n.cancel != nil {
		n.cancel()
	}
	if n.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		n.http.Shutdown(ctx)
		cancel()
	}
	n.disc.Close()
	if n.gossip != nil {
		n.gossip.Close()
	}
	n.server.Close()
	err := n.host.Close()
	n.wg.Wait()
	return err
}

// onConnected records inbound peers and exchanges statuses with every new
// peer, both ways: each side sends its own status request.
func (n *Node) onConnected(c network.Conn) {
	p := c.RemotePeer()
	if n.peers.IsBanned(p) {
		go c.Close()
		return
	}
	// Our own dials record their source before dialling; an outbound
	// connection nobody recorded was opened by the DHT's own queries (or,
	// without a DHT, by whoever holds the host, e.g. a test).
	src := peering.SourceInbound
	if c.Stat().Direction == network.DirOutbound {
		src = peering.SourceDirect
		if n.disc != nil && n.disc.RunsDHT() {
			src = peering.SourceDHT
		}
	}
	n.peers.Found(p, []ma.Multiaddr{c.RemoteMultiaddr()}, src)
	n.peers.SetConnected(p, true)
	n.sync.Reconnected(p)
	if n.ctx == nil || n.ctx.Err() != nil {
		return
	}
	n.adm.Connected(c)
	n.goRun(func(ctx context.Context) { n.exchangeStatus(ctx, p) })
}

// onDisconnected records that a peer is gone once its last connection
// closes. A peer that connected to us and that we never found ourselves is
// forgotten: fresh identities must not grow the peer table.
func (n *Node) onDisconnected(nw network.Network, c network.Conn) {
	p := c.RemotePeer()
	if nw.Connectedness(p) == network.Connected {
		return
	}
	n.adm.Disconnected(nw, p)
	if pi, ok := n.peers.Get(p); ok && pi.Source == peering.SourceInbound {
		n.peers.Forget(p)
		return
	}
	n.peers.SetConnected(p, false)
}

// requestStatus exchanges statuses with p in the background, unless an
// exchange with p is already under way.
func (n *Node) requestStatus(p peer.ID) {
	if _, busy := n.statusBusy.LoadOrStore(p, struct{}{}); busy {
		return
	}
	n.goRun(func(ctx context.Context) {
		defer n.statusBusy.Delete(p)
		n.exchangeStatus(ctx, p)
	})
}

// exchangeStatus sends our status to p and records theirs.
func (n *Node) exchangeStatus(ctx context.Context, p peer.ID) {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	st, err := n.client.Status(ctx, p)
	if err != nil && !errors.Is(err, protocol.ErrWrongNetwork) {
		n.log.Debug("status failed", "peer", p, "err", err)
		return
	}
	n.onStatus(p, st)
}

// onStatus handles a status from p, whether it asked us or we asked it. A
// peer on another network is disconnected and banned; a peer claiming more
// work than we have wakes the syncer.
func (n *Node) onStatus(p peer.ID, st protocol.Status) {
	if st.Genesis != n.store.Params().ID() {
		if !n.peers.IsBanned(p) {
			n.log.Info("peer is on another network; disconnecting", "peer", p, "genesis", st.Genesis.Short(), "agent", st.Agent)
		}
		n.peers.Ban(p, "on another network (genesis "+st.Genesis.Short()+")")
		time.AfterFunc(wrongNetworkLinger, func() { _ = n.host.Network().ClosePeer(p) })
		return
	}
	n.peers.SetStatus(p, st)
	n.adm.Proven(p)
	tip := n.store.Tip()
	if st.Work != nil && st.Work.Cmp(tip.Work) > 0 {
		n.sync.Kick()
	}
}

// statusLoop refreshes statuses with every connected peer periodically and
// pushes ours soon after our tip changes.
func (n *Node) statusLoop(ctx context.Context) {
	t := time.NewTicker(StatusInterval)
	defer t.Stop()
	for {
		tipCh := n.tips.Wait()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-tipCh:
			select {
			case <-ctx.Done():
				return
			case <-time.After(tipPushDelay):
			}
		}
		for _, p := range n.host.Network().Peers() {
			n.requestStatus(p)
		}
	}
}

// addBlocks stores blocks fetched by sync; see addBlocksVia.
func (n *Node) addBlocks(blocks []chain.Block) (storage.Result, error) {
	return n.addBlocksVia(viaSync, blocks)
}

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
					extended = true
				}
			}
		}
	}
	if extended {
		n.tips.Fire()
	}
	return res, err
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
