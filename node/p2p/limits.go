package p2p

import (
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"

	"github.com/jbc-project/jbc/protocol"
)

// Connection limits, in the go-libp2p resource manager. The connection
// manager keeps the node between its watermarks gracefully: above
// ConnHighWater it closes the least useful connections, sparing new ones
// for a grace period, until connLowWater remain. The resource manager
// refuses outright, so its limits sit above the high watermark and only
// stop what the connection manager cannot trim in time: a flood of dials.
const (
	// maxConns bounds connections over all peers, both directions: four
	// times ConnHighWater, room for the new connections the connection
	// manager spares while it trims, and for the handshakes of a flood of
	// fresh identities while admission closes them (an honest newcomer's
	// handshake must find room: TestSybilLockout), while a flood cannot
	// take the file descriptors and memory of thousands of connections.
	maxConns = 4 * ConnHighWater
	// MaxConnsInbound bounds connections peers open to us: all of
	// maxConns but connLowWater, so that however many peers dial us, the
	// node can still dial a low watermark's worth of peers it chose itself
	// (bootstrap, --peer, discovery). Outbound connections are bounded by
	// maxConns alone.
	MaxConnsInbound = maxConns - connLowWater
	// maxPeerConns bounds connections with one peer, each direction and in
	// all, counting dials in flight: one is all a peer needs, but a dial
	// of a peer behind NAT holds a reservation for each address tried at
	// once (its private IPv4 and IPv6 ones over TCP and QUIC, which hang
	// until they time out, and its relay addresses), and its own dial to
	// us, or a relayed connection and the hole punch that replaces it,
	// must still find room. At 4, a public node dialling a NATed peer
	// refused that peer's direct connection (e2e/nat.sh). go-libp2p's
	// default is 8 as well.
	maxPeerConns = 8
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
	gossipMemory = 16 * MaxGossipBlock
	// gossipPeerMemory: two of them per peer, one each way.
	gossipPeerMemory = 2 * MaxGossipBlock
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
	addRelayLimits(&limits)

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
		System:      rcmgr.ResourceLimits{Conns: maxConns, ConnsInbound: MaxConnsInbound, ConnsOutbound: maxConns},
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
