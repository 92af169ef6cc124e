package discovery

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/discovery"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/peering"
)

// Rendezvous returns the DHT namespace nodes of a network advertise under.
func Rendezvous(id chain.Hash) string { return "jbc/" + id.String() }

// advertiseLoop advertises the network's rendezvous as soon as the routing
// table has its first peer, and again before the advertisement expires.
func (d *Discovery) advertiseLoop(ctx context.Context) {
	rd := drouting.NewRoutingDiscovery(d.dht)
	ns := Rendezvous(d.cfg.Network)
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
			d.log.Debug("advertise failed", "err", err)
		} else {
			d.log.Debug("advertised", "namespace", ns, "ttl", ttl)
			wait = ttl * 7 / 10
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// findLoop looks up peers of the network in the DHT while the node is
// short of chosen peers and has no candidate left to dial, retrying with a backoff of seconds while it finds
// none; and findWarmup times after its first lookup that found peers, even
// with all its peers, so that a node whose LAN filled its slots by mDNS
// still learns of peers beyond its LAN (the dialler gives outsidePeers
// slots to them). Then it looks up nothing while the node has its peers:
// every lookup connects to nodes across the network.
func (d *Discovery) findLoop(ctx context.Context) {
	rd := drouting.NewRoutingDiscovery(d.dht)
	ns := Rendezvous(d.cfg.Network)
	backoff := findMinBackoff
	warmup := findWarmup
	for {
		if d.dht.RoutingTable().Size() > 0 && (d.needCandidates() || warmup > 0) {
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
