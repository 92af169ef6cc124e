package discovery

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/discovery"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/peering"
)

// Rendezvous returns the DHT namespace nodes of a network advertise under.
func Rendezvous(id chain.Hash) string { return "jbc/" + id.String() }

// advertiseLoop advertises the network's rendezvous as soon as the routing
// table has its first peer, and again before the advertisement expires;
// on a LAN where mDNS found many peers, only a share of its nodes do (see
// shouldAdvertise).
func (d *Discovery) advertiseLoop(ctx context.Context) {
	rd := drouting.NewRoutingDiscovery(d.dht)
	ns := Rendezvous(d.cfg.Network)
	if d.cfg.MDNS {
		// Let mDNS answer first: the share depends on the LAN's size.
		select {
		case <-ctx.Done():
			return
		case <-time.After(advertiseDecide):
		}
	}
	for {
		for d.dht.RoutingTable().Size() == 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(rtPoll):
			}
		}
		wait := advertiseRetry
		if lan := d.mdnsCandidates(); !shouldAdvertise(lan, rand.Float64()) {
			d.log.Debug("not advertising: enough of this LAN's nodes do", "lan_peers", lan)
			wait = advertiseRecheck
		} else {
			ttl, err := rd.Advertise(ctx, ns)
			d.mu.Lock()
			d.lastAdv, d.advErr = time.Now(), err
			d.mu.Unlock()
			if err != nil {
				d.log.Debug("advertise failed", "err", err)
			} else {
				d.log.Debug("advertised", "namespace", ns, "ttl", ttl)
				wait = ttl * 7 / 10
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// shouldAdvertise decides, with a uniform random number r in [0, 1),
// whether a node whose mDNS found lan peers advertises the rendezvous:
// always on a LAN of up to advertisersPerLAN others, else with a
// probability that makes advertisersPerLAN of the LAN's nodes advertise
// on average. Every advertisement is a lookup that connects to some twenty
// nodes, all of them the same twenty (those closest to the rendezvous
// key): on a LAN of 60 where every node advertised, they were half of all
// the connections opened at start. Peers beyond the LAN need only a few
// of its nodes to find it; its own nodes find each other by mDNS.
func shouldAdvertise(lan int, r float64) bool {
	return lan <= advertisersPerLAN || r < float64(advertisersPerLAN)/float64(lan)
}

// mdnsCandidates counts the candidates mDNS found.
func (d *Discovery) mdnsCandidates() int {
	d.bookMu.Lock()
	defer d.bookMu.Unlock()
	n := 0
	for _, c := range d.book {
		if c.src == peering.SourceMDNS {
			n++
		}
	}
	return n
}

// findLoop looks up peers of the network in the DHT while the node is
// short of chosen peers and has no candidate left to dial, retrying with
// a backoff of seconds while it finds none; and findWarmup times, the
// first no earlier than findWarmupAfter (and up to twice that) after
// start, even with all its peers, so that a node whose LAN filled its
// slots by mDNS still learns of peers beyond its LAN (the dialler gives
// outsidePeers slots to them). Then it looks up nothing while the node
// has its peers: every lookup connects to nodes across the network.
func (d *Discovery) findLoop(ctx context.Context) {
	rd := drouting.NewRoutingDiscovery(d.dht)
	ns := Rendezvous(d.cfg.Network)
	backoff := findMinBackoff
	warmup := findWarmup
	warmAt := time.Now().Add(findWarmupAfter + rand.N(findWarmupAfter))
	for {
		if d.dht.RoutingTable().Size() > 0 && (d.needCandidates() || warmup > 0 && !time.Now().Before(warmAt)) {
			found := 0
			fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			ch, err := rd.FindPeers(fctx, ns, discovery.Limit(findLimit))
			if err == nil {
				for pi := range ch {
					if pi.ID == d.host.ID() || len(pi.Addrs) == 0 {
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
			wait := findSteady
			if found == 0 {
				wait = backoff
				backoff = min(2*backoff, findMaxBackoff)
			} else {
				backoff = findMinBackoff
				if warmup > 0 {
					warmup--
					wait = findWarmupEvery
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(rtPoll):
		}
	}
}
