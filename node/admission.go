package node

import (
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Admission decides who gets a connection and who keeps one; scores
// (score.go) decide who is banned for what they sent. Fresh peer IDs cost
// nothing, so neither may rest on a peer's ID alone: what an attacker
// cannot multiply for free is addresses. The rules:
//
//   - Peers we chose are never evicted: peers we dialled, found by mDNS or
//     the DHT, and --peer and bootstrap peers. They are protected in the
//     connection manager, so that its own trimming spares them too.
//   - Peers that recently served a valid block that extended or outweighed
//     our chain (the newest servedProtectPeers of them, for servedProtect)
//     are protected likewise.
//   - Every other peer connected to us only inbound holds one of
//     inboundSlots. When more than that are connected, the least useful are
//     closed at once: first a peer that has sent no status although it had
//     unprovenGrace to do so; else one of the heaviest address group (see
//     groupOf and weight): within it one that sent no status, then the one
//     that served fewest blocks, then the newest. An attacker's many
//     identities share its few addresses, so its group is the heaviest and
//     it evicts its own connections, never an honest newcomer's.
//   - When the slots are full, a connection is refused when it is
//     accepted, before any handshake, unless its group is far lighter than
//     the heaviest (see newcomer): an attacker cannot churn the slots, and
//     a newcomer from a new address gets in.
//   - Inbound connections from one public subnet (/24 IPv4, /48 IPv6) are
//     capped at subnetInboundCap. Private and loopback addresses are not
//     capped: a LAN of tens of nodes shares one private subnet.
//   - An inbound peer that sends no status within statusDeadline is
//     closed: a slot costs its holder a status of our network.
const (
	// inboundSlots is how many peers connected to us only inbound, and
	// not chosen by us, the node keeps: two thirds of the connection
	// manager's high watermark, leaving a third for the peers it chose,
	// and far below the resource manager's maxConnsInbound, so that the
	// handshakes of newcomers (counted there from their first byte) always
	// find room while admission closes the surplus.
	inboundSlots = 64
	// subnetInboundCap bounds inbound connections from one public /24
	// (IPv4) or /48 (IPv6), a block one operator typically holds: an
	// eighth of inboundSlots, so that an attacker needs eight such blocks
	// to fill the slots, while an office or a cloud subnet running
	// several honest nodes still gets eight in.
	subnetInboundCap = inboundSlots / 8
	// statusDeadline is how long an inbound peer has to send a status of
	// our network (its own request, or its answer to ours): as long as
	// our own status request may take (statusTimeout). An honest node
	// sends its request as soon as it connects; one that says nothing in
	// that time only holds a slot.
	statusDeadline = statusTimeout
	// unprovenGrace is how long a newcomer may go without a status before
	// it is the first evicted when the slots are full: an honest node's
	// status arrives within a round trip, milliseconds on a LAN, under a
	// second on a loaded machine (TestSybilLockout sees 15-700 ms on two
	// busy cores); twice that is room enough.
	unprovenGrace = 2 * time.Second
	// servedProtect is how long a peer that served a valid block that
	// extended or outweighed our chain stays protected; servedProtectPeers
	// bounds how many are (the newest). A relay of another miner's block
	// can earn it too, so the number is small, as Bitcoin Core's four.
	servedProtect      = 10 * time.Minute
	servedProtectPeers = 8
	// arrivalHalfLife: the inbound connections each address group made
	// count toward its weight, halving every minute; a group that keeps
	// reconnecting (an attacker refilling its dropped identities) stays
	// heavy, an honest peer that connected once weighs one.
	arrivalHalfLife = time.Minute
	// maxArrivalGroups bounds the groups whose arrivals are remembered
	// (far more than the slots): past it those that weigh less than one
	// arrival are forgotten, and if that is not enough, a quarter at
	// random.
	maxArrivalGroups = 4096
)

// Connection manager tags (connmgr Protect and TagPeer).
const (
	// tagChosen protects a peer we chose (see admission) while it is
	// connected; tagConfigured protects --peer and bootstrap peers always.
	tagChosen     = "jbc-chosen"
	tagConfigured = "jbc-configured"
	// tagServed protects a peer that recently served a valid block.
	tagServed = "jbc-served"
	// tagStatus values a peer that sent a status of our network, so that
	// the connection manager trims silent peers first.
	tagStatus      = "jbc-status"
	tagStatusValue = 10
)

// Outcomes counted in jbc_admission_total.
const (
	admRefusedSubnet = "refused-subnet"
	admRefusedFull   = "refused-full"
	admEvicted       = "evicted"
	admNoStatus      = "closed-no-status"
)

// admission holds what admission needs beyond the network's own state:
// bans (peerSet), the arrivals of each address group, the peers that
// served blocks. It is the node's connection gater. It is safe for
// concurrent use.
type admission struct {
	peers *peerSet
	log   *slog.Logger
	count func(outcome string)
	host  atomic.Pointer[host.Host]
	kick  chan struct{}

	mu       sync.Mutex
	arrivals map[string]arrival
	servers  map[peer.ID]servedRecord

	summaryMu   sync.Mutex
	summaryAt   time.Time
	summaryLast map[string]uint64
	totals      map[string]*atomic.Uint64
}

type arrival struct {
	n  float64
	at time.Time
}

type servedRecord struct {
	blocks int
	last   time.Time
}

func newAdmission(peers *peerSet, log *slog.Logger, count func(string)) *admission {
	a := &admission{peers: peers, log: log, count: count, kick: make(chan struct{}, 1),
		arrivals: map[string]arrival{}, servers: map[peer.ID]servedRecord{}, totals: map[string]*atomic.Uint64{}}
	for _, o := range []string{admRefusedSubnet, admRefusedFull, admEvicted, admNoStatus} {
		a.totals[o] = new(atomic.Uint64)
	}
	return a
}

// setHost gives admission the host whose connections it manages; until
// then it only refuses banned peers.
func (a *admission) setHost(h host.Host) { a.host.Store(&h) }

func (a *admission) network() network.Network {
	if h := a.host.Load(); h != nil {
		return (*h).Network()
	}
	return nil
}

func (a *admission) cm() connmgr.ConnManager {
	if h := a.host.Load(); h != nil {
		return (*h).ConnManager()
	}
	return nil
}

func (a *admission) note(outcome string) {
	a.totals[outcome].Add(1)
	if a.count != nil {
		a.count(outcome)
	}
}

// groupOf returns the address group of a remote address, and whether it is
// public. Public addresses group by the block an operator typically holds:
// /24 for IPv4, /48 for IPv6. Private and loopback IPv4 addresses group
// alone, one host each (a LAN's hosts are its members); private IPv6 ones
// by /64, since a host on such a LAN can take any address of its /64 for
// nothing. An address without an IP groups alone.
func groupOf(a ma.Multiaddr) (string, bool) {
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
func (a *admission) arrive(g string, now time.Time) {
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
func (a *admission) arrivalsOf(g string, now time.Time) float64 {
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
}

// peerConns is a connected peer and its connections.
type peerConns struct {
	id    peer.ID
	conns []connView
}

func viewOf(c network.Conn) connView {
	st := c.Stat()
	return connView{dir: st.Direction, remote: c.RemoteMultiaddr(), opened: st.Opened}
}

func viewsOf(conns []network.Conn) []connView {
	out := make([]connView, len(conns))
	for i, c := range conns {
		out[i] = viewOf(c)
	}
	return out
}

// chosen reports whether p is a peer we chose: one we have an outbound
// connection to, or found ourselves (mDNS, DHT, --peer, bootstrap).
func (a *admission) chosen(p peer.ID, conns []connView) bool {
	for _, c := range conns {
		if c.dir == network.DirOutbound {
			return true
		}
	}
	pi, ok := a.peers.get(p)
	return ok && pi.Source != SourceInbound
}

// snapshot reads the inbound slots from the network.
func (a *admission) snapshot(nw network.Network, now time.Time) slots {
	peers := nw.Peers()
	pcs := make([]peerConns, 0, len(peers))
	for _, p := range peers {
		if conns := nw.ConnsToPeer(p); len(conns) > 0 {
			pcs = append(pcs, peerConns{p, viewsOf(conns)})
		}
	}
	return a.slotsOf(pcs, now)
}

// slotsOf makes the snapshot of the inbound slots from the connected peers.
func (a *admission) slotsOf(pcs []peerConns, now time.Time) slots {
	s := slots{members: map[string]int{}, subnetConns: map[string]int{}}
	cm := a.cm()
	a.mu.Lock()
	served := make(map[peer.ID]servedRecord, len(a.servers))
	for p, r := range a.servers {
		served[p] = r
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
		if a.chosen(p, conns) {
			continue
		}
		h := candidate{id: p, since: now}
		for _, c := range conns {
			if !c.opened.IsZero() && c.opened.Before(h.since) {
				h.since = c.opened
			}
		}
		h.group, _ = groupOf(conns[0].remote)
		if pi, ok := a.peers.get(p); ok && pi.Status != nil && !pi.StatusAt.Before(h.since) {
			h.proven = true
		}
		if r, ok := served[p]; ok && now.Sub(r.last) <= servedProtect {
			h.served = r.blocks
		}
		h.protected = cm != nil && cm.IsProtected(p, "")
		s.holders = append(s.holders, h)
		s.members[h.group]++
	}
	return s
}

// weight is how heavy group g is: the slots its peers hold plus its recent
// arrivals (each inbound connection it made, decayed).
func (a *admission) weight(s *slots, g string, now time.Time) float64 {
	return float64(s.members[g]) + a.arrivalsOf(g, now)
}

// InterceptPeerDial refuses to dial banned peers.
func (a *admission) InterceptPeerDial(p peer.ID) bool { return !a.peers.isBanned(p) }

// InterceptAddrDial refuses to dial banned peers.
func (a *admission) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return !a.peers.isBanned(p) }

// InterceptAccept decides on an inbound connection before any handshake,
// from its address alone: over subnetInboundCap for a public subnet, or
// from the heaviest group while the slots are full, it is refused.
func (a *admission) InterceptAccept(cma network.ConnMultiaddrs) bool {
	now := time.Now()
	g, public := groupOf(cma.RemoteMultiaddr())
	a.arrive(g, now)
	nw := a.network()
	if nw == nil {
		return true
	}
	s := a.snapshot(nw, now)
	if o := a.admit(&s, g, public, now); o != "" {
		a.note(o)
		return false
	}
	return true
}

// admit decides on a connection from group g (public or not) given the
// slots s: "" to accept it, else the outcome that refuses it.
func (a *admission) admit(s *slots, g string, public bool, now time.Time) string {
	if public && s.subnetConns[g] >= subnetInboundCap {
		return admRefusedSubnet
	}
	if len(s.holders) >= inboundSlots && !a.newcomer(s, g, now) {
		return admRefusedFull
	}
	return ""
}

// newcomer reports whether group g may add a slot holder while the slots
// are full, evicting another's: if it holds no slot yet and is lighter
// than the heaviest group, or weighs at most half as much as the heaviest
// (a second honest node behind one NAT address). An attacker's groups
// weigh about alike, its refused attempts counting as arrivals: admitting
// them would only trade their connections for each other, or make them
// the next evicted.
func (a *admission) newcomer(s *slots, g string, now time.Time) bool {
	w := a.weight(s, g, now)
	heaviest := 0.0
	for other := range s.members {
		heaviest = max(heaviest, a.weight(s, other, now))
	}
	return (s.members[g] == 0 && w < heaviest) || w <= heaviest/2
}

// InterceptSecured refuses banned peers once their identity is known.
func (a *admission) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !a.peers.isBanned(p)
}

// InterceptUpgraded checks the public subnet cap again, now that
// connections accepted concurrently have been counted.
func (a *admission) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	if c.Stat().Direction != network.DirInbound {
		return true, 0
	}
	g, public := groupOf(c.RemoteMultiaddr())
	nw := a.network()
	if !public || nw == nil {
		return true, 0
	}
	if s := a.snapshot(nw, time.Now()); s.subnetConns[g] >= subnetInboundCap {
		a.note(admRefusedSubnet)
		return false, 0
	}
	return true, 0
}

// connected handles a new connection: a peer we chose is protected; an
// inbound one gets statusDeadline to send a status, and the slots are
// trimmed if they overflow.
func (a *admission) connected(c network.Conn) {
	p := c.RemotePeer()
	nw := a.network()
	if nw == nil {
		return
	}
	if a.chosen(p, []connView{viewOf(c)}) {
		if cm := a.cm(); cm != nil {
			cm.Protect(p, tagChosen)
		}
		return
	}
	opened := c.Stat().Opened
	if opened.IsZero() {
		opened = time.Now()
	}
	time.AfterFunc(statusDeadline, func() { a.checkStatus(p, opened) })
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// disconnected handles a closed connection: a peer no longer connected
// loses the protection it had as chosen.
func (a *admission) disconnected(nw network.Network, p peer.ID) {
	if nw.Connectedness(p) == network.Connected {
		return
	}
	if cm := a.cm(); cm != nil {
		cm.Unprotect(p, tagChosen)
	}
}

// proven records that p sent a status of our network.
func (a *admission) proven(p peer.ID) {
	if cm := a.cm(); cm != nil {
		cm.TagPeer(p, tagStatus, tagStatusValue)
	}
}

// served records that p served us valid blocks that extended or
// outweighed our chain, and protects it; only the servedProtectPeers that
// served most recently stay protected.
func (a *admission) served(p peer.ID, blocks int) {
	if a == nil || blocks <= 0 || p == "" {
		return
	}
	now := time.Now()
	a.mu.Lock()
	r := a.servers[p]
	r.blocks += blocks
	r.last = now
	a.servers[p] = r
	var drop []peer.ID
	for q, x := range a.servers {
		if now.Sub(x.last) > servedProtect {
			drop = append(drop, q)
		}
	}
	if len(a.servers)-len(drop) > servedProtectPeers {
		type rec struct {
			id   peer.ID
			last time.Time
		}
		var live []rec
		for q, x := range a.servers {
			if now.Sub(x.last) <= servedProtect {
				live = append(live, rec{q, x.last})
			}
		}
		sort.Slice(live, func(i, j int) bool { return live[i].last.Before(live[j].last) })
		for _, x := range live[:len(live)-servedProtectPeers] {
			drop = append(drop, x.id)
		}
	}
	for _, q := range drop {
		delete(a.servers, q)
	}
	a.mu.Unlock()
	if cm := a.cm(); cm != nil {
		for _, q := range drop {
			cm.Unprotect(q, tagServed)
		}
		cm.Protect(p, tagServed)
	}
}

// checkStatus closes p if it is still connected only inbound and has sent
// no status of our network since opened.
func (a *admission) checkStatus(p peer.ID, opened time.Time) {
	nw := a.network()
	if nw == nil {
		return
	}
	conns := nw.ConnsToPeer(p)
	if len(conns) == 0 || a.chosen(p, viewsOf(conns)) {
		return
	}
	if pi, ok := a.peers.get(p); ok && pi.Status != nil && !pi.StatusAt.Before(opened) {
		return
	}
	a.log.Debug("closing inbound peer that sent no status", "peer", p, "after", statusDeadline)
	a.note(admNoStatus)
	nw.ClosePeer(p)
}

// run trims the inbound slots whenever a connection may have overfilled
// them, until ctx ends. One goroutine does it, so that concurrent arrivals
// never evict more than the overflow.
func (a *admission) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		}
		a.trim(time.Now())
	}
}

// trim closes the least useful holders of inbound slots until at most
// inboundSlots remain (see pickVictim).
func (a *admission) trim(now time.Time) {
	nw := a.network()
	if nw == nil {
		return
	}
	s := a.snapshot(nw, now)
	evicted := 0
	for len(s.holders) > inboundSlots {
		i := pickVictim(s.holders, func(g string) float64 { return a.weight(&s, g, now) }, now)
		if i < 0 {
			break
		}
		v := s.holders[i]
		s.holders = append(s.holders[:i], s.holders[i+1:]...)
		s.members[v.group]--
		a.log.Debug("evicting inbound peer", "peer", v.id, "group", v.group, "proven", v.proven, "served", v.served,
			"age", now.Sub(v.since).Round(time.Millisecond))
		a.note(admEvicted)
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
func (a *admission) summarise(now time.Time) {
	a.summaryMu.Lock()
	defer a.summaryMu.Unlock()
	if now.Sub(a.summaryAt) < summaryEvery {
		return
	}
	if a.summaryLast == nil {
		a.summaryLast = map[string]uint64{}
	}
	args := []any{"slots", inboundSlots}
	for _, o := range []string{admEvicted, admRefusedFull, admRefusedSubnet, admNoStatus} {
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
// newest.
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
	var heavy []string
	top := math.Inf(-1)
	seen := map[string]bool{}
	for _, h := range holders {
		if h.protected || seen[h.group] {
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
	for i, h := range holders {
		if h.protected || h.group != g {
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
