package discovery

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/jbc-project/jbc/node/peering"
)

// Peer selection: discovery fills an address book of candidates; one
// dialler keeps the node at OutboundPeers peers it chose (see
// docs/lan-design.md, "How a node picks its peers").
const (
	// OutboundPeers is how many peers a node chooses and dials itself:
	// Bitcoin Core's outbound count. A graph where every node picks 8
	// others at random is connected with overwhelming probability at any
	// LAN size, and 8 leaves GossipSub's mesh (D 6, Dlo 4) room without a
	// full mesh; the peers that choose us come on top, up to
	// peering.InboundSlots.
	OutboundPeers = 8
	// outsidePeers of the OutboundPeers go, when the book holds such
	// candidates, to peers outside every subnet of our own addresses: LANs
	// joined by a router are then joined by more than a bootstrap node.
	outsidePeers = 2
	// dialTick is how often the dialler looks for a free slot when nothing
	// woke it; a found peer, a failed dial or a dropped peer wake it at
	// once.
	dialTick = time.Second
	// dialTickFull is that tick while every slot is taken: a dropped
	// peer and a found one still wake the dialler at once, so an idle
	// node need not look every second.
	dialTickFull = 10 * time.Second
	// startJitter: the first dials wait up to this long, at random, so
	// that nodes started together do not all handshake in the same
	// moment (60 nodes on two cores, each dialling at once, timed out).
	startJitter = 500 * time.Millisecond
	// tieWaitMin and tieWaitMax: of two nodes that find each other by mDNS
	// at once, the one with the larger peer ID waits this long (at random
	// between the two) before it may dial the other, which dials at once:
	// one connection per pair, not one from each side. The wait is long
	// against a LAN round trip and a handshake on a loaded machine, short
	// against the 15 s a LAN of 60 has to connect.
	tieWaitMin = 2 * time.Second
	tieWaitMax = 3 * time.Second
	// backoffMin and backoffMax bound the wait before a candidate that
	// failed (or dropped us) is dialled again: doubling, so that a peer
	// that is gone costs a few dials, not one a second.
	backoffMin = 2 * time.Second
	backoffMax = 5 * time.Minute
	// maxFailures: a candidate that failed this many times in a row leaves
	// the book (mDNS or the DHT may offer it again).
	maxFailures = 3
	// stableAfter: a chosen peer that stayed this long and then dropped
	// starts its backoff afresh; one that drops sooner counts a failure,
	// so that a peer whose slots refuse us is not redialled forever.
	stableAfter = time.Minute
	// deadFor: a candidate that left the book after maxFailures is not
	// taken back from the DHT for this long (provider records outlive the
	// node that made them by hours); an mDNS answer, which only a live
	// node sends, takes it back at once.
	deadFor = 15 * time.Minute
	// maxCandidates bounds the address book; offers beyond it are dropped
	// (the DHT can name any number of peers).
	maxCandidates = 1024
	// dialTimeout bounds one attempt to connect to a peer.
	dialTimeout = 10 * time.Second
	// directRedial: how often a --peer that dropped is dialled again.
	directRedial = 5 * time.Second
	// seedMin and seedMax bound how often bootstrap peers are dialled
	// while the node needs them: no peer at all, or an empty DHT routing
	// table.
	seedMin = 2 * time.Second
	seedMax = time.Minute
	// transientGrace is how long a connection we opened to a peer that
	// neither we nor it chose (the DHT's query, a bootstrap seed) may
	// stay: long enough for the query, the advertisement or the seeding
	// it was opened for; then trimLoop closes it, so that the DHT does not
	// turn a LAN into a full mesh (at 30 nodes it did: 29 peers each).
	// trimEvery is how often trimLoop looks.
	transientGrace = 30 * time.Second
	trimEvery      = 10 * time.Second
	// replacedSummary spaces the info lines that count chosen peers
	// replaced: one per replacement would flood the log when a LAN
	// loses many nodes at once.
	replacedSummary = time.Minute
)

// candidate is a peer in the address book.
type candidate struct {
	info peer.AddrInfo
	src  peering.Source
	// notBefore: no dial before this (the tie-break wait, a backoff).
	notBefore time.Time
	failures  int
	// connectedAt is when the dialler's last dial of it succeeded.
	connectedAt time.Time
}

// offer adds a found peer to the address book, without its loopback and
// unusable addresses, and wakes the dialler.
func (d *Discovery) offer(pi peer.AddrInfo, src peering.Source) {
	if pi.ID == d.host.ID() || pi.ID == "" {
		return
	}
	pi.Addrs = DialableAddrs(pi.Addrs)
	if len(pi.Addrs) == 0 || d.peers.IsBanned(pi.ID) {
		return
	}
	now := time.Now()
	d.bookMu.Lock()
	c, ok := d.book[pi.ID]
	switch {
	case ok:
		c.info.Addrs = pi.Addrs
	case src == peering.SourceDHT && now.Sub(d.dead[pi.ID]) < deadFor:
		d.bookMu.Unlock()
		return
	case len(d.book) >= maxCandidates:
		d.bookMu.Unlock()
		return
	default:
		delete(d.dead, pi.ID)
		c = &candidate{info: pi, src: src}
		if src == peering.SourceMDNS && d.host.ID() > pi.ID {
			c.notBefore = now.Add(tieWaitMin + rand.N(tieWaitMax-tieWaitMin))
		}
		d.book[pi.ID] = c
	}
	d.bookMu.Unlock()
	if !ok {
		d.peers.Found(pi.ID, pi.Addrs, src)
	}
	d.wake()
}

func (d *Discovery) wake() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Chosen reports whether p is a peer this node chose: one the dialler
// dialled (or is dialling) for one of its OutboundPeers slots, or a --peer.
// Package peering's admission protects chosen peers. Safe for concurrent
// use.
func (d *Discovery) Chosen(p peer.ID) bool {
	d.bookMu.Lock()
	defer d.bookMu.Unlock()
	return d.chosen[p] || d.isDirect[p]
}

// ChosenCount returns how many of the OutboundPeers slots are taken
// (connected or being dialled).
func (d *Discovery) ChosenCount() int {
	d.bookMu.Lock()
	defer d.bookMu.Unlock()
	return len(d.chosen)
}

// short reports whether the node has fewer chosen peers than it wants:
// then the mDNS resolver runs.
func (d *Discovery) short() bool { return d.ChosenCount() < OutboundPeers }

// needCandidates reports whether the node is short of chosen peers and
// its book holds no candidate to dial for them (none that is not chosen,
// connected or banned, whether backed off or not): then the DHT is asked.
// Every lookup connects to many nodes, so a node that mDNS gave enough
// candidates asks nothing.
func (d *Discovery) needCandidates() bool {
	d.bookMu.Lock()
	defer d.bookMu.Unlock()
	if len(d.chosen) >= OutboundPeers {
		return false
	}
	for id := range d.book {
		if !d.chosen[id] && !d.peers.IsBanned(id) && d.host.Network().Connectedness(id) != network.Connected {
			return false
		}
	}
	return true
}

// dialLoop is the dialler: while fewer than OutboundPeers slots are
// taken, it reserves one and dials a candidate for it.
func (d *Discovery) dialLoop(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(rand.N(startJitter)):
	}
	t := time.NewTicker(dialTick)
	defer t.Stop()
	tick := dialTick
	for {
		d.fill(ctx)
		d.noteCount()
		d.bookMu.Lock()
		full := len(d.chosen) >= OutboundPeers
		d.bookMu.Unlock()
		want := dialTick
		if full {
			want = dialTickFull
		}
		if want != tick {
			tick = want
			t.Reset(tick)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.kick:
		}
	}
}

// fill reserves free slots and dials a candidate for each.
func (d *Discovery) fill(ctx context.Context) {
	now := time.Now()
	local := localPrefixes(d.host.Addrs())
	d.bookMu.Lock()
	defer d.bookMu.Unlock()
	outsideOf := func() (n int, inside []peer.ID) {
		for p := range d.chosen {
			if c, ok := d.book[p]; ok && isOutside(c.info.Addrs, local) {
				n++
			} else {
				inside = append(inside, p)
			}
		}
		return n, inside
	}
	// A full set with fewer than outsidePeers outside our subnets, while
	// the book holds an outside candidate (the DHT found one after mDNS
	// filled the slots): one peer of our own subnet makes room.
	if n, inside := outsideOf(); len(d.chosen) >= OutboundPeers && n < outsidePeers && len(inside) > 0 {
		if c := d.pick(now, local, true); c != nil && isOutside(c.info.Addrs, local) {
			victim := inside[rand.IntN(len(inside))]
			delete(d.chosen, victim)
			if v, ok := d.book[victim]; ok {
				v.notBefore = now.Add(backoffMin)
			}
			d.log.Debug("replacing a chosen peer of our subnet by one outside it", "peer", victim, "by", c.info.ID)
			d.cfg.Go(func(context.Context) { _ = d.host.Network().ClosePeer(victim) })
		}
	}
	// A candidate we already have an outbound connection to (a bootstrap
	// seed, the DHT's query) is adopted for a free slot: no dial, and no
	// trim of that connection followed by a dial of the same peer.
	for id, c := range d.book {
		if len(d.chosen) >= OutboundPeers {
			break
		}
		if d.chosen[id] || now.Before(c.notBefore) || !d.outboundTo(id) {
			continue
		}
		d.chosen[id] = true
		c.connectedAt = now
		d.host.ConnManager().Protect(id, peering.TagChosen)
		d.log.Debug("peer chosen", "peer", id, "source", c.src, "adopted", true)
	}
	for len(d.chosen) < OutboundPeers {
		n, _ := outsideOf()
		c := d.pick(now, local, n < outsidePeers)
		if c == nil {
			return
		}
		id := c.info.ID
		d.chosen[id] = true
		info, src := c.info, c.src
		d.cfg.Go(func(ctx context.Context) { d.dial(ctx, info, src) })
	}
}

// outboundTo reports whether we have an outbound connection to p.
func (d *Discovery) outboundTo(p peer.ID) bool {
	for _, c := range d.host.Network().ConnsToPeer(p) {
		if c.Stat().Direction == network.DirOutbound {
			return true
		}
	}
	return false
}

// pick returns a random candidate that may be dialled now, preferring one
// outside our subnets if preferOutside; nil if none. d.bookMu is held.
func (d *Discovery) pick(now time.Time, local []netip.Prefix, preferOutside bool) *candidate {
	var eligible, outside []*candidate
	for id, c := range d.book {
		if d.chosen[id] || now.Before(c.notBefore) || d.peers.IsBanned(id) ||
			d.host.Network().Connectedness(id) == network.Connected {
			continue
		}
		eligible = append(eligible, c)
		if preferOutside && isOutside(c.info.Addrs, local) {
			outside = append(outside, c)
		}
	}
	if len(outside) > 0 {
		return outside[rand.IntN(len(outside))]
	}
	if len(eligible) == 0 {
		return nil
	}
	return eligible[rand.IntN(len(eligible))]
}

// dial connects to a candidate for the slot reserved for it.
func (d *Discovery) dial(ctx context.Context, info peer.AddrInfo, src peering.Source) {
	// Our own backoff paces these dials; the swarm's (up to minutes after
	// failures during a partition) must not refuse them once the network
	// is back.
	dctx, cancel := context.WithTimeout(network.WithForceDirectDial(ctx, "chosen peer"), dialTimeout)
	err := d.host.Connect(dctx, info)
	cancel()
	d.bookMu.Lock()
	c := d.book[info.ID]
	if err == nil {
		if c != nil {
			c.connectedAt = time.Now()
		}
		// The peer may have dropped while Connect returned.
		if d.host.Network().Connectedness(info.ID) != network.Connected {
			delete(d.chosen, info.ID)
		}
		d.bookMu.Unlock()
		d.log.Debug("peer chosen", "peer", info.ID, "source", src)
		d.noteCount()
		d.wake()
		return
	}
	delete(d.chosen, info.ID)
	if c != nil {
		d.failedLocked(c, time.Now())
	}
	d.bookMu.Unlock()
	d.dialFailed(info.ID, src, err)
	d.wake()
}

// failedLocked backs c off after a failure, or drops it from the book
// after maxFailures. d.bookMu is held.
func (d *Discovery) failedLocked(c *candidate, now time.Time) {
	c.failures++
	if c.failures >= maxFailures {
		delete(d.book, c.info.ID)
		d.dead[c.info.ID] = now
		if len(d.dead) > maxCandidates {
			for id, at := range d.dead {
				if now.Sub(at) >= deadFor {
					delete(d.dead, id)
				}
			}
		}
		return
	}
	c.notBefore = now.Add(min(backoffMin<<(c.failures-1), backoffMax))
}

// connected records when a connection to p opened, for trim.
func (d *Discovery) connected(p peer.ID) {
	d.bookMu.Lock()
	d.connectedAt[p] = time.Now()
	d.bookMu.Unlock()
}

// disconnected frees the slot of a chosen peer whose last connection
// closed, backing it off, and wakes the dialler to refill the slot.
func (d *Discovery) disconnected(p peer.ID) {
	if d.host.Network().Connectedness(p) == network.Connected {
		return
	}
	now := time.Now()
	d.bookMu.Lock()
	delete(d.connectedAt, p)
	if !d.chosen[p] {
		d.bookMu.Unlock()
		return
	}
	delete(d.chosen, p)
	if c, ok := d.book[p]; ok {
		if now.Sub(c.connectedAt) >= stableAfter {
			c.failures = 0
		}
		d.failedLocked(c, now)
	}
	d.bookMu.Unlock()
	d.log.Debug("chosen peer dropped: replacing it", "peer", p)
	d.replaced.Add(1)
	d.noteCount()
	d.wake()
}

// noteCount logs at info when the node first has all its chosen peers
// and when it has none left after having had some; the rest is debug.
func (d *Discovery) noteCount() {
	if d.ctx != nil && d.ctx.Err() != nil {
		return // stopping: every peer goes, and that is no news
	}
	n := 0
	d.bookMu.Lock()
	for p := range d.chosen {
		if d.host.Network().Connectedness(p) == network.Connected {
			n++
		}
	}
	d.bookMu.Unlock()
	switch {
	case n >= OutboundPeers && !d.full.Swap(true):
		d.log.Info("peers chosen", "outbound", n)
	case n == 0 && d.full.Load() && !d.empty.Swap(true):
		d.log.Info("all chosen peers lost; looking for others")
	case n > 0:
		d.empty.Store(false)
	}
}

// dialFailed records a failed dial of p, found by src. The first real
// failure of a peer the operator named (--bootstrap, --peer) since it was
// last connected is logged at info with its cause, since the node may
// otherwise seem to just wait; the retries that follow log at debug.
func (d *Discovery) dialFailed(p peer.ID, src peering.Source, err error) {
	if d.ctx != nil && d.ctx.Err() != nil {
		return // shutting down: our own cancellation, not the peer's fault
	}
	first := d.peers.DialFailed(p, err)
	if first && (src == peering.SourceBootstrap || src == peering.SourceDirect) {
		retry := "every " + directRedial.String()
		if src == peering.SourceBootstrap {
			retry = "from " + seedMin.String() + " to every " + seedMax.String() + " while the node has no peer"
		}
		d.log.Info("cannot reach "+string(src)+" peer; retrying quietly", "peer", p, "err", peering.DialCause(err), "retry", retry)
		return
	}
	d.log.Debug("dial failed", "peer", p, "source", src, "err", peering.DialCause(err))
}

// keep dials a --peer and dials it again whenever the connection drops.
func (d *Discovery) keep(ctx context.Context, pi peer.AddrInfo) {
	failing := false
	for {
		if d.host.Network().Connectedness(pi.ID) != network.Connected && !d.peers.IsBanned(pi.ID) {
			dctx, cancel := context.WithTimeout(network.WithForceDirectDial(ctx, "keep --peer"), dialTimeout)
			err := d.host.Connect(dctx, pi)
			cancel()
			switch {
			case err != nil:
				d.dialFailed(pi.ID, peering.SourceDirect, err)
				failing = true
			case failing:
				d.log.Info("direct peer reached", "peer", pi.ID)
				failing = false
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(directRedial):
		}
	}
}

// DialableAddrs returns addrs without the ones a peer on another machine
// cannot mean: loopback, unspecified, and IPv6 link-local (which needs a
// zone). mDNS records and DHT results of older nodes carry loopback
// addresses, which would reach whatever listens on that port on this
// machine.
func DialableAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		if a == nil || manet.IsIPLoopback(a) || manet.IsIPUnspecified(a) {
			continue
		}
		if ip, err := manet.ToIP(a); err == nil && ip.To4() == nil && ip.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, a)
	}
	return out
}

// localPrefixes returns the subnets of our own addresses: /24 for IPv4,
// /64 for IPv6.
func localPrefixes(addrs []ma.Multiaddr) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range addrs {
		if p, ok := prefixOf(a); ok {
			out = append(out, p)
		}
	}
	return out
}

func prefixOf(a ma.Multiaddr) (netip.Prefix, bool) {
	ip, err := manet.ToIP(a)
	if err != nil {
		return netip.Prefix{}, false
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Prefix{}, false
	}
	addr = addr.Unmap()
	bits := 64
	if addr.Is4() {
		bits = 24
	}
	p, err := addr.Prefix(bits)
	return p, err == nil
}

// isOutside reports whether none of addrs is in one of the local subnets.
func isOutside(addrs []ma.Multiaddr, local []netip.Prefix) bool {
	if len(local) == 0 {
		return false
	}
	for _, a := range addrs {
		p, ok := prefixOf(a)
		if !ok {
			continue
		}
		for _, l := range local {
			if l == p {
				return false
			}
		}
	}
	return true
}
