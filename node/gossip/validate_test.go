package gossip

import (
	"math/big"
	"testing"
	"time"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/internal/nodetest"
)

// TestCouldOutweigh checks the bound that decides whether a gossiped block
// is charged before it is validated.
func TestCouldOutweigh(t *testing.T) {
	fixed := nodetest.GossipParams(t) // 8 bits
	w := func(blocks int64, bits uint) *big.Int { return new(big.Int).Lsh(big.NewInt(blocks), bits) }
	tip := chain.Entry{Hash: chain.Hash{1}, Height: 10, Bits: 8, Work: w(11, 8)}
	// child returns a block whose hash has exactly zeros leading zero bits.
	child := func(zeros int) *chain.Block {
		b := &chain.Block{}
		b.Hash[zeros/8] = 0x80 >> (zeros % 8)
		return b
	}
	for _, c := range []struct {
		name   string
		p      *chain.Params
		parent chain.Entry
		zeros  int
		want   bool
	}{
		{"on the tip", fixed, tip, 8, true},
		{"sibling of the tip: equal work", fixed, chain.Entry{Hash: chain.Hash{2}, Height: 9, Bits: 8, Work: w(10, 8)}, 8, false},
		{"sibling with extra zero bits: work counts the difficulty, not the hash", fixed, chain.Entry{Hash: chain.Hash{2}, Height: 9, Bits: 8, Work: w(10, 8)}, 40, false},
		{"on a side tip as heavy as ours", fixed, chain.Entry{Hash: chain.Hash{3}, Height: 10, Bits: 8, Work: w(11, 8)}, 8, true},
		{"deep side branch", fixed, chain.Entry{Hash: chain.Hash{4}, Height: 5, Bits: 8, Work: w(6, 8)}, 8, false},
	} {
		if got := couldOutweigh(c.p, c.parent, child(c.zeros), tip); got != c.want {
			t.Errorf("%s: couldOutweigh = %v, want %v", c.name, got, c.want)
		}
	}

	// Retargeting: at a retarget height the difficulty may rise by
	// MaxRetargetStep, so a sibling of the tip could outweigh it if its
	// hash has the zero bits; elsewhere it cannot.
	rp, err := chain.NewParams("retarget", "retarget network", 1577836800, 8, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	iv := rp.RetargetInterval
	rtip := chain.Entry{Hash: chain.Hash{1}, Height: iv, Bits: 8, Work: w(int64(iv)+1, 8)}
	atRetarget := chain.Entry{Hash: chain.Hash{2}, Height: iv - 1, Bits: 8, Work: w(int64(iv), 8)}
	if !couldOutweigh(rp, atRetarget, child(8+int(rp.MaxRetargetStep)), rtip) {
		t.Error("a retarget-height sibling with the zero bits of a harder step cannot outweigh, want could")
	}
	if couldOutweigh(rp, atRetarget, child(8), rtip) {
		t.Error("a retarget-height sibling with only the old difficulty's zero bits could outweigh")
	}
	rtip2 := chain.Entry{Hash: chain.Hash{1}, Height: iv + 1, Bits: 8, Work: w(int64(iv)+2, 8)}
	notRetarget := chain.Entry{Hash: chain.Hash{2}, Height: iv, Bits: 8, Work: w(int64(iv)+1, 8)}
	if couldOutweigh(rp, notRetarget, child(30), rtip2) {
		t.Error("a sibling away from a retarget height could outweigh")
	}
}

// TestMinedAnnouncementsFitPeerLimit pins the miner's announcement rate to
// half of what a peer allows of blocks that add nothing: to a peer that
// synced them first, a miner's announcements are duplicates.
func TestMinedAnnouncementsFitPeerLimit(t *testing.T) {
	if perSecond := float64(time.Second) / float64(MinedAnnounceGap); 2*perSecond > BlockRate {
		t.Errorf("a miner announces up to %.0f blocks/s; twice that is over a peer's allowance of %d/s for blocks that add nothing", perSecond, BlockRate)
	}
}
