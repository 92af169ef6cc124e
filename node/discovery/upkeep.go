package discovery

// Upkeep of the peer set: bootstrap peers dialled as seeds, and the trim of
// connections neither side chose.

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/jbc-project/jbc/node/peering"
)

// seedLoop dials the bootstrap peers at start, and again, with a backoff,
// whenever the node has no peer at all or (with the DHT) an empty routing
// table: they seed the DHT and the address book; they are not kept.
func (d *Discovery) seedLoop(ctx context.Context) {
	wait := seedMin
	for {
		need := len(d.host.Network().Peers()) == 0 || (d.dht != nil && d.dht.RoutingTable().Size() == 0)
		if need {
			for _, pi := range d.boot {
				if d.host.Network().Connectedness(pi.ID) == network.Connected || d.peers.IsBanned(pi.ID) {
					continue
				}
				d.cfg.Go(func(ctx context.Context) {
					dctx, cancel := context.WithTimeout(network.WithForceDirectDial(ctx, "bootstrap"), dialTimeout)
					defer cancel()
					if err := d.host.Connect(dctx, pi); err != nil {
						d.dialFailed(pi.ID, peering.SourceBootstrap, err)
						return
					}
					d.log.Debug("bootstrap peer reached", "peer", pi.ID)
				})
			}
			wait = min(2*wait, seedMax)
		} else {
			wait = seedMin
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// trimLoop logs, at most every replacedSummary, how many chosen peers
// were replaced, and closes, every trimEvery, the connections we opened to
// peers that neither we chose nor chose us (no keep in their status
// request), once transientGrace old. A peer that recently served us a
// block is no exception: on a LAN every mesh peer does, and blocks come
// by the chosen peers' mesh as well. Nor are relays holding our
// reservations. Inbound connections it leaves alone: their opener closes
// them, or admission's slots bound them.
func (d *Discovery) trimLoop(ctx context.Context) {
	t := time.NewTicker(trimEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		d.trim(now)
		if now.Sub(d.replacedAt) >= replacedSummary {
			if n := d.replaced.Swap(0); n > 0 {
				d.log.Info("replaced chosen peers that dropped", "replaced", n, "of", OutboundPeers, "in", now.Sub(d.replacedAt).Round(time.Second))
			}
			d.replacedAt = now
		}
	}
}

// autorelayTag is the connection manager tag go-libp2p's AutoRelay protects
// the relays holding our reservations with (p2p/host/autorelay): a node
// behind NAT keeps those connections whether or not it chose the relay, or
// peers lose the relayed way to it.
const autorelayTag = "autorelay"

// trim closes the transient connections as of now (see trimLoop).
func (d *Discovery) trim(now time.Time) {
	nw := d.host.Network()
	for _, p := range nw.Peers() {
		outbound := false
		for _, c := range nw.ConnsToPeer(p) {
			outbound = outbound || c.Stat().Direction == network.DirOutbound
		}
		d.bookMu.Lock()
		at, seen := d.connectedAt[p]
		d.bookMu.Unlock()
		if !outbound || !seen || now.Sub(at) < transientGrace || d.Chosen(p) {
			continue
		}
		if d.cfg.Kept != nil && d.cfg.Kept(p) {
			continue
		}
		if d.host.ConnManager().IsProtected(p, autorelayTag) {
			continue // our relay: closing it drops our reservation
		}
		d.log.Debug("closing a connection neither side chose", "peer", p)
		_ = nw.ClosePeer(p)
	}
}
