package node

import (
	"fmt"
	"net"
	"strconv"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	p2pconnmgr "github.com/libp2p/go-libp2p/p2p/net/connmgr"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/jbc-project/jbc/protocol"
)

// DefaultPort is the TCP and UDP (QUIC) port a node listens on unless told
// otherwise: fixed, so that a multiaddr written down once keeps working and
// firewall or docker port rules can name it.
const DefaultPort = 4747

// Connection manager watermarks: a chain node needs a handful of peers to
// sync from and to spread blocks through; beyond HighWater the least useful
// connections are trimmed back to LowWater.
const (
	connLowWater  = 32
	connHighWater = 96
)

// DefaultListenAddrs returns the listen multiaddrs used when none are given:
// TCP and QUIC on DefaultPort on every IPv4 and IPv6 interface.
func DefaultListenAddrs() []string {
	p := strconv.Itoa(DefaultPort)
	return []string{
		"/ip4/0.0.0.0/tcp/" + p,
		"/ip4/0.0.0.0/udp/" + p + "/quic-v1",
		"/ip6/::/tcp/" + p,
		"/ip6/::/udp/" + p + "/quic-v1",
	}
}

// ParseAddrs parses multiaddr strings, naming the bad one in the error and
// saying in plain words what is wrong with it (ParseAddr).
func ParseAddrs(ss []string) ([]ma.Multiaddr, error) {
	out := make([]ma.Multiaddr, 0, len(ss))
	for _, s := range ss {
		a, err := ParseAddr(s)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// ParsePeerAddrs parses multiaddrs that end in /p2p/<id>, grouping them by
// peer.
func ParsePeerAddrs(ss []string) ([]peer.AddrInfo, error) {
	addrs := make([]ma.Multiaddr, 0, len(ss))
	for _, s := range ss {
		a, err := ParsePeerAddr(s)
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, a)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil {
		return nil, fmt.Errorf("peer multiaddrs must end in /p2p/<peer id>: %w", err)
	}
	return infos, nil
}

// Connection limits, in the go-libp2p resource manager. The connection
// manager keeps the node between its watermarks gracefully: above
// connHighWater it closes the least useful connections, sparing new ones
// for a grace period, until connLowWater remain. The resource manager
// refuses outright, so its limits sit above the high watermark and only
// stop what the connection manager cannot trim in time: a flood of dials.
const (
	// maxConns bounds connections over all peers, both directions: twice
	// connHighWater, room for the new connections the connection manager
	// spares while it trims, while a flood cannot take the file
	// descriptors and memory of thousands of connections.
	maxConns = 2 * connHighWater
	// maxConnsInbound bounds connections peers open to us: all of
	// maxConns but connLowWater, so that however many peers dial us, the
	// node can still dial a low watermark's worth of peers it chose itself
	// (bootstrap, --peer, discovery). Outbound connections are bounded by
	// maxConns alone.
	maxConnsInbound = maxConns - connLowWater
	// maxPeerConns bounds connections with one peer, each direction and in
	// all: one is all a peer needs; a dial from each side at once, over TCP
	// and QUIC, makes four. The default (8) matches go-libp2p's parallel
	// dials of the many addresses of IPFS peers.
	maxPeerConns = 4
)

// Resource limits for /jbc/chain/1.0.0. The defaults are tuned for other
// protocols (bitswap, the DHT); ours carries one request and one response
// per stream.
const (
	// chainStreams bounds concurrent streams of our protocol over all
	// peers: the server's own MaxInflight (64) for inbound, as many for
	// our outbound sync and status requests.
	chainStreams = 2 * protocol.MaxInflight
	// chainPeerStreams bounds streams with one peer: its in-flight limit
	// both ways, with slack for a status exchange crossing a sync.
	chainPeerStreams = 2*protocol.MaxInflightPerPeer + 2
	// chainMemory bounds the stream buffers of our protocol: a handful of
	// full frames in flight.
	chainMemory = 16 * protocol.MaxFrameSize
	// chainPeerMemory: two full frames per peer.
	chainPeerMemory = 2 * protocol.MaxFrameSize
)

// Resource limits for GossipSub, under each of its protocol IDs
// (pubsub.GossipSubDefaultProtocols; a peer speaks one of them). GossipSub
// keeps one long-lived stream each way with every peer it talks to, and
// replaces a peer's inbound stream when a new one arrives, resetting the
// old.
const (
	// gossipStreams bounds GossipSub streams each way over all peers: one
	// per connection the node may hold.
	gossipStreams = maxConns
	// gossipPeerStreams bounds GossipSub streams with one peer, each way:
	// one, and its replacement while the old one closes.
	gossipPeerStreams = 2
	// gossipMemory: sixteen of the largest gossip messages (one block of
	// the largest data the wire allows) in flight over all peers.
	gossipMemory = 16 * maxGossipBlock
	// gossipPeerMemory: two of them per peer, one each way.
	gossipPeerMemory = 2 * maxGossipBlock
)

// Resource limits for the Kademlia DHT, whose protocol ID depends on the
// configured prefix (see dhtProtocolID). kad-dht reuses one stream per
// peer for the requests it sends, and serves each inbound stream until the
// peer closes it.
const (
	// dhtStreams bounds DHT streams each way over all peers: one reused
	// stream per connection the node may hold.
	dhtStreams = maxConns
	// dhtPeerStreamsInbound bounds DHT streams one peer opens to us: other
	// implementations open a stream per request, and a lookup asks a peer
	// little at a time; eight is ample, and stops one peer from taking the
	// DHT's share.
	dhtPeerStreamsInbound = 8
	// dhtPeerStreamsOutbound bounds DHT streams we open to one peer: kad-dht
	// reuses one, and opens another after an error.
	dhtPeerStreamsOutbound = 4
	// dhtMemory: eight DHT messages of the largest size kad-dht reads
	// (network.MessageSizeMax, 4 MiB) in flight; real ones, peer and
	// provider records, are a few KiB.
	dhtMemory = 8 * network.MessageSizeMax
	// dhtPeerMemory: one of them per peer.
	dhtPeerMemory = network.MessageSizeMax
)

// dhtProtocolSuffix follows the prefix in the DHT's protocol ID (kad-dht's
// own, unexported, kad1).
const dhtProtocolSuffix = "/kad/1.0.0"

// dhtProtocolID returns the protocol ID of a DHT with the given prefix
// (DefaultDHTPrefix when empty), as kad-dht builds it: /jbc/kad/1.0.0 by
// default.
func dhtProtocolID(prefix string) libp2pproto.ID {
	if prefix == "" {
		prefix = DefaultDHTPrefix
	}
	return libp2pproto.ID(prefix + dhtProtocolSuffix)
}

// resourceLimits returns the resource manager's limits: go-libp2p's scaled
// defaults, with the connection limits above and stream and memory limits
// for /jbc/chain/1.0.0, GossipSub and the DHT whose prefix is dhtPrefix.
// The limits set here are fixed (they do not scale with the machine's
// memory), so that a node behaves alike wherever it runs.
//
// Memory limits on a protocol bound what is reserved in the scopes of its
// streams. yamux reserves its stream windows in the connection's scope
// instead, where go-libp2p's per-connection (32 MiB) and per-peer limits
// bound them.
func resourceLimits(dhtPrefix string) rcmgr.ConcreteLimitConfig {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)

	// Inbound streams are allowed beyond the server's MaxInflight: when the
	// server is full it resets the slowest of its own (see
	// protocol.Server), which it can only do if the next stream reaches it.
	limits.AddProtocolLimit(protocol.ID,
		rcmgr.BaseLimit{Streams: chainStreams + protocol.MaxInflight, StreamsInbound: chainStreams, StreamsOutbound: chainStreams / 2, Memory: chainMemory},
		rcmgr.BaseLimitIncrease{})
	limits.AddProtocolPeerLimit(protocol.ID,
		rcmgr.BaseLimit{Streams: chainPeerStreams, StreamsInbound: chainPeerStreams / 2, StreamsOutbound: chainPeerStreams / 2, Memory: chainPeerMemory},
		rcmgr.BaseLimitIncrease{})

	for _, id := range pubsub.GossipSubDefaultProtocols {
		limits.AddProtocolLimit(id,
			rcmgr.BaseLimit{Streams: 2 * gossipStreams, StreamsInbound: gossipStreams, StreamsOutbound: gossipStreams, Memory: gossipMemory},
			rcmgr.BaseLimitIncrease{})
		limits.AddProtocolPeerLimit(id,
			rcmgr.BaseLimit{Streams: 2 * gossipPeerStreams, StreamsInbound: gossipPeerStreams, StreamsOutbound: gossipPeerStreams, Memory: gossipPeerMemory},
			rcmgr.BaseLimitIncrease{})
	}

	dhtID := dhtProtocolID(dhtPrefix)
	limits.AddProtocolLimit(dhtID,
		rcmgr.BaseLimit{Streams: 2 * dhtStreams, StreamsInbound: dhtStreams, StreamsOutbound: dhtStreams, Memory: dhtMemory},
		rcmgr.BaseLimitIncrease{})
	limits.AddProtocolPeerLimit(dhtID,
		rcmgr.BaseLimit{Streams: dhtPeerStreamsInbound + dhtPeerStreamsOutbound, StreamsInbound: dhtPeerStreamsInbound, StreamsOutbound: dhtPeerStreamsOutbound, Memory: dhtPeerMemory},
		rcmgr.BaseLimitIncrease{})

	conns := rcmgr.PartialLimitConfig{
		System:      rcmgr.ResourceLimits{Conns: maxConns, ConnsInbound: maxConnsInbound, ConnsOutbound: maxConns},
		PeerDefault: rcmgr.ResourceLimits{Conns: maxPeerConns, ConnsInbound: maxPeerConns, ConnsOutbound: maxPeerConns},
	}
	return conns.Build(limits.AutoScale())
}

// newResourceManager returns go-libp2p's resource manager with the limits
// of resourceLimits.
func newResourceManager(dhtPrefix string) (network.ResourceManager, error) {
	str, err := rcmgr.NewStatsTraceReporter()
	if err != nil {
		return nil, err
	}
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(resourceLimits(dhtPrefix)), rcmgr.WithTraceReporter(str))
}

// newHost builds the node's libp2p host; dhtPrefix is the DHT's protocol
// prefix, for the resource limits. NAT port mapping stays off: a node must
// not reconfigure the network it runs on; a node behind NAT announces its
// public address with --announce instead.
func newHost(key crypto.PrivKey, listen, announce []ma.Multiaddr, dhtPrefix string, gater connmgr.ConnectionGater, bw metrics.Reporter) (host.Host, error) {
	cm, err := p2pconnmgr.NewConnManager(connLowWater, connHighWater)
	if err != nil {
		return nil, err
	}
	rm, err := newResourceManager(dhtPrefix)
	if err != nil {
		return nil, err
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrs(listen...),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionGater(gater),
		libp2p.DisableRelay(),
		libp2p.UserAgent(agent()),
		libp2p.BandwidthReporter(bw),
	}
	if len(announce) > 0 {
		opts = append(opts, libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return announce }))
	}
	return libp2p.New(opts...)
}

// FullAddrs returns addrs each with /p2p/<id> appended: what another node
// passes to --bootstrap or --peer.
func FullAddrs(id peer.ID, addrs []ma.Multiaddr) []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		full, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{a}})
		if err == nil {
			out = append(out, full...)
		}
	}
	return out
}

// DialableAddrs returns the addresses a node with these listen and announce
// addresses can be reached on, without starting it: the announce addresses
// if any, else the listen addresses with unspecified IPs (0.0.0.0, ::)
// expanded to this machine's interface addresses.
func DialableAddrs(listen, announce []ma.Multiaddr) ([]ma.Multiaddr, error) {
	if len(announce) > 0 {
		return announce, nil
	}
	ifaces, err := manet.InterfaceMultiaddrs()
	if err != nil {
		return nil, err
	}
	var out []ma.Multiaddr
	for _, a := range listen {
		ip, err := manet.ToIP(a)
		if err != nil || !ip.IsUnspecified() {
			out = append(out, a)
			continue
		}
		resolved, err := manet.ResolveUnspecifiedAddress(a, ifaces)
		if err != nil {
			continue
		}
		for _, r := range resolved {
			if rip, err := manet.ToIP(r); err == nil && rip.IsLinkLocalUnicast() {
				continue // link-local needs a zone; not worth printing
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// AddrKind classifies an address for people reading logs and /doctor:
// loopback, private, docker-bridge (172.17.0.0/16, docker's default) or
// public.
func AddrKind(a ma.Multiaddr) string {
	ip, err := manet.ToIP(a)
	if err != nil {
		return "other"
	}
	switch {
	case ip.IsLoopback():
		return "loopback"
	case dockerBridge.Contains(ip):
		return "docker-bridge"
	case ip.IsPrivate() || ip.IsLinkLocalUnicast():
		return "private"
	case ip.IsUnspecified():
		return "unspecified"
	}
	return "public"
}

var dockerBridge = &net.IPNet{IP: net.IPv4(172, 17, 0, 0), Mask: net.CIDRMask(16, 32)}
