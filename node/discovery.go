package node

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/p2p"
	"github.com/jbc-project/jbc/node/peering"
)

// Discovery timing.
const (
	// foundQueue bounds peers found but not yet dialled; more are dropped
	// (they will be found again) rather than blocking mDNS or the DHT.
	foundQueue = 64
	// findMinBackoff and findMaxBackoff bound the retry delay of DHT peer
	// lookups: seconds, not the library's fixed minutes, so a node that
	// starts before its peers advertise still finds them quickly.
	findMinBackoff = time.Second
	findMaxBackoff = 30 * time.Second
	// findSteady is the lookup period once peers have been found.
	findSteady = time.Minute
	// advertiseRetry is the delay between advertise attempts that failed
	// (typically: routing table still empty).
	advertiseRetry = 2 * time.Second
	// rtPoll is how often an empty routing table is checked for its first
	// peer, so that the first advertisement follows within this delay.
	rtPoll = 200 * time.Millisecond
	// Redialling peers found earlier (by mDNS, the DHT or bootstrap) once
	// their connection drops: mDNS reports a peer only once per record
	// lifetime (an hour), so without this a partition healed only when a
	// DHT lookup happened to find the peer again. Attempts back off from
	// redialMin to redialMax; a peer unreachable for redialForget is
	// forgotten until it is found again.
	redialTick   = time.Second
	redialMin    = 2 * time.Second
	redialMax    = 10 * time.Second
	redialForget = 15 * time.Minute
)

// MDNSServiceName returns the mDNS service name for a network: tied to the
// genesis hash so that nodes of other networks on the same LAN do not find
// (and waste dials on) each other. It is short enough for a DNS-SD label.
func MDNSServiceName(id chain.Hash) string {
	return "_jbc-" + id.String()[:8] + "._udp"
}

// Rendezvous returns the DHT namespace nodes of a network advertise under.
func Rendezvous(id chain.Hash) string { return "jbc/" + id.String() }

// discovery finds peers by mDNS, the DHT, bootstrap and direct addresses,
// and dials them.
type discovery struct {
	n     *Node
	found chan foundPeer
	// mdns is the running mDNS service, replaced by a restart (see
	// mdnsLoop), or nil while none runs; mdnsFoundAt is when it last
	// found a peer, in Unix nanoseconds.
	mdnsMu      sync.Mutex
	mdns        interface{ Close() error }
	mdnsClosed  bool // by close: no more restarts
	mdnsFoundAt atomic.Int64
	dht         *dht.IpfsDHT
	boot        []peer.AddrInfo
	direct      []peer.AddrInfo
	prefix      string

	mu        sync.Mutex // guards the results below, for doctor
	lastAdv   time.Time
	advErr    error
	lastFind  time.Time
	lastFound int
	findErr   error
}

type foundPeer struct {
	info peer.AddrInfo
	src  peering.Source
}

func newDiscovery(n *Node) (*discovery, error) {
	d := &discovery{n: n, found: make(chan foundPeer, foundQueue)}
	var err error
	if d.boot, err = p2p.ParsePeerAddrs(n.cfg.Bootstrap); err != nil {
		return nil, fmt.Errorf("--bootstrap: %w", err)
	}
	if d.direct, err = p2p.ParsePeerAddrs(n.cfg.Peers); err != nil {
		return nil, fmt.Errorf("--peer: %w", err)
	}
	if n.cfg.DHT {
		prefix := n.cfg.DHTPrefix
		if prefix == "" {
			prefix = p2p.DefaultDHTPrefix
		}
		d.prefix = prefix
		mode := dht.ModeServer
		if n.cfg.DHTClient {
			mode = dht.ModeClient
		}
		d.dht, err = dht.New(n.host,
			dht.Mode(mode),
			dht.ProtocolPrefix(libp2pproto.ID(prefix)),
			dht.BootstrapPeers(d.boot...),
		)
		if err != nil {
			return nil, fmt.Errorf("node: dht: %w", err)
		}
	}
	return d, nil
}

// HandlePeerFound implements mdns.Notifee. It never blocks: the mDNS
// library calls it from its resolver goroutine.
func (d *discovery) HandlePeerFound(pi peer.AddrInfo) {
	if pi.ID != d.n.host.ID() {
		d.mdnsFoundAt.Store(time.Now().UnixNano())
	}
	d.offer(pi, peering.SourceMDNS)
}

// mdnsRetries are the delays after which, as long as mDNS has found nobody
// since it (re)started, its service is restarted: a new query and a new
// announcement. The mDNS library queries once at start and next only after
// 4 s, so a node that misses the answer to its first query (a reply lost,
// or sent before our socket listened) would wait 4 s; e2e/lan.sh saw this
// in 2 of 32 runs. On a LAN where we are alone the restarts stop after the
// last delay.
var mdnsRetries = []time.Duration{time.Second, 2 * time.Second}

// mdnsIfacePoll is how often the node looks for a change in its network
// interfaces. The mDNS library joins the multicast group, and announces
// addresses, on the interfaces up when it starts; an interface that comes
// up later (a link plugged in, `docker network connect`, a node started
// before its network) is served only by a restart.
const mdnsIfacePoll = 2 * time.Second

// startMDNS starts a new mDNS service in place of the running one, if any.
// On an error no service runs.
func (d *discovery) startMDNS() error {
	d.mdnsMu.Lock()
	defer d.mdnsMu.Unlock()
	if d.mdnsClosed {
		return nil
	}
	if d.mdns != nil {
		d.mdns.Close()
		d.mdns = nil
	}
	svc := mdns.NewMdnsService(d.n.host, MDNSServiceName(d.n.store.Params().ID()), d)
	if err := svc.Start(); err != nil {
		return fmt.Errorf("node: mdns: %w", err)
	}
	d.mdns = svc
	return nil
}

// multicastInterfaces describes the interfaces mDNS can serve peers on, as
// mdnsAddrs picks them, with their addresses: a change in it calls for an
// mDNS restart.
func multicastInterfaces() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, ifi := range ifs {
		addrs, _ := ifi.Addrs()
		if use := mdnsAddrs(ifi.Flags, addrs); len(use) > 0 {
			fmt.Fprintf(&b, "%d %s %s\n", ifi.Index, ifi.Name, strings.Join(use, " "))
		}
	}
	return b.String()
}

// mdnsAddrs returns the addresses of an interface that make it one to
// serve peers on by mDNS: none unless it is up and multicast-capable, and
// of its addresses the IPv4 ones and the IPv6 ones beyond link-local. An
// interface with only an IPv6 link-local address, like the host side of
// every container's veth pair on a docker host, offers no address a peer
// would dial, so its coming and going does not restart mDNS.
func mdnsAddrs(flags net.Flags, addrs []net.Addr) []string {
	if flags&net.FlagUp == 0 || flags&net.FlagMulticast == 0 {
		return nil
	}
	var out []string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || (ipn.IP.To4() == nil && ipn.IP.IsLinkLocalUnicast()) {
			continue
		}
		out = append(out, ipn.String())
	}
	return out
}

// mdnsLoop starts mDNS and keeps it running: it restarts the service after
// each of mdnsRetries while it has found nobody since it (re)started, and
// whenever the multicast interfaces change (then with the retries again). A
// service that cannot start, as with no multicast interface at all, is
// started when the interfaces change.
func (d *discovery) mdnsLoop(ctx context.Context) {
	poll := time.NewTicker(mdnsIfacePoll)
	defer poll.Stop()
	retry := time.NewTimer(0)
	retry.Stop()
	var (
		since   time.Time // of the last (re)start
		pending []time.Duration
	)
	restarted := func() {
		since = time.Now()
		pending = mdnsRetries
		retry.Reset(pending[0])
	}
	// With no multicast interface yet mDNS cannot start; the node runs,
	// and starts it when an interface comes up.
	ifaces := multicastInterfaces()
	if err := d.startMDNS(); err != nil {
		d.n.log.Warn("mdns not started; will start when a network interface comes up", "err", err)
	} else {
		restarted()
	}
	for {
		select {
		case <-ctx.Done():
			retry.Stop()
			return
		case <-retry.C:
			wait := pending[0]
			if pending = pending[1:]; d.mdnsFoundAt.Load() > since.UnixNano() {
				pending = nil
				continue
			}
			d.n.log.Debug("mdns found nobody yet: querying again", "after", wait)
			if err := d.startMDNS(); err != nil {
				d.n.log.Warn("mdns restart failed", "err", err)
				continue
			}
			if len(pending) > 0 {
				retry.Reset(pending[0])
			}
		case <-poll.C:
			now := multicastInterfaces()
			if now == ifaces {
				continue
			}
			ifaces = now
			retry.Stop()
			if err := d.startMDNS(); err != nil {
				d.n.log.Warn("network interfaces changed; mdns not started", "err", err)
				continue
			}
			d.n.log.Info("network interfaces changed: mdns restarted", "multicast_interfaces", strings.Count(ifaces, "\n"))
			restarted()
		}
	}
}

func (d *discovery) offer(pi peer.AddrInfo, src peering.Source) {
	if pi.ID == d.n.host.ID() {
		return
	}
	select {
	case d.found <- foundPeer{pi, src}:
	default:
	}
}

func (d *discovery) start(ctx context.Context) error {
	d.n.goRun(d.dialLoop)
	d.n.goRun(d.redialLoop)
	if d.n.cfg.MDNS {
		d.n.goRun(d.mdnsLoop)
	}
	// Record sources before anything dials: the DHT may reach a bootstrap
	// peer before our own dial does.
	for _, pi := range d.boot {
		d.n.peers.Found(pi.ID, pi.Addrs, peering.SourceBootstrap)
		d.n.host.ConnManager().Protect(pi.ID, peering.TagConfigured)
		d.offer(pi, peering.SourceBootstrap)
	}
	for _, pi := range d.direct {
		d.n.peers.Found(pi.ID, pi.Addrs, peering.SourceDirect)
		d.n.host.ConnManager().Protect(pi.ID, peering.TagConfigured)
		d.n.goRun(func(ctx context.Context) { d.keep(ctx, pi) })
	}
	if d.dht != nil {
		if err := d.dht.Bootstrap(ctx); err != nil {
			return fmt.Errorf("node: dht bootstrap: %w", err)
		}
		d.n.goRun(d.advertiseLoop)
		d.n.goRun(d.findLoop)
	}
	return nil
}

func (d *discovery) close() {
	d.mdnsMu.Lock()
	d.mdnsClosed = true
	if d.mdns != nil {
		d.mdns.Close()
		d.mdns = nil
	}
	d.mdnsMu.Unlock()
	if d.dht != nil {
		d.dht.Close()
	}
}

// dialLoop connects to found peers, one goroutine per dial.
func (d *discovery) dialLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case fp := <-d.found:
			if d.n.peers.IsBanned(fp.info.ID) {
				continue
			}
			d.n.peers.Found(fp.info.ID, fp.info.Addrs, fp.src)
			if d.n.host.Network().Connectedness(fp.info.ID) == network.Connected {
				continue
			}
			d.n.goRun(func(ctx context.Context) {
				dctx, cancel := context.WithTimeout(ctx, dialTimeout)
				defer cancel()
				if err := d.n.host.Connect(dctx, fp.info); err != nil {
					d.dialFailed(fp.info.ID, fp.src, err)
					if fp.src == peering.SourceDHT {
						d.n.peers.Forget(fp.info.ID)
					}
					return
				}
				d.n.log.Info("peer found", "peer", fp.info.ID, "source", fp.src)
			})
		}
	}
}

// dialFailed records a failed dial of p, found by src. The first real
// failure of a peer the operator named (--bootstrap, --peer) since it was
// last connected is logged at info with its cause, since the node may
// otherwise seem to just wait; the retries that follow log at debug.
func (d *discovery) dialFailed(p peer.ID, src peering.Source, err error) {
	if d.n.ctx != nil && d.n.ctx.Err() != nil {
		return // shutting down: our own cancellation, not the peer's fault
	}
	first := d.n.peers.DialFailed(p, err)
	if first && (src == peering.SourceBootstrap || src == peering.SourceDirect) {
		retry := "every " + directRedial.String()
		if src == peering.SourceBootstrap {
			retry = "from " + redialMin.String() + " to every " + redialMax.String()
		}
		d.n.log.Info("cannot reach "+string(src)+" peer; retrying quietly", "peer", p, "err", peering.DialCause(err), "retry", retry)
		return
	}
	d.n.log.Debug("dial failed", "peer", p, "source", src, "err", err)
}

// keep dials a --peer and dials it again whenever the connection drops.
func (d *discovery) keep(ctx context.Context, pi peer.AddrInfo) {
	failing := false
	for {
		if d.n.host.Network().Connectedness(pi.ID) != network.Connected && !d.n.peers.IsBanned(pi.ID) {
			dctx, cancel := context.WithTimeout(network.WithForceDirectDial(ctx, "keep --peer"), dialTimeout)
			err := d.n.host.Connect(dctx, pi)
			cancel()
			switch {
			case err != nil:
				d.dialFailed(pi.ID, peering.SourceDirect, err)
				failing = true
			case failing:
				d.n.log.Info("direct peer reached", "peer", pi.ID)
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

// advertiseLoop advertises the network's rendezvous as soon as the routing
// table has its first peer, and again before the advertisement expires.
func (d *discovery) advertiseLoop(ctx context.Context) {
	rd := drouting.NewRoutingDiscovery(d.dht)
	ns := Rendezvous(d.n.store.Params().ID())
	for {
		for d.dht.RoutingTable().Size() == 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(rtPoll):
			}
		}
		ttl, err := rd.Advertise(ctx, ns)
		d.mu.Lock()
		d.lastAdv, d.advErr = time.Now(), err
		d.mu.Unlock()
		wait := advertiseRetry
		if err != nil {
			d.n.log.Debug("advertise failed", "err", err)
		} else {
			d.n.log.Debug("advertised", "namespace", ns, "ttl", ttl)
			wait = ttl * 7 / 10
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// findLoop looks up peers of the network in the DHT, retrying with a
// backoff of seconds while it finds none.
func (d *discovery) findLoop(ctx context.Context) {
	rd := drouting.NewRoutingDiscovery(d.dht)
	ns := Rendezvous(d.n.store.Params().ID())
	backoff := findMinBackoff
	for {
		found := 0
		if d.dht.RoutingTable().Size() > 0 {
			fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			ch, err := rd.FindPeers(fctx, ns)
			if err == nil {
				for pi := range ch {
					if pi.ID == d.n.host.ID() || len(pi.Addrs) == 0 {
						continue
					}
					found++
					d.offer(pi, peering.SourceDHT)
				}
			}
			cancel()
			d.mu.Lock()
			d.lastFind, d.lastFound, d.findErr = time.Now(), found, err
			d.mu.Unlock()
		}
		wait := findSteady
		if found == 0 {
			wait = backoff
			backoff = min(2*backoff, findMaxBackoff)
		} else {
			backoff = findMinBackoff
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// redialLoop dials known peers that are not connected, with backoff.
func (d *discovery) redialLoop(ctx context.Context) {
	type attempt struct {
		next, since time.Time
		wait        time.Duration
		dialling    bool
	}
	var (
		mu    sync.Mutex
		state = map[peer.ID]*attempt{}
	)
	t := time.NewTicker(redialTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		mu.Lock()
		for _, pi := range d.n.peers.List() {
			switch pi.Source {
			case peering.SourceMDNS, peering.SourceDHT, peering.SourceBootstrap:
			default:
				continue // inbound peers dial us; --peer ones have keep
			}
			if d.n.host.Network().Connectedness(pi.ID) == network.Connected {
				delete(state, pi.ID)
				continue
			}
			a, ok := state[pi.ID]
			if !ok {
				a = &attempt{next: now.Add(redialMin), since: now, wait: redialMin}
				state[pi.ID] = a
				continue
			}
			if a.dialling || now.Before(a.next) || d.n.peers.IsBanned(pi.ID) {
				continue
			}
			if now.Sub(a.since) > redialForget {
				d.n.peers.Forget(pi.ID)
				delete(state, pi.ID)
				continue
			}
			a.dialling = true
			info, src := peer.AddrInfo{ID: pi.ID, Addrs: pi.Addrs}, pi.Source
			d.n.goRun(func(ctx context.Context) {
				// Our own backoff paces these dials; the swarm's (up to
				// minutes after failures during a partition) must not
				// refuse them once the network is back.
				dctx, cancel := context.WithTimeout(network.WithForceDirectDial(ctx, "redial"), dialTimeout)
				err := d.n.host.Connect(dctx, info)
				cancel()
				mu.Lock()
				defer mu.Unlock()
				a.dialling = false
				if err == nil {
					d.n.log.Info("peer reconnected", "peer", info.ID)
					delete(state, info.ID)
					return
				}
				d.dialFailed(info.ID, src, err)
				a.wait = min(2*a.wait, redialMax)
				a.next = time.Now().Add(a.wait)
			})
		}
		mu.Unlock()
	}
}
