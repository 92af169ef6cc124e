package peering

import (
	"context"
	"log/slog"
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
)

// Admission decides who gets a connection and who keeps one; scores
// (score.go) decide who is banned for what they sent. Fresh peer IDs cost
// nothing, so neither may rest on a peer's ID alone: what an attacker
// cannot multiply for free is addresses. The rules:
//
//   - Peers we chose are never evicted: the peers package discovery's
//     dialler picked for its outbound slots, and --peer peers. They are
//     protected in the connection manager, so that its own trimming
//     spares them too. Other peers we dialled (bootstrap seeds, the DHT's
//     queries) hold no inbound slot; the connection manager trims them.
//   - Peers that recently served a valid block that extended or outweighed
//     our chain (the newest servedProtectPeers of them, for servedProtect)
//     are protected likewise.
//   - Every other peer connected to us only inbound holds one of
//     InboundSlots. When more than that are connected, the least useful are
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
//   - An inbound peer that sends no status within StatusDeadline is
//     closed: a slot costs its holder a status of our network.
const (
	// InboundSlots is how many peers connected to us only inbound, and
	// not chosen by us, the node keeps: three times the peers a node
	// chooses (discovery.OutboundPeers, 8), room for the start-order bias
	// (nodes started first are found, and chosen, by those after them),
	// so that a node holds 8 to 32 peers (docs/lan-design.md); half the
	// connection manager's high watermark, and far below the resource
	// manager's p2p.MaxConnsInbound, so that the handshakes of newcomers
	// (counted there from their first byte) always find room while
	// admission closes the surplus.
	InboundSlots = 24
	// subnetInboundCap bounds inbound connections from one public /24
	// (IPv4) or /48 (IPv6), a block one operator typically holds: a
	// quarter of InboundSlots, so that an attacker needs four such blocks
	// to fill the slots, while an office or a cloud subnet running
	// several honest nodes still gets six in.
	subnetInboundCap = InboundSlots / 4
	// StatusDeadline is how long an inbound peer has to send a status of
	// our network (its own request, or its answer to ours): as long as
	// our own status request may take (package node's statusTimeout, 5
	// s). An honest node sends its request as soon as it connects; one
	// that says nothing in that time only holds a slot.
	StatusDeadline = 5 * time.Second
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
	// TagChosen protects a peer we chose (see Admission) while it is
	// connected (package discovery sets it too, when its dialler adopts
	// a connection it already had); TagConfigured protects --peer and bootstrap peers always
	// (package discovery sets it).
	TagChosen     = "jbc-chosen"
	TagConfigured = "jbc-configured"
	// tagServed protects a peer that recently served a valid block.
	tagServed = "jbc-served"
	// tagStatus values a peer that sent a status of our network, so that
	// the connection manager trims silent peers first.
	tagStatus      = "jbc-status"
	tagStatusValue = 10
	// tagKeep values an inbound peer whose status request said it chose
	// us (keep), so that the connection manager trims it after every
	// peer that did not: a chosen link cut would be replaced, and the
	// replacement churn the LAN.
	tagKeep      = "jbc-keep"
	tagKeepValue = 100
)

// Outcomes counted in jbc_admission_total.
const (
	AdmRefusedSubnet = "refused-subnet"
	AdmRefusedFull   = "refused-full"
	AdmEvicted       = "evicted"
	AdmNoStatus      = "closed-no-status"
)

// Admission holds what admission needs beyond the network's own state:
// bans (Set), the arrivals of each address group, the peers that
// served blocks. It is the node's connection gater. It is safe for
// concurrent use.
type Admission struct {
	peers *Set
	log   *slog.Logger
	count func(outcome string)
	host  atomic.Pointer[host.Host]
	kick  chan struct{}
	// made tells how a connection was made (SetMade); nil: not known.
	made func(network.Conn) (string, bool)
	// chooser says which peers we chose (SetChooser).
	chooser atomic.Pointer[func(peer.ID) bool]

	mu       sync.Mutex
	arrivals map[string]arrival
	servers  map[peer.ID]servedRecord
	// kept holds the connected peers whose status request said they
	// chose us (Kept).
	kept map[peer.ID]bool

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

// NewAdmission returns the admission of a node whose peers are peers;
// count, if set, counts each outcome (the metric jbc_admission_total).
// Until SetHost it only refuses banned peers.
func NewAdmission(peers *Set, log *slog.Logger, count func(string)) *Admission {
	a := &Admission{peers: peers, log: log, count: count, kick: make(chan struct{}, 1),
		arrivals: map[string]arrival{}, servers: map[peer.ID]servedRecord{}, kept: map[peer.ID]bool{}, totals: map[string]*atomic.Uint64{}}
	for _, o := range []string{AdmRefusedSubnet, AdmRefusedFull, AdmEvicted, AdmNoStatus} {
		a.totals[o] = new(atomic.Uint64)
	}
	return a
}

// SetHost gives admission the host whose connections it manages; until
// then it only refuses banned peers.
func (a *Admission) SetHost(h host.Host) { a.host.Store(&h) }

// SetChooser gives admission the judge of which peers the node chose
// (package discovery's Chosen): only those, among peers we have an
// outbound connection to, are protected; an outbound connection the DHT
// opened for a query is not, and the connection manager may trim it.
func (a *Admission) SetChooser(f func(peer.ID) bool) { a.chooser.Store(&f) }

func (a *Admission) network() network.Network {
	if h := a.host.Load(); h != nil {
		return (*h).Network()
	}
	return nil
}

func (a *Admission) cm() connmgr.ConnManager {
	if h := a.host.Load(); h != nil {
		return (*h).ConnManager()
	}
	return nil
}

// Total returns how many times outcome (AdmEvicted, ...) happened.
func (a *Admission) Total(outcome string) uint64 { return a.totals[outcome].Load() }

func (a *Admission) note(outcome string) {
	a.totals[outcome].Add(1)
	if a.count != nil {
		a.count(outcome)
	}
}

// InterceptPeerDial refuses to dial banned peers.
func (a *Admission) InterceptPeerDial(p peer.ID) bool { return !a.peers.IsBanned(p) }

// InterceptAddrDial refuses to dial banned peers.
func (a *Admission) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return !a.peers.IsBanned(p) }

// InterceptAccept decides on an inbound connection before any handshake,
// from its address alone: over subnetInboundCap for a public subnet, or
// from the heaviest group while the slots are full, it is refused.
func (a *Admission) InterceptAccept(cma network.ConnMultiaddrs) bool {
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
func (a *Admission) admit(s *slots, g string, public bool, now time.Time) string {
	if public && s.subnetConns[g] >= subnetInboundCap {
		return AdmRefusedSubnet
	}
	if len(s.holders) >= InboundSlots && !a.newcomer(s, g, now) {
		return AdmRefusedFull
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
func (a *Admission) newcomer(s *slots, g string, now time.Time) bool {
	w := a.weight(s, g, now)
	heaviest := 0.0
	for other := range s.members {
		heaviest = max(heaviest, a.weight(s, other, now))
	}
	return (s.members[g] == 0 && w < heaviest) || w <= heaviest/2
}

// InterceptSecured refuses banned peers once their identity is known.
func (a *Admission) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !a.peers.IsBanned(p)
}

// InterceptUpgraded checks the public subnet cap again, now that
// connections accepted concurrently have been counted.
func (a *Admission) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	if c.Stat().Direction != network.DirInbound {
		return true, 0
	}
	g, public := groupOf(c.RemoteMultiaddr())
	nw := a.network()
	if !public || nw == nil {
		return true, 0
	}
	if s := a.snapshot(nw, time.Now()); s.subnetConns[g] >= subnetInboundCap {
		a.note(AdmRefusedSubnet)
		return false, 0
	}
	return true, 0
}

// Connected handles a new connection: a peer we chose is protected; an
// inbound one gets StatusDeadline to send a status, and the slots are
// trimmed if they overflow.
func (a *Admission) Connected(c network.Conn) {
	p := c.RemotePeer()
	nw := a.network()
	if nw == nil {
		return
	}
	if v := []connView{a.viewOf(c)}; a.chosen(p, v) || hasOutbound(v) {
		if cm := a.cm(); cm != nil && a.chosen(p, v) {
			cm.Protect(p, TagChosen)
		}
		return
	}
	opened := c.Stat().Opened
	if opened.IsZero() {
		opened = time.Now()
	}
	time.AfterFunc(StatusDeadline, func() { a.checkStatus(p, opened) })
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Disconnected handles a closed connection: a peer no longer connected
// loses the protection it had as chosen.
func (a *Admission) Disconnected(nw network.Network, p peer.ID) {
	if nw.Connectedness(p) == network.Connected {
		return
	}
	a.mu.Lock()
	delete(a.kept, p)
	a.mu.Unlock()
	if cm := a.cm(); cm != nil {
		cm.Unprotect(p, TagChosen)
	}
}

// IsKept reports whether p's status request said it chose us (Kept).
func (a *Admission) IsKept(p peer.ID) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.kept[p]
}

// Kept records that p's status request said it chose us (keep) and keeps
// the connection: among the inbound slots' holders it is evicted after
// those that did not say so (pickVictim), and the connection manager
// values it above them. The flag costs nothing to set, so it orders the
// honest; it does not protect: an attacker that sets it is still evicted
// by its address group's weight.
func (a *Admission) Kept(p peer.ID) {
	a.mu.Lock()
	a.kept[p] = true
	a.mu.Unlock()
	if cm := a.cm(); cm != nil {
		cm.TagPeer(p, tagKeep, tagKeepValue)
	}
}

// Proven records that p sent a status of our network.
func (a *Admission) Proven(p peer.ID) {
	if cm := a.cm(); cm != nil {
		cm.TagPeer(p, tagStatus, tagStatusValue)
	}
}

// Served records that p served us valid blocks that extended or
// outweighed our chain, and protects it; only the servedProtectPeers that
// served most recently stay protected.
func (a *Admission) Served(p peer.ID, blocks int) {
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
func (a *Admission) checkStatus(p peer.ID, opened time.Time) {
	nw := a.network()
	if nw == nil {
		return
	}
	conns := nw.ConnsToPeer(p)
	if len(conns) == 0 || hasOutbound(a.viewsOf(conns)) || a.chosen(p, a.viewsOf(conns)) {
		return
	}
	if pi, ok := a.peers.Get(p); ok && pi.Status != nil && !pi.StatusAt.Before(opened) {
		return
	}
	a.log.Debug("closing inbound peer that sent no status", "peer", p, "after", StatusDeadline)
	a.note(AdmNoStatus)
	nw.ClosePeer(p)
}

// Run trims the inbound slots whenever a connection may have overfilled
// them, until ctx ends. One goroutine does it, so that concurrent arrivals
// never evict more than the overflow.
func (a *Admission) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		}
		a.trim(time.Now())
	}
}
