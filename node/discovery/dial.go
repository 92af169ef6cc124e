package discovery

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jbc-project/jbc/node/peering"
)

// dialLoop connects to found peers, one goroutine per dial.
func (d *Discovery) dialLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case fp := <-d.found:
			if d.peers.IsBanned(fp.info.ID) {
				continue
			}
			d.peers.Found(fp.info.ID, fp.info.Addrs, fp.src)
			if d.host.Network().Connectedness(fp.info.ID) == network.Connected {
				continue
			}
			d.cfg.Go(func(ctx context.Context) {
				dctx, cancel := context.WithTimeout(ctx, dialTimeout)
				defer cancel()
				if err := d.host.Connect(dctx, fp.info); err != nil {
					d.dialFailed(fp.info.ID, fp.src, err)
					if fp.src == peering.SourceDHT {
						d.peers.Forget(fp.info.ID)
					}
					return
				}
				d.log.Info("peer found", "peer", fp.info.ID, "source", fp.src)
			})
		}
	}
}

// dialFailed records a failed dial of p, found by src. The first real
// failure of a peer the operator named (--bootstrap, --peer) since it was
// last connected is logged at info with its cause, since the node may
// otherwise seem to just wait; the retries that follow log at debug.
func (d *Discovery) dialFailed(p peer.ID, src peering.Source, err error) {
	if d.ctx != nil && d.ctx.Err() != nil {
		return // shutting down: our own cancellation, not the peer's fault
	}
	first := d.peers.DialFailed(p, err)
	if first && (src == peering.SourceBootstrap || src == peering.SourceDirect) {
		retry := "every " + directRedial.String()
		if src == peering.SourceBootstrap {
			retry = "from " + redialMin.String() + " to every " + redialMax.String()
		}
		d.log.Info("cannot reach "+string(src)+" peer; retrying quietly", "peer", p, "err", peering.DialCause(err), "retry", retry)
		return
	}
	d.log.Debug("dial failed", "peer", p, "source", src, "err", err)
}

// keep dials a --peer and dials it again whenever the connection drops.
func (d *Discovery) keep(ctx context.Context, pi peer.AddrInfo) {
	failing := false
	for {
		if d.host.Network().Connectedness(pi.ID) != network.Connected && !d.peers.IsBanned(pi.ID) {
			dctx, cancel := context.WithTimeout(network.WithForceDirectDial(ctx, "keep --peer"), dialTimeout)
			err := d.host.Connect(dctx, pi)
			cancel()
			switch {
			case err != nil:
				d.dialFailed(pi.ID, peering.SourceDirect, err)
				failing = true
			case failing:
				d.log.Info("direct peer reached", "peer", pi.ID)
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

// redialLoop dials known peers that are not connected, with backoff.
func (d *Discovery) redialLoop(ctx context.Context) {
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
		for _, pi := range d.peers.List() {
			switch pi.Source {
			case peering.SourceMDNS, peering.SourceDHT, peering.SourceBootstrap:
			default:
				continue // inbound peers dial us; --peer ones have keep
			}
			if d.host.Network().Connectedness(pi.ID) == network.Connected {
				delete(state, pi.ID)
				continue
			}
			a, ok := state[pi.ID]
			if !ok {
				a = &attempt{next: now.Add(redialMin), since: now, wait: redialMin}
				state[pi.ID] = a
				continue
			}
			if a.dialling || now.Before(a.next) || d.peers.IsBanned(pi.ID) {
				continue
			}
			if now.Sub(a.since) > redialForget {
				d.peers.Forget(pi.ID)
				delete(state, pi.ID)
				continue
			}
			a.dialling = true
			info, src := peer.AddrInfo{ID: pi.ID, Addrs: pi.Addrs}, pi.Source
			d.cfg.Go(func(ctx context.Context) {
				// Our own backoff paces these dials; the swarm's (up to
				// minutes after failures during a partition) must not
				// refuse them once the network is back.
				dctx, cancel := context.WithTimeout(network.WithForceDirectDial(ctx, "redial"), dialTimeout)
				err := d.host.Connect(dctx, info)
				cancel()
				mu.Lock()
				defer mu.Unlock()
				a.dialling = false
				if err == nil {
					d.log.Info("peer reconnected", "peer", info.ID)
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
