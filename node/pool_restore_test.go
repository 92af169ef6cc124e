package node

import (
	"strings"
	"testing"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/internal/nodetest"
)

// TestReorgRestoresOnlyAcceptableEntries: a reorg drops a block holding
// an entry this node would not take (valid in the block as written, too
// big once packed alone, because escaping grows it) next to a good one.
// Only the good one goes back into the pool: the other would jam the
// miner's packing, which stops at the first entry that does not fit.
func TestReorgRestoresOnlyAcceptableEntries(t *testing.T) {
	s := nodetest.NewStore(t, chain.TestNet())
	_, nodes := mockNodes(t, s)
	n := nodes[0]
	nodetest.Extend(t, s, 0, 2, "base")
	bad := strings.Repeat("<", s.Params().MaxDataSize/3)
	const good = "a good entry"
	if s.Params().CheckEntry(bad) == nil {
		t.Fatal("test setup: the bad entry is acceptable")
	}
	data, packed := chain.PackEntries([]string{good}, s.Params().MaxDataSize)
	if packed != 1 {
		t.Fatal("test setup: cannot pack the good entry")
	}
	data = `["` + bad + `",` + data[1:]
	if got := chain.UnpackEntries(data); len(got) != 2 || got[0] != bad || got[1] != good {
		t.Fatalf("test setup: block data unpacks to %d entries", len(got))
	}
	side := nodetest.Extend(t, s, 2, 1, data)
	if s.Tip().Hash != side[0].Hash {
		t.Fatal("test setup: the block with the entries is not the tip")
	}
	fork, err := s.HashAt(2)
	if err != nil {
		t.Fatal(err)
	}
	heavier := nodetest.Mine(t, s, fork, 2, "heavier")
	res, err := s.AddBlocks(heavier)
	if err != nil || !res.Reorg {
		t.Fatalf("reorg: %+v, %v", res, err)
	}
	n.updatePool(res)
	if !n.pool.Has(chain.EntryID(good)) {
		t.Fatal("the good entry of the dropped block was not restored")
	}
	if n.pool.Has(chain.EntryID(bad)) {
		t.Fatal("an entry too big to pack was restored into the pool")
	}
}
