// Command natprobe is a test tool of e2e/natprobe.sh, not part of jbc: a bare
// go-libp2p host that shows, in network namespaces (../shared/netlab NAT
// mode), which go-libp2p options and timings get two hosts behind
// different NATs from a relayed connection to a direct one by hole
// punching (DCUtR), what AutoNAT reports and when, and what a connection
// gater sees of relayed connections. It runs in one of two roles:
//
//	natprobe -role relay -seed r [options]                         # R: DHT server, relay v2 service
//	natprobe -role peer -seed a -relay /ip6/.../p2p/R [options]    # A: reserves a slot on R
//	natprobe -role peer -seed b -relay /ip6/.../p2p/R -find A -expect-ip 2001:2::1 [options]
//
// With no options it uses go-libp2p's defaults where they exist (relay
// service on AutoNAT v1's "public", static relays, no remedy for the
// DCUtR trap); each option adds one piece, so that a script can show what
// each is for. e2e/natprobe.sh gives the set that works (docs/nat-design.md).
//
// B finds A's addresses through R's DHT (FIND_PEER answers from R's
// peerstore, which holds A's relay address once A reserved a slot and told
// R by identify), dials them (the relay address wins: A's own are
// private), and waits until it holds a direct connection to A from
// -expect-ip. Every event is a JSON line on stdout, with "ms" the time
// since the process started; the last line of B is {"ev":"result",...}
// with the times to the relayed and the direct connection. B exits 0 on a
// direct connection, 1 on -timeout.
//
// -peer-id prints the peer ID of -seed and exits: identities are derived
// from the seed, so that a script knows them before starting anything.
//
// Safety: NAT port mapping (UPnP, NAT-PMP) stays off; mDNS is not used; it
// dials only the -relay address and what R's DHT and the hole punch
// return, all lab addresses when run inside the lab.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// dhtPrefix keeps the probe's DHT apart from jbc's (/jbc) and IPFS's.
const dhtPrefix = "/natprobe"

// Relay v2 service limits of the probe's relay: the tight set proposed for
// jbc (docs/nat-design.md). A relayed connection only has to carry
// identify, a status exchange and the DCUtR coordination before the peers
// go direct.
var relayResources = relay.Resources{
	Limit: &relay.RelayLimit{
		// Duration and Data bound one relayed connection: the defaults
		// (2 min, 128 KiB each way), far above what the upgrade needs.
		Duration: 2 * time.Minute,
		Data:     1 << 17,
	},
	ReservationTTL:         time.Hour,
	MaxReservations:        32,
	MaxCircuits:            8,
	BufferSize:             2048,
	MaxReservationsPerPeer: 1,
	MaxReservationsPerIP:   4,
	MaxReservationsPerASN:  16,
}

// Remedies for the DCUtR trap (see -retry).
const (
	retryNone   = "none"
	retryRedial = "redial"
	retryWait   = "wait"
)

// holePunchGrace is how long a relayed-only connection this host dialled
// may go without any hole-punch event from the peer before -retry redial
// closes and redials it: the peer starts DCUtR once identify on the
// relayed connection is done, a round trip or two through the relay.
const holePunchGrace = 2 * time.Second

// findTimeout bounds one DHT lookup of the target: R answers at once; a
// lookup that goes on is dialling peers R named, the target among them,
// whose relayed connection cannot carry the DHT protocol.
const findTimeout = 2 * time.Second

var start = time.Now()

// emit writes one JSON event line.
var outMu sync.Mutex

func emit(ev string, kv ...any) {
	m := map[string]any{"ms": time.Since(start).Milliseconds(), "ev": ev}
	for i := 0; i+1 < len(kv); i += 2 {
		switch v := kv[i+1].(type) {
		case error:
			if v != nil {
				m[kv[i].(string)] = v.Error()
			}
		case fmt.Stringer:
			m[kv[i].(string)] = v.String()
		default:
			m[kv[i].(string)] = v
		}
	}
	b, _ := json.Marshal(m)
	outMu.Lock()
	os.Stdout.Write(append(b, '\n'))
	outMu.Unlock()
}

// keyFor derives an Ed25519 identity from a seed string.
func keyFor(seed string) (crypto.PrivKey, error) {
	s := sha256.Sum256([]byte("natprobe/" + seed))
	return crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(s[:]))
}

type opts struct {
	role, seed, relayAddr, find, expectIP, reach, retry, transports, relaySvc, relaySource string
	port                                                                                   int
	autonatV2, kickUnknown, natService, dialAtOnce, noBlackHole                            bool
	relayBackoff, relayInterval, timeout, linger                                           time.Duration
}

func main() {
	var o opts
	flag.StringVar(&o.role, "role", "peer", "relay (public: relay service, DHT server) or peer")
	flag.StringVar(&o.seed, "seed", "", "identity seed (required)")
	peerID := flag.Bool("peer-id", false, "print the peer ID of -seed and exit")
	flag.IntVar(&o.port, "port", 4001, "TCP and UDP port to listen on")
	flag.StringVar(&o.transports, "transports", "tcp,quic", "tcp, quic or tcp,quic")
	flag.StringVar(&o.relayAddr, "relay", "", "peer: the relay's multiaddr (bootstrap and static relay)")
	flag.StringVar(&o.find, "find", "", "peer: find this peer ID through the relay's DHT and connect to it")
	flag.StringVar(&o.expectIP, "expect-ip", "", "peer with -find: the IP the direct connection must come from")
	flag.StringVar(&o.relaySvc, "relay-svc", "libp2p", "relay: libp2p (EnableRelayService: runs once AutoNAT v1 says public), v2 (the probe runs relay.New once AutoNAT v2 confirmed a public address reachable; needs -autonat-v2) or iface (as v2, and from the start if an interface has a public address, until AutoNAT v2 finds every public address unreachable)")
	flag.StringVar(&o.reach, "reach", "auto", "auto (AutoNAT decides), public or private (ForceReachability*)")
	flag.BoolVar(&o.autonatV2, "autonat-v2", false, "also run AutoNAT v2 (per-address reachability)")
	flag.BoolVar(&o.noBlackHole, "no-black-hole", false, "turn off the swarm's IPv6 and UDP black-hole detection, which AutoNAT v2 servers read: until 100 dials of a kind were made, they refuse to dial that kind back")
	flag.BoolVar(&o.natService, "nat-service", true, "serve AutoNAT v1 dial-backs to others")
	flag.BoolVar(&o.kickUnknown, "kick-unknown", false, "peer: emit reachability Unknown at start, so that AutoRelay reserves before AutoNAT has decided")
	flag.StringVar(&o.retry, "retry", retryNone, "peer with -find: remedy for the DCUtR trap: none, redial (close and redial a relayed connection that saw no hole punch) or wait (dial only once this host serves /libp2p/dcutr)")
	flag.BoolVar(&o.dialAtOnce, "dial-at-once", false, "peer with -find: dial the relay address A would have as soon as R is known, without the DHT (reproduces the trap)")
	flag.StringVar(&o.relaySource, "relay-source", "static", "peer: static (EnableAutoRelayWithStaticRelays: AutoRelay asks again at most every -relay-interval, and only when its scheduler runs) or watch (a PeerSource that hands AutoRelay the relay the moment identify shows it speaks the hop protocol)")
	flag.DurationVar(&o.relayBackoff, "relay-backoff", 10*time.Second, "peer: AutoRelay's backoff after a failed reservation (library default 1h)")
	flag.DurationVar(&o.relayInterval, "relay-interval", time.Second, "peer: AutoRelay's minimum interval between asks for candidates (library default 30s)")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Second, "peer with -find: give up after this long")
	flag.DurationVar(&o.linger, "linger", 0, "peer with -find: keep running this long after the result, logging")
	flag.Parse()

	if o.seed == "" {
		fmt.Fprintln(os.Stderr, "natprobe: -seed is required")
		os.Exit(2)
	}
	key, err := keyFor(o.seed)
	if err != nil {
		fmt.Fprintln(os.Stderr, "natprobe:", err)
		os.Exit(2)
	}
	if *peerID {
		id, _ := peer.IDFromPrivateKey(key)
		fmt.Println(id)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, o, key)
	if err != nil {
		emit("error", "err", err)
		fmt.Fprintln(os.Stderr, "natprobe:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func listenAddrs(o opts) []string {
	p := strconv.Itoa(o.port)
	var out []string
	for _, ip := range []string{"/ip4/0.0.0.0", "/ip6/::"} {
		if slices.Contains(splitComma(o.transports), "tcp") {
			out = append(out, ip+"/tcp/"+p)
		}
		if slices.Contains(splitComma(o.transports), "quic") {
			out = append(out, ip+"/udp/"+p+"/quic-v1")
		}
	}
	return out
}

func splitComma(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != ',' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}

func run(ctx context.Context, o opts, key crypto.PrivKey) (int, error) {
	var relayInfo *peer.AddrInfo
	if o.relayAddr != "" {
		ai, err := peer.AddrInfoFromString(o.relayAddr)
		if err != nil {
			return 0, fmt.Errorf("-relay: %w", err)
		}
		relayInfo = ai
	}
	tr := &tracer{}
	g := &gater{}
	src := &relaySource{ctx: ctx}
	if relayInfo != nil {
		src.relay = *relayInfo
	}
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
	if err != nil {
		return 0, err
	}
	lopts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrs(mustAddrs(listenAddrs(o))...),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionGater(g),
		libp2p.EnableRelay(),
		libp2p.EnableHolePunching(holepunch.WithTracer(tr)),
	}
	if o.natService {
		lopts = append(lopts, libp2p.EnableNATService())
	}
	if o.autonatV2 {
		lopts = append(lopts, libp2p.EnableAutoNATv2())
	}
	if o.noBlackHole {
		lopts = append(lopts, libp2p.IPv6BlackHoleSuccessCounter(nil), libp2p.UDPBlackHoleSuccessCounter(nil))
	}
	switch o.reach {
	case "public":
		lopts = append(lopts, libp2p.ForceReachabilityPublic())
	case "private":
		lopts = append(lopts, libp2p.ForceReachabilityPrivate())
	case "auto":
	default:
		return 0, fmt.Errorf("-reach %q: want auto, public or private", o.reach)
	}
	switch o.role {
	case "relay":
		if o.relaySvc == "libp2p" {
			lopts = append(lopts, libp2p.EnableRelayService(relay.WithResources(relayResources)))
		}
	case "peer":
		if relayInfo == nil {
			return 0, fmt.Errorf("-role peer needs -relay")
		}
		aropts := []autorelay.Option{
			autorelay.WithBackoff(o.relayBackoff),
			autorelay.WithMinInterval(o.relayInterval),
			autorelay.WithBootDelay(0),
		}
		switch o.relaySource {
		case "static":
			lopts = append(lopts, libp2p.EnableAutoRelayWithStaticRelays([]peer.AddrInfo{*relayInfo}, aropts...))
		case "watch":
			aropts = append(aropts, autorelay.WithMinCandidates(1), autorelay.WithNumRelays(1))
			lopts = append(lopts, libp2p.EnableAutoRelayWithPeerSource(src.source, aropts...))
		default:
			return 0, fmt.Errorf("-relay-source %q: want static or watch", o.relaySource)
		}
	default:
		return 0, fmt.Errorf("-role %q: want relay or peer", o.role)
	}
	h, err := libp2p.New(lopts...)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	src.h.Store(&h)
	emit("start", "role", o.role, "id", h.ID(), "listen", h.Network().ListenAddresses(), "reach", o.reach,
		"autonat_v2", o.autonatV2, "kick_unknown", o.kickUnknown, "retry", o.retry)

	if err := watchEvents(ctx, h); err != nil {
		return 0, err
	}
	watchConns(h)
	if o.role == "relay" && (o.relaySvc == "v2" || o.relaySvc == "iface") {
		if err := relayOnV2(ctx, h, o.relaySvc == "iface"); err != nil {
			return 0, err
		}
	}

	if o.kickUnknown {
		em, err := h.EventBus().Emitter(new(event.EvtLocalReachabilityChanged), eventbus.Stateful)
		if err != nil {
			return 0, err
		}
		if err := em.Emit(event.EvtLocalReachabilityChanged{Reachability: network.ReachabilityUnknown}); err != nil {
			return 0, err
		}
		emit("kick-unknown")
	}

	mode := dht.ModeClient
	if o.role == "relay" {
		mode = dht.ModeServer
	}
	dopts := []dht.Option{dht.Mode(mode), dht.ProtocolPrefix(dhtPrefix)}
	if relayInfo != nil {
		dopts = append(dopts, dht.BootstrapPeers(*relayInfo))
	}
	kad, err := dht.New(h, dopts...)
	if err != nil {
		return 0, err
	}
	defer kad.Close()
	if err := kad.Bootstrap(ctx); err != nil {
		return 0, err
	}

	if relayInfo != nil {
		go func() {
			for ctx.Err() == nil {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := h.Connect(cctx, *relayInfo)
				cancel()
				emit("relay-connect", "err", err)
				if err == nil {
					return
				}
				time.Sleep(time.Second)
			}
		}()
	}

	if o.find == "" {
		<-ctx.Done()
		return 0, nil
	}
	target, err := peer.Decode(o.find)
	if err != nil {
		return 0, fmt.Errorf("-find: %w", err)
	}
	return findAndWait(ctx, o, h, kad, tr, relayInfo, target)
}

func mustAddrs(ss []string) []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(ss))
	for _, s := range ss {
		out = append(out, ma.StringCast(s))
	}
	return out
}

// watchEvents logs reachability, address, protocol and identify events.
func watchEvents(ctx context.Context, h host.Host) error {
	sub, err := h.EventBus().Subscribe([]any{
		new(event.EvtLocalReachabilityChanged),
		new(event.EvtHostReachableAddrsChanged),
		new(event.EvtLocalAddressesUpdated),
		new(event.EvtLocalProtocolsUpdated),
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerIdentificationFailed),
	}, eventbus.Name("natprobe"))
	if err != nil {
		return err
	}
	go func() {
		defer sub.Close()
		hadRelayAddr := false
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				switch e := e.(type) {
				case event.EvtLocalReachabilityChanged:
					emit("reachability", "v", e.Reachability.String())
				case event.EvtHostReachableAddrsChanged:
					emit("reachable-addrs", "reachable", e.Reachable, "unreachable", e.Unreachable, "unknown", e.Unknown)
				case event.EvtLocalAddressesUpdated:
					addrs := h.Addrs()
					emit("addrs", "addrs", addrs)
					relayed := slices.ContainsFunc(addrs, isCircuit)
					if relayed && !hadRelayAddr {
						emit("relay-addr")
					}
					hadRelayAddr = relayed
				case event.EvtLocalProtocolsUpdated:
					emit("protocols", "added", e.Added, "removed", e.Removed)
				case event.EvtPeerIdentificationCompleted:
					emit("identified", "peer", e.Peer, "conn", e.Conn.RemoteMultiaddr(), "limited", e.Conn.Stat().Limited,
						"observed", e.ObservedAddr, "hop", slices.Contains(e.Protocols, "/libp2p/circuit/relay/0.2.0/hop"),
						"dcutr", slices.Contains(e.Protocols, holepunch.Protocol))
				case event.EvtPeerIdentificationFailed:
					emit("identify-failed", "peer", e.Peer, "err", e.Reason)
				}
			}
		}
	}()
	return nil
}

// watchConns logs every connection opened and closed.
func watchConns(h host.Host) {
	h.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			st := c.Stat()
			emit("connected", "peer", c.RemotePeer(), "dir", st.Direction.String(), "remote", c.RemoteMultiaddr(),
				"local", c.LocalMultiaddr(), "limited", st.Limited)
		},
		DisconnectedF: func(_ network.Network, c network.Conn) {
			emit("disconnected", "peer", c.RemotePeer(), "remote", c.RemoteMultiaddr(), "limited", c.Stat().Limited)
		},
	})
}

// relaySource is AutoRelay's PeerSource for -relay-source watch: it hands
// AutoRelay the relay as soon as the peerstore says it speaks the hop
// protocol (a node runs its relay service only once it knows it is
// reachable, seconds after the first connection), and again every
// relayResend while it does, keeping the channel open: AutoRelay does
// not ask again until the channel is closed, and drops a candidate it
// already uses or backs off from.
type relaySource struct {
	ctx   context.Context
	h     atomic.Pointer[host.Host] // set once the host exists
	relay peer.AddrInfo
}

// relayResend spaces the hand-overs of one relay: a reservation refused
// is retried after AutoRelay's backoff anyway.
const relayResend = 5 * time.Second

func (s *relaySource) source(ctx context.Context, num int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo, 1)
	go func() {
		defer close(out)
		emit("relay-source-asked", "num", num)
		var last time.Time
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.ctx.Done():
				return
			case <-tick.C:
			}
			h := s.h.Load()
			if h == nil || time.Since(last) < relayResend {
				continue
			}
			if ps, err := (*h).Peerstore().SupportsProtocols(s.relay.ID, "/libp2p/circuit/relay/0.2.0/hop"); err != nil || len(ps) == 0 {
				continue
			}
			select {
			case out <- s.relay:
				last = time.Now()
				emit("relay-source-sent", "relay", s.relay.ID)
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// relayOnV2 runs the relay service while AutoNAT v2 has confirmed at least
// one public address of this host reachable: what libp2p's own relay
// manager does on AutoNAT v1's "public", which a node whose peers are all
// behind NAT never hears (v1 picks as servers only peers with a public
// address). With iface, it also runs from the start when an interface has
// a public address (the host is not behind a NAT), until AutoNAT v2 finds
// every public address unreachable (a firewall).
func relayOnV2(ctx context.Context, h host.Host, iface bool) error {
	sub, err := h.EventBus().Subscribe(new(event.EvtHostReachableAddrsChanged), eventbus.Name("natprobe relay"))
	if err != nil {
		return err
	}
	var svc *relay.Relay
	set := func(on bool, why string) {
		switch {
		case on && svc == nil:
			r, err := relay.New(h, relay.WithResources(relayResources))
			emit("relay-service", "on", err == nil, "why", why, "err", err)
			svc = r
		case !on && svc != nil:
			svc.Close()
			svc = nil
			emit("relay-service", "on", false, "why", why)
		}
	}
	if iface {
		ifaddrs, err := manet.InterfaceMultiaddrs()
		if err != nil {
			return err
		}
		if slices.ContainsFunc(ifaddrs, manet.IsPublicAddr) {
			set(true, "public interface address")
		}
	}
	go func() {
		defer sub.Close()
		defer set(false, "closing")
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				ev := e.(event.EvtHostReachableAddrsChanged)
				switch {
				case slices.ContainsFunc(ev.Reachable, manet.IsPublicAddr):
					set(true, "AutoNAT v2: reachable")
				case slices.ContainsFunc(ev.Unreachable, manet.IsPublicAddr) && !slices.ContainsFunc(ev.Unknown, manet.IsPublicAddr):
					set(false, "AutoNAT v2: every public address unreachable")
				}
			}
		}
	}()
	return nil
}

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// findAndWait finds target through the DHT, connects, and waits for a
// direct connection from o.expectIP.
func findAndWait(ctx context.Context, o opts, h host.Host, kad *dht.IpfsDHT, tr *tracer, relayInfo *peer.AddrInfo, target peer.ID) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	var firstRelayed, firstDirect time.Duration
	var direct network.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	var once sync.Once
	check := func(c network.Conn) {
		if c.RemotePeer() != target {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		el := time.Since(start)
		if c.Stat().Limited || isCircuit(c.RemoteMultiaddr()) {
			if firstRelayed == 0 {
				firstRelayed = el
			}
			return
		}
		ip, err := manet.ToIP(c.RemoteMultiaddr())
		if err != nil || (o.expectIP != "" && ip.String() != o.expectIP) {
			emit("direct-unexpected", "remote", c.RemoteMultiaddr())
			return
		}
		if firstDirect == 0 {
			firstDirect, direct = el, c
			once.Do(func() { close(done) })
		}
	}
	h.Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) { check(c) }})
	if o.retry == retryRedial {
		u, err := newUpgrader(ctx, h, tr, target)
		if err != nil {
			return 0, err
		}
		go u.run(ctx, done)
	}

	if o.retry == retryWait {
		waitDCUtR(ctx, h)
	}

	var info peer.AddrInfo
	if o.dialAtOnce {
		circ, err := ma.NewMultiaddr("/p2p/" + relayInfo.ID.String() + "/p2p-circuit")
		if err != nil {
			return 0, err
		}
		info = peer.AddrInfo{ID: target}
		for _, a := range relayInfo.Addrs {
			info.Addrs = append(info.Addrs, a.Encapsulate(circ))
		}
		emit("found", "how", "built", "addrs", info.Addrs)
	} else {
		// Ask R until it knows a relay address of the target: before the
		// target reserved a slot, R knows only its private addresses.
		// kad-dht's lookup dials the peers R names, the target among them,
		// through the relay, and goes on until findTimeout since the
		// relayed connection cannot carry the DHT protocol: the peerstore
		// has the address first.
		for info.ID == "" {
			found := make(chan peer.AddrInfo, 1)
			go func() {
				fctx, fcancel := context.WithTimeout(ctx, findTimeout)
				ai, err := kad.FindPeer(fctx, target)
				fcancel()
				emit("find", "err", err, "addrs", ai.Addrs)
				found <- ai
			}()
			poll := time.NewTicker(50 * time.Millisecond)
		wait:
			for {
				select {
				case <-ctx.Done():
					poll.Stop()
					return result(h, tr, target, o, nil), nil
				case ai := <-found:
					if slices.ContainsFunc(ai.Addrs, isCircuit) {
						info = ai
						emit("found", "how", "dht", "addrs", ai.Addrs)
					}
					break wait
				case <-poll.C:
					if known := h.Peerstore().Addrs(target); slices.ContainsFunc(known, isCircuit) {
						info = peer.AddrInfo{ID: target, Addrs: known}
						emit("found", "how", "peerstore", "addrs", known)
						break wait
					}
				}
			}
			poll.Stop()
			if info.ID == "" {
				select {
				case <-ctx.Done():
					return result(h, tr, target, o, nil), nil
				case <-time.After(200 * time.Millisecond):
				}
			}
		}
	}

	dialed := time.Now()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		err := h.Connect(cctx, info)
		ccancel()
		emit("dial", "err", err, "took_ms", time.Since(dialed).Milliseconds())
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return result(h, tr, target, o, nil), nil
		case <-time.After(500 * time.Millisecond):
		}
	}
	for _, c := range h.Network().ConnsToPeer(target) {
		check(c)
	}

	select {
	case <-done:
	case <-ctx.Done():
	}
	mu.Lock()
	fr, fd, dc := firstRelayed, firstDirect, direct
	mu.Unlock()
	res := map[string]any{}
	if fr > 0 {
		res["relayed_ms"] = fr.Milliseconds()
	}
	if fd > 0 {
		res["direct_ms"] = fd.Milliseconds()
		res["direct_addr"] = dc.RemoteMultiaddr().String()
		res["direct_dir"] = dc.Stat().Direction.String()
		if fr > 0 {
			res["relayed_to_direct_ms"] = (fd - fr).Milliseconds()
		}
	}
	code := result(h, tr, target, o, res)
	if o.linger > 0 {
		time.Sleep(o.linger)
		for _, c := range h.Network().ConnsToPeer(target) {
			emit("conn-at-end", "remote", c.RemoteMultiaddr(), "limited", c.Stat().Limited, "dir", c.Stat().Direction.String())
		}
	}
	return code, nil
}

func result(h host.Host, tr *tracer, target peer.ID, o opts, res map[string]any) int {
	if res == nil {
		res = map[string]any{}
	}
	kv := []any{"hole_punch_events", tr.count(target), "reachability", reachabilityOf(h)}
	for k, v := range res {
		kv = append(kv, k, v)
	}
	_, ok := res["direct_ms"]
	kv = append(kv, "ok", ok)
	emit("result", kv...)
	if ok {
		return 0
	}
	return 1
}

func reachabilityOf(h host.Host) string {
	if r, ok := h.(interface{ Reachability() network.Reachability }); ok {
		return r.Reachability().String()
	}
	return "?"
}

// waitDCUtR waits until this host serves /libp2p/dcutr: the hole-punch
// service registers it only once identify has given the host a public
// observed address.
func waitDCUtR(ctx context.Context, h host.Host) {
	for ctx.Err() == nil {
		if slices.Contains(h.Mux().Protocols(), holepunch.Protocol) {
			emit("dcutr-ready")
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// upgrader is the -retry redial remedy, run by the host that dialled
// through the relay (the peer that accepted a relayed connection is the
// one that starts DCUtR on it, once, when the connection opens). While
// this host holds only relayed connections to the target, it closes them
// and redials the target through the relay, so that the peer starts DCUtR
// again, when the punch on the connection it holds cannot have happened
// or did not:
//
//   - this host did not serve /libp2p/dcutr yet when the connection
//     opened (the peer's stream met "protocols not supported");
//   - the peer's identify on the connection listed no /libp2p/dcutr (its
//     hole-punch service, which starts with its first public observed
//     address, did not watch the connection open) and it now does;
//   - else, no hole-punch event came from the peer within holePunchGrace.
//
// In the first two cases it redials as soon as both serve DCUtR. Redials
// of one peer are spaced by redialBackoff, doubling, at most maxRedials.
type upgrader struct {
	h      host.Host
	tr     *tracer
	target peer.ID

	mu          sync.Mutex
	ownDCUtR    time.Time       // when this host started serving /libp2p/dcutr
	peerNoDCUtR map[string]bool // relayed conns whose identify showed the peer without DCUtR
	peerDCUtR   time.Time       // when the peer's protocols last gained /libp2p/dcutr
}

const (
	// redialBackoff spaces redials of one peer, doubling each time:
	// a hole punch takes a round trip through the relay and a dial.
	redialBackoff = time.Second
	// maxRedials bounds redials of one peer: after that the punch is
	// failing for a reason a new attempt will not change.
	maxRedials = 4
	// dcutrSettle is how long after both hosts serve DCUtR a redial
	// waits for a punch that may still be on its way.
	dcutrSettle = 200 * time.Millisecond
)

func newUpgrader(ctx context.Context, h host.Host, tr *tracer, target peer.ID) (*upgrader, error) {
	u := &upgrader{h: h, tr: tr, target: target, peerNoDCUtR: map[string]bool{}}
	if slices.Contains(h.Mux().Protocols(), holepunch.Protocol) {
		u.ownDCUtR = start
	}
	sub, err := h.EventBus().Subscribe([]any{
		new(event.EvtLocalProtocolsUpdated),
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerProtocolsUpdated),
	}, eventbus.Name("natprobe upgrader"))
	if err != nil {
		return nil, err
	}
	go func() {
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				u.mu.Lock()
				switch e := e.(type) {
				case event.EvtLocalProtocolsUpdated:
					if slices.Contains(e.Added, holepunch.Protocol) && u.ownDCUtR.IsZero() {
						u.ownDCUtR = time.Now()
					}
				case event.EvtPeerIdentificationCompleted:
					if e.Peer == target && e.Conn.Stat().Limited && !slices.Contains(e.Protocols, holepunch.Protocol) {
						u.peerNoDCUtR[e.Conn.ID()] = true
					}
				case event.EvtPeerProtocolsUpdated:
					if e.Peer == target && slices.Contains(e.Added, holepunch.Protocol) {
						u.peerDCUtR = time.Now()
					}
				}
				u.mu.Unlock()
			}
		}
	}()
	return u, nil
}

// run checks the target's connections every tick until done.
func (u *upgrader) run(ctx context.Context, done <-chan struct{}) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var next time.Time
	backoff, n := redialBackoff, 0
	for n < maxRedials {
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case <-tick.C:
		}
		if time.Now().Before(next) {
			continue
		}
		why := u.check()
		if why == "" {
			continue
		}
		var relayed []network.Conn
		for _, c := range u.h.Network().ConnsToPeer(u.target) {
			if c.Stat().Limited {
				relayed = append(relayed, c)
			}
		}
		emit("redial", "why", why, "conns", len(relayed))
		for _, c := range relayed {
			c.Close()
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := u.h.Connect(cctx, peer.AddrInfo{ID: u.target})
		cancel()
		emit("redial-done", "err", err)
		n++
		next = time.Now().Add(backoff)
		backoff *= 2
	}
}

// check says why the target's relayed connections should be redialled, or
// "" if not (yet).
func (u *upgrader) check() string {
	conns := u.h.Network().ConnsToPeer(u.target)
	var relayed []network.Conn
	for _, c := range conns {
		if !c.Stat().Limited {
			return "" // direct already
		}
		if c.Stat().Direction == network.DirOutbound {
			relayed = append(relayed, c)
		}
	}
	if len(relayed) == 0 {
		return ""
	}
	u.mu.Lock()
	own, peerAt := u.ownDCUtR, u.peerDCUtR
	u.mu.Unlock()
	if own.IsZero() {
		return "" // the peer's punch would fail again
	}
	last := u.tr.lastFrom(u.target)
	now := time.Now()
	for _, c := range relayed {
		opened := c.Stat().Opened
		if last.After(opened) {
			return "" // a punch ran on this connection: let it finish
		}
		u.mu.Lock()
		peerNo := u.peerNoDCUtR[c.ID()]
		u.mu.Unlock()
		ready := own
		if peerAt.After(ready) {
			ready = peerAt
		}
		switch {
		case own.After(opened) && now.Sub(ready) >= dcutrSettle && (!peerNo || peerAt.After(opened)):
			return "opened before this host served /libp2p/dcutr"
		case peerNo && peerAt.After(opened) && now.Sub(ready) >= dcutrSettle:
			return "opened before the peer served /libp2p/dcutr"
		case !peerNo && now.Sub(maxTime(opened, own)) >= holePunchGrace:
			return "no hole punch within the grace"
		}
	}
	return ""
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// tracer logs the hole-punch service's events and remembers when each
// peer last had one.
type tracer struct {
	mu   sync.Mutex
	last map[peer.ID]time.Time
	n    map[peer.ID]int
}

func (t *tracer) Trace(e *holepunch.Event) {
	t.mu.Lock()
	if t.last == nil {
		t.last, t.n = map[peer.ID]time.Time{}, map[peer.ID]int{}
	}
	t.last[e.Remote] = time.Unix(0, e.Timestamp)
	t.n[e.Remote]++
	t.mu.Unlock()
	emit("holepunch", "type", e.Type, "remote", e.Remote, "evt", e.Evt)
}

func (t *tracer) lastFrom(p peer.ID) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last[p]
}

func (t *tracer) count(p peer.ID) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n[p]
}

// gater allows everything and logs what each hook sees of relayed
// connections: what jbc's admission (node/admission.go) would see.
type gater struct{}

func (gater) InterceptPeerDial(peer.ID) bool               { return true }
func (gater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }
func (gater) InterceptAccept(c network.ConnMultiaddrs) bool {
	if isCircuit(c.RemoteMultiaddr()) {
		emit("gater-accept", "remote", c.RemoteMultiaddr(), "local", c.LocalMultiaddr(), "public", manet.IsPublicAddr(c.RemoteMultiaddr()))
	}
	return true
}
func (gater) InterceptSecured(d network.Direction, p peer.ID, c network.ConnMultiaddrs) bool {
	if isCircuit(c.RemoteMultiaddr()) {
		emit("gater-secured", "dir", d.String(), "peer", p, "remote", c.RemoteMultiaddr())
	}
	return true
}
func (gater) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	if isCircuit(c.RemoteMultiaddr()) {
		emit("gater-upgraded", "dir", c.Stat().Direction.String(), "peer", c.RemotePeer(), "limited", c.Stat().Limited)
	}
	return true, 0
}
