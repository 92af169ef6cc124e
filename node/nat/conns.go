package nat

import (
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jbc-project/jbc/node/p2p"
)

// How a connection was made, as /peers shows it.
const (
	// MadeDial: we dialled the peer's address.
	MadeDial = "dial"
	// MadeInbound: the peer dialled us.
	MadeInbound = "inbound"
	// MadeRelay: a connection through a relay (circuit v2), either way.
	MadeRelay = "relay"
	// MadeHolePunch: a direct connection opened while a DCUtR punch
	// with the peer was under way. A punched TCP connection is outbound
	// on both sides, so the direction cannot tell.
	MadeHolePunch = "hole-punch"
)

// ConnInfo is one connection to a peer and how it was made.
type ConnInfo struct {
	ID string `json:"-"`
	// Link is "direct" or "relayed".
	Link string `json:"link"`
	// Made is MadeDial, MadeInbound, MadeRelay or MadeHolePunch.
	Made string `json:"made"`
	// Via is the relay's peer ID, for a relayed connection.
	Via       string    `json:"via,omitempty"`
	Direction string    `json:"direction"`
	Transport string    `json:"transport"`
	Remote    string    `json:"remote"`
	Opened    time.Time `json:"opened"`
	// peer is the remote peer.
	peer peer.ID
	// outboundRelay: a hole-punch connection that followed a relayed
	// connection we dialled (the peer did not reach us unasked).
	outboundRelay bool
}

// HolePunch is what /peers says of the hole punches with a peer.
type HolePunch struct {
	Attempts  int       `json:"attempts"`
	Successes int       `json:"successes"`
	LastError string    `json:"last_error,omitempty"`
	At        time.Time `json:"last_error_at,omitzero"`
}

// connected records how c was made.
func (n *NAT) connected(c network.Conn) { n.record(c) }

// record returns how c was made, classifying it on first sight: the
// swarm calls its notifiees in no fixed order, and admission may ask
// (Made) before our own notifiee ran.
func (n *NAT) record(c network.Conn) ConnInfo {
	n.mu.Lock()
	ci, ok := n.conns[c.ID()]
	n.mu.Unlock()
	if ok {
		return ci
	}
	st := c.Stat()
	p := c.RemotePeer()
	ci = ConnInfo{ID: c.ID(), Direction: st.Direction.String(), Remote: c.RemoteMultiaddr().String(),
		Transport: transportOf(c.RemoteMultiaddr()), Opened: st.Opened, peer: p, Link: "direct"}
	if ci.Opened.IsZero() {
		ci.Opened = time.Now()
	}
	switch {
	case st.Limited || p2p.IsRelayed(c.RemoteMultiaddr()):
		ci.Link, ci.Made = "relayed", MadeRelay
		ci.Via = p2p.RelayID(c.RemoteMultiaddr())
	case n.tracer.punching(p):
		ci.Made = MadeHolePunch
	case st.Direction == network.DirOutbound:
		ci.Made = MadeDial
	default:
		ci.Made = MadeInbound
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if prev, ok := n.conns[ci.ID]; ok {
		return prev // recorded meanwhile
	}
	if c.IsClosed() {
		return ci // asked about after it closed: not kept
	}
	if ci.Made == MadeHolePunch {
		for _, o := range n.conns {
			if o.peer == p && o.Made == MadeRelay && o.Direction == network.DirOutbound.String() {
				ci.outboundRelay = true
			}
		}
	}
	n.conns[ci.ID] = ci
	if ci.Made == MadeRelay {
		n.relayed++
		select {
		case n.relayedKick <- struct{}{}:
		default:
		}
	}
	return ci
}

// disconnected forgets c.
func (n *NAT) disconnected(c network.Conn) {
	n.mu.Lock()
	if ci, ok := n.conns[c.ID()]; ok && ci.Made == MadeRelay {
		n.relayed--
	}
	delete(n.conns, c.ID())
	delete(n.up.peerNoDCUtR, c.ID())
	n.mu.Unlock()
}

// Conns returns p's open connections, oldest first, and how each was
// made.
func (n *NAT) Conns(p peer.ID) []ConnInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []ConnInfo
	for _, c := range n.conns {
		if c.peer == p {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Opened.Before(out[j].Opened) })
	return out
}

// Made returns how connection c was made ("" if not recorded), and for a
// hole-punch connection whether the relayed connection before it was ours:
// admission counts a peer as chosen by us only then.
func (n *NAT) Made(c network.Conn) (made string, ourRelay bool) {
	ci := n.record(c)
	return ci.Made, ci.outboundRelay
}

// HolePunchOf returns the hole punches with p, if any were traced.
func (n *NAT) HolePunchOf(p peer.ID) *HolePunch {
	ps, ok := n.tracer.get(p)
	if !ok {
		return nil
	}
	hp := &HolePunch{Attempts: ps.attempts, Successes: ps.successes, LastError: ps.lastErr, At: ps.lastErrAt}
	if hp.LastError == "" && ps.directDialErr != "" {
		hp.LastError = "direct dial failed: " + ps.directDialErr
	}
	return hp
}

// DirectTo reports whether the node holds a direct (not relayed)
// connection to p: sync fetches blocks only over one, since a relay
// carries at most 128 KiB each way.
func DirectTo(nw network.Network, p peer.ID) bool {
	for _, c := range nw.ConnsToPeer(p) {
		if !c.Stat().Limited {
			return true
		}
	}
	return false
}

// transportOf names the transport of a: quic, tcp or other.
func transportOf(a ma.Multiaddr) string {
	for _, c := range a {
		switch c.Protocol().Code {
		case ma.P_QUIC_V1, ma.P_QUIC:
			return "quic"
		case ma.P_WEBTRANSPORT:
			return "webtransport"
		}
	}
	for _, c := range a {
		if c.Protocol().Code == ma.P_TCP {
			return "tcp"
		}
	}
	return "other"
}
