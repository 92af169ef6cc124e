package peering

import (
	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jbc-project/jbc/node/p2p"
)

// Connections through a circuit relay (package nat). Their remote address
// is the relay's with /p2p/<relay>/p2p-circuit: public, though the peer
// behind it may sit behind any NAT. Admission groups them by relay, not by
// the relay's subnet, and caps no such group (the relay's own limit on
// circuits bounds it); each still weighs as one group, so that a flood
// through one relay evicts its own.

// HolePunch is how package nat names a connection made by DCUtR hole
// punching (see SetMade).
const HolePunch = "hole-punch"

// relayGroup returns the address group of a relayed remote address
// ("relay/<relay ID>"), or "" if a is not relayed.
func relayGroup(a ma.Multiaddr) string {
	if !p2p.IsRelayed(a) {
		return ""
	}
	return "relay/" + p2p.RelayID(a)
}

// SetMade gives admission a way to tell how a connection was made
// (package nat's Made): a hole-punched TCP connection is outbound on both
// sides, so it counts as ours (a chosen peer) only if the relayed
// connection before it was ours; a peer that reached us through a relay
// and let us punch stays an inbound slot holder. Set it before the host
// accepts connections.
func (a *Admission) SetMade(made func(network.Conn) (string, bool)) { a.made = made }

// theirPunch reports whether c is a hole-punched connection that followed
// the peer's relayed connection to us.
func (a *Admission) theirPunch(c network.Conn) bool {
	if a.made == nil {
		return false
	}
	how, ours := a.made(c)
	return how == HolePunch && !ours
}
