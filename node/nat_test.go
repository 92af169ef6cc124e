package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/api"
	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/node/nat"
	"github.com/jbc-project/jbc/node/p2p"
)

// loopbackHost is a real libp2p host on a loopback TCP port.
func loopbackHost(t *testing.T, opts ...libp2p.Option) host.Host {
	t.Helper()
	h, err := libp2p.New(append([]libp2p.Option{libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport), libp2p.DisableMetrics()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestRelayedPeer connects B to A only through a circuit relay with jbc's
// relay limits (on loopback, where nothing can be hole-punched): the two
// exchange statuses over the limited connection (else admission would
// close B at its status deadline, and neither would hear of the other's
// tip), GET /peers on both says the connection is relayed and through
// whom, B does not sync A's chain through the relay, and B's doctor says
// why it holds no direct connection.
func TestRelayedPeer(t *testing.T) {
	p := chain.TestNet()
	sa, sb := nodetest.NewStore(t, p), nodetest.NewStore(t, p)
	nodetest.Extend(t, sa, 0, 20, "a")

	r := loopbackHost(t, libp2p.EnableRelay())
	svc, err := relay.New(r, relay.WithResources(p2p.RelayResources()))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	rInfo := peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}

	a := startNodeWith(t, Config{Store: sa, Host: loopbackHost(t, libp2p.EnableRelay())})
	b := startNodeWith(t, Config{Store: sb, Host: loopbackHost(t, libp2p.EnableRelay())})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Host().Connect(ctx, rInfo); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(ctx, a.Host(), rInfo); err != nil {
		t.Fatalf("reserve on the relay: %v", err)
	}
	circuit := ma.StringCast("/p2p/" + r.ID().String() + "/p2p-circuit")
	var via []ma.Multiaddr
	for _, ra := range r.Addrs() {
		via = append(via, ra.Encapsulate(circuit))
	}
	if err := b.Host().Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: via}); err != nil {
		t.Fatalf("connect through the relay: %v", err)
	}

	nodetest.WaitFor(t, 5*time.Second, "B to get A's status through the relay", func() bool {
		pi, ok := b.peers.Get(a.ID())
		return ok && pi.Status != nil && pi.Status.Height == sa.Tip().Height
	})
	nodetest.WaitFor(t, 5*time.Second, "A to get B's status through the relay", func() bool {
		pi, ok := a.peers.Get(b.ID())
		return ok && pi.Status != nil
	})
	checkConn := func(from *Node, to peer.ID, made string) {
		t.Helper()
		var pj *api.PeerJSON
		for _, x := range from.Peers() {
			if x.ID == to.String() {
				pj = &x
			}
		}
		if pj == nil || !pj.Connected || len(pj.Connections) != 1 {
			t.Fatalf("GET /peers of %s: %+v, want one connection", to, pj)
		}
		c := pj.Connections[0]
		if c.Link != "relayed" || c.Made != made || c.Via != r.ID().String() {
			t.Errorf("connection to %s: %+v, want relayed, made %s, via %s", to, c, made, r.ID())
		}
	}
	checkConn(b, a.ID(), nat.MadeRelay)
	checkConn(a, b.ID(), nat.MadeRelay)

	// A relay carries at most 128 KiB each way: blocks are not synced
	// through it (a sync that tries waits, stalled, for a direct
	// connection). The syncer looks every second.
	time.Sleep(1500 * time.Millisecond)
	if pi, _ := b.peers.Get(a.ID()); pi.LastSync != nil || sb.Tip().Height != 0 || b.Status().Syncing {
		t.Errorf("B syncs from A through the relay: height %d, syncing %v, last sync %+v", sb.Tip().Height, b.Status().Syncing, pi.LastSync)
	}
	// Still connected past admission's status deadline? Checked above by
	// the status; the doctor says why there is no direct connection.
	rep := b.Doctor(ctx)
	found := false
	for _, pr := range rep.Problems {
		if strings.Contains(pr.Problem, a.ID().String()+" is reached only through a relay") {
			found = true
		}
	}
	if !found {
		t.Errorf("B's doctor does not say A is reached only through a relay: %+v", rep.Problems)
	}
}
