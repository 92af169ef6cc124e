package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/gossip"
	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/node/peering"
	"github.com/jbc-project/jbc/protocol"
)

const (
	// fastMineFor is how long the miner mines in TestFastMinerNotBanned: a
	// scaled-down version of the 60 s (e2e/miner.sh runs that),
	// long enough for hundreds of blocks, several times the gossip
	// burst that used to get the miner banned within a second.
	fastMineFor = 4 * time.Second
	// convergeBound is how soon after the miner stops every node must
	// hold the same tip.
	convergeBound = time.Second
)

// TestFastMinerNotBanned runs three loopback nodes on an easy private
// network, one of them mining on every core, and checks that the miner is
// never scored or banned, that no node scores anyone, and that all three
// hold the same tip within convergeBound of the miner stopping. Before
// the gossip block limit counted only blocks that add nothing, the
// followers banned the miner for flooding within a second.
func TestFastMinerNotBanned(t *testing.T) {
	for _, bits := range []uint8{12, 4} {
		t.Run(fmt.Sprintf("%d_bits", bits), func(t *testing.T) {
			p, err := chain.NewParams(fmt.Sprintf("fast-%d", bits), "fast miner network", 1577836800, bits, 0)
			if err != nil {
				t.Fatal(err)
			}
			var nodes []*Node
			for i := 0; i < 3; i++ {
				cfg := Config{Store: nodetest.NewStore(t, p), DataDir: t.TempDir(), Listen: []string{"/ip4/127.0.0.1/tcp/0"}}
				for _, n := range nodes {
					cfg.Peers = append(cfg.Peers, n.Addrs()[0].String())
				}
				nodes = append(nodes, startNodeWith(t, cfg))
			}
			miner := nodes[0]
			nodetest.WaitFor(t, 15*time.Second, "every node in both gossip topics with the others", func() bool {
				for _, n := range nodes {
					if len(n.gossip.BlockPeers()) < 2 {
						return false
					}
				}
				return true
			})

			miner.SetMining(true)
			time.Sleep(fastMineFor)
			miner.SetMining(false)
			stopped := time.Now()
			mined := miner.store.Tip().Height

			var took time.Duration
			deadline := stopped.Add(15 * time.Second)
			for {
				tip := miner.store.Tip().Hash
				if nodes[1].store.Tip().Hash == tip && nodes[2].store.Tip().Hash == tip {
					took = time.Since(stopped)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no convergence 15 s after the miner stopped: heights %d %d %d",
						miner.store.Tip().Height, nodes[1].store.Tip().Height, nodes[2].store.Tip().Height)
				}
				time.Sleep(5 * time.Millisecond)
			}
			tip := miner.store.Tip()
			t.Logf("%d bits: mined %d blocks in %v (%.0f/s); all at height %d %v after the miner stopped; follower gossip accepted %d, ignored %d",
				bits, mined, fastMineFor, float64(mined)/fastMineFor.Seconds(), tip.Height, took.Round(time.Millisecond),
				nodes[1].gossip.Accepted(), nodes[1].gossip.Ignored())
			if mined < 2*gossip.BlockBurst {
				t.Fatalf("the miner made only %d blocks: too few to test a flood (want %d)", mined, 2*gossip.BlockBurst)
			}

			now := time.Now()
			for i, n := range nodes {
				if got := n.peers.BannedCount(); got != 0 {
					t.Errorf("node %d banned %d peers", i, got)
				}
				for j, o := range nodes {
					if i == j {
						continue
					}
					if v := n.scores.Get(o.ID(), now); v != 0 {
						t.Errorf("node %d gave node %d a score of %.0f", i, j, v)
					}
					if n.host.Network().Connectedness(o.ID()) != network.Connected {
						t.Errorf("node %d is not connected to node %d", i, j)
					}
				}
			}
			if took > convergeBound {
				t.Errorf("converged %v after the miner stopped, want within %v", took.Round(time.Millisecond), convergeBound)
			}
			if err := nodes[1].store.Verify(nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestGossipSideBranchFlood has an attacker publish valid blocks that add
// nothing: siblings of a block deep in the node's chain, each well mined
// but on a branch far lighter than the best. The first gossip.BlockBurst
// cost tokens (and are stored as a side branch); past the bucket each is
// dropped before it is validated and costs peering.MisFlood, so the attacker is
// banned after peering.BanScore/peering.MisFlood of them, and no more are stored.
func TestGossipSideBranchFlood(t *testing.T) {
	p := nodetest.GossipParams(t)
	s := nodetest.NewStore(t, p)
	nodetest.Extend(t, s, 0, 10, "target")
	n := hostileNode(t, s)
	hp := newHonestPeer(t, n)
	tip := s.Tip()
	fork, err := s.HashAt(5)
	if err != nil {
		t.Fatal(err)
	}
	// Ten times the over-limit blocks that ban: GossipSub drops messages
	// past its validation queue on a loaded machine, and the bucket
	// refills while the flood lasts.
	const flood = gossip.BlockBurst + 10*peering.BanScore/10
	var msgs [][]byte
	var side []chain.Hash
	for i := 0; i < flood; i++ {
		b := nodetest.Mine(t, s, fork, 1, fmt.Sprintf("side %d", i))[0]
		side = append(side, b.Hash)
		msgs = append(msgs, mustMarshal(t, protocol.BlockToPB(&b)))
	}
	att, topic := gossipAttacker(t, n)

	w := hp.watch(n)
	start := time.Now()
	published := 0
	for _, m := range msgs {
		if att.Network().Connectedness(n.ID()) != network.Connected {
			break
		}
		if err := topic.Publish(context.Background(), m); err != nil {
			break
		}
		published++
	}
	took := wantBanned(t, n, att, start, banWithin)
	slowest := w.check(t)
	stored := 0
	for _, h := range side {
		if s.Has(h) {
			stored++
		}
	}
	wantChain(t, n, tip.Hash)
	t.Logf("published %d side-branch blocks; stored %d, ignored %d; banned after %v; honest slowest %v",
		published, stored, n.gossip.Ignored(), took.Round(time.Millisecond), slowest.Round(time.Microsecond))
	// The bucket refills at gossip.BlockRate while the flood lasts.
	if limit := gossip.BlockBurst + int(gossip.BlockRate*took.Seconds()) + 1; stored > limit {
		t.Errorf("stored %d side-branch blocks, want at most the bucket's %d", stored, limit)
	}
	if stored == len(side) {
		t.Error("every side-branch block was stored: the rate limit dropped none")
	}
}

// TestMinedAnnouncementsWithinConvergence pins the miner's announcement
// gap well under the convergence bound TestFastMinerNotBanned holds a
// network to (package gossip pins it against a peer's rate limit).
func TestMinedAnnouncementsWithinConvergence(t *testing.T) {
	if gossip.MinedAnnounceGap >= convergeBound/2 {
		t.Errorf("announcement gap %v is not well under the convergence bound %v", gossip.MinedAnnounceGap, convergeBound)
	}
}
