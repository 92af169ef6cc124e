package nat

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The retry of the DCUtR trap (see doc.go). The node that dialled a peer
// through a relay, while it holds only relayed connections to it, closes
// them and dials the peer through the relay again, so that the peer's
// hole-punch service sees a new relayed connection and punches:
//
//   - as soon as both serve DCUtR plus dcutrSettle, if the connection
//     opened before this node served /libp2p/dcutr (the peer's stream met
//     "protocols not supported"), or the peer's identify on it listed no
//     /libp2p/dcutr and its protocols gained it since (its service did not
//     watch the connection open);
//   - else when no hole-punch event came from the peer within
//     holePunchGrace of the later of the opening and our serving DCUtR.
//
// Redials of one peer are spaced by redialBackoff, doubling, at most
// maxRedials; then every redialSlow while still relayed (NAT mappings
// change). A peer that dialled us through the relay is the other side's
// job. When both dialled each other through the relay, both would redial
// at once, each closing the connection the other just opened, and neither
// would hold one after: then the node with the lower ID redials and closes
// every relayed connection to the peer, and the other waits dualDefer for
// that before it redials itself.
const (
	// dcutrSettle is how long after both serve DCUtR a redial waits for a
	// punch that may still be on its way (the probe's lab: a punch takes
	// 5-10 ms, identify's push of the protocol a round trip).
	dcutrSettle = 200 * time.Millisecond
	// holePunchGrace: identify and DCUtR take a few round trips through
	// the relay; the probe saw the punch start within 300 ms.
	holePunchGrace = 2 * time.Second
	// redialBackoff spaces redials of one peer, doubling each time.
	redialBackoff = time.Second
	// maxRedials bounds quick redials of one peer: after that the punch
	// fails for a reason a new attempt will not change soon.
	maxRedials = 4
	// redialSlow: the redial after those, while still relayed.
	redialSlow = 5 * time.Minute
	// redialTimeout bounds one redial through the relay.
	redialTimeout = 10 * time.Second
	// dualDefer is how long the node with the higher ID waits for the
	// other's redial when both dialled each other through the relay.
	dualDefer = 2 * time.Second
	// redialAttempts bounds the Connects of one redial: a Connect may
	// return on a connection closing under it, leaving none.
	redialAttempts = 3
	// replacedLinger is how long a relayed connection stays once a
	// direct one to the same peer exists: room for a DCUtR exchange or a
	// status still finishing on it. Closing it frees a circuit of the
	// relay's few (p2p.RelayResources).
	replacedLinger = 2 * time.Second
)

// upgrader is the retry's state; n.mu guards it.
type upgrader struct {
	// peerNoDCUtR: relayed connections (by ID) on which the peer's
	// identify listed no /libp2p/dcutr.
	peerNoDCUtR map[string]bool
	// peerDCUtR: when each peer's protocols last gained /libp2p/dcutr.
	peerDCUtR map[peer.ID]time.Time
	redials   map[peer.ID]*redialState
}

type redialState struct {
	n       int
	next    time.Time
	backoff time.Duration
	busy    bool
	// dualSince is when the node with the higher ID first saw a reason
	// to redial while both dialled each other.
	dualSince time.Time
	// why is the reason of the last redial.
	why string
}

func newUpgrader() upgrader {
	return upgrader{peerNoDCUtR: map[string]bool{}, peerDCUtR: map[peer.ID]time.Time{}, redials: map[peer.ID]*redialState{}}
}

// upkeep runs every tick: redials relayed peers whose punch cannot have
// happened, and closes relayed connections a direct one replaced.
func (n *NAT) upkeep(ctx context.Context, now time.Time) {
	hp := n.h.Load()
	if hp == nil {
		return
	}
	n.mu.Lock()
	relayed := n.relayed
	n.mu.Unlock()
	if relayed == 0 {
		return // nothing relayed: nothing to redial or replace
	}
	h := *hp
	nw := h.Network()
	for _, p := range nw.Peers() {
		conns := nw.ConnsToPeer(p)
		var relayed, relayedOut []network.Conn
		relayedIn := false
		var direct network.Conn
		for _, c := range conns {
			switch {
			case !c.Stat().Limited:
				if direct == nil || c.Stat().Opened.Before(direct.Stat().Opened) {
					direct = c
				}
			default:
				relayed = append(relayed, c)
				if c.Stat().Direction == network.DirOutbound {
					relayedOut = append(relayedOut, c)
				} else {
					relayedIn = true
				}
			}
		}
		if direct != nil {
			n.mu.Lock()
			delete(n.up.redials, p)
			n.mu.Unlock()
			if len(relayed) > 0 && now.Sub(direct.Stat().Opened) >= replacedLinger {
				for _, c := range relayed {
					n.log.Debug("closing relayed connection replaced by a direct one", "peer", p)
					c.Close()
				}
			}
			continue
		}
		if len(relayedOut) == 0 {
			continue
		}
		why := n.redialReason(p, relayedOut, now)
		if why == "" {
			continue
		}
		n.mu.Lock()
		rs := n.up.redials[p]
		if rs == nil {
			rs = &redialState{backoff: redialBackoff}
			n.up.redials[p] = rs
		}
		if rs.busy || now.Before(rs.next) {
			n.mu.Unlock()
			continue
		}
		first := relayedIn && rs.dualSince.IsZero()
		redial, closeAll := rs.dual(h.ID(), p, relayedIn, now)
		if !redial {
			n.mu.Unlock()
			if first {
				n.log.Debug("both dialled each other through the relay: the peer redials first", "peer", p)
			}
			continue
		}
		toClose := relayedOut
		if closeAll {
			toClose = relayed // the peer's too: the new connection is the only one
		}
		rs.busy, rs.why = true, why
		rs.n++
		if rs.n < maxRedials {
			rs.next = now.Add(rs.backoff)
			rs.backoff *= 2
		} else {
			rs.next = now.Add(redialSlow)
		}
		n.mu.Unlock()
		n.log.Info("redialling a relayed peer so that it punches again", "peer", p, "why", why, "redial", rs.n)
		go func() {
			for _, c := range toClose {
				c.Close()
			}
			n.redial(ctx, h, p)
			n.mu.Lock()
			rs.busy = false
			n.mu.Unlock()
		}()
	}
}

// dual decides a redial of peer p by self, due now, when p may have
// dialled us through the relay too (relayedIn): whether to redial now,
// and whether to close p's relayed connections as well as ours. Of two
// nodes that dialled each other, the one with the lower ID redials at
// once and closes both; the other waits dualDefer for that, then redials
// too. The caller holds n.mu.
func (rs *redialState) dual(self, p peer.ID, relayedIn bool, now time.Time) (redial, closeAll bool) {
	if !relayedIn {
		rs.dualSince = time.Time{}
		return true, false
	}
	if self > p {
		if rs.dualSince.IsZero() {
			rs.dualSince = now
		}
		if now.Sub(rs.dualSince) < dualDefer {
			return false, false
		}
	}
	rs.dualSince = time.Time{} // a later race waits afresh
	return true, true
}

// redial connects to p through the relay again, its relayed connections
// just closed. A Connect that finds a connection still closing returns
// without a new one; then it tries again, redialAttempts in all.
func (n *NAT) redial(ctx context.Context, h host.Host, p peer.ID) {
	rctx, cancel := context.WithTimeout(ctx, redialTimeout)
	defer cancel()
	for i := 1; ; i++ {
		err := h.Connect(rctx, peer.AddrInfo{ID: p})
		conns := len(h.Network().ConnsToPeer(p))
		switch {
		case err != nil:
			n.log.Debug("redial through the relay failed", "peer", p, "err", err)
			return
		case conns > 0:
			n.log.Debug("redialled through the relay", "peer", p, "conns", conns, "attempt", i)
			return
		case i == redialAttempts:
			n.log.Debug("redial through the relay left no connection", "peer", p, "attempts", i)
			return
		}
		select {
		case <-rctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// redialReason says why p's relayed connections (ours) should be
// redialled, or "" if not (yet).
func (n *NAT) redialReason(p peer.ID, relayed []network.Conn, now time.Time) string {
	n.mu.Lock()
	own, peerAt := n.ownDCUtR, n.up.peerDCUtR[p]
	n.mu.Unlock()
	if own.IsZero() {
		return "" // no public address to punch from: the peer's punch would fail again
	}
	ps, _ := n.tracer.get(p)
	if ps.active {
		return ""
	}
	ready := own
	if peerAt.After(ready) {
		ready = peerAt
	}
	for _, c := range relayed {
		opened := c.Stat().Opened
		if ps.last.After(opened) {
			return "" // a punch ran on this connection; if it failed, the slow redial
		}
		n.mu.Lock()
		peerNo := n.up.peerNoDCUtR[c.ID()]
		n.mu.Unlock()
		switch {
		case own.After(opened) && now.Sub(ready) >= dcutrSettle && (!peerNo || peerAt.After(opened)):
			return "opened before this node served /libp2p/dcutr"
		case peerNo && peerAt.After(opened) && now.Sub(ready) >= dcutrSettle:
			return "opened before the peer served /libp2p/dcutr"
		case !peerNo && now.Sub(later(opened, own)) >= holePunchGrace:
			return "no hole punch within " + holePunchGrace.String()
		}
	}
	return ""
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
