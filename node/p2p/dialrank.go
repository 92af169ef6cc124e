package p2p

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
)

// QUICDialDelay is how long after its TCP addresses a peer's other
// addresses (QUIC above all) are dialled, when it has TCP ones. go-libp2p's
// own ranker prefers QUIC; jbc prefers TCP because sync over QUIC is slower
// under loss: quic-go's congestion control is fixed to NewReno, which
// halves its window at every loss, while Linux TCP here runs BBR (or
// CUBIC); measured in netlab at 100 ms and 1 % loss, TCP carried 3-8 times
// what QUIC did (docs/sync-design.md, "QUIC against TCP under loss").
// 500 ms covers a TCP connect and the start of its upgrade on links up to
// about 250 ms of round trip (the swarm holds further dials while a
// connected TCP socket upgrades), and is a small price when TCP is blocked
// and QUIC is the way in.
const QUICDialDelay = 500 * time.Millisecond

// TCPFirstDialRanker is the node's dial ranker: a peer's TCP addresses at
// once, the others (QUIC, WebTransport, WebRTC) QUICDialDelay later; a
// peer with no TCP address gets its others at once. Relay addresses are
// not dialled by jbc (relay is off) and are ranked as others.
func TCPFirstDialRanker(addrs []ma.Multiaddr) []network.AddrDelay {
	var tcp, other []ma.Multiaddr
	for _, a := range addrs {
		if isTCP(a) {
			tcp = append(tcp, a)
		} else {
			other = append(other, a)
		}
	}
	delay := QUICDialDelay
	if len(tcp) == 0 {
		delay = 0
	}
	out := make([]network.AddrDelay, 0, len(addrs))
	for _, a := range tcp {
		out = append(out, network.AddrDelay{Addr: a})
	}
	for _, a := range other {
		out = append(out, network.AddrDelay{Addr: a, Delay: delay})
	}
	return out
}

// isTCP reports whether a is a plain TCP address (not a WebSocket, nor a
// relayed one).
func isTCP(a ma.Multiaddr) bool {
	tcp := false
	for _, c := range a {
		switch c.Protocol().Code {
		case ma.P_TCP:
			tcp = true
		case ma.P_WS, ma.P_WSS, ma.P_CIRCUIT:
			return false
		}
	}
	return tcp
}
