package p2p

import (
	"errors"
	"testing"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/test"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jbc-project/jbc/protocol"
)

// The resource manager's limits are checked as the limiter reports them
// and as a resource manager enforces them, by reserving connections and
// streams in it directly: no host, no network.

// wantLimit is what a scope's limits should be; -1 is "not checked".
type wantLimit struct {
	conns, connsIn, connsOut       int
	streams, streamsIn, streamsOut int
	memory                         int64
}

func checkLimit(t *testing.T, scope string, got rcmgr.Limit, want wantLimit) {
	t.Helper()
	for _, c := range []struct {
		what      string
		got, want int64
	}{
		{"conns", int64(got.GetConnTotalLimit()), int64(want.conns)},
		{"inbound conns", int64(got.GetConnLimit(network.DirInbound)), int64(want.connsIn)},
		{"outbound conns", int64(got.GetConnLimit(network.DirOutbound)), int64(want.connsOut)},
		{"streams", int64(got.GetStreamTotalLimit()), int64(want.streams)},
		{"inbound streams", int64(got.GetStreamLimit(network.DirInbound)), int64(want.streamsIn)},
		{"outbound streams", int64(got.GetStreamLimit(network.DirOutbound)), int64(want.streamsOut)},
		{"memory", got.GetMemoryLimit(), want.memory},
	} {
		if c.want >= 0 && c.got != c.want {
			t.Errorf("%s: %s limit %d, want %d", scope, c.what, c.got, c.want)
		}
	}
}

// The limits each scope should have.
var (
	wantSystem = wantLimit{conns: maxConns, connsIn: MaxConnsInbound, connsOut: maxConns,
		streams: -1, streamsIn: -1, streamsOut: -1, memory: -1}
	wantPeer = wantLimit{conns: maxPeerConns, connsIn: maxPeerConns, connsOut: maxPeerConns,
		streams: -1, streamsIn: -1, streamsOut: -1, memory: -1}
	wantChainLimit = wantLimit{conns: -1, connsIn: -1, connsOut: -1,
		streams: chainStreams + protocol.MaxInflight, streamsIn: chainStreams, streamsOut: chainStreams / 2, memory: chainMemory}
	wantChainPeerLimit = wantLimit{conns: -1, connsIn: -1, connsOut: -1,
		streams: chainPeerStreams, streamsIn: chainPeerStreams / 2, streamsOut: chainPeerStreams / 2, memory: chainPeerMemory}
	wantGossip = wantLimit{conns: -1, connsIn: -1, connsOut: -1,
		streams: 2 * gossipStreams, streamsIn: gossipStreams, streamsOut: gossipStreams, memory: gossipMemory}
	wantGossipPeer = wantLimit{conns: -1, connsIn: -1, connsOut: -1,
		streams: 2 * gossipPeerStreams, streamsIn: gossipPeerStreams, streamsOut: gossipPeerStreams, memory: gossipPeerMemory}
	wantDHT = wantLimit{conns: -1, connsIn: -1, connsOut: -1,
		streams: 2 * dhtStreams, streamsIn: dhtStreams, streamsOut: dhtStreams, memory: dhtMemory}
	wantDHTPeer = wantLimit{conns: -1, connsIn: -1, connsOut: -1,
		streams: dhtPeerStreamsInbound + dhtPeerStreamsOutbound, streamsIn: dhtPeerStreamsInbound, streamsOut: dhtPeerStreamsOutbound, memory: dhtPeerMemory}
)

// TestResourceLimitsConsistent: the limits agree with the connection
// manager's watermarks and with what the protocols need.
func TestResourceLimitsConsistent(t *testing.T) {
	if maxConns <= ConnHighWater {
		t.Errorf("maxConns %d does not leave the connection manager room above its high watermark %d", maxConns, ConnHighWater)
	}
	if maxConns-MaxConnsInbound < connLowWater {
		t.Errorf("inbound connections may leave %d for our own dials, under the low watermark %d", maxConns-MaxConnsInbound, connLowWater)
	}
	if MaxConnsInbound < ConnHighWater {
		t.Errorf("inbound connections %d cannot reach the high watermark %d", MaxConnsInbound, ConnHighWater)
	}
	if gossipStreams < maxConns || dhtStreams < maxConns {
		t.Errorf("gossip (%d) or DHT (%d) streams fewer than the connections (%d) that each hold one", gossipStreams, dhtStreams, maxConns)
	}
	if chainPeerStreams/2 < protocol.MaxInflightPerPeer {
		t.Errorf("a peer's inbound chain streams (%d) are fewer than the server serves it (%d)", chainPeerStreams/2, protocol.MaxInflightPerPeer)
	}
	if got := dhtProtocolID(""); got != "/jbc/kad/1.0.0" {
		t.Errorf("default DHT protocol %q", got)
	}
	// kad-dht's own default, built from its prefix the way ours is.
	if got := dhtProtocolID("/ipfs"); got != dht.ProtocolDHT {
		t.Errorf("DHT protocol for /ipfs is %q, kad-dht says %q", got, dht.ProtocolDHT)
	}
}

// TestResourceLimits checks the limits the limiter gives each scope, for
// the default DHT prefix and another.
func TestResourceLimits(t *testing.T) {
	for _, prefix := range []string{"", "/ipfs"} {
		l := rcmgr.NewFixedLimiter(resourceLimits(prefix))
		dhtID := dhtProtocolID(prefix)
		checkLimit(t, "system", l.GetSystemLimits(), wantSystem)
		checkLimit(t, "peer", l.GetPeerLimits(test.RandPeerIDFatal(t)), wantPeer)
		checkLimit(t, protocol.ID, l.GetProtocolLimits(protocol.ID), wantChainLimit)
		checkLimit(t, protocol.ID+" per peer", l.GetProtocolPeerLimits(protocol.ID), wantChainPeerLimit)
		for _, id := range pubsub.GossipSubDefaultProtocols {
			checkLimit(t, string(id), l.GetProtocolLimits(id), wantGossip)
			checkLimit(t, string(id)+" per peer", l.GetProtocolPeerLimits(id), wantGossipPeer)
		}
		checkLimit(t, string(dhtID), l.GetProtocolLimits(dhtID), wantDHT)
		checkLimit(t, string(dhtID)+" per peer", l.GetProtocolPeerLimits(dhtID), wantDHTPeer)

		// The DHT limits follow the prefix: the default's ID gets go-libp2p's
		// defaults when another prefix is in use.
		if prefix != "" {
			if got := l.GetProtocolPeerLimits(dhtProtocolID("")).GetStreamLimit(network.DirInbound); got == dhtPeerStreamsInbound {
				t.Errorf("with prefix %s, %s still has the DHT's limits", prefix, dhtProtocolID(""))
			}
		}
	}
}

// TestResourceManagerEnforces builds the node's resource manager, checks
// the limits of its scopes, and fills them: one reservation past each
// limit fails.
func TestResourceManagerEnforces(t *testing.T) {
	const prefix = "/jbc-rcmgr-test"
	rm, err := newResourceManager(prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	dhtID := dhtProtocolID(prefix)

	// The scopes' own limits.
	view := func(scope string, want wantLimit) func(network.ResourceScope) error {
		return func(s network.ResourceScope) error {
			l, ok := s.(rcmgr.ResourceScopeLimiter)
			if !ok {
				t.Fatalf("%s scope %T does not expose its limit", scope, s)
			}
			checkLimit(t, scope, l.Limit(), want)
			return nil
		}
	}
	if err := rm.ViewSystem(view("system", wantSystem)); err != nil {
		t.Fatal(err)
	}
	if err := rm.ViewPeer(test.RandPeerIDFatal(t), func(s network.PeerScope) error { return view("peer", wantPeer)(s) }); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[libp2pproto.ID]wantLimit{
		protocol.ID:             wantChainLimit,
		pubsub.GossipSubID_v12:  wantGossip,
		pubsub.GossipSubID_v13:  wantGossip,
		pubsub.FloodSubID:       wantGossip,
		dhtID:                   wantDHT,
		dhtProtocolID("/other"): {conns: -1, connsIn: -1, connsOut: -1, streams: -1, streamsIn: -1, streamsOut: -1, memory: -1},
	} {
		if err := rm.ViewProtocol(id, func(s network.ProtocolScope) error { return view(string(id), want)(s) }); err != nil {
			t.Fatal(err)
		}
	}

	// Streams of one peer: as many as the per-peer limit of each protocol
	// are admitted, one more is not.
	for _, c := range []struct {
		id    libp2pproto.ID
		dir   network.Direction
		limit int
	}{
		{protocol.ID, network.DirInbound, chainPeerStreams / 2},
		{pubsub.GossipSubID_v12, network.DirInbound, gossipPeerStreams},
		{pubsub.GossipSubID_v12, network.DirOutbound, gossipPeerStreams},
		{dhtID, network.DirInbound, dhtPeerStreamsInbound},
		{dhtID, network.DirOutbound, dhtPeerStreamsOutbound},
	} {
		p := test.RandPeerIDFatal(t)
		var open []network.StreamManagementScope
		for i := 0; ; i++ {
			s, err := rm.OpenStream(p, c.dir)
			if err != nil {
				t.Fatalf("%s %v stream %d: open: %v", c.id, c.dir, i, err)
			}
			err = s.SetProtocol(c.id)
			if i < c.limit && err != nil {
				t.Errorf("%s %v stream %d of %d refused: %v", c.id, c.dir, i+1, c.limit, err)
			}
			if i == c.limit {
				if !errors.Is(err, network.ErrResourceLimitExceeded) {
					t.Errorf("%s %v stream %d, over the limit of %d: err = %v", c.id, c.dir, i+1, c.limit, err)
				}
				s.Done()
				break
			}
			open = append(open, s)
		}
		for _, s := range open {
			s.Done()
		}
	}

	// Connections: maxPeerConns with one peer, then MaxConnsInbound
	// inbound over all peers and outbound ones up to maxConns. Loopback
	// endpoints are exempt from go-libp2p's per-IP limits.
	endpoint := ma.StringCast("/ip4/127.0.0.1/tcp/4747")
	var conns []network.ConnManagementScope
	defer func() {
		for _, c := range conns {
			c.Done()
		}
	}()
	conn := func(dir network.Direction, p peer.ID) error {
		c, err := rm.OpenConnection(dir, false, endpoint)
		if err != nil {
			return err
		}
		if err := c.SetPeer(p); err != nil {
			c.Done()
			return err
		}
		conns = append(conns, c)
		return nil
	}
	one := test.RandPeerIDFatal(t)
	for i := range maxPeerConns {
		if err := conn(network.DirInbound, one); err != nil {
			t.Fatalf("connection %d of %d with one peer refused: %v", i+1, maxPeerConns, err)
		}
	}
	if err := conn(network.DirOutbound, one); !errors.Is(err, network.ErrResourceLimitExceeded) {
		t.Fatalf("connection %d with one peer: err = %v, want the limit exceeded", maxPeerConns+1, err)
	}
	for len(conns) < MaxConnsInbound {
		if err := conn(network.DirInbound, test.RandPeerIDFatal(t)); err != nil {
			t.Fatalf("inbound connection %d of %d refused: %v", len(conns)+1, MaxConnsInbound, err)
		}
	}
	if err := conn(network.DirInbound, test.RandPeerIDFatal(t)); !errors.Is(err, network.ErrResourceLimitExceeded) {
		t.Fatalf("inbound connection %d: err = %v, want the limit exceeded", MaxConnsInbound+1, err)
	}
	for len(conns) < maxConns {
		if err := conn(network.DirOutbound, test.RandPeerIDFatal(t)); err != nil {
			t.Fatalf("connection %d of %d (outbound, after %d inbound) refused: %v", len(conns)+1, maxConns, MaxConnsInbound, err)
		}
	}
	if err := conn(network.DirOutbound, test.RandPeerIDFatal(t)); !errors.Is(err, network.ErrResourceLimitExceeded) {
		t.Fatalf("connection %d: err = %v, want the limit exceeded", maxConns+1, err)
	}
}
