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
	"github.com/jbc-project/jbc/node/nat"
	"github.com/jbc-project/jbc/node/p2p"
	"github.com/jbc-project/jbc/node/peering"
	"github.com/jbc-project/jbc/protocol"
	"github.com/jbc-project/jbc/storage"
)

// Config holds what a Node needs. Store is required; the rest have
// defaults.
type Config struct {
	// Store is the chain the node serves and extends. The node does not
	// close it.
	Store *storage.Store
	// DataDir holds the identity key (p2p.KeyFile). Required unless Host
	// is set.
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
	// NoRelay refuses to offer the circuit relay service (--relay=false),
	// which a publicly reachable node otherwise offers to nodes behind
	// NAT (package nat).
	NoRelay bool
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
	// (package chainsync): http://HOST:PORT or the URL of their
	// /blockchain.json.
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
	// adm decides who gets and keeps a connection.
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
	// pushTips fires when the tip changed in a way gossip did not announce
	// to the peers (a sync, a reorg, an orphan's parent arriving): the
	// status push follows it, not tips.
	pushTips notify.Watch
	// api is the HTTP API; http serves it while Config.HTTPAddr is set.
	api  *api.API
	http *api.Server
	// reqLimit rate-limits each peer's /jbc/chain/1.0.0 requests.
	reqLimit *peering.Limiter
	// disk records failures of the store, which pause syncing and mining.
	disk *disk.Health
	// nat keeps the node's reachability, relay service and reservations,
	// and how each connection was made.
	nat *nat.NAT

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
	natCfg := nat.Config{Relay: !cfg.NoRelay, Logger: log,
		Preferred: preferredRelays(cfg.Bootstrap, cfg.Peers),
		// The relay serves only peers that sent a status of our network.
		Proven: func(p peer.ID) bool {
			pi, ok := n.peers.Get(p)
			return ok && pi.Status != nil
		}}
	if cfg.Host != nil {
		n.nat = nat.New(natCfg)
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
		natCfg.Announce = announce
		n.nat = nat.New(natCfg)
		h, err := p2p.NewHost(key, listen, announce, cfg.DHTPrefix, n.adm, n.metrics.bandwidth, n.nat.Options()...)
		if err != nil {
			return nil, fmt.Errorf("node: libp2p host: %w", err)
		}
		n.host = h
	}
	n.adm.SetHost(n.host)
	n.adm.SetMade(n.nat.Made)
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
				// only until the answer is out (package peering).
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
	// Our status requests tell the peers we chose that we keep them.
	n.client, err = protocol.NewClient(n.host, n.store, p2p.Agent(), log,
		protocol.WithKeep(func(p peer.ID) bool { return n.disc != nil && n.disc.Chosen(p) }))
	if err != nil {
		n.host.Close()
		return nil, err
	}
	n.sync = chainsync.New(chainsync.Config{Store: n.store, Client: n.client, Peers: n.peers, Disk: n.disk,
		Direct:     func(p peer.ID) bool { return nat.DirectTo(n.host.Network(), p) },
		Add:        n.addBlocks,
		SettledTip: n.settledTip,
		Penalise:   n.scores.Penalise,
		Served:     n.adm.Served,
		Logger:     n.log})
	n.disc, err = discovery.New(discovery.Config{Host: n.host, Network: cfg.Store.Params().ID(), Peers: n.peers,
		Bootstrap: cfg.Bootstrap, Direct: cfg.Peers, MDNS: cfg.MDNS, DHT: cfg.DHT, DHTPrefix: cfg.DHTPrefix, DHTClient: cfg.DHTClient,
		Kept: n.adm.IsKept, Go: n.goRun, Logger: n.log})
	if err != nil {
		n.host.Close()
		return nil, err
	}
	n.adm.SetChooser(n.disc.Chosen)
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
	if err := n.nat.Start(n.ctx, n.host, n.goRun); err != nil {
		n.cancel()
		return err
	}
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
	r := n.disc.Doctor(ctx, n.disk.Problem)
	addNATFindings(&r, n.nat, publicPeers(n.cfg.Bootstrap, n.cfg.Peers), n.peers)
	return r
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
