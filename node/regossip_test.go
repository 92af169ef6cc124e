package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/gossip"
	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/storage"
)

// startReannouncing starts a node on host h that announces its pending
// entries again every interval.
func startReannouncing(t testing.TB, h host.Host, s *storage.Store, interval time.Duration) *Node {
	t.Helper()
	return startNodeWith(t, Config{Store: s, Host: h, ReannounceInterval: interval})
}

// reannounceNet starts one node per store on new hosts of a fresh mocknet,
// neither linked nor connected, each re-announcing every interval.
func reannounceNet(t testing.TB, interval time.Duration, stores ...*storage.Store) (mocknet.Mocknet, []*Node) {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	nodes := make([]*Node, len(stores))
	for i, s := range stores {
		h, err := mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = startReannouncing(t, h, s, interval)
	}
	return mn, nodes
}

// linkAndJoin links a and b, connects them and waits until each sees the
// other in the data topic, so that what either publishes reaches the other.
func linkAndJoin(t testing.TB, mn mocknet.Mocknet, a, b *Node) {
	t.Helper()
	if _, err := mn.LinkPeers(a.ID(), b.ID()); err != nil {
		t.Fatal(err)
	}
	connect(t, a, b)
	inTopic := func(n *Node, p peer.ID) bool {
		for _, q := range n.gossip.DataPeers() {
			if q == p {
				return true
			}
		}
		return false
	}
	nodetest.WaitFor(t, 15*time.Second, "both in each other's data topic", func() bool {
		return inTopic(a, b.ID()) && inTopic(b, a.ID())
	})
}

// waitGossipCachesExpire waits until messages published until now have
// left every node's GossipSub cache: GossipSub offers a new peer (IHAVE)
// the messages of its last few heartbeats, which would bring an entry to a
// late joiner without any re-announcement.
func waitGossipCachesExpire() {
	time.Sleep(time.Duration(pubsub.GossipSubHistoryGossip+1)*pubsub.GossipSubHeartbeatInterval + 500*time.Millisecond)
}

// checkNoPenalties fails the test if any of the nodes holds a misbehaviour
// score against another, or banned it (a ban clears the score): they are
// all honest.
func checkNoPenalties(t testing.TB, nodes ...*Node) {
	t.Helper()
	now := time.Now()
	for _, n := range nodes {
		for _, m := range nodes {
			if n == m {
				continue
			}
			if v := n.scores.Get(m.ID(), now); v != 0 {
				t.Errorf("node %s penalised honest node %s: score %.0f", n.ID().ShortString(), m.ID().ShortString(), v)
			}
			if n.peers.IsBanned(m.ID()) {
				t.Errorf("node %s banned honest node %s", n.ID().ShortString(), m.ID().ShortString())
			}
		}
	}
}

func TestReannounceReachesLateJoiner(t *testing.T) {
	t.Parallel()
	const every = time.Second
	p := nodetest.GossipParams(t)
	mn, nodes := reannounceNet(t, every, nodetest.NewStore(t, p), nodetest.NewStore(t, p), nodetest.NewStore(t, p))
	na, nb, nc := nodes[0], nodes[1], nodes[2]
	linkAndJoin(t, mn, na, nb)
	id, err := na.Submit(context.Background(), "pending before C came")
	if err != nil {
		t.Fatal(err)
	}
	nodetest.WaitFor(t, 15*time.Second, "the entry gossiped to B", func() bool { return nb.pool.Has(id) })
	waitGossipCachesExpire()
	if e, err := nc.Entry(id); err != nil || e.Status != "unknown" {
		t.Fatalf("C before joining: %+v, %v; want unknown", e, err)
	}
	// C joins by B only: it can learn the entry only from B, which got it
	// by gossip (any holder re-announces, not only the node it was
	// submitted to).
	before := nb.gossip.Reannounced()
	start := time.Now()
	linkAndJoin(t, mn, nb, nc)
	nodetest.WaitFor(t, 15*time.Second, "the late joiner to learn the pending entry", func() bool { return nc.pool.Has(id) })
	t.Logf("C learned the entry %s after joining (interval %s)", time.Since(start).Round(time.Millisecond), every)
	if nb.gossip.Reannounced() == before {
		t.Fatal("C learned the entry, but B re-announced nothing")
	}
	if e, err := nc.Entry(id); err != nil || e.Status != "pending" {
		t.Fatalf("C after joining: %+v, %v; want pending", e, err)
	}
	checkNoPenalties(t, na, nb, nc)
}

func TestReorgReannouncesRestoredEntries(t *testing.T) {
	t.Parallel()
	// Periodic rounds never come in the test's time: only the
	// announcement that follows the reorg can bring the entry to B.
	const every = time.Hour
	p := nodetest.GossipParams(t)
	sa, sb := nodetest.NewStore(t, p), nodetest.NewStore(t, p)
	// B holds a block of its own at height 1, as much work as A's below:
	// neither syncs from the other, so B never sees A's block or entry.
	fork := nodetest.Extend(t, sb, 0, 1, "B's side")
	mn, nodes := reannounceNet(t, every, sa, sb)
	na, nb := nodes[0], nodes[1]
	id, err := na.Submit(context.Background(), "mined on the losing branch")
	if err != nil {
		t.Fatal(err)
	}
	mineOn(t, na, na.pool.BlockData(p.MaxDataSize, "none"))
	if e, _ := na.Entry(id); e.Status != "mined" || na.pool.Size() != 0 {
		t.Fatalf("A after mining: %+v, pool %d", e, na.pool.Size())
	}
	waitGossipCachesExpire()
	linkAndJoin(t, mn, na, nb)
	if e, err := nb.Entry(id); err != nil || e.Status != "unknown" {
		t.Fatalf("B before the reorg: %+v, %v; want unknown", e, err)
	}
	// A heavier chain on B's branch reaches A: A's block is dropped and
	// its entry goes back to A's pool.
	heavier := append(fork, nodetest.Mine(t, sb, fork[0].Hash, 1, "heavier")...)
	res, err := na.addBlocks(heavier)
	if err != nil || !res.Reorg {
		t.Fatalf("A adding the heavier chain: %+v, %v; want a reorg", res, err)
	}
	if e, err := na.Entry(id); err != nil || e.Status != "pending" {
		t.Fatalf("A after the reorg: %+v, %v; want pending", e, err)
	}
	start := time.Now()
	nodetest.WaitFor(t, 15*time.Second, "B to learn the entry the reorg restored", func() bool { return nb.pool.Has(id) })
	t.Logf("B learned the entry %s after A's reorg", time.Since(start).Round(time.Millisecond))
	if e, err := nb.Entry(id); err != nil || e.Status != "pending" {
		t.Fatalf("B after A's reorg: %+v, %v; want pending", e, err)
	}
	checkNoPenalties(t, na, nb)
}

func TestReannounceLargePoolBounded(t *testing.T) {
	t.Parallel()
	// A short interval: without the pacing, A would send a round's cap
	// every round, hundreds of messages a second, and C would penalise it
	// for flooding.
	const every = 200 * time.Millisecond
	const entries = gossip.MaxReannounce + 2*gossip.ReannounceBurst
	p := nodetest.GossipParams(t)
	mn, nodes := reannounceNet(t, every, nodetest.NewStore(t, p), nodetest.NewStore(t, p))
	na, nc := nodes[0], nodes[1]
	ids := make([]chain.Hash, entries)
	for i := range ids {
		id, err := na.Submit(context.Background(), fmt.Sprintf("pending entry %d", i))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	waitGossipCachesExpire()
	start := time.Now()
	linkAndJoin(t, mn, na, nc)
	// More than one round's cap: every entry must come, not only the
	// oldest gossip.MaxReannounce again and again.
	nodetest.WaitFor(t, 15*time.Second, "C to learn every pending entry", func() bool {
		for _, id := range ids {
			if !nc.pool.Has(id) {
				return false
			}
		}
		return true
	})
	t.Logf("C learned %d entries %s after joining", entries, time.Since(start).Round(time.Millisecond))
	// Go on re-announcing for a while, then check A kept to its pace and
	// nobody was penalised.
	time.Sleep(2 * time.Second)
	elapsed := time.Since(start)
	sent := na.gossip.Reannounced()
	if limit := gossip.ReannounceBurst + uint64(gossip.ReannounceRate*elapsed.Seconds()) + 1; sent > limit {
		t.Errorf("A re-announced %d entries in %s, over its pace's %d", sent, elapsed.Round(time.Millisecond), limit)
	}
	t.Logf("A re-announced %d entries in %s", sent, elapsed.Round(time.Millisecond))
	checkNoPenalties(t, na, nc)
}
