package p2p

import (
	"time"

	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
)

// Limits of the circuit relay v2 service a publicly reachable node offers
// to nodes behind NAT (package nat runs it). A relayed connection is meant
// for the first seconds: identify, the status exchange and the DCUtR hole
// punch that replaces it with a direct connection. Blocks never travel
// through a relay (package chainsync syncs only over direct connections).
const (
	// relayConnDuration bounds one relayed connection: the library's 2
	// minutes. Identify, a status and DCUtR take under a second; the
	// connection stays for status and gossip only when punching fails,
	// and the dialler's retry (package nat) redials it.
	relayConnDuration = 2 * time.Minute
	// relayConnData bounds the bytes relayed each way on one connection:
	// the library's 128 KiB, far below one full frame
	// (protocol.MaxFrameSize, 4 MiB), so that no sync runs through us.
	relayConnData = 128 << 10
	// relayReservationTTL is how long a reservation lasts: the library's
	// hour; AutoRelay refreshes it well before.
	relayReservationTTL = time.Hour
	// RelayMaxReservations bounds the nodes holding a slot on us: each
	// holds an inbound connection, and one of admission's InboundSlots
	// (24, package peering) unless we chose it: half of them at most, so
	// that relaying never fills the slots honest inbound peers need.
	RelayMaxReservations = 12
	// relayMaxCircuits bounds circuits to one reserved node at once:
	// newcomers in the seconds before they punch through (library: 16).
	relayMaxCircuits = 8
	// relayMaxPerIP bounds reservations from one IP: a few nodes behind
	// one home NAT, while one address cannot take the slots (library: 8).
	relayMaxPerIP = 4
	// relayMaxPerASN: there is no ASN table offline; kept in proportion
	// to the library's (32 of 128).
	relayMaxPerASN = 16
	// relayBufferSize is the library's relay buffer per direction.
	relayBufferSize = 2048
	// relayMaxConcurrent bounds relayed connections at once over all
	// reserved nodes: eight reserved nodes' worth of circuits.
	relayMaxConcurrent = 8 * relayMaxCircuits
	// relayStreamMsg is one circuit message (hop or stop) in flight per
	// stream, a few hundred bytes; 4 KiB is ample.
	relayStreamMsg = 4 << 10
)

// RelayResources returns the relay service's limits (see the constants).
func RelayResources() relayv2.Resources {
	return relayv2.Resources{
		Limit:                 &relayv2.RelayLimit{Duration: relayConnDuration, Data: relayConnData},
		ReservationTTL:        relayReservationTTL,
		MaxReservations:       RelayMaxReservations,
		MaxCircuits:           relayMaxCircuits,
		BufferSize:            relayBufferSize,
		MaxReservationsPerIP:  relayMaxPerIP,
		MaxReservationsPerASN: relayMaxPerASN,
	}
}

// addRelayLimits replaces go-libp2p's relay service and circuit protocol
// limits (256-640 streams, 16 MiB) with ones matching RelayResources:
// each relayed connection takes two streams (a hop stream from the
// dialler, a stop stream to the reserved node), holding two buffers.
// The hop and stop protocol limits also bound a node behind NAT as a
// relay client: its reservations and the circuits to it, a few.
func addRelayLimits(limits *rcmgr.ScalingLimitConfig) {
	streams := 2*relayMaxConcurrent + RelayMaxReservations
	memory := int64(relayMaxConcurrent * 2 * (2*relayBufferSize + relayStreamMsg))
	limits.AddServiceLimit(relayv2.ServiceName,
		rcmgr.BaseLimit{Streams: streams, StreamsInbound: streams, StreamsOutbound: streams, Memory: memory},
		rcmgr.BaseLimitIncrease{})
	limits.AddServicePeerLimit(relayv2.ServiceName,
		rcmgr.BaseLimit{Streams: 2 * relayMaxCircuits, StreamsInbound: 2 * relayMaxCircuits, StreamsOutbound: 2 * relayMaxCircuits, Memory: int64(2 * relayMaxCircuits * (2*relayBufferSize + relayStreamMsg))},
		rcmgr.BaseLimitIncrease{})
	for _, id := range []string{proto.ProtoIDv2Hop, proto.ProtoIDv2Stop} {
		limits.AddProtocolLimit(libp2pproto.ID(id),
			rcmgr.BaseLimit{Streams: streams, StreamsInbound: streams, StreamsOutbound: streams, Memory: memory},
			rcmgr.BaseLimitIncrease{})
		limits.AddProtocolPeerLimit(libp2pproto.ID(id),
			rcmgr.BaseLimit{Streams: 2 * relayMaxCircuits, StreamsInbound: 2 * relayMaxCircuits, StreamsOutbound: 2 * relayMaxCircuits, Memory: int64(2 * relayMaxCircuits * (2*relayBufferSize + relayStreamMsg))},
			rcmgr.BaseLimitIncrease{})
	}
}
