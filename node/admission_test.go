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

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/node/peering"
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
				return target.adm.Total(peering.AdmEvicted)+target.adm.Total(peering.AdmRefusedFull) > 0
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
				if pi, ok := honest.peers.Get(target.ID()); ok && status == 0 && pi.Status != nil {
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
			a := target.adm
			t.Logf("%s: honest node synced (height %d) in %v; attackers made %d connections, %d dropped, %d held now; admission evicted %d, refused %d full, closed %d silent; outbound peer dropped %d times",
				c.name, honest.store.Tip().Height, took.Round(time.Millisecond), att.connected.Load(), att.dropped.Load(), held,
				a.Total(peering.AdmEvicted), a.Total(peering.AdmRefusedFull), a.Total(peering.AdmNoStatus), outDrops.Load())
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
