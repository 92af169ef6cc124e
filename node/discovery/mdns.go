package discovery

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/peering"
)

// MDNSServiceName returns the mDNS service name for a network: tied to the
// genesis hash so that nodes of other networks on the same LAN do not find
// (and waste dials on) each other. It is short enough for a DNS-SD label.
func MDNSServiceName(id chain.Hash) string {
	return "_jbc-" + id.String()[:8] + "._udp"
}

// HandlePeerFound implements mdns.Notifee. It never blocks: the mDNS
// library calls it from its resolver goroutine.
func (d *Discovery) HandlePeerFound(pi peer.AddrInfo) {
	if pi.ID != d.host.ID() {
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
func (d *Discovery) startMDNS() error {
	d.mdnsMu.Lock()
	defer d.mdnsMu.Unlock()
	if d.mdnsClosed {
		return nil
	}
	if d.mdns != nil {
		d.mdns.Close()
		d.mdns = nil
	}
	svc := mdns.NewMdnsService(d.host, MDNSServiceName(d.cfg.Network), d)
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
func (d *Discovery) mdnsLoop(ctx context.Context) {
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
			if pending = pending[1:]; d.mdnsFoundAt.Load() > since.UnixNano() {
				pending = nil
				continue
			}
			d.log.Debug("mdns found nobody yet: querying again", "after", wait)
			if err := d.startMDNS(); err != nil {
				d.log.Warn("mdns restart failed", "err", err)
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
				d.log.Warn("network interfaces changed; mdns not started", "err", err)
				continue
			}
			d.log.Info("network interfaces changed: mdns restarted", "multicast_interfaces", strings.Count(ifaces, "\n"))
			restarted()
		}
	}
}
