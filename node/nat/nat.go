package nat

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/jbc-project/jbc/node/p2p"
)

// AutoRelay's settings (library defaults in brackets).
const (
	// relayBackoff is how long AutoRelay waits before asking a relay
	// that refused a reservation again (an hour): a jbc relay restarting,
	// or one that had not heard our status yet, is worth asking again
	// after a minute.
	relayBackoff = time.Minute
	// relayMinInterval spaces AutoRelay's asks for candidates (30 s); our
	// source keeps its channel open and sends as soon as a relay is
	// known, so this only paces reopening it.
	relayMinInterval = 5 * time.Second
	// numRelays is how many reservations the node holds (2): two
	// relays, so that one going down leaves it reachable.
	numRelays = 2
	// relayResend spaces hand-overs of one candidate to AutoRelay, which
	// drops those it uses or backs off from.
	relayResend = 5 * time.Second
	// tick is how often the node's NAT upkeep runs while it holds
	// relayed connections: the retry (its thresholds are hundreds of
	// milliseconds), closing relayed connections a direct one replaced.
	tick = 100 * time.Millisecond
	// ifaceRecheck is how often the interface addresses are read again
	// (a laptop moving networks), for the relay service's rule.
	ifaceRecheck = 10 * time.Second
	// proofWait bounds how long the relay service waits for a peer
	// asking for a reservation or a circuit to send a status of our
	// network (AutoRelay asks right after identify, with the status
	// exchange still on its way): as long as package node's status
	// round trip may take.
	proofWait = 5 * time.Second
	// proofPoll is how often the relay service looks for that status.
	proofPoll = 50 * time.Millisecond
)

// Reachability values, as /status shows them.
const (
	Public  = "public"
	Private = "private"
	Unknown = "unknown"
)

// Config is what the NAT upkeep needs. All fields are optional.
type Config struct {
	// Relay offers the relay service while the node is publicly
	// reachable (--relay, on by default); false refuses.
	Relay bool
	// Announce are the --announce addresses: a public one counts as a
	// public address of the node's own.
	Announce []ma.Multiaddr
	// Preferred returns the peers to ask for a relay reservation first
	// (bootstrap, then --peer), in order.
	Preferred func() []peer.ID
	// Proven reports whether p sent a status of our network: the relay
	// serves only jbc nodes of our network.
	Proven func(p peer.ID) bool
	// Logger receives the logs.
	Logger *slog.Logger
}

// NAT keeps the node's view of its reachability and runs what follows from
// it. Options go to the host's construction; Start runs it on the host.
// Its methods are safe for concurrent use.
type NAT struct {
	cfg    Config
	log    *slog.Logger
	tracer *tracer
	// withOptions: the host was built with Options (without them, a
	// test's host, there is no relay, AutoRelay or hole punching).
	withOptions atomic.Bool
	h           atomic.Pointer[host.Host]
	started     time.Time

	mu sync.Mutex
	// v1 is AutoNAT v1's last verdict (ours, Unknown, at start).
	v1, v1Prev network.Reachability
	v1At       time.Time
	// reachable, unreachable and undecided are AutoNAT v2's public
	// addresses; v2At when they last changed.
	reachable, unreachable, undecided []ma.Multiaddr
	v2At                              time.Time
	// ownPublic are the public addresses of the node's interfaces and
	// --announce.
	ownPublic []ma.Multiaddr
	ifaceAt   time.Time
	// relayAddrs are the relay addresses AutoRelay holds for us.
	relayAddrs []ma.Multiaddr
	svc        *relay.Relay
	svcErr     error
	// reachNow is the last reachability derived, and since when.
	reachNow, reachWhy string
	reachAt            time.Time
	// ownDCUtR is when this host began serving /libp2p/dcutr.
	ownDCUtR time.Time
	// conns records how each open connection was made, by conn ID;
	// relayed counts the relayed ones, so that the upkeep has nothing to
	// do while there are none (a LAN node's usual state).
	conns   map[string]ConnInfo
	relayed int
	// hopSeen wakes the relay source when a peer is seen to speak the
	// hop protocol (identify), or our reachability changed.
	hopSeen chan struct{}
	// relayedKick wakes the upkeep when a relayed connection opens.
	relayedKick chan struct{}
	up          upgrader
}

// New returns the NAT upkeep of a node; Options are for its host.
func New(cfg Config) *NAT {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &NAT{cfg: cfg, log: cfg.Logger.With("component", "nat"), tracer: &tracer{},
		conns: map[string]ConnInfo{}, up: newUpgrader(), hopSeen: make(chan struct{}, 1),
		relayedKick: make(chan struct{}, 1)}
}

// Options returns the host options for nodes behind NAT: the circuit
// relay transport, DCUtR hole punching (traced), AutoNAT v1 service and
// AutoNAT v2, AutoRelay with our source of relays and no boot delay. The
// swarm's IPv6 and UDP black-hole detection is off: an AutoNAT v2 server
// dials back only kinds of address its own swarm has seen succeed in 5 of
// 100 dials, which a small chain network never makes. No port mapping.
func (n *NAT) Options() []libp2p.Option {
	n.withOptions.Store(true)
	return []libp2p.Option{
		libp2p.EnableRelay(),
		libp2p.EnableHolePunching(holepunch.WithTracer(n.tracer)),
		libp2p.EnableNATService(),
		libp2p.EnableAutoNATv2(),
		libp2p.IPv6BlackHoleSuccessCounter(nil),
		libp2p.UDPBlackHoleSuccessCounter(nil),
		libp2p.EnableAutoRelayWithPeerSource(n.relaySource,
			autorelay.WithBootDelay(0),
			autorelay.WithMinCandidates(1),
			autorelay.WithNumRelays(numRelays),
			autorelay.WithBackoff(relayBackoff),
			autorelay.WithMinInterval(relayMinInterval)),
	}
}

// Start runs the upkeep on h until ctx ends; goRun runs a goroutine the
// node waits for.
func (n *NAT) Start(ctx context.Context, h host.Host, goRun func(func(context.Context))) error {
	n.h.Store(&h)
	n.started = time.Now()
	sub, err := h.EventBus().Subscribe([]any{
		new(event.EvtLocalReachabilityChanged),
		new(event.EvtHostReachableAddrsChanged),
		new(event.EvtAutoRelayAddrsUpdated),
		new(event.EvtLocalProtocolsUpdated),
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerProtocolsUpdated),
	}, eventbus.Name("jbc nat"))
	if err != nil {
		return fmt.Errorf("nat: subscribe: %w", err)
	}
	n.mu.Lock()
	n.v1, n.v1At = network.ReachabilityUnknown, n.started
	if slices.Contains(h.Mux().Protocols(), holepunch.Protocol) {
		n.ownDCUtR = n.started
	}
	n.mu.Unlock()
	h.Network().Notify(&network.NotifyBundle{
		ConnectedF:    func(_ network.Network, c network.Conn) { n.connected(c) },
		DisconnectedF: func(_ network.Network, c network.Conn) { n.disconnected(c) },
	})
	for _, c := range h.Network().Conns() {
		n.connected(c)
	}
	if n.withOptions.Load() {
		// AutoRelay starts looking for relays only on a reachability
		// event, and AutoNAT v1 sends none until it decides (17 s
		// behind NAT, never on a public node whose peers are all behind
		// NAT): "unknown" now starts it. v1's verdicts follow as usual.
		em, err := h.EventBus().Emitter(new(event.EvtLocalReachabilityChanged), eventbus.Stateful)
		if err != nil {
			sub.Close()
			return fmt.Errorf("nat: emitter: %w", err)
		}
		if err := em.Emit(event.EvtLocalReachabilityChanged{Reachability: network.ReachabilityUnknown}); err != nil {
			sub.Close()
			em.Close()
			return fmt.Errorf("nat: emit: %w", err)
		}
		goRun(func(ctx context.Context) {
			<-ctx.Done()
			em.Close()
		})
	}
	n.refreshIface(time.Now())
	n.update()
	goRun(func(ctx context.Context) { n.run(ctx, sub) })
	return nil
}

// run handles events and the periodic upkeep until ctx ends.
func (n *NAT) run(ctx context.Context, sub event.Subscription) {
	defer sub.Close()
	defer n.setRelayService(false, "node stopping")
	// The upkeep ticks every tick while relayed connections exist (the
	// retry's thresholds are hundreds of milliseconds), else only to
	// read the interfaces again: an idle LAN node wakes every 10 s.
	t := time.NewTicker(ifaceRecheck)
	defer t.Stop()
	fast := false
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			n.handle(e)
			n.update()
		case <-n.relayedKick:
		case now := <-t.C:
			if now.Sub(n.ifaceAtTime()) >= ifaceRecheck {
				n.refreshIface(now)
				n.update()
			}
			n.upkeep(ctx, now)
		}
		n.mu.Lock()
		want := n.relayed > 0
		n.mu.Unlock()
		switch {
		case want && !fast:
			t.Reset(tick)
		case !want && fast:
			t.Reset(ifaceRecheck)
		}
		fast = want
	}
}

func (n *NAT) ifaceAtTime() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ifaceAt
}

func (n *NAT) handle(e any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	switch e := e.(type) {
	case event.EvtLocalReachabilityChanged:
		if e.Reachability != n.v1 {
			n.v1, n.v1At = e.Reachability, now
		}
	case event.EvtHostReachableAddrsChanged:
		n.reachable, n.unreachable, n.undecided = publicOnly(e.Reachable), publicOnly(e.Unreachable), publicOnly(e.Unknown)
		n.v2At = now
	case event.EvtAutoRelayAddrsUpdated:
		n.relayAddrs = slices.Clone(e.RelayAddrs)
		n.log.Info("relay addresses", "addrs", e.RelayAddrs)
	case event.EvtLocalProtocolsUpdated:
		if slices.Contains(e.Added, holepunch.Protocol) && n.ownDCUtR.IsZero() {
			n.ownDCUtR = now
			n.log.Debug("serving DCUtR: a public observed address is known")
		}
		if slices.Contains(e.Removed, holepunch.Protocol) {
			n.ownDCUtR = time.Time{}
		}
	case event.EvtPeerIdentificationCompleted:
		if slices.Contains(e.Protocols, hopProtocol) {
			n.kickSource()
		}
		if e.Conn != nil && e.Conn.Stat().Limited && !slices.Contains(e.Protocols, holepunch.Protocol) {
			n.up.peerNoDCUtR[e.Conn.ID()] = true
		}
	case event.EvtPeerProtocolsUpdated:
		if slices.Contains(e.Added, hopProtocol) {
			n.kickSource()
		}
		if slices.Contains(e.Added, holepunch.Protocol) {
			n.up.peerDCUtR[e.Peer] = now
		}
	}
}

// refreshIface reads the node's own public addresses: its interfaces'
// (where it listens) and --announce.
func (n *NAT) refreshIface(now time.Time) {
	var own []ma.Multiaddr
	if hp := n.h.Load(); hp != nil {
		if addrs, err := (*hp).Network().InterfaceListenAddresses(); err == nil {
			own = append(own, publicOnly(addrs)...)
		}
	}
	own = append(own, publicOnly(n.cfg.Announce)...)
	n.mu.Lock()
	n.ownPublic, n.ifaceAt = own, now
	n.mu.Unlock()
}

func publicOnly(addrs []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range addrs {
		if manet.IsPublicAddr(a) && !p2p.IsRelayed(a) {
			out = append(out, a)
		}
	}
	return out
}

// reachabilityLocked derives the node's reachability, and why:
//   - public if AutoNAT v2 confirmed a public address reachable, or v1
//     said public;
//   - private if v1 said private, or v2 found every public address it
//     checked unreachable, or the node has no public address of its own
//     (behind NAT: only a port forward would make it reachable, and v2
//     would then confirm the observed address);
//   - else unknown (a public address of its own, not yet checked).
//
// The caller holds n.mu.
func (n *NAT) reachabilityLocked() (string, string) {
	switch {
	case len(n.reachable) > 0:
		return Public, "autonat-v2"
	case n.v1 == network.ReachabilityPublic:
		return Public, "autonat-v1"
	case n.v1 == network.ReachabilityPrivate:
		return Private, "autonat-v1"
	case len(n.unreachable) > 0 && len(n.undecided) == 0:
		return Private, "autonat-v2"
	case len(n.ownPublic) == 0:
		return Private, "interface"
	}
	return Unknown, "interface"
}

// relayCapableLocked reports whether the node should act as a public node:
// publicly reachable, or with a public address of its own that AutoNAT v2
// has not found unreachable (a bootstrap node on a public IP relays from
// its first second, before any check). Such a node runs the relay service
// (unless --relay=false) and asks for no reservation. The caller holds
// n.mu.
func (n *NAT) relayCapableLocked() bool {
	r, _ := n.reachabilityLocked()
	switch r {
	case Public:
		return true
	case Private:
		return false
	}
	return len(n.ownPublic) > 0
}

// update recomputes the reachability and starts or stops the relay
// service to match.
func (n *NAT) update() {
	n.mu.Lock()
	r, why := n.reachabilityLocked()
	if r != n.reachNow || why != n.reachWhy {
		n.log.Info("reachability", "now", r, "source", why)
		n.reachNow, n.reachWhy, n.reachAt = r, why, time.Now()
		n.kickSource()
	}
	want := n.relayCapableLocked()
	n.mu.Unlock()
	if !n.cfg.Relay || !n.withOptions.Load() {
		want = false
	}
	n.setRelayService(want, r+" ("+why+")")
}

// setRelayService starts or stops the relay service. Only the upkeep's
// goroutine calls it (and Start, before that goroutine runs), so that the
// service is started and stopped without holding n.mu: relay.New emits on
// the event bus, which our own subscription drains.
func (n *NAT) setRelayService(on bool, why string) {
	hp := n.h.Load()
	if hp == nil {
		return
	}
	n.mu.Lock()
	svc, failed := n.svc, n.svcErr != nil
	n.mu.Unlock()
	switch {
	case on && svc == nil:
		svc, err := relay.New(*hp, relay.WithResources(p2p.RelayResources()), relay.WithACL(acl{n}))
		if err != nil {
			if !failed {
				n.log.Warn("cannot start the relay service", "err", err)
			}
			n.mu.Lock()
			n.svcErr = err
			n.mu.Unlock()
			return
		}
		n.mu.Lock()
		n.svc, n.svcErr = svc, nil
		n.mu.Unlock()
		n.log.Info("relay service on", "reachability", why)
	case !on && svc != nil:
		n.mu.Lock()
		n.svc = nil
		n.mu.Unlock()
		svc.Close()
		n.log.Info("relay service off", "reachability", why)
	}
}

// acl lets only nodes of our network reserve a slot or open a circuit: a
// jbc relay is not a free relay for any libp2p host.
type acl struct{ n *NAT }

// AllowReserve waits up to proofWait for p's status (relay.ACLFilter).
func (a acl) AllowReserve(p peer.ID, _ ma.Multiaddr) bool { return a.n.proven(p) }

// AllowConnect lets src open a circuit once it sent a status
// (relay.ACLFilter); dest holds a reservation, so it did.
func (a acl) AllowConnect(src peer.ID, _ ma.Multiaddr, _ peer.ID) bool { return a.n.proven(src) }

func (n *NAT) proven(p peer.ID) bool {
	if n.cfg.Proven == nil {
		return true
	}
	deadline := time.Now().Add(proofWait)
	for {
		if n.cfg.Proven(p) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(proofPoll)
	}
}

// relaySource is AutoRelay's source of candidates: the preferred peers
// (bootstrap, --peer), then any connected peer, each as soon as identify
// shows it speaks the hop protocol (an event wakes it), and again every
// relayResend while it does. It keeps the channel open (AutoRelay asks again only once it is
// closed) and sends nothing while the node is public.
func (n *NAT) relaySource(ctx context.Context, _ int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo)
	go func() {
		defer close(out)
		sent := map[peer.ID]time.Time{}
		t := time.NewTicker(relayResend)
		defer t.Stop()
		for first := true; ; first = false {
			if !first {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				case <-n.hopSeen:
				}
			}
			hp := n.h.Load()
			if hp == nil {
				continue
			}
			h := *hp
			n.mu.Lock()
			capable := n.relayCapableLocked()
			n.mu.Unlock()
			if capable {
				continue
			}
			for _, p := range n.candidates(h) {
				if time.Since(sent[p]) < relayResend {
					continue
				}
				if ps, err := h.Peerstore().SupportsProtocols(p, hopProtocol); err != nil || len(ps) == 0 {
					continue
				}
				select {
				case out <- peer.AddrInfo{ID: p, Addrs: h.Peerstore().Addrs(p)}:
					sent[p] = time.Now()
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// kickSource wakes the relay source, if it waits.
func (n *NAT) kickSource() {
	select {
	case n.hopSeen <- struct{}{}:
	default:
	}
}

// hopProtocol is circuit relay v2's hop protocol, which a relay serves.
const hopProtocol = "/libp2p/circuit/relay/0.2.0/hop"

// candidates returns the preferred peers, then the other connected ones.
func (n *NAT) candidates(h host.Host) []peer.ID {
	var out []peer.ID
	seen := map[peer.ID]bool{}
	if n.cfg.Preferred != nil {
		for _, p := range n.cfg.Preferred() {
			if !seen[p] && h.Network().Connectedness(p) == network.Connected {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	for _, p := range h.Network().Peers() {
		if !seen[p] && h.Network().Connectedness(p) == network.Connected {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
