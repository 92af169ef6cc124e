package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/p2p"
	"github.com/jbc-project/jbc/node/peering"
)

// Discovery timing.
const (
	// findMinBackoff and findMaxBackoff bound the retry delay of DHT peer
	// lookups: seconds, not the library's fixed minutes, so a node that
	// starts before its peers advertise still finds them quickly.
	findMinBackoff = time.Second
	findMaxBackoff = 30 * time.Second
	// findSteady is the lookup period while the node is short of chosen
	// peers although lookups find some; once it has OutboundPeers, it
	// looks up nothing (see findLoop).
	findSteady = time.Minute
	// findWarmup lookups that found peers are made after start even when
	// the node has all its peers, findWarmupEvery apart: peers beyond the
	// LAN arrive after mDNS has filled the slots, and the dialler gives
	// outsidePeers slots to them.
	findWarmup      = 1
	findWarmupEvery = 10 * time.Second
	// findWarmupAfter: a warmup lookup the node does not need (it has
	// peers or candidates enough, from mDNS) waits this long after start,
	// plus up to as much again at random: a LAN's nodes start together,
	// and every lookup connects to the same twenty nodes nearest the
	// rendezvous key. On a LAN of 60 these lookups' transient
	// connections were most of the CPU spent connecting (docs/lan-design.md,
	// section 4).
	findWarmupAfter = 15 * time.Second
	// findLimit ends a lookup once it found this many peers: twice the
	// peers a node chooses is choice enough, and a lookup run to its end
	// contacts some twenty nodes.
	findLimit = 2 * OutboundPeers
	// dhtConcurrency is the DHT's lookup parallelism (alpha): the classic
	// Kademlia 3, not the library's 10, so that a lookup dials fewer nodes
	// at once; on a LAN of 60 all of them started together.
	dhtConcurrency = 3
	// advertisersPerLAN: on a LAN where mDNS found more peers than this,
	// each node advertises the rendezvous with a probability that makes
	// this many of them do on average (shouldAdvertise): as many as a node
	// chooses, so that a node beyond the LAN finds a choice of them.
	advertisersPerLAN = OutboundPeers
	// advertiseDecide: with mDNS on, the first advertisement waits this
	// long for the LAN's answers, which decide whether the node advertises.
	advertiseDecide = 3 * time.Second
	// advertiseRecheck: a node that did not advertise decides again this
	// much later (the LAN may have shrunk).
	advertiseRecheck = 10 * time.Minute
	// advertiseRetry is the delay between advertise attempts that failed
	// (typically: routing table still empty).
	advertiseRetry = 2 * time.Second
	// rtPoll is how often an empty routing table is checked for its first
	// peer, so that the first advertisement follows within this delay.
	rtPoll = 200 * time.Millisecond
)

// Config is what Discovery needs. Host, Peers and Go are required.
type Config struct {
	// Host is the node's host, which Discovery dials from and runs mDNS
	// and the DHT on.
	Host host.Host
	// Network is the genesis hash of the node's network: the mDNS service
	// and the DHT rendezvous are per network.
	Network chain.Hash
	// Peers records each peer found, how, and the cause of a failed dial;
	// banned peers are not dialled.
	Peers *peering.Set
	// Bootstrap peers (multiaddrs with /p2p/) seed the DHT: dialled at
	// start and while the node has no peer, not kept; Direct ones
	// (--peer) are dialled and kept.
	Bootstrap, Direct []string
	// MDNS turns on LAN discovery.
	MDNS bool
	// DHT turns on the Kademlia DHT; DHTPrefix is its protocol prefix
	// (default p2p.DefaultDHTPrefix); DHTClient puts it in client mode.
	DHT       bool
	DHTPrefix string
	DHTClient bool
	// Kept, if set, reports whether a peer's status request said it chose
	// us (package peering's Admission.IsKept): a connection to it is
	// never transient.
	Kept func(peer.ID) bool
	// Go runs f in a goroutine until the node stops, which waits for it.
	Go func(f func(context.Context))
	// Logger receives discovery's logs.
	Logger *slog.Logger
}

// Discovery finds peers by mDNS, the DHT, bootstrap and direct addresses,
// keeps them in an address book and dials OutboundPeers of them. Its
// methods are safe for concurrent use.
type Discovery struct {
	cfg   Config
	host  host.Host
	peers *peering.Set
	log   *slog.Logger
	// ctx is the node's, from Start: once it is done, failed dials are
	// our own cancellation and not recorded.
	ctx  context.Context
	kick chan struct{}
	// bookMu guards the address book, the chosen peers (a slot each,
	// taken before the dial) and the candidates that failed for good.
	bookMu   sync.Mutex
	book     map[peer.ID]*candidate
	chosen   map[peer.ID]bool
	dead     map[peer.ID]time.Time
	isDirect map[peer.ID]bool
	// connectedAt: when the newest connection to each connected peer
	// opened (for trim).
	connectedAt map[peer.ID]time.Time
	// full: the node has had all its chosen peers; empty: it has since
	// lost them all (for the info lines of noteCount).
	full, empty atomic.Bool
	// replaced counts chosen peers that dropped since replacedAt (owned
	// by trimLoop), for its summary line.
	replaced   atomic.Int64
	replacedAt time.Time
	// mdns is the running mDNS service, replaced by a restart (see
	// mdnsLoop), or nil while none runs; mdnsFoundAt is when it last
	// found a peer, in Unix nanoseconds.
	mdnsMu      sync.Mutex
	mdns        *mdnsService
	mdnsClosed  bool // by close: no more restarts
	mdnsFoundAt atomic.Int64
	dht         *dht.IpfsDHT
	boot        []peer.AddrInfo
	direct      []peer.AddrInfo
	prefix      string

	mu        sync.Mutex // guards the results below, for doctor
	lastAdv   time.Time
	advErr    error
	lastFind  time.Time
	lastFound int
	findErr   error
}

// New parses the bootstrap and direct addresses and builds the DHT, if
// on; Start starts finding peers. Its errors name the flag whose address
// is wrong.
func New(cfg Config) (*Discovery, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Discovery{cfg: cfg, host: cfg.Host, peers: cfg.Peers, log: cfg.Logger, kick: make(chan struct{}, 1),
		book: map[peer.ID]*candidate{}, chosen: map[peer.ID]bool{}, dead: map[peer.ID]time.Time{}, isDirect: map[peer.ID]bool{}, connectedAt: map[peer.ID]time.Time{}}
	var err error
	if d.boot, err = p2p.ParsePeerAddrs(cfg.Bootstrap); err != nil {
		return nil, fmt.Errorf("--bootstrap: %w", err)
	}
	if d.direct, err = p2p.ParsePeerAddrs(cfg.Direct); err != nil {
		return nil, fmt.Errorf("--peer: %w", err)
	}
	for _, pi := range d.direct {
		d.isDirect[pi.ID] = true
	}
	if cfg.DHT {
		prefix := cfg.DHTPrefix
		if prefix == "" {
			prefix = p2p.DefaultDHTPrefix
		}
		d.prefix = prefix
		mode := dht.ModeServer
		if cfg.DHTClient {
			mode = dht.ModeClient
		}
		d.dht, err = dht.New(cfg.Host,
			dht.Mode(mode),
			dht.ProtocolPrefix(libp2pproto.ID(prefix)),
			dht.BootstrapPeers(d.boot...),
			// No routing-table refresh: the library's, at start and every
			// 10 minutes, looks up random keys across the network (some
			// twenty connections per node on a LAN of 60, all of them
			// closed again as transient); the table fills from the
			// connections the node makes and from its own lookups.
			dht.DisableAutoRefresh(),
			dht.Concurrency(dhtConcurrency),
		)
		if err != nil {
			return nil, fmt.Errorf("node: dht: %w", err)
		}
	}
	return d, nil
}

// RunsDHT reports whether the DHT is on: a connection nobody recorded
// dialling was then opened by the DHT's own queries.
func (d *Discovery) RunsDHT() bool { return d.dht != nil }

// Start starts finding and dialling peers, until ctx is done.
func (d *Discovery) Start(ctx context.Context) error {
	d.ctx = ctx
	d.host.Network().Notify(&network.NotifyBundle{
		ConnectedF:    func(_ network.Network, c network.Conn) { d.connected(c.RemotePeer()) },
		DisconnectedF: func(_ network.Network, c network.Conn) { d.disconnected(c.RemotePeer()) },
	})
	d.cfg.Go(d.dialLoop)
	// Without mDNS or the DHT every connection is one the operator or the
	// program holding the host made: nothing is transient.
	if d.cfg.MDNS || d.dht != nil {
		d.cfg.Go(d.trimLoop)
	}
	if d.cfg.MDNS {
		d.cfg.Go(d.mdnsLoop)
	}
	// Record sources before anything dials: the DHT may reach a bootstrap
	// peer before our own dial does.
	for _, pi := range d.boot {
		d.peers.Found(pi.ID, pi.Addrs, peering.SourceBootstrap)
	}
	if len(d.boot) > 0 {
		d.cfg.Go(d.seedLoop)
	}
	for _, pi := range d.direct {
		d.peers.Found(pi.ID, pi.Addrs, peering.SourceDirect)
		d.host.ConnManager().Protect(pi.ID, peering.TagConfigured)
		d.cfg.Go(func(ctx context.Context) { d.keep(ctx, pi) })
	}
	// The DHT's Bootstrap is not called: it refreshes the routing table
	// at once, lookups that connect to most nodes of a LAN. The table
	// fills from the peers we connect to (seeds included) and from our
	// lookups.
	if d.dht != nil {
		d.cfg.Go(d.advertiseLoop)
		d.cfg.Go(d.findLoop)
	}
	return nil
}

// Close stops mDNS and the DHT.
func (d *Discovery) Close() {
	d.mdnsMu.Lock()
	d.mdnsClosed = true
	d.stopMDNSLocked()
	d.mdnsMu.Unlock()
	if d.dht != nil {
		d.dht.Close()
	}
}
