package storage_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// testNow is the local clock of every test store and validator: 2024-01-01,
// well after every block the helpers mine (TestNet's genesis is 2020-01-01
// and generated blocks are seconds to minutes apart).
const testNow = 1704067200

// clock is the store clock for tests: fixed at testNow.
func clock() time.Time { return time.Unix(testNow, 0) }

// The on-disk layout, written out here rather than taken from the package
// so that a change to it fails the tamper and golden tests instead of
// silently moving them along. A layout change needs a schema version bump.
var (
	bucketBlocks = []byte("blocks") // height u64 | hash -> index u64 | time i64 | nonce u64 | prev 32 | data
	bucketIndex  = []byte("index")  // height u64 | hash -> parent 32 | height u64 | time i64 | bits u8 | work
	bucketTags   = []byte("tags")   // height>>8 u64 -> records of height&0xff u8 | hash[28:32]
	bucketBest   = []byte("best")   // height u64 big-endian -> hash
	bucketMeta   = []byte("meta")   // "tip", "params", "version", "count"
)

const (
	blockDataOffset = 8 + 8 + 8 + chain.HashSize
	entryWorkOffset = chain.HashSize + 8 + 8 + 1
	tagRecord       = 5
)

// newStore creates a store of network p in a fresh temporary directory,
// on the test clock, and closes it when the test ends. It returns the store
// and its directory.
func newStore(tb testing.TB, p *chain.Params, opts ...storage.Option) (*storage.Store, string) {
	tb.Helper()
	dir := tb.TempDir()
	s, err := storage.Create(dir, p, append([]storage.Option{storage.WithClock(clock)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s, dir
}

// reopen opens the store in dir on the test clock and closes it when the
// test ends.
func reopen(tb testing.TB, dir string, opts ...storage.Option) *storage.Store {
	tb.Helper()
	s, err := storage.Open(dir, nil, append([]storage.Option{storage.WithClock(clock)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// genesisValidator returns a Validator whose next block is a child of p's
// genesis: for chains mined without a store.
func genesisValidator(tb testing.TB, p *chain.Params) *chain.Validator {
	tb.Helper()
	v, err := chain.NewValidator(p, p.GenesisEntry(), []int64{p.Genesis.Timestamp})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// mine mines n blocks on top of the stored block parent, one second
// apart, with data tag/height, without storing them.
func mine(tb testing.TB, s *storage.Store, parent chain.Hash, n int, tag string) []chain.Block {
	tb.Helper()
	v, err := s.Validator(parent)
	if err != nil {
		tb.Fatalf("validator at %s: %v", parent.Short(), err)
	}
	return mineOn(tb, v, n, 1, tag)
}

// mineOn mines n blocks on v's tip, each the child of the one before, with
// timestamps tip.Time+step, +2*step, ... and data tag/height (so branches
// mined with different tags differ). It validates each block with v, which
// ends at the last one.
func mineOn(tb testing.TB, v *chain.Validator, n int, step int64, tag string) []chain.Block {
	tb.Helper()
	m := &chain.Miner{Threads: 1}
	out := make([]chain.Block, 0, n)
	for range n {
		tip := v.Tip()
		tmpl, bits := v.Template(fmt.Sprintf("%s/%d", tag, tip.Height+1), tip.Time+step)
		b, err := m.Solve(context.Background(), tmpl, bits)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := v.Next(&b, testNow); err != nil {
			tb.Fatalf("mined block %d does not validate: %v", b.Index, err)
		}
		out = append(out, b)
	}
	return out
}

// solveBlock finds a nonce giving b at least bits leading zero bits and sets
// Nonce and Hash, without validating anything: for crafting invalid blocks.
func solveBlock(b chain.Block, bits int) chain.Block {
	for b.Nonce = 0; ; b.Nonce++ {
		b.Hash = b.ComputeHash()
		if chain.LeadingZeroBits(&b.Hash) >= bits {
			return b
		}
	}
}

// mustAdd adds blocks and fails the test on any error.
func mustAdd(tb testing.TB, s *storage.Store, blocks []chain.Block) storage.Result {
	tb.Helper()
	res, err := s.AddBlocks(blocks)
	if err != nil {
		tb.Fatalf("AddBlocks(%d blocks from %d): %v", len(blocks), blocks[0].Index, err)
	}
	return res
}

// tipOf returns the last block of a run.
func tipOf(blocks []chain.Block) *chain.Block { return &blocks[len(blocks)-1] }

// wantRule fails the test unless err wraps a *chain.RuleError with code.
func wantRule(tb testing.TB, err error, code chain.ErrorCode) {
	tb.Helper()
	var re *chain.RuleError
	if !errors.As(err, &re) {
		tb.Fatalf("error %v: want a *chain.RuleError %s", err, code)
	}
	if re.Code != code {
		tb.Fatalf("error %v: rule %s, want %s", err, re.Code, code)
	}
}

// bestHashes returns the best chain's hashes by height, read with ForEach.
func bestHashes(tb testing.TB, s *storage.Store) []chain.Hash {
	tb.Helper()
	var out []chain.Hash
	err := s.ForEach(0, math.MaxUint64, func(b *chain.Block) error {
		if b.Index != uint64(len(out)) {
			return fmt.Errorf("ForEach gave block %d at position %d", b.Index, len(out))
		}
		out = append(out, b.Hash)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// wantBest fails the test unless the best chain is exactly the genesis
// followed by want, the store's tip is want's last block, and no height
// above it is stored.
func wantBest(tb testing.TB, s *storage.Store, want []chain.Block) {
	tb.Helper()
	got := bestHashes(tb, s)
	if len(got) != len(want)+1 {
		tb.Fatalf("best chain has %d blocks, want %d", len(got), len(want)+1)
	}
	if got[0] != s.Params().Genesis.Hash {
		tb.Fatalf("best chain starts at %s, not the genesis", got[0].Short())
	}
	for i := range want {
		if got[i+1] != want[i].Hash {
			tb.Fatalf("best chain at %d is %s, want %s", i+1, got[i+1].Short(), want[i].Hash.Short())
		}
	}
	tip := s.Tip()
	if wantTip := s.Params().Genesis.Hash; len(want) == 0 && tip.Hash != wantTip || len(want) > 0 && tip.Hash != tipOf(want).Hash {
		tb.Fatalf("tip %s at %d does not end the best chain", tip.Hash.Short(), tip.Height)
	}
	if _, err := s.HashAt(tip.Height + 1); !errors.Is(err, storage.ErrNotFound) {
		tb.Fatalf("HashAt(tip+1 = %d): %v, want ErrNotFound", tip.Height+1, err)
	}
}

// wantTipBranch fails the test unless the best chain is exactly the branch
// of the stored tip: walking back from the tip by parent, every height has
// the block of that branch, and nothing is stored above the tip.
func wantTipBranch(tb testing.TB, s *storage.Store) {
	tb.Helper()
	best := bestHashes(tb, s)
	tip := s.Tip()
	if uint64(len(best)) != tip.Height+1 {
		tb.Fatalf("best chain has %d blocks, tip is at %d", len(best), tip.Height)
	}
	e := tip
	for {
		if best[e.Height] != e.Hash {
			tb.Fatalf("best chain at %d is %s, the tip's branch has %s", e.Height, best[e.Height].Short(), e.Hash.Short())
		}
		if e.Height == 0 {
			break
		}
		var err error
		if e, err = s.Entry(e.Parent); err != nil {
			tb.Fatalf("entry of %s: %v", e.Parent.Short(), err)
		}
	}
	if _, err := s.HashAt(tip.Height + 1); !errors.Is(err, storage.ErrNotFound) {
		tb.Fatalf("HashAt(tip+1 = %d): %v, want ErrNotFound", tip.Height+1, err)
	}
}

// tamper opens the store's bbolt file in dir directly and runs fn in a
// write transaction. The store must be closed.
func tamper(tb testing.TB, dir string, fn func(tx *bolt.Tx) error) {
	tb.Helper()
	db, err := bolt.Open(dir+"/"+storage.FileName, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		tb.Fatal(err)
	}
}
