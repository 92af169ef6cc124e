package node

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/protocol"
	"github.com/jbc-project/jbc/storage"
)

// honestSyncBound is how soon an honest new node must be synced with a
// node under a Sybil attack (issue 11): connected, statuses exchanged and
// the node's chain fetched.
const honestSyncBound = 5 * time.Second

// sybilAttack holds peer identities connected to a target, each slot
// replacing a dropped identity by a fresh one at once.
type sybilAttack struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// connected counts connections made, dropped those lost.
	connected, dropped atomic.Int64
}

// startSybils starts slots attackers, slot i dialling from the loopback
// address from(i) (its own listener there makes go-libp2p's TCP dial from
// it), each holding a connection to target with a fresh identity and
// replacing it with another fresh identity when it is dropped. Attackers
// for which speak(i) holds send a status of the target's network, as an
// honest new node does; the others say nothing.
func startSybils(t testing.TB, target peer.AddrInfo, s *storage.Store, slots int, from func(int) string, speak func(int) bool) *sybilAttack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a := &sybilAttack{cancel: cancel}
	t.Cleanup(a.stop)
	for i := 0; i < slots; i++ {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for ctx.Err() == nil {
				a.hold(ctx, target, s, from(i), speak(i))
			}
		}()
	}
	return a
}

// hold connects one fresh identity from ip to target and keeps it until
// the target drops it or ctx ends.
func (a *sybilAttack) hold(ctx context.Context, target peer.AddrInfo, s *storage.Store, ip string, speak bool) {
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/"+ip+"/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(),
		libp2p.ForceReachabilityPrivate(),
		libp2p.DisableMetrics(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
	)
	if err != nil {
		return
	}
	defer h.Close()
	gone := make(chan struct{}, 1)
	h.Network().Notify(&network.NotifyBundle{DisconnectedF: func(nw network.Network, c network.Conn) {
		if c.RemotePeer() == target.ID && nw.Connectedness(target.ID) != network.Connected {
			select {
			case gone <- struct{}{}:
			default:
			}
		}
	}})
	// A dial refused before any handshake never told the node this
	// identity, so the next try may use it again; one the node has seen
	// and dropped is replaced.
	for {
		if sw, ok := h.Network().(*swarm.Swarm); ok {
			sw.Backoff().Clear(target.ID)
		}
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = h.Connect(dctx, target)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	a.connected.Add(1)
	if speak {
		if c, err := protocol.NewClient(h, s, "sybil", nil); err == nil {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			c.Status(sctx, target.ID)
			cancel()
		}
	}
	for h.Network().Connectedness(target.ID) == network.Connected {
		select {
		case <-ctx.Done():
			return
		case <-gone:
		case <-time.After(100 * time.Millisecond):
		}
	}
	a.dropped.Add(1)
}

func (a *sybilAttack) stop() {
	a.cancel()
	a.wg.Wait()
}

// TestSybilLockout puts a node with a chain, and an outbound peer of its
// choosing, under a Sybil attack on loopback, where go-libp2p's per-address
// limits do not apply: identities that hold inbound connections and
// replace each one dropped with a fresh identity at once, half of them
// sending a status of the node's network as an honest newcomer does.
// Then an honest new node from another address joins: it must be synced
// within honestSyncBound, and the node's outbound peer must never be
// dropped. Two attacks: 200 identities from one address, and 10 from each
// of 20 addresses. Before admission (issue 11), the attackers filled every
// inbound slot and the newcomer's dials were refused.
func TestSybilLockout(t *testing.T) {
	if testing.Short() {
		t.Skip("a Sybil attack of 200 identities takes a few seconds of both cores")
	}
	for _, c := range []struct {
		name  string
		slots int
		from  func(int) string
	}{
		{"200_from_one_address", 200, func(int) string { return "127.0.0.1" }},
		{"10_from_each_of_20_addresses", 200, func(i int) string { return fmt.Sprintf("127.0.1.%d", 1+i%20) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := chain.TestNet()
			src := nodetest.NewStore(t, p)
			nodetest.Extend(t, src, 0, 300, "target")

			// The node's outbound peer: it dials it (--peer), so it chose it.
			out := startNodeWith(t, Config{Store: nodetest.NewStore(t, p), DataDir: t.TempDir(), Listen: []string{"/ip4/127.0.0.3/tcp/0"}})
			target := startNodeWith(t, Config{Store: src, DataDir: t.TempDir(), Listen: []string{"/ip4/127.0.0.1/tcp/0"},
				Peers: []string{out.Addrs()[0].String()}})
			nodetest.WaitFor(t, 15*time.Second, "the node connected to its outbound peer", func() bool {
				return target.host.Network().Connectedness(out.ID()) == network.Connected
			})
			var outDrops atomic.Int64
			target.host.Network().Notify(&network.NotifyBundle{DisconnectedF: func(nw network.Network, c network.Conn) {
				if c.RemotePeer() == out.ID() {
					outDrops.Add(1)
				}
			}})

			att := startSybils(t, peer.AddrInfo{ID: target.ID(), Addrs: target.host.Addrs()}, nodetest.NewStore(t, p), c.slots, c.from,
				func(i int) bool { return i%2 == 0 })
			nodetest.WaitFor(t, 30*time.Second, "the attackers to fill the inbound slots", func() bool {
				return target.adm.totals[admEvicted].Load()+target.adm.totals[admRefusedFull].Load() > 0
			})
			time.Sleep(time.Second) // the attack in full swing

			start := time.Now()
			honest := startNodeWith(t, Config{Store: nodetest.NewStore(t, p), DataDir: t.TempDir(), Listen: []string{"/ip4/127.0.0.2/tcp/0"},
				Peers: []string{target.Addrs()[0].String()}})
			want := src.Tip().Hash
			var took, connected, status time.Duration
			for honest.store.Tip().Hash != want {
				if took = time.Since(start); took > 3*honestSyncBound {
					break
				}
				if connected == 0 && honest.host.Network().Connectedness(target.ID()) == network.Connected {
					connected = time.Since(start)
				}
				if pi, ok := honest.peers.get(target.ID()); ok && status == 0 && pi.Status != nil {
					status = time.Since(start)
				}
				time.Sleep(5 * time.Millisecond)
			}
			took = time.Since(start)
			// A step not seen by the polls above ended with the sync.
			if connected == 0 {
				connected = took
			}
			if status == 0 {
				status = took
			}
			t.Logf("honest node: connected after %v, had the node's status after %v", connected.Round(time.Millisecond), status.Round(time.Millisecond))
			held := 0
			for _, q := range target.host.Network().Peers() {
				if q != out.ID() && q != honest.ID() {
					held++
				}
			}
			a := target.adm.totals
			t.Logf("%s: honest node synced (height %d) in %v; attackers made %d connections, %d dropped, %d held now; admission evicted %d, refused %d full, closed %d silent; outbound peer dropped %d times",
				c.name, honest.store.Tip().Height, took.Round(time.Millisecond), att.connected.Load(), att.dropped.Load(), held,
				a[admEvicted].Load(), a[admRefusedFull].Load(), a[admNoStatus].Load(), outDrops.Load())
			att.stop()
			if honest.store.Tip().Hash != want {
				t.Fatalf("the honest node is at height %d after %v, want %d", honest.store.Tip().Height, took.Round(time.Millisecond), src.Tip().Height)
			}
			if took > honestSyncBound {
				t.Errorf("the honest node synced in %v, want within %v", took.Round(time.Millisecond), honestSyncBound)
			}
			if n := outDrops.Load(); n > 0 {
				t.Errorf("the node's outbound peer was dropped %d times", n)
			}
		})
	}
}

// TestPickVictim checks the eviction order on made-up slot holders.
func TestPickVictim(t *testing.T) {
	now := time.Now()
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	weights := map[string]float64{}
	weight := func(g string) float64 { return weights[g] }
	pick := func(hs []candidate) string {
		i := pickVictim(hs, weight, now)
		if i < 0 {
			return ""
		}
		return string(hs[i].id)
	}

	// A silent peer past its grace goes first, the one silent longest.
	hs := []candidate{
		{id: "honest", group: "a", since: ago(time.Hour), proven: true},
		{id: "silent-new", group: "b", since: ago(unprovenGrace / 2)},
		{id: "silent-old", group: "c", since: ago(3 * unprovenGrace)},
		{id: "silent-older", group: "c", since: ago(4 * unprovenGrace), protected: true},
		{id: "silent", group: "d", since: ago(2 * unprovenGrace)},
	}
	weights = map[string]float64{"a": 1, "b": 1, "c": 2, "d": 1}
	if got := pick(hs); got != "silent-old" {
		t.Errorf("picked %s, want silent-old", got)
	}

	// Else the heaviest group: within it, unproven, then fewer served,
	// then the newest.
	hs = []candidate{
		{id: "newcomer", group: "honest", since: ago(time.Millisecond)},
		{id: "s1", group: "sybil", since: ago(3 * time.Second), proven: true},
		{id: "s2", group: "sybil", since: ago(2 * time.Second), proven: true, served: 1},
		{id: "s3", group: "sybil", since: ago(time.Second), proven: true, served: 1},
		{id: "lone", group: "other", since: ago(time.Minute), proven: true},
	}
	weights = map[string]float64{"honest": 1, "sybil": 30, "other": 1.5}
	if got := pick(hs); got != "s1" {
		t.Errorf("picked %s, want s1 (fewest blocks served in the heaviest group)", got)
	}
	hs[1].served = 2
	if got := pick(hs); got != "s3" {
		t.Errorf("picked %s, want s3 (the newest of those that served least)", got)
	}
	hs[2].proven = false
	hs[2].since = ago(unprovenGrace / 2)
	if got := pick(hs); got != "s2" {
		t.Errorf("picked %s, want s2 (no status yet)", got)
	}

	// Protected peers are never picked.
	for i := range hs {
		hs[i].protected = true
	}
	if got := pick(hs); got != "" {
		t.Errorf("picked %s among protected peers", got)
	}
}

// TestGroupOf checks the address groups: public addresses by /24 and /48,
// private IPv4 and loopback by address, private IPv6 by /64.
func TestGroupOf(t *testing.T) {
	for _, c := range []struct {
		addr, group string
		public      bool
	}{
		{"/ip4/1.2.3.4/tcp/1", "1.2.3.0/24", true},
		{"/ip4/1.2.3.200/udp/1/quic-v1", "1.2.3.0/24", true},
		{"/ip4/10.77.1.5/tcp/1", "10.77.1.5/32", false},
		{"/ip4/192.168.0.7/tcp/1", "192.168.0.7/32", false},
		{"/ip4/127.0.0.1/tcp/1", "127.0.0.1/32", false},
		{"/ip6/2001:2:0:1::5/tcp/1", "2001:2::/48", true},
		{"/ip6/2a00:1450:4001:80b::200e/tcp/1", "2a00:1450:4001::/48", true},
		{"/ip6/fd77:0:0:3::9/tcp/1", "fd77:0:0:3::/64", false},
		{"/ip6/::1/tcp/1", "::1/128", false},
	} {
		g, public := groupOf(ma.StringCast(c.addr))
		if g != c.group || public != c.public {
			t.Errorf("groupOf(%s) = %s, %v; want %s, %v", c.addr, g, public, c.group, c.public)
		}
	}
}

// TestAdmit checks the decision made when a connection is accepted, on
// made-up connections: the cap on a public subnet, none on private ones,
// and, with the slots full, who may still come in.
func TestAdmit(t *testing.T) {
	now := time.Now()
	a := newAdmission(newPeerSet(), nodetest.Logger(t), nil)
	in := func(addr string) connView {
		return connView{dir: network.DirInbound, remote: ma.StringCast(addr), opened: now.Add(-time.Minute)}
	}
	var pcs []peerConns
	add := func(addr string) {
		pcs = append(pcs, peerConns{id: peer.ID(fmt.Sprint("p", len(pcs))), conns: []connView{in(addr)}})
	}
	admit := func(addr string) string {
		s := a.slotsOf(pcs, now)
		g, public := groupOf(ma.StringCast(addr))
		a.arrive(g, now)
		return a.admit(&s, g, public, now)
	}

	// A public /24 is capped; another /24 is not affected.
	for i := 0; i < subnetInboundCap; i++ {
		add(fmt.Sprintf("/ip4/1.2.3.%d/tcp/4747", i+1))
	}
	if got := admit("/ip4/1.2.3.200/tcp/4747"); got != admRefusedSubnet {
		t.Errorf("connection %d from one public /24: %q, want %q", subnetInboundCap+1, got, admRefusedSubnet)
	}
	if got := admit("/ip4/1.2.4.1/tcp/4747"); got != "" {
		t.Errorf("first connection from another /24 refused: %q", got)
	}
	// A private subnet is not capped: a LAN of tens of nodes shares one.
	pcs = nil
	for i := 0; i < 40; i++ {
		add(fmt.Sprintf("/ip4/10.77.1.%d/tcp/4747", i+1))
	}
	if got := admit("/ip4/10.77.1.100/tcp/4747"); got != "" {
		t.Errorf("connection 41 from one private /24 refused: %q", got)
	}
	// Nor is public IPv6 per address: the /48 is the unit.
	pcs = nil
	for i := 0; i < subnetInboundCap; i++ {
		add(fmt.Sprintf("/ip6/2001:2:0:%x::1/tcp/4747", i+1))
	}
	if got := admit("/ip6/2001:2:0:ff::1/tcp/4747"); got != admRefusedSubnet {
		t.Errorf("connection %d from one public /48: %q, want %q", subnetInboundCap+1, got, admRefusedSubnet)
	}

	// Slots full of an attacker's identities from 16 private hosts, each
	// having tried many times: its hosts are refused, a newcomer from a
	// new address is not, nor a second node behind an address that holds
	// one slot and tried once.
	pcs = nil
	for i := 0; i < inboundSlots-1; i++ {
		add(fmt.Sprintf("/ip4/10.77.2.%d/tcp/4747", 1+i%16))
	}
	add("/ip4/10.77.0.3/tcp/4747")
	for i := 0; i < 16; i++ {
		for k := 0; k < 20; k++ {
			a.arrive(fmt.Sprintf("10.77.2.%d/32", 1+i), now)
		}
	}
	a.arrive("10.77.0.3/32", now)
	if got := admit("/ip4/10.77.2.5/tcp/4747"); got != admRefusedFull {
		t.Errorf("attacker host with slots full: %q, want %q", got, admRefusedFull)
	}
	if got := admit("/ip4/10.77.3.9/tcp/4747"); got != "" {
		t.Errorf("newcomer from a new address with slots full: %q, want it admitted", got)
	}
	if got := admit("/ip4/10.77.0.3/tcp/4747"); got != "" {
		t.Errorf("second node behind a NAT address with slots full: %q, want it admitted", got)
	}
}

// TestAdmissionLimitsConsistent pins how admission's numbers relate to the
// connection manager's and the resource manager's.
func TestAdmissionLimitsConsistent(t *testing.T) {
	if inboundSlots >= connHighWater {
		t.Errorf("inbound slots %d leave no room under the connection manager's high watermark %d for the peers a node chooses", inboundSlots, connHighWater)
	}
	if maxConnsInbound-inboundSlots < 2*protocol.MaxInflight/protocol.MaxInflightPerPeer {
		t.Errorf("the resource manager's %d inbound connections leave %d beyond the slots for newcomers' handshakes", maxConnsInbound, maxConnsInbound-inboundSlots)
	}
	if subnetInboundCap < 1 || subnetInboundCap*4 > inboundSlots {
		t.Errorf("a public subnet may hold %d of %d slots: one subnet must not take a quarter", subnetInboundCap, inboundSlots)
	}
	if statusDeadline > statusTimeout {
		t.Errorf("status deadline %v is longer than our own status request may take (%v)", statusDeadline, statusTimeout)
	}
	if unprovenGrace >= statusDeadline {
		t.Errorf("unproven grace %v is not shorter than the status deadline %v", unprovenGrace, statusDeadline)
	}
}
