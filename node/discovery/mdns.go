package discovery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/zeroconf/v2"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/peering"
)

// MDNSServiceName returns the mDNS service name for a network: tied to the
// genesis hash so that nodes of other networks on the same LAN do not find
// (and waste dials on) each other. It is short enough for a DNS-SD label.
func MDNSServiceName(id chain.Hash) string {
	return "_jbc-" + id.String()[:8] + "._udp"
}

// mdnsDomain and mdnsPort: the record's domain, and the port DNS-SD
// requires in it; peers read only the TXT records, which carry our
// multiaddrs (as go-libp2p's mDNS service does, so that jbc nodes of
// either kind find each other).
const (
	mdnsDomain    = "local"
	mdnsPort      = 4001
	dnsaddrPrefix = "dnsaddr="
)

// mdnsRetries are the delays after which, as long as the resolver has found
// nobody since it (re)started, it is restarted: a new query. The resolver
// queries once at start and next only after 4 s, so a node that misses the
// answer to its first query (a reply lost, or sent before our socket
// listened) would wait 4 s; e2e/lan.sh saw this in 2 of 32 runs. On a LAN
// where we are alone the restarts stop after the last delay.
var mdnsRetries = []time.Duration{time.Second, 2 * time.Second}

// mdnsIfacePoll is how often the node looks for a change in its network
// interfaces, and whether its resolver should run (see mdnsLoop). The
// server joins the multicast group, and announces addresses, on the
// interfaces up when it starts; an interface that comes up later (a link
// plugged in, `docker network connect`, a node started before its
// network) is served only by a restart.
const mdnsIfacePoll = 2 * time.Second

// mdnsRequery: a node short of peers with no candidate left to dial
// queries again this often (the resolver's own queries back off to a
// minute): before issue 16 a node redialled the peers it had found every
// 2 to 10 s, which healed a partition; now the candidates are found again.
const mdnsRequery = 10 * time.Second

// mdnsService is our mDNS server (it answers queries with our record) and,
// while the node is short of peers, a resolver (it queries, and offers
// what it finds). go-libp2p's own mDNS service runs both or neither; on a
// LAN of 60 a resolver querying every minute had every node answer and
// every node parse every answer, most of an idle node's CPU.
type mdnsService struct {
	server *zeroconf.Server
	// stopResolver stops the running resolver; nil while none runs.
	stopResolver context.CancelFunc
	resolverAt   time.Time
}

// mdnsRecord returns the TXT records of our mDNS record, and the IPs for
// its A/AAAA records: our listen addresses on the interfaces, without
// loopback and link-local ones. A node with nothing else announces
// nothing (an error).
func (d *Discovery) mdnsRecord() (txts, ips []string, err error) {
	ifaddrs, err := d.host.Network().InterfaceListenAddresses()
	if err != nil {
		return nil, nil, fmt.Errorf("node: mdns: %w", err)
	}
	var ip4, ip6 string
	for _, a := range DialableAddrs(ifaddrs) {
		first, _ := ma.SplitFirst(a)
		if first == nil {
			continue
		}
		switch first.Protocol().Code {
		case ma.P_IP4:
			if ip4 == "" {
				ip4 = first.Value()
			}
		case ma.P_IP6:
			if ip6 == "" {
				ip6 = first.Value()
			}
		default:
			continue
		}
		txts = append(txts, dnsaddrPrefix+a.Encapsulate(ma.StringCast("/p2p/"+d.host.ID().String())).String())
	}
	for _, ip := range []string{ip4, ip6} {
		if ip != "" {
			ips = append(ips, ip)
		}
	}
	if len(ips) == 0 {
		return nil, nil, errors.New("node: mdns: no address beyond loopback to announce")
	}
	return txts, ips, nil
}

// startMDNS starts a new mDNS server in place of the running one, if any,
// and the resolver if the node is short of peers. On an error no server
// runs.
func (d *Discovery) startMDNS(ctx context.Context) error {
	d.mdnsMu.Lock()
	defer d.mdnsMu.Unlock()
	if d.mdnsClosed {
		return nil
	}
	d.stopMDNSLocked()
	txts, ips, err := d.mdnsRecord()
	if err != nil {
		return err
	}
	name := randomName()
	srv, err := zeroconf.RegisterProxy(name, MDNSServiceName(d.cfg.Network), mdnsDomain, mdnsPort, name, ips, txts, nil)
	if err != nil {
		return fmt.Errorf("node: mdns: %w", err)
	}
	d.mdns = &mdnsService{server: srv}
	if d.short() {
		d.startResolverLocked(ctx)
	}
	return nil
}

// stopMDNSLocked stops the server and resolver. d.mdnsMu is held.
func (d *Discovery) stopMDNSLocked() {
	if d.mdns == nil {
		return
	}
	if d.mdns.stopResolver != nil {
		d.mdns.stopResolver()
	}
	d.mdns.server.Shutdown()
	d.mdns = nil
}

// startResolverLocked starts a resolver in place of the running one, if
// any. d.mdnsMu is held and d.mdns is not nil.
func (d *Discovery) startResolverLocked(ctx context.Context) {
	if d.mdns.stopResolver != nil {
		d.mdns.stopResolver()
	}
	rctx, cancel := context.WithCancel(ctx)
	d.mdns.stopResolver, d.mdns.resolverAt = cancel, time.Now()
	entries := make(chan *zeroconf.ServiceEntry, foundQueue)
	service := MDNSServiceName(d.cfg.Network)
	go func() {
		if err := zeroconf.Browse(rctx, service, mdnsDomain, entries); err != nil {
			d.log.Debug("mdns query failed", "err", err)
		}
	}()
	go func() {
		for {
			select {
			case <-rctx.Done():
				return
			case e, ok := <-entries:
				if !ok {
					return
				}
				d.mdnsEntry(e)
			}
		}
	}()
}

// foundQueue bounds mDNS answers received but not yet read.
const foundQueue = 64

// mdnsEntry offers the peer an mDNS answer names.
func (d *Discovery) mdnsEntry(e *zeroconf.ServiceEntry) {
	var addrs []ma.Multiaddr
	for _, t := range e.Text {
		s, ok := strings.CutPrefix(t, dnsaddrPrefix)
		if !ok {
			continue
		}
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			continue
		}
		addrs = append(addrs, a)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil {
		return
	}
	for _, pi := range infos {
		d.HandlePeerFound(pi)
	}
}

// HandlePeerFound offers a peer found by mDNS. It never blocks.
func (d *Discovery) HandlePeerFound(pi peer.AddrInfo) {
	if pi.ID != d.host.ID() {
		d.mdnsFoundAt.Store(time.Now().UnixNano())
	}
	d.offer(pi, peering.SourceMDNS)
}

// mdnsResolve starts the resolver if the node is short of peers and none
// runs, restarts it (a new query) if it has found nobody since it started
// after wait, and stops it once the node has its peers.
func (d *Discovery) mdnsResolve(ctx context.Context, wait time.Duration) {
	d.mdnsMu.Lock()
	defer d.mdnsMu.Unlock()
	if d.mdns == nil || d.mdnsClosed {
		return
	}
	running := d.mdns.stopResolver != nil
	switch short := d.short(); {
	case short && !running:
		d.log.Debug("short of peers: mdns resolver started")
		d.startResolverLocked(ctx)
	case short && wait > 0 && d.mdnsFoundAt.Load() <= d.mdns.resolverAt.UnixNano():
		d.log.Debug("mdns found nobody yet: querying again", "after", wait)
		d.startResolverLocked(ctx)
	case short && time.Since(d.mdns.resolverAt) >= mdnsRequery && d.needCandidates():
		// Nothing left to dial (a partition, peers that left): query
		// now rather than at the resolver's own backoff of up to a
		// minute, so that a healed LAN reconnects within seconds.
		d.log.Debug("short of peers and of candidates: querying again")
		d.startResolverLocked(ctx)
	case !short && running:
		d.log.Debug("peers chosen: mdns resolver stopped")
		d.mdns.stopResolver()
		d.mdns.stopResolver = nil
	}
}

func randomName() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 32+rand.IntN(32))
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return string(b)
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

// mdnsLoop runs the mDNS server, restarts it whenever the multicast
// interfaces change, and runs the resolver while the node is short of
// peers: restarted after each of mdnsRetries while it has found nobody
// since it started. A server that cannot start, as with no multicast
// interface at all, is started when the interfaces change.
func (d *Discovery) mdnsLoop(ctx context.Context) {
	poll := time.NewTicker(mdnsIfacePoll)
	defer poll.Stop()
	retry := time.NewTimer(0)
	retry.Stop()
	var pending []time.Duration
	restarted := func() {
		pending = mdnsRetries
		retry.Reset(pending[0])
	}
	ifaces := multicastInterfaces()
	if err := d.startMDNS(ctx); err != nil {
		d.log.Warn("mdns not started; will start when a network interface comes up", "err", err)
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
			if pending = pending[1:]; len(pending) > 0 {
				retry.Reset(pending[0])
			}
			d.mdnsResolve(ctx, wait)
		case <-poll.C:
			now := multicastInterfaces()
			if now == ifaces {
				d.mdnsResolve(ctx, 0)
				continue
			}
			ifaces = now
			retry.Stop()
			if err := d.startMDNS(ctx); err != nil {
				d.log.Warn("network interfaces changed; mdns not started", "err", err)
				continue
			}
			d.log.Info("network interfaces changed: mdns restarted", "multicast_interfaces", strings.Count(ifaces, "\n"))
			restarted()
		}
	}
}
