package node

import (
	"context"
	"testing"
	"time"

	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/protocol"
)

// TestForgedKnownBlockNotRelayed: an attacker gossips to A a forged copy
// of a block A holds: its hash, other data. A must refuse it as invalid
// (and ban the attacker) rather than relay it as a known block, for B,
// which does not hold that block, would find it invalid and ban A, an
// honest node, for relaying it. The block is on a side branch of A's, so
// that B, syncing A's best chain, never gets it. (Found by
// FuzzGossipBlock: testdata/fuzz/FuzzGossipBlock.)
func TestForgedKnownBlockNotRelayed(t *testing.T) {
	p := nodetest.GossipParams(t)
	sa, sb := nodetest.NewStore(t, p), nodetest.NewStore(t, p)
	nodetest.Extend(t, sa, 0, 1, "best")
	side := nodetest.Mine(t, sa, p.Genesis.Hash, 1, "side")
	if _, err := sa.AddBlocks(side); err != nil {
		t.Fatal(err)
	}
	if sa.Tip().Hash == side[0].Hash {
		t.Fatal("the side block became A's tip")
	}

	na, nb, hEvil, topic := mockGossipAttack(t, sa, sb)
	waitMesh(t, []*Node{na, nb})

	forged := side[0]
	forged.Data = "forged"
	if err := topic.Publish(context.Background(), mustMarshal(t, protocol.BlockToPB(&forged))); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitFor(t, 15*time.Second, "A to judge the forged block", func() bool {
		return na.gossip.Rejected()+na.gossip.Accepted()+na.gossip.Ignored() > 0
	})
	if got := na.gossip.Accepted(); got != 0 {
		t.Errorf("A accepted (relayed) %d forged copies of its block", got)
	}
	if na.gossip.Rejected() == 0 {
		t.Error("A did not reject the forged copy")
	}
	nodetest.WaitFor(t, 15*time.Second, "A to ban the attacker", func() bool { return na.peers.IsBanned(hEvil.ID()) })
	time.Sleep(500 * time.Millisecond)
	if nb.peers.IsBanned(na.ID()) {
		t.Fatal("B banned A, an honest node, for relaying the forged block")
	}
	if n := nb.gossip.Accepted() + nb.gossip.Rejected() + nb.gossip.Ignored(); n != 0 {
		t.Fatalf("A relayed the forged block to B (B judged %d gossiped blocks)", n)
	}
	if got, err := sa.Block(side[0].Hash); err != nil || *got != side[0] {
		t.Fatalf("A's side block changed: %+v, %v", got, err)
	}
}
