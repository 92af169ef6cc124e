package node

import (
	"testing"
	"time"

	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/internal/nodetest"
)

// TestMinerKeepsToClock runs a node's miner on TestNet, whose one-bit
// blocks take microseconds and whose strict median rule asks each block to
// be a second past the median of the last 11: mining as fast as it can, a
// miner stamping max(now, median + 1) ran the chain's time a second ahead
// every six blocks. The node's miner waits for its clock instead: no block
// it stores is more than 2 s ahead of the clock (issue 12).
func TestMinerKeepsToClock(t *testing.T) {
	const blocks = 30
	s := nodetest.NewStore(t, chain.TestNet())
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	h, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	n := startNodeWith(t, Config{Store: s, Host: h, Mine: true, MineThreads: 1})
	var ahead time.Duration
	nodetest.WaitFor(t, 30*time.Second, "30 blocks mined", func() bool {
		tip := s.Tip()
		ahead = max(ahead, time.Unix(tip.Time, 0).Sub(time.Now()))
		return tip.Height >= blocks
	})
	n.SetMining(false)
	if ahead > 2*time.Second {
		t.Fatalf("the tip was %s ahead of the clock, want at most 2 s", ahead)
	}
	t.Logf("%d blocks; the tip at most %s ahead of the clock", s.Tip().Height, ahead)
}
