package node

import (
	"context"
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/peering"
	"github.com/jbc-project/jbc/protocol"
	"github.com/jbc-project/jbc/storage"
)

// The status exchange: every connected peer is sent our status and asked
// for its own, on connect and every StatusInterval, and soon after our tip
// changes. A status tells whom to sync from; one of another network bans.

// Timing of the node's background work. Each is a trade between how fast
// news spreads and how much chatter idle nodes make.
const (
	// StatusInterval: how often statuses are refreshed with every peer,
	// so tips spread even when a push was missed.
	StatusInterval = 10 * time.Second
	// statusTimeout bounds one status round trip; admission gives an
	// inbound peer as long to send its status (peering.StatusDeadline).
	statusTimeout = 5 * time.Second
	// tipPushDelay gathers tip changes that come in bursts (a synced page,
	// a fast miner) into one status push.
	tipPushDelay = 100 * time.Millisecond
	// wrongNetworkLinger is how long a peer found to be on another network
	// stays connected: the status that told us is handled before its
	// response is written, and the peer's own status request may be in
	// flight, so closing at once can cut both, leaving the peer without
	// the WRONG_NETWORK answer that tells it to ban us. Well within the
	// second allowed for the disconnect.
	wrongNetworkLinger = 200 * time.Millisecond
)

// onConnected records inbound peers and exchanges statuses with every new
// peer, both ways: each side sends its own status request.
func (n *Node) onConnected(c network.Conn) {
	p := c.RemotePeer()
	if n.peers.IsBanned(p) {
		go c.Close()
		return
	}
	// Our own dials record their source before dialling; an outbound
	// connection nobody recorded was opened by the DHT's own queries (or,
	// without a DHT, by whoever holds the host, e.g. a test).
	src := peering.SourceInbound
	if c.Stat().Direction == network.DirOutbound {
		src = peering.SourceDirect
		if n.disc != nil && n.disc.RunsDHT() {
			src = peering.SourceDHT
		}
	}
	n.peers.Found(p, []ma.Multiaddr{c.RemoteMultiaddr()}, src)
	n.peers.SetConnected(p, true)
	n.sync.Reconnected(p)
	if n.ctx == nil || n.ctx.Err() != nil {
		return
	}
	n.adm.Connected(c)
	n.goRun(func(ctx context.Context) { n.exchangeStatus(ctx, p) })
}

// onDisconnected records that a peer is gone once its last connection
// closes. A peer that connected to us and that we never found ourselves is
// forgotten: fresh identities must not grow the peer table.
func (n *Node) onDisconnected(nw network.Network, c network.Conn) {
	p := c.RemotePeer()
	if len(nw.ConnsToPeer(p)) > 0 {
		return // a direct or relayed connection remains
	}
	n.adm.Disconnected(nw, p)
	if pi, ok := n.peers.Get(p); ok && pi.Source == peering.SourceInbound {
		n.peers.Forget(p)
		return
	}
	n.peers.SetConnected(p, false)
}

// requestStatus exchanges statuses with p in the background, unless an
// exchange with p is already under way.
func (n *Node) requestStatus(p peer.ID) {
	if _, busy := n.statusBusy.LoadOrStore(p, struct{}{}); busy {
		return
	}
	n.goRun(func(ctx context.Context) {
		defer n.statusBusy.Delete(p)
		n.exchangeStatus(ctx, p)
	})
}

// exchangeStatus sends our status to p and records theirs.
func (n *Node) exchangeStatus(ctx context.Context, p peer.ID) {
	// Over the connection we have, never a new one: a peer whose
	// connection closed meanwhile (trimmed, evicted) is not dialled back
	// for a status.
	ctx, cancel := context.WithTimeout(network.WithNoDial(ctx, "status"), statusTimeout)
	defer cancel()
	// A peer reached only through a relay (its hole punch not done, or
	// failed) still exchanges statuses: a few hundred bytes, well within
	// the relay's limits, and what admission asks of an inbound peer.
	ctx = network.WithAllowLimitedConn(ctx, "jbc status")
	st, err := n.client.Status(ctx, p)
	if err != nil && !errors.Is(err, protocol.ErrWrongNetwork) {
		n.log.Debug("status failed", "peer", p, "err", err)
		return
	}
	n.onStatus(p, st)
}

// onStatus handles a status from p, whether it asked us or we asked it. A
// peer on another network is disconnected and banned; a peer claiming more
// work than we have wakes the syncer.
func (n *Node) onStatus(p peer.ID, st protocol.Status) {
	if st.Genesis != n.store.Params().ID() {
		if !n.peers.IsBanned(p) {
			n.log.Info("peer is on another network; disconnecting", "peer", p, "genesis", st.Genesis.Short(), "agent", st.Agent)
		}
		n.peers.Ban(p, "on another network (genesis "+st.Genesis.Short()+")")
		time.AfterFunc(wrongNetworkLinger, func() { _ = n.host.Network().ClosePeer(p) })
		return
	}
	n.peers.SetStatus(p, st)
	n.adm.Proven(p)
	if st.Keep {
		n.adm.Kept(p)
	}
	tip := n.store.Tip()
	if st.Work != nil && st.Work.Cmp(tip.Work) > 0 {
		n.sync.Kick()
	}
}

// statusLoop refreshes statuses with every connected peer periodically,
// and pushes ours soon after a tip change that gossip did not announce
// (pushTips), to the peers whose last status has less work than our tip.
func (n *Node) statusLoop(ctx context.Context) {
	t := time.NewTicker(StatusInterval)
	defer t.Stop()
	for {
		tipCh := n.pushTips.Wait()
		push := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-tipCh:
			push = true
			select {
			case <-ctx.Done():
				return
			case <-time.After(tipPushDelay):
			}
		}
		work := n.store.Tip().Work
		now := time.Now()
		for _, p := range n.host.Network().Peers() {
			pi, ok := n.peers.Get(p)
			switch {
			case push && ok && pi.Status != nil && pi.Status.Work != nil && pi.Status.Work.Cmp(work) >= 0:
				continue
			case !push && ok && freshStatus(pi.StatusAt, now):
				continue
			}
			n.requestStatus(p)
		}
	}
}

// freshStatus reports whether a status received at at, asked by us or by
// the peer, is fresh enough at now that the periodic refresh skips the
// peer. One exchange tells both sides each other's status, so of two
// peers refreshing each other every StatusInterval one asks and the other,
// having just answered, does not: half the exchanges of both asking, and
// no status older than StatusInterval.
func freshStatus(at, now time.Time) bool {
	return !at.IsZero() && now.Sub(at) < StatusInterval/2
}

// addBlocks stores blocks fetched by sync; see addBlocksVia.
func (n *Node) addBlocks(blocks []chain.Block) (storage.Result, error) {
	return n.addBlocksVia(viaSync, blocks)
}
