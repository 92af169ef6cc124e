package discovery

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	p2pconnmgr "github.com/libp2p/go-libp2p/p2p/net/connmgr"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/node/peering"
)

// withConnManager is a host with the given connection manager.
type withConnManager struct {
	host.Host
	cm connmgr.ConnManager
}

func (h withConnManager) ConnManager() connmgr.ConnManager { return h.cm }

// crowd returns a mocknet of n hosts, all linked, and a running Discovery
// for the first; the others are its candidates.
func crowd(t *testing.T, n int) (*Discovery, []host.Host) {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	hosts := make([]host.Host, n)
	for i := range hosts {
		h, err := mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		hosts[i] = h
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	// mocknet's hosts have no connection manager; the node's has one.
	cm, err := p2pconnmgr.NewConnManager(100, 200)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cm.Close() })
	hosts[0] = withConnManager{hosts[0], cm}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	d, err := New(Config{Host: hosts[0], Peers: peering.NewSet(), Logger: nodetest.Logger(t),
		Go: func(f func(context.Context)) { wg.Add(1); go func() { defer wg.Done(); f(ctx) }() }})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return d, hosts
}

func infoOf(h host.Host) peer.AddrInfo { return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()} }

// TestDiallerChoosesOutboundPeers: of 20 peers found at once the node
// dials OutboundPeers, not all of them, and when one drops it dials a
// replacement, not the same peer at once.
func TestDiallerChoosesOutboundPeers(t *testing.T) {
	d, hosts := crowd(t, 21)
	for _, h := range hosts[1:] {
		d.offer(infoOf(h), peering.SourceDHT)
	}
	me := hosts[0].Network()
	nodetest.WaitFor(t, 10*time.Second, "8 chosen peers connected", func() bool {
		return len(me.Peers()) == OutboundPeers && d.ChosenCount() == OutboundPeers
	})
	time.Sleep(2 * dialTick) // the dialler runs again: no more dials
	if got := len(me.Peers()); got != OutboundPeers {
		t.Fatalf("connected to %d peers, want the %d chosen", got, OutboundPeers)
	}
	for _, p := range me.Peers() {
		if !d.Chosen(p) {
			t.Errorf("connected to %s, which is not chosen", p)
		}
	}

	dropped := me.Peers()[0]
	if err := me.ClosePeer(dropped); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitFor(t, 10*time.Second, "a replacement for the dropped peer", func() bool {
		return len(me.Peers()) == OutboundPeers && d.ChosenCount() == OutboundPeers
	})
	if d.Chosen(dropped) {
		t.Errorf("the dropped peer was dialled again at once; want a replacement while it is backed off")
	}
}

// TestDiallerTieBreak: of two nodes that find each other by mDNS, the one
// with the smaller peer ID dials at once; the other waits, and dials only
// if the pair is still not connected.
func TestDiallerTieBreak(t *testing.T) {
	d, hosts := crowd(t, 3)
	var smaller, larger host.Host
	for _, h := range hosts[1:] {
		if h.ID() < hosts[0].ID() {
			smaller = h
		} else {
			larger = h
		}
	}
	if larger != nil {
		d.offer(infoOf(larger), peering.SourceMDNS)
		nodetest.WaitFor(t, tieWaitMin, "a dial of the peer with the larger ID", func() bool { return d.Chosen(larger.ID()) })
	}
	if smaller != nil {
		d.offer(infoOf(smaller), peering.SourceMDNS)
		time.Sleep(tieWaitMin / 2)
		if d.Chosen(smaller.ID()) {
			t.Fatalf("dialled the peer with the smaller ID without waiting for it to dial us")
		}
		nodetest.WaitFor(t, 2*tieWaitMax, "a dial of the peer with the smaller ID after the wait", func() bool { return d.Chosen(smaller.ID()) })
	}
}

// TestDialableAddrs: loopback, unspecified and IPv6 link-local addresses
// of a found peer are dropped.
func TestDialableAddrs(t *testing.T) {
	in := []ma.Multiaddr{
		ma.StringCast("/ip4/127.0.0.1/tcp/4747"),
		ma.StringCast("/ip6/::1/udp/4747/quic-v1"),
		ma.StringCast("/ip4/0.0.0.0/tcp/4747"),
		ma.StringCast("/ip6/fe80::1/tcp/4747"),
		ma.StringCast("/ip4/10.77.1.3/tcp/4747"),
		ma.StringCast("/ip6/2001:2::5/udp/4747/quic-v1"),
	}
	got := DialableAddrs(in)
	if len(got) != 2 || !got[0].Equal(in[4]) || !got[1].Equal(in[5]) {
		t.Errorf("DialableAddrs = %v, want the LAN addresses only", got)
	}
}

// TestTrimTransient: a connection we opened to a peer that neither we
// chose nor chose us (a DHT query's) is closed once transientGrace old;
// one to a chosen peer, or to a peer whose status said keep, is not.
func TestTrimTransient(t *testing.T) {
	d, hosts := crowd(t, 5)
	chosen, kept, transient, relay := hosts[1], hosts[2], hosts[3], hosts[4]
	d.offer(infoOf(chosen), peering.SourceDHT)
	nodetest.WaitFor(t, 10*time.Second, "the chosen peer connected", func() bool { return d.ChosenCount() == 1 && len(hosts[0].Network().Peers()) == 1 })
	// Not offered: dialled as the DHT's queries dial.
	for _, h := range []host.Host{kept, transient, relay} {
		if err := hosts[0].Connect(context.Background(), infoOf(h)); err != nil {
			t.Fatal(err)
		}
	}
	d.cfg.Kept = func(p peer.ID) bool { return p == kept.ID() }
	// A relay holding our reservation, as AutoRelay protects it.
	hosts[0].ConnManager().Protect(relay.ID(), autorelayTag)

	d.trim(time.Now())
	if got := len(hosts[0].Network().Peers()); got != 4 {
		t.Fatalf("%d peers after a trim within the grace, want all 4", got)
	}
	d.trim(time.Now().Add(transientGrace))
	me := hosts[0].Network()
	if me.Connectedness(transient.ID()) == network.Connected {
		t.Errorf("the transient connection survived its grace")
	}
	if me.Connectedness(chosen.ID()) != network.Connected || me.Connectedness(kept.ID()) != network.Connected {
		t.Errorf("trim closed a chosen or kept peer")
	}
	if me.Connectedness(relay.ID()) != network.Connected {
		t.Errorf("trim closed the relay holding our reservation")
	}
}

// TestShouldAdvertise: on a small LAN every node advertises; on a large
// one about advertisersPerLAN of them do.
func TestShouldAdvertise(t *testing.T) {
	for _, lan := range []int{0, 1, advertisersPerLAN} {
		if !shouldAdvertise(lan, 0.999) {
			t.Errorf("a node with %d LAN peers does not advertise", lan)
		}
	}
	const lan, draws = 59, 1000
	n := 0
	for i := range draws {
		if shouldAdvertise(lan, float64(i)/draws) {
			n++
		}
	}
	if got := float64(n) / draws * (lan + 1); got < advertisersPerLAN-1 || got > advertisersPerLAN+2 {
		t.Errorf("on a LAN of %d, %.1f nodes advertise on average, want about %d", lan+1, got, advertisersPerLAN)
	}
}
