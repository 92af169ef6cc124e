package peering

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// The inbound slots: who holds them, how heavy each address group is, and
// whom to evict when they overflow (see Admission for the rules).

// groupOf returns the address group of a remote address, and whether it is
// public. Public addresses group by the block an operator typically holds:
// /24 for IPv4, /48 for IPv6. Private and loopback IPv4 addresses group
// alone, one host each (a LAN's hosts are its members); private IPv6 ones
// by /64, since a host on such a LAN can take any address of its /64 for
// nothing. An address without an IP groups alone.
func groupOf(a ma.Multiaddr) (string, bool) {
	if g := relayGroup(a); g != "" {
		return g, false
	}
	ip, err := manet.ToIP(a)
	if err != nil {
		return a.String(), false
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return a.String(), false
	}
	addr = addr.Unmap()
	public := manet.IsPublicAddr(a)
	bits := addr.BitLen()
	switch {
	case public && addr.Is4():
		bits = 24
	case public:
		bits = 48
	case addr.Is6() && !addr.IsLoopback():
		bits = 64
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return addr.String(), public
	}
	return p.String(), public
}

// arrive counts an inbound connection attempt from group g.
func (a *Admission) arrive(g string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	x := a.arrivals[g]
	x.n = decayArrivals(x, now) + 1
	x.at = now
	a.arrivals[g] = x
	if len(a.arrivals) > maxArrivalGroups {
		for k, y := range a.arrivals {
			if decayArrivals(y, now) < 1 {
				delete(a.arrivals, k)
			}
		}
		// Still over: forget a quarter, whichever (map order is random).
		for k := range a.arrivals {
			if len(a.arrivals) <= maxArrivalGroups*3/4 {
				break
			}
			delete(a.arrivals, k)
		}
	}
}

func decayArrivals(x arrival, now time.Time) float64 {
	if x.n == 0 {
		return 0
	}
	return x.n * math.Exp2(-now.Sub(x.at).Seconds()/arrivalHalfLife.Seconds())
}

// arrivalsOf returns group g's decayed arrivals.
func (a *Admission) arrivalsOf(g string, now time.Time) float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return decayArrivals(a.arrivals[g], now)
}

// candidate is a peer that holds an inbound slot.
type candidate struct {
	id        peer.ID
	group     string
	since     time.Time // its oldest connection's opening
	proven    bool      // it sent a status of our network since then
	served    int       // valid blocks it served that extended or outweighed our chain
	protected bool      // it may not be evicted
	kept      bool      // its status request said it chose us (Kept)
}

// slots is a snapshot of the inbound slots.
type slots struct {
	holders []candidate
	// members counts the holders of each group.
	members map[string]int
	// subnetConns counts inbound connections from each public group.
	subnetConns map[string]int
}

// connView is what admission reads of a connection.
type connView struct {
	dir    network.Direction
	remote ma.Multiaddr
	opened time.Time
	// theirPunch: hole-punched after the peer's relayed connection to us
	// (outbound, but not ours; see SetMade).
	theirPunch bool
}

// peerConns is a connected peer and its connections.
type peerConns struct {
	id    peer.ID
	conns []connView
}

func (a *Admission) viewOf(c network.Conn) connView {
	st := c.Stat()
	return connView{dir: st.Direction, remote: c.RemoteMultiaddr(), opened: st.Opened, theirPunch: a.theirPunch(c)}
}

func (a *Admission) viewsOf(conns []network.Conn) []connView {
	out := make([]connView, len(conns))
	for i, c := range conns {
		out[i] = a.viewOf(c)
	}
	return out
}

// chosen reports whether p is a peer we chose: one we have an outbound
// connection to that the chooser (SetChooser: package discovery's
// dialler, and --peer) says we chose. Without a chooser every peer we
// have an outbound connection to, or found ourselves, counts as chosen.
func (a *Admission) chosen(p peer.ID, conns []connView) bool {
	if !hasOutbound(conns) {
		if a.chooser.Load() != nil {
			return false
		}
		pi, ok := a.peers.Get(p)
		return ok && pi.Source != SourceInbound
	}
	if f := a.chooser.Load(); f != nil {
		return (*f)(p)
	}
	return true
}

// hasOutbound reports whether one of conns is outbound: a peer we dialled
// (chosen, or the DHT's own query) holds no inbound slot.
func hasOutbound(conns []connView) bool {
	for _, c := range conns {
		if c.dir == network.DirOutbound && !c.theirPunch {
			return true
		}
	}
	return false
}

// snapshot reads the inbound slots from the network.
func (a *Admission) snapshot(nw network.Network, now time.Time) slots {
	peers := nw.Peers()
	pcs := make([]peerConns, 0, len(peers))
	for _, p := range peers {
		if conns := nw.ConnsToPeer(p); len(conns) > 0 {
			pcs = append(pcs, peerConns{p, a.viewsOf(conns)})
		}
	}
	return a.slotsOf(pcs, now)
}

// slotsOf makes the snapshot of the inbound slots from the connected peers.
func (a *Admission) slotsOf(pcs []peerConns, now time.Time) slots {
	s := slots{members: map[string]int{}, subnetConns: map[string]int{}}
	cm := a.cm()
	a.mu.Lock()
	served := make(map[peer.ID]servedRecord, len(a.servers))
	for p, r := range a.servers {
		served[p] = r
	}
	kept := make(map[peer.ID]bool, len(a.kept))
	for p := range a.kept {
		kept[p] = true
	}
	a.mu.Unlock()
	for _, pc := range pcs {
		p, conns := pc.id, pc.conns
		for _, c := range conns {
			if c.dir != network.DirInbound {
				continue
			}
			if g, public := groupOf(c.remote); public {
				s.subnetConns[g]++
			}
		}
		if hasOutbound(conns) || a.chosen(p, conns) {
			continue
		}
		h := candidate{id: p, since: now}
		for _, c := range conns {
			if !c.opened.IsZero() && c.opened.Before(h.since) {
				h.since = c.opened
			}
		}
		h.group, _ = groupOf(conns[0].remote)
		if pi, ok := a.peers.Get(p); ok && pi.Status != nil && !pi.StatusAt.Before(h.since) {
			h.proven = true
		}
		if r, ok := served[p]; ok && now.Sub(r.last) <= servedProtect {
			h.served = r.blocks
		}
		h.protected = cm != nil && cm.IsProtected(p, "")
		h.kept = kept[p]
		s.holders = append(s.holders, h)
		s.members[h.group]++
	}
	return s
}

// weight is how heavy group g is: the slots its peers hold plus its recent
// arrivals (each inbound connection it made, decayed).
func (a *Admission) weight(s *slots, g string, now time.Time) float64 {
	return float64(s.members[g]) + a.arrivalsOf(g, now)
}

// trim closes the least useful holders of inbound slots until at most
// InboundSlots remain (see pickVictim).
func (a *Admission) trim(now time.Time) {
	nw := a.network()
	if nw == nil {
		return
	}
	s := a.snapshot(nw, now)
	evicted := 0
	for len(s.holders) > InboundSlots {
		i := pickVictim(s.holders, func(g string) float64 { return a.weight(&s, g, now) }, now)
		if i < 0 {
			break
		}
		v := s.holders[i]
		s.holders = append(s.holders[:i], s.holders[i+1:]...)
		s.members[v.group]--
		a.log.Debug("evicting inbound peer", "peer", v.id, "group", v.group, "proven", v.proven, "served", v.served,
			"age", now.Sub(v.since).Round(time.Millisecond))
		a.note(AdmEvicted)
		nw.ClosePeer(v.id)
		evicted++
	}
	if evicted > 0 {
		a.summarise(now)
	}
}

// summaryEvery spaces the INFO lines that say the inbound slots are under
// pressure: one per eviction would flood the log during an attack.
const summaryEvery = 30 * time.Second

// summarise logs, at most once per summaryEvery, what admission refused
// and closed since the last such line.
func (a *Admission) summarise(now time.Time) {
	a.summaryMu.Lock()
	defer a.summaryMu.Unlock()
	if now.Sub(a.summaryAt) < summaryEvery {
		return
	}
	if a.summaryLast == nil {
		a.summaryLast = map[string]uint64{}
	}
	args := []any{"slots", InboundSlots}
	for _, o := range []string{AdmEvicted, AdmRefusedFull, AdmRefusedSubnet, AdmNoStatus} {
		v := a.totals[o].Load()
		args = append(args, o, v-a.summaryLast[o])
		a.summaryLast[o] = v
	}
	a.summaryAt = now
	a.log.Info("inbound slots full: closing the least useful peers", args...)
}

// pickVictim returns the index in holders of the peer to evict, or -1 if
// every one is protected. weight gives an address group's weight.
//
// First a peer that has sent no status although it had unprovenGrace:
// the one silent longest. Else one of the heaviest group (a tie broken at
// random, so that equal attackers cannot aim at a group): within it a peer
// with no status yet, else the one that served fewest blocks, else the
// newest. Peers that said they chose us (kept), and newcomers within
// unprovenGrace (whose status may yet say so), are considered only when
// every other holder is protected: a node's chosen link is cut last.
func pickVictim(holders []candidate, weight func(string) float64, now time.Time) int {
	best := -1
	for i, h := range holders {
		if h.protected || h.proven || now.Sub(h.since) < unprovenGrace {
			continue
		}
		if best < 0 || h.since.Before(holders[best].since) {
			best = i
		}
	}
	if best >= 0 {
		return best
	}
	// A newcomer's status, which says whether it chose us, takes a round
	// trip: within unprovenGrace it counts as kept.
	settled := func(h candidate) bool { return !h.kept && now.Sub(h.since) >= unprovenGrace }
	if i := heaviestVictim(holders, weight, settled); i >= 0 {
		return i
	}
	return heaviestVictim(holders, weight, func(candidate) bool { return true })
}

// heaviestVictim returns the least useful holder, among the unprotected
// ones for which consider holds, of the heaviest address group; -1 if
// there is none.
func heaviestVictim(holders []candidate, weight func(string) float64, consider func(candidate) bool) int {
	var heavy []string
	top := math.Inf(-1)
	seen := map[string]bool{}
	for _, h := range holders {
		if h.protected || !consider(h) || seen[h.group] {
			continue
		}
		seen[h.group] = true
		switch w := weight(h.group); {
		case w > top:
			top, heavy = w, []string{h.group}
		case w == top:
			heavy = append(heavy, h.group)
		}
	}
	if len(heavy) == 0 {
		return -1
	}
	g := heavy[rand.IntN(len(heavy))]
	best := -1
	for i, h := range holders {
		if h.protected || !consider(h) || h.group != g {
			continue
		}
		if best < 0 || lessUseful(h, holders[best]) {
			best = i
		}
	}
	return best
}

// lessUseful orders the peers of one group for eviction: no status before
// a status, fewer blocks served before more, newer before older.
func lessUseful(a, b candidate) bool {
	if a.proven != b.proven {
		return !a.proven
	}
	if a.served != b.served {
		return a.served < b.served
	}
	return a.since.After(b.since)
}
