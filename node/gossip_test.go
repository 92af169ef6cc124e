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
	"google.golang.org/protobuf/proto"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/api"
	"github.com/jbc-project/jbc/node/gossip"
	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/protocol"
	"github.com/jbc-project/jbc/storage"
)

// mineOn mines one block with data on n's tip, stores and publishes it,
// as the node's miner does.
func mineOn(t testing.TB, n *Node, data string) chain.Block {
	t.Helper()
	tmpl, bits, err := n.store.Template(data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := (&chain.Miner{Threads: 1}).Solve(context.Background(), tmpl, bits)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.addBlocks([]chain.Block{b}); err != nil {
		t.Fatal(err)
	}
	n.gossip.PublishBlock(context.Background(), &b)
	return b
}

// lineNet starts nodes linked and connected in a line: 0-1-2-...
func lineNet(t testing.TB, stores ...*storage.Store) []*Node {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	nodes := startMockNodes(t, mn, stores...)
	for i := 1; i < len(nodes); i++ {
		if _, err := mn.LinkPeers(nodes[i-1].ID(), nodes[i].ID()); err != nil {
			t.Fatal(err)
		}
		connect(t, nodes[i-1], nodes[i])
	}
	return nodes
}

// waitMesh waits until every node sees its neighbours in both topics.
func waitMesh(t testing.TB, nodes []*Node) {
	t.Helper()
	nodetest.WaitFor(t, 15*time.Second, "gossip topic peers", func() bool {
		for i, n := range nodes {
			want := 2
			if i == 0 || i == len(nodes)-1 {
				want = 1
			}
			if len(n.gossip.BlockPeers()) < want || len(n.gossip.DataPeers()) < want {
				return false
			}
		}
		return true
	})
	// Messages are relayed only to mesh peers, and a mesh forms at a
	// heartbeat: wait for one so that relaying (not only our own flood
	// publishing) is what the tests see.
	time.Sleep(pubsub.GossipSubHeartbeatInterval + 200*time.Millisecond)
}

func TestBlockGossipRelays(t *testing.T) {
	p := nodetest.GossipParams(t)
	nodes := lineNet(t, nodetest.NewStore(t, p), nodetest.NewStore(t, p), nodetest.NewStore(t, p))
	waitMesh(t, nodes)
	for i := 0; i < 5; i++ {
		b := mineOn(t, nodes[0], "gossip")
		nodetest.WaitFor(t, 15*time.Second, "block at the end of the line", func() bool { return nodes[2].store.Has(b.Hash) })
	}
	// The middle node stored and relayed the blocks by gossip, not only by
	// status-triggered sync.
	t.Logf("B: accepted %d rejected %d ignored %d", nodes[1].gossip.Accepted(), nodes[1].gossip.Rejected(), nodes[1].gossip.Ignored())
	if got := nodes[1].gossip.Accepted(); got == 0 {
		t.Fatal("middle node accepted no gossiped block")
	}
	if got := nodes[2].gossip.Accepted(); got == 0 {
		t.Fatal("last node accepted no gossiped block")
	}
}

func TestInvalidGossipBlockNotRelayed(t *testing.T) {
	p := nodetest.GossipParams(t)
	sa, sb := nodetest.NewStore(t, p), nodetest.NewStore(t, p)
	na, nb, hEvil, topic := mockGossipAttack(t, sa, sb)
	// A block with a bad hash: it claims a hash its header does not give.
	tmpl, _, _ := sa.Template("forged")
	tmpl.Hash = chain.Hash{0, 0, 0, 1}
	data, _ := proto.Marshal(protocol.BlockToPB(&tmpl))
	if err := topic.Publish(context.Background(), data); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitFor(t, 15*time.Second, "A to reject the block", func() bool { return na.gossip.Rejected() > 0 })
	if sa.Has(tmpl.Hash) || sa.Tip().Height != 0 {
		t.Fatal("A stored the forged block")
	}
	nodetest.WaitFor(t, 15*time.Second, "A to ban the attacker", func() bool { return na.peers.IsBanned(hEvil.ID()) })
	time.Sleep(200 * time.Millisecond)
	if nb.gossip.Accepted()+nb.gossip.Rejected()+nb.gossip.Ignored() != 0 {
		t.Fatal("A relayed the forged block to B")
	}
}

func TestSubmittedEntryMinedEverywhere(t *testing.T) {
	p := nodetest.GossipParams(t)
	nodes := lineNet(t, nodetest.NewStore(t, p), nodetest.NewStore(t, p), nodetest.NewStore(t, p))
	waitMesh(t, nodes)
	id, err := nodes[2].Submit(context.Background(), "pay alice 5")
	if err != nil {
		t.Fatal(err)
	}
	nodetest.WaitFor(t, 15*time.Second, "entry to reach the miner's pool", func() bool { return nodes[0].pool.Has(id) })
	b := mineOn(t, nodes[0], nodes[0].pool.BlockData(p.MaxDataSize, "none"))
	if got := chain.UnpackEntries(b.Data); len(got) != 1 || got[0] != "pay alice 5" {
		t.Fatalf("mined block data %q", b.Data)
	}
	for i, n := range nodes {
		nodetest.WaitFor(t, 15*time.Second, "entry mined on every node", func() bool {
			e, err := n.Entry(id)
			return err == nil && e.Status == "mined" && e.Block == b.Hash.String()
		})
		// The block is in the store before its entries leave the pool.
		nodetest.WaitFor(t, 15*time.Second, fmt.Sprintf("node %d's pool to drop the mined entry", i), func() bool {
			return n.pool.Size() == 0
		})
	}
}

func TestReorgReturnsEntriesToPool(t *testing.T) {
	p := nodetest.GossipParams(t)
	sa, sb := nodetest.NewStore(t, p), nodetest.NewStore(t, p)
	_, nodes := mockNodes(t, sa, sb)
	na := nodes[0]
	id, err := na.Submit(context.Background(), "do not lose me")
	if err != nil {
		t.Fatal(err)
	}
	mineOn(t, na, na.pool.BlockData(p.MaxDataSize, "none"))
	if e, _ := na.Entry(id); e.Status != "mined" || na.pool.Size() != 0 {
		t.Fatalf("after mining: %+v, pool %d", e, na.pool.Size())
	}
	// B's heavier chain, without the entry, replaces A's block.
	nodetest.Extend(t, sb, 0, 3, "heavier")
	connect(t, nodes[1], na)
	nodetest.WaitFor(t, 15*time.Second, "A to reorg to B's chain", func() bool { return sa.Tip().Hash == sb.Tip().Hash })
	// The tip moves inside the store's commit; the dropped block's entries
	// go back to the pool just after it.
	var e api.EntryJSON
	nodetest.WaitFor(t, 15*time.Second, "the entry back in A's pool", func() bool {
		e, err = na.Entry(id)
		return err != nil || e.Status != "unknown"
	})
	if err != nil || e.Status != "pending" {
		t.Fatalf("entry after the reorg: %+v, %v; want pending", e, err)
	}
}

// mockGossipAttack starts nodes A and B on stores sa and sb (one network),
// connected on a mocknet, and an attacker host whose own GossipSub router
// has joined the block topic and is in A's mesh; B is connected to A only.
func mockGossipAttack(t testing.TB, sa, sb *storage.Store) (na, nb *Node, evil host.Host, topic *pubsub.Topic) {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	evil, _ = mn.GenPeer()
	ha, _ := mn.GenPeer()
	hb, _ := mn.GenPeer()
	na = startNode(t, ha, sa)
	nb = startNode(t, hb, sb)
	mn.LinkAll()
	connect(t, na, nb)
	ps, err := pubsub.NewGossipSub(context.Background(), evil, pubsub.WithMessageIdFn(gossip.MsgID))
	if err != nil {
		t.Fatal(err)
	}
	if topic, err = ps.Join(gossip.BlockTopic(sa.Params().ID())); err != nil {
		t.Fatal(err)
	}
	if err := evil.Connect(context.Background(), peer.AddrInfo{ID: ha.ID(), Addrs: ha.Addrs()}); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitFor(t, 15*time.Second, "attacker in A's topic", func() bool { return len(topic.ListPeers()) > 0 })
	return na, nb, evil, topic
}
