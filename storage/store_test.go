package storage_test

import (
	"context"
	"errors"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// sameEntry reports whether two index entries are equal, Work by value.
func sameEntry(a, b chain.Entry) bool {
	return a.Hash == b.Hash && a.Parent == b.Parent && a.Height == b.Height &&
		a.Time == b.Time && a.Bits == b.Bits && a.Work != nil && b.Work != nil && a.Work.Cmp(b.Work) == 0
}

// work returns the cumulative work of a TestNet branch of n blocks after
// the genesis: 2^1 per block, the genesis included.
func work(n int) *big.Int { return big.NewInt(int64(2 * (n + 1))) }

// otherNet is a private network unrelated to TestNet.
func otherNet(t *testing.T) *chain.Params {
	t.Helper()
	p, err := chain.NewParams("other", "another network", chain.TestNet().Genesis.Timestamp, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCreateOpenReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	p := chain.TestNet()
	if storage.Exists(dir) {
		t.Fatal("Exists before Create")
	}
	s, err := storage.Create(dir, p, storage.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	if !storage.Exists(dir) {
		t.Fatal("not Exists after Create")
	}
	if g := p.GenesisEntry(); !sameEntry(s.Tip(), g) {
		t.Fatalf("new store's tip %+v, want the genesis %+v", s.Tip(), g)
	}
	if s.Path() != filepath.Join(dir, storage.FileName) {
		t.Errorf("Path %s", s.Path())
	}
	blocks := mine(t, s, s.Tip().Hash, 25, "main")
	mustAdd(t, s, blocks)
	want := s.Tip()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Without params the store runs on its own network.
	s, err = storage.Open(dir, nil, storage.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	if !sameEntry(s.Tip(), want) {
		t.Fatalf("reopened tip %+v, want %+v", s.Tip(), want)
	}
	if got := s.Params(); got.ID() != p.ID() || got.Name != p.Name || got.Bits != p.Bits || got.MaxFutureDrift != p.MaxFutureDrift {
		t.Fatalf("reopened params %+v, want %+v", got, p)
	}
	wantBest(t, s, blocks)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// With the same network's params.
	s, err = storage.Open(dir, chain.TestNet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !sameEntry(s.Tip(), want) {
		t.Fatalf("tip when opened with params %+v, want %+v", s.Tip(), want)
	}
}

func TestOpenWrongNetwork(t *testing.T) {
	s, dir := newStore(t, chain.TestNet())
	mustAdd(t, s, mine(t, s, s.Tip().Hash, 3, "main"))
	tip := s.Tip()
	s.Close()
	for _, p := range []*chain.Params{otherNet(t), chain.MainNet()} {
		s2, err := storage.Open(dir, p)
		if !errors.Is(err, storage.ErrWrongNetwork) {
			if err == nil {
				s2.Close()
			}
			t.Fatalf("Open with %s: %v, want ErrWrongNetwork", p.Name, err)
		}
	}
	// The refused opens left the store as it was, and unlocked.
	s = reopen(t, dir)
	if !sameEntry(s.Tip(), tip) {
		t.Fatalf("tip %+v after refused opens, want %+v", s.Tip(), tip)
	}
}

func TestOpenNoChain(t *testing.T) {
	empty := t.TempDir()
	missing := filepath.Join(t.TempDir(), "missing")
	for _, dir := range []string{empty, missing} {
		s, err := storage.Open(dir, nil)
		if !errors.Is(err, storage.ErrNoChain) {
			if err == nil {
				s.Close()
			}
			t.Fatalf("Open(%s, nil): %v, want ErrNoChain", dir, err)
		}
		if storage.Exists(dir) {
			t.Errorf("failed Open left a chain file in %s", dir)
		}
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed Open created the directory: %v", err)
	}
	if _, err := storage.Create(empty, nil); err == nil {
		t.Error("Create with nil params succeeded")
	}
}

func TestCreateExists(t *testing.T) {
	s, dir := newStore(t, chain.TestNet())
	mustAdd(t, s, mine(t, s, s.Tip().Hash, 3, "main"))
	tip := s.Tip()
	// Refused whether the existing store is open or closed.
	if _, err := storage.Create(dir, chain.TestNet()); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("Create over an open store: %v, want ErrExists", err)
	}
	s.Close()
	for _, p := range []*chain.Params{chain.TestNet(), otherNet(t)} {
		s2, err := storage.Create(dir, p)
		if !errors.Is(err, storage.ErrExists) {
			if err == nil {
				s2.Close()
			}
			t.Fatalf("Create(%s) over a store: %v, want ErrExists", p.Name, err)
		}
	}
	s = reopen(t, dir)
	if !sameEntry(s.Tip(), tip) {
		t.Fatalf("tip %+v after refused Create, want %+v", s.Tip(), tip)
	}
}

func TestOpenInUse(t *testing.T) {
	s, dir := newStore(t, chain.TestNet())
	start := time.Now()
	s2, err := storage.Open(dir, nil)
	if err == nil {
		s2.Close()
		t.Fatal("second Open of an open store succeeded")
	}
	if !errors.Is(err, storage.ErrInUse) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open: %v, want an \"in use\" error", err)
	}
	// Fast: the lock wait is bounded, not a hang.
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second Open took %v to fail", d)
	}
	// The first store is unaffected; once it closes the directory opens.
	mustAdd(t, s, mine(t, s, s.Tip().Hash, 2, "main"))
	s.Close()
	s = reopen(t, dir)
	if s.Tip().Height != 2 {
		t.Fatalf("tip at %d, want 2", s.Tip().Height)
	}
}

func TestAppendRun(t *testing.T) {
	s, _ := newStore(t, chain.TestNet())
	genesis := s.Tip()
	run := mine(t, s, genesis.Hash, 50, "main")
	res := mustAdd(t, s, run)
	if res.Added != 50 || !res.Extended || res.Reorg || res.ForkHeight != 0 ||
		!sameEntry(res.OldTip, genesis) || res.Tip.Hash != run[49].Hash || res.Tip.Height != 50 {
		t.Fatalf("result %+v", res)
	}
	if res.Tip.Work.Cmp(work(50)) != 0 {
		t.Fatalf("tip work %v, want %v", res.Tip.Work, work(50))
	}
	if !sameEntry(s.Tip(), res.Tip) {
		t.Fatalf("Tip %+v, Result.Tip %+v", s.Tip(), res.Tip)
	}
	wantBest(t, s, run)
	if n, err := s.Count(); err != nil || n != 51 {
		t.Fatalf("Count = %d, %v; want 51", n, err)
	}
	prev := genesis
	for i := range run {
		b := &run[i]
		got, err := s.BlockAt(b.Index)
		if err != nil || *got != *b {
			t.Fatalf("BlockAt(%d) = %+v, %v; want %+v", b.Index, got, err, b)
		}
		if got, err := s.Block(b.Hash); err != nil || *got != *b {
			t.Fatalf("Block(%s) = %+v, %v", b.Hash.Short(), got, err)
		}
		e, err := s.Entry(b.Hash)
		want := chain.Entry{Hash: b.Hash, Parent: prev.Hash, Height: b.Index, Time: b.Timestamp, Bits: 1, Work: work(i + 1)}
		if err != nil || !sameEntry(e, want) {
			t.Fatalf("Entry(%d) = %+v, %v; want %+v", b.Index, e, err, want)
		}
		if ok, err := s.OnBest(b.Hash); !ok || err != nil {
			t.Fatalf("OnBest(%d) = %v, %v", b.Index, ok, err)
		}
		prev = e
	}

	// A second run on the new tip appends.
	more := mine(t, s, s.Tip().Hash, 30, "main")
	res = mustAdd(t, s, more)
	if res.Added != 30 || !res.Extended || res.Reorg || res.ForkHeight != 50 || res.OldTip.Hash != run[49].Hash || res.Tip.Height != 80 {
		t.Fatalf("second run: result %+v", res)
	}
	wantBest(t, s, append(run, more...))
	for _, b := range []*chain.Block{&run[0], &more[29]} {
		if !s.Has(b.Hash) {
			t.Errorf("Has(%d) false", b.Index)
		}
	}
	if s.Has(chain.Hash{1}) {
		t.Error("Has of an unknown hash")
	}
	if _, err := s.Block(chain.Hash{1}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Block of an unknown hash: %v, want ErrNotFound", err)
	}
	if _, err := s.Entry(chain.Hash{1}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Entry of an unknown hash: %v, want ErrNotFound", err)
	}
	if _, err := s.BlockAt(81); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("BlockAt above the tip: %v, want ErrNotFound", err)
	}
	if ok, err := s.OnBest(chain.Hash{1}); ok || err != nil {
		t.Errorf("OnBest of an unknown hash = %v, %v", ok, err)
	}
}

func TestDuplicatesSkipped(t *testing.T) {
	s, _ := newStore(t, chain.TestNet())
	run := mine(t, s, s.Tip().Hash, 30, "main")
	mustAdd(t, s, run[:20])
	tip := s.Tip()

	// The same run again: nothing new, nothing changes.
	res := mustAdd(t, s, run[:20])
	if res.Added != 0 || res.Extended || res.Reorg || !sameEntry(res.Tip, tip) {
		t.Fatalf("repeated run: result %+v", res)
	}
	// The genesis, and no blocks at all.
	for _, blocks := range [][]chain.Block{{s.Params().Genesis}, nil} {
		if res, err := s.AddBlocks(blocks); err != nil || res.Added != 0 || res.Extended || !sameEntry(res.Tip, tip) {
			t.Fatalf("AddBlocks(%d blocks) = %+v, %v", len(blocks), res, err)
		}
	}
	// An overlapping run stores only its new part.
	res = mustAdd(t, s, run[10:])
	if res.Added != 10 || !res.Extended || res.Reorg || res.Tip.Height != 30 || res.ForkHeight != 20 {
		t.Fatalf("overlapping run: result %+v", res)
	}
	if n, err := s.Count(); err != nil || n != 31 {
		t.Fatalf("Count = %d, %v; want 31", n, err)
	}
	wantBest(t, s, run)
}

func TestOrphan(t *testing.T) {
	s, _ := newStore(t, chain.TestNet())
	mustAdd(t, s, mine(t, s, s.Tip().Hash, 5, "main"))
	tip := s.Tip()
	// A run mined elsewhere whose first block's parent this store lacks.
	other, _ := newStore(t, chain.TestNet())
	elsewhere := mine(t, other, other.Tip().Hash, 8, "elsewhere")
	res, err := s.AddBlocks(elsewhere[3:])
	if !errors.Is(err, storage.ErrOrphan) {
		t.Fatalf("orphan run: %v, want ErrOrphan", err)
	}
	var re *chain.RuleError
	if errors.As(err, &re) {
		t.Fatalf("orphan reported as a rule error: %v", err)
	}
	if res.Added != 0 || res.Extended || !sameEntry(res.Tip, tip) {
		t.Fatalf("orphan run: result %+v", res)
	}
	for _, b := range elsewhere[3:] {
		if s.Has(b.Hash) {
			t.Fatalf("orphan block %d stored", b.Index)
		}
	}
	if n, _ := s.Count(); n != 6 {
		t.Fatalf("Count = %d after an orphan, want 6", n)
	}
	// Once the gap is filled the same blocks are accepted.
	if res := mustAdd(t, s, elsewhere); res.Added != 8 || !res.Reorg {
		t.Fatalf("filled run: result %+v", res)
	}
}

func TestNotLinked(t *testing.T) {
	s, _ := newStore(t, chain.TestNet())
	run := mine(t, s, s.Tip().Hash, 10, "main")
	gap := append(append([]chain.Block{}, run[:5]...), run[6:]...)
	swapped := append([]chain.Block{}, run...)
	swapped[3], swapped[4] = swapped[4], swapped[3]
	for name, blocks := range map[string][]chain.Block{"gap": gap, "swapped": swapped} {
		res, err := s.AddBlocks(blocks)
		if !errors.Is(err, storage.ErrNotLinked) {
			t.Fatalf("%s: %v, want ErrNotLinked", name, err)
		}
		if res.Added != 0 || res.Extended {
			t.Fatalf("%s: result %+v", name, res)
		}
		// Refused whole: not even the linked prefix is stored.
		if s.Has(run[0].Hash) {
			t.Fatalf("%s: the run's first block was stored", name)
		}
	}
	if n, _ := s.Count(); n != 1 {
		t.Fatalf("Count = %d, want 1", n)
	}
}

func TestInvalidBlockInRun(t *testing.T) {
	p := chain.TestNet()
	tooNew := int64(testNow) + int64(p.MaxFutureDrift.Seconds()) + 1
	tests := []struct {
		name string
		code chain.ErrorCode
		// bad turns good, a valid child of parent, into an invalid block.
		bad func(good chain.Block, parent chain.Entry) chain.Block
	}{
		{"hash not of header", chain.ErrBadHash, func(b chain.Block, _ chain.Entry) chain.Block {
			b.Data += "!"
			return b
		}},
		{"too little work", chain.ErrDifficulty, func(b chain.Block, _ chain.Entry) chain.Block {
			for b.Nonce = 0; ; b.Nonce++ {
				if b.Hash = b.ComputeHash(); chain.LeadingZeroBits(&b.Hash) == 0 {
					return b
				}
			}
		}},
		{"index skips", chain.ErrBadIndex, func(b chain.Block, _ chain.Entry) chain.Block {
			b.Index++
			return solveBlock(b, 1)
		}},
		{"time not after median", chain.ErrTimeTooOld, func(b chain.Block, parent chain.Entry) chain.Block {
			b.Timestamp = parent.Time - 100
			return solveBlock(b, 1)
		}},
		{"time too far ahead", chain.ErrTimeTooNew, func(b chain.Block, _ chain.Entry) chain.Block {
			b.Timestamp = tooNew
			return solveBlock(b, 1)
		}},
		{"data too large", chain.ErrDataTooLarge, func(b chain.Block, _ chain.Entry) chain.Block {
			b.Data = strings.Repeat("x", p.MaxDataSize+1)
			return solveBlock(b, 1)
		}},
		{"data not UTF-8", chain.ErrBadData, func(b chain.Block, _ chain.Entry) chain.Block {
			b.Data = "bad \xff data"
			return solveBlock(b, 1)
		}},
	}
	for _, tt := range tests {
		for _, valid := range []int{5, 0} {
			s, _ := newStore(t, p)
			base := mine(t, s, s.Tip().Hash, 3, "base")
			mustAdd(t, s, base)
			good := mine(t, s, s.Tip().Hash, valid+1, "run")
			parent := s.Tip()
			if valid > 0 {
				parent = chain.Entry{Hash: good[valid-1].Hash, Height: good[valid-1].Index, Time: good[valid-1].Timestamp}
			}
			bad := tt.bad(good[valid], parent)
			// Two children mined on the bad block: stored neither.
			c1 := solveBlock(chain.Block{Index: bad.Index + 1, Timestamp: bad.Timestamp + 1, Data: "child", PrevHash: bad.Hash}, 1)
			c2 := solveBlock(chain.Block{Index: c1.Index + 1, Timestamp: c1.Timestamp + 1, Data: "child", PrevHash: c1.Hash}, 1)
			run := append(append(good[:valid:valid], bad), c1, c2)

			res, err := s.AddBlocks(run)
			wantRule(t, err, tt.code)
			if errors.Is(err, storage.ErrCorrupt) || errors.Is(err, storage.ErrOrphan) {
				t.Fatalf("%s: rule error also reads as a local error: %v", tt.name, err)
			}
			if res.Added != valid || res.Extended != (valid > 0) || res.Reorg {
				t.Fatalf("%s after %d valid: result %+v", tt.name, valid, res)
			}
			want := append(base, good[:valid]...)
			if !sameEntry(res.Tip, s.Tip()) || res.Tip.Hash != tipOf(want).Hash {
				t.Fatalf("%s after %d valid: tip %s, want %s", tt.name, valid, res.Tip.Hash.Short(), tipOf(want).Hash.Short())
			}
			wantBest(t, s, want)
			for _, b := range []chain.Block{bad, c1, c2} {
				if s.Has(b.Hash) {
					t.Fatalf("%s: invalid block %d stored", tt.name, b.Index)
				}
			}
			if n, _ := s.Count(); n != len(want)+1 {
				t.Fatalf("%s: Count = %d, want %d", tt.name, n, len(want)+1)
			}
			if err := s.Verify(nil); err != nil {
				t.Fatalf("%s: Verify: %v", tt.name, err)
			}
		}
	}

	// A block at index 0 that is not the network's genesis.
	s, _ := newStore(t, p)
	fake := chain.NewGenesis("not the genesis", p.Genesis.Timestamp)
	_, err := s.AddBlocks([]chain.Block{fake})
	wantRule(t, err, chain.ErrBadGenesis)
	if s.Has(fake.Hash) {
		t.Fatal("fake genesis stored")
	}
}

// TestForkChoice grows a side branch a piece at a time: less work stays a
// side branch, equal work keeps the current chain, more work reorganises,
// and the old chain overtaking again reorganises back.
func TestForkChoice(t *testing.T) {
	s, _ := newStore(t, chain.TestNet())
	main := mine(t, s, s.Tip().Hash, 20, "main")
	mustAdd(t, s, main)
	mainTip := s.Tip()
	side := mine(t, s, main[9].Hash, 11, "side") // heights 11..21

	for _, step := range []struct {
		name     string
		from, to int // side[from:to]
	}{{"less work", 0, 5}, {"still less", 5, 9}, {"equal work", 9, 10}} {
		res := mustAdd(t, s, side[step.from:step.to])
		if res.Added != step.to-step.from || res.Extended || res.Reorg || !sameEntry(res.Tip, mainTip) || !sameEntry(res.OldTip, mainTip) {
			t.Fatalf("%s: result %+v", step.name, res)
		}
		wantBest(t, s, main)
		for _, b := range side[step.from:step.to] {
			if on, err := s.OnBest(b.Hash); on || err != nil || !s.Has(b.Hash) {
				t.Fatalf("%s: side block %d: OnBest %v, %v; Has %v", step.name, b.Index, on, err, s.Has(b.Hash))
			}
		}
	}

	// One more block: the side branch has more work and becomes best,
	// from the fork at 10, though most of it was stored earlier.
	res := mustAdd(t, s, side[10:11])
	if res.Added != 1 || !res.Extended || !res.Reorg || res.ForkHeight != 10 || !sameEntry(res.OldTip, mainTip) || res.Tip.Hash != side[10].Hash {
		t.Fatalf("overtaking: result %+v", res)
	}
	sideChain := append(main[:10:10], side[:11]...)
	wantBest(t, s, sideChain)
	for _, b := range main[10:] {
		if on, _ := s.OnBest(b.Hash); on || !s.Has(b.Hash) {
			t.Fatalf("old best block %d: OnBest %v, Has %v", b.Index, on, s.Has(b.Hash))
		}
	}

	// The old chain catches up (equal work: no change), then overtakes.
	back := mine(t, s, main[19].Hash, 2, "main")
	if res := mustAdd(t, s, back[:1]); res.Extended {
		t.Fatalf("old chain at equal work: result %+v", res)
	}
	wantBest(t, s, sideChain)
	res = mustAdd(t, s, back[1:])
	if !res.Reorg || res.ForkHeight != 10 || res.OldTip.Hash != side[10].Hash || res.Tip.Hash != back[1].Hash {
		t.Fatalf("reorg back: result %+v", res)
	}
	wantBest(t, s, append(main, back...))
	if err := s.Verify(nil); err != nil {
		t.Fatal(err)
	}
}

// TestReorgOneCall hands over a whole heavier branch in one AddBlocks call.
func TestReorgOneCall(t *testing.T) {
	s, dir := newStore(t, chain.TestNet())
	main := mine(t, s, s.Tip().Hash, 30, "main")
	mustAdd(t, s, main)
	old := s.Tip()
	side := mine(t, s, main[9].Hash, 25, "side") // heights 11..35
	res := mustAdd(t, s, side)
	if res.Added != 25 || !res.Extended || !res.Reorg || res.ForkHeight != 10 || !sameEntry(res.OldTip, old) ||
		res.Tip.Hash != side[24].Hash || res.Tip.Height != 35 || res.Tip.Work.Cmp(work(35)) != 0 {
		t.Fatalf("result %+v", res)
	}
	want := append(main[:10:10], side...)
	wantBest(t, s, want)
	wantTipBranch(t, s)
	if n, _ := s.Count(); n != 1+30+25 {
		t.Fatalf("Count = %d, want %d", n, 1+30+25)
	}
	s.Close()
	s = reopen(t, dir)
	wantBest(t, s, want)
	if err := s.Verify(nil); err != nil {
		t.Fatal(err)
	}
}

// retargetNet returns a network whose difficulty rises when blocks come
// faster than one a minute, so that a shorter branch of fast blocks can
// have more work than a longer branch of slow ones.
func retargetNet(t *testing.T) *chain.Params {
	t.Helper()
	p, err := chain.NewParams("retarget", "storage retarget test", chain.TestNet().Genesis.Timestamp, 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// branchWork sums 2^bits over the genesis and blocks, reading each
// block's difficulty from the store: work computed apart from the
// store's cumulative sums.
func branchWork(t *testing.T, s *storage.Store, blocks []chain.Block) *big.Int {
	t.Helper()
	w := new(big.Int).Lsh(big.NewInt(1), uint(s.Params().Bits))
	for _, b := range blocks {
		e, err := s.Entry(b.Hash)
		if err != nil {
			t.Fatal(err)
		}
		w.Add(w, new(big.Int).Lsh(big.NewInt(1), uint(e.Bits)))
	}
	return w
}

// TestReorgToShorterChain reorganises to a branch with fewer blocks but
// more work: the heights above the new tip must go.
func TestReorgToShorterChain(t *testing.T) {
	p := retargetNet(t)
	s, dir := newStore(t, p)
	g := s.Tip()
	// 30 blocks four minutes apart: the difficulty stays at its floor.
	slow := mineOn(t, genesisValidator(t, p), 30, 240, "slow")
	// 25 blocks a second apart: the retarget at 20 raises the difficulty.
	fast := mineOn(t, genesisValidator(t, p), 25, 1, "fast")

	res := mustAdd(t, s, slow)
	if res.Tip.Height != 30 || res.Reorg {
		t.Fatalf("slow branch: result %+v", res)
	}
	res = mustAdd(t, s, fast)
	slowWork, fastWork := branchWork(t, s, slow), branchWork(t, s, fast)
	if fastWork.Cmp(slowWork) <= 0 {
		t.Fatalf("test setup: fast branch work %v not above slow %v", fastWork, slowWork)
	}
	if e, _ := s.Entry(fast[19].Hash); e.Bits <= p.Bits {
		t.Fatalf("test setup: no retarget at 20 (bits %d)", e.Bits)
	}
	if !res.Reorg || !res.Extended || res.ForkHeight != 0 || res.OldTip.Hash != slow[29].Hash || res.Tip.Hash != fast[24].Hash ||
		res.Tip.Height != 25 || res.Tip.Work.Cmp(fastWork) != 0 || res.OldTip.Work.Cmp(slowWork) != 0 {
		t.Fatalf("result %+v (fast work %v, slow work %v)", res, fastWork, slowWork)
	}
	wantBest(t, s, fast)
	for h := uint64(26); h <= 31; h++ {
		if _, err := s.HashAt(h); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("HashAt(%d) above the new tip: %v, want ErrNotFound", h, err)
		}
	}
	loc, err := s.Locator(64)
	if err != nil || loc[0] != fast[24].Hash || loc[len(loc)-1] != g.Hash {
		t.Fatalf("Locator after the reorg: %v", err)
	}

	// The longer branch growing by one block still has less work.
	more := mineOn(t, mustValidator(t, s, slow[29].Hash), 1, 240, "slow")
	if res := mustAdd(t, s, more); res.Extended {
		t.Fatalf("longer, lighter branch became best: %+v", res)
	}
	s.Close()
	s = reopen(t, dir)
	wantBest(t, s, fast)
	if err := s.Verify(nil); err != nil {
		t.Fatal(err)
	}
}

func mustValidator(t *testing.T, s *storage.Store, h chain.Hash) *chain.Validator {
	t.Helper()
	v, err := s.Validator(h)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// locatorHeights returns the heights of a locator's hashes, failing the
// test unless each is on s's best chain at that height.
func locatorHeights(t *testing.T, s *storage.Store, loc []chain.Hash) []uint64 {
	t.Helper()
	hs := make([]uint64, len(loc))
	for i, h := range loc {
		e, err := s.Entry(h)
		if err != nil {
			t.Fatalf("locator[%d]: %v", i, err)
		}
		if at, err := s.HashAt(e.Height); err != nil || at != h {
			t.Fatalf("locator[%d] (height %d) is not on the best chain", i, e.Height)
		}
		hs[i] = e.Height
	}
	return hs
}

func TestLocator(t *testing.T) {
	s, _ := newStore(t, chain.TestNet())
	// The shape for a tip of 1000, written out.
	want1000 := []uint64{1000, 999, 998, 997, 996, 995, 994, 993, 992, 991, 989, 985, 977, 961, 929, 865, 737, 481, 0}
	for _, tip := range []uint64{0, 1, 9, 10, 11, 12, 25, 100, 1000} {
		if n := tip - s.Tip().Height; n > 0 {
			mustAdd(t, s, mine(t, s, s.Tip().Hash, int(n), "main"))
		}
		loc, err := s.Locator(64)
		if err != nil {
			t.Fatal(err)
		}
		hs := locatorHeights(t, s, loc)
		if hs[0] != tip || hs[len(hs)-1] != 0 {
			t.Fatalf("tip %d: locator runs %d..%d, want tip..0", tip, hs[0], hs[len(hs)-1])
		}
		// Dense: the ten newest, one apart.
		dense := min(tip+1, 10)
		for i := uint64(0); i < dense; i++ {
			if hs[i] != tip-i {
				t.Fatalf("tip %d: locator heights %v, not dense at the top", tip, hs)
			}
		}
		// Then each step twice the one before; the last, to the genesis,
		// no longer than its step would have been.
		step := uint64(1)
		for i := int(dense); i < len(hs); i++ {
			step *= 2
			if gap := hs[i-1] - hs[i]; gap != step && !(i == len(hs)-1 && hs[i] == 0 && gap < step) {
				t.Fatalf("tip %d: locator heights %v: gap %d at %d, want %d", tip, hs, gap, i, step)
			}
		}
		if bound := 10 + 1 + math.Ceil(math.Log2(float64(max(tip, 1)))); float64(len(hs)) > bound {
			t.Fatalf("tip %d: locator of %d hashes, more than %v", tip, len(hs), bound)
		}
		if tip == 1000 && !slicesEqual(hs, want1000) {
			t.Fatalf("tip 1000: locator heights %v, want %v", hs, want1000)
		}
	}
}

func slicesEqual[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFindFork(t *testing.T) {
	p := chain.TestNet()
	a, _ := newStore(t, p)
	common := mine(t, a, a.Tip().Hash, 60, "common")
	mustAdd(t, a, common)
	aOwn := mine(t, a, a.Tip().Hash, 40, "a") // a: tip 100
	mustAdd(t, a, aOwn)

	// b forked from a at 60.
	b, _ := newStore(t, p)
	mustAdd(t, b, common)
	mustAdd(t, b, mine(t, b, b.Tip().Hash, 30, "b"))
	// c shares a's chain up to 95.
	c, _ := newStore(t, p)
	mustAdd(t, c, common)
	mustAdd(t, c, aOwn[:35])
	mustAdd(t, c, mine(t, c, c.Tip().Hash, 3, "c"))
	// d holds a prefix of a's chain, to 80.
	d, _ := newStore(t, p)
	mustAdd(t, d, common)
	mustAdd(t, d, aOwn[:20])

	aLoc, err := a.Locator(64)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		s      *storage.Store
		height uint64
		hash   chain.Hash
	}{
		// a's locator: 100..91, 89, 85, 77, 61, 29, 0. The first on b's
		// chain is 29: the locator is coarse below its dense part.
		{"fork at 60", b, 29, common[28].Hash},
		{"fork at 95, in the dense part", c, 95, aOwn[34].Hash},
		{"prefix to 80", d, 77, aOwn[16].Hash},
		{"same chain", a, 100, aOwn[39].Hash},
	} {
		e, ok, err := tt.s.FindFork(aLoc)
		if err != nil || !ok || e.Height != tt.height || e.Hash != tt.hash {
			t.Fatalf("%s: FindFork = %d %s, %v, %v; want %d %s", tt.name, e.Height, e.Hash.Short(), ok, err, tt.height, tt.hash.Short())
		}
		if at, _ := tt.s.HashAt(e.Height); at != e.Hash {
			t.Fatalf("%s: fork %s is not on the best chain", tt.name, e.Hash.Short())
		}
	}
	// And the other way: b's locator (90..81, 79, 75, 67, 51, 19, 0) on a.
	bLoc, _ := b.Locator(64)
	if e, ok, err := a.FindFork(bLoc); err != nil || !ok || e.Height != 51 || e.Hash != common[50].Hash {
		t.Fatalf("b's locator on a: %d %s, %v, %v; want 51", e.Height, e.Hash.Short(), ok, err)
	}

	// Another network: nothing in common, not even the genesis.
	o, _ := newStore(t, otherNet(t))
	mustAdd(t, o, mine(t, o, o.Tip().Hash, 5, "o"))
	oLoc, _ := o.Locator(64)
	for name, loc := range map[string][]chain.Hash{"other network": oLoc, "empty": nil, "unknown": {{1}, {2}}} {
		if e, ok, err := a.FindFork(loc); ok || err != nil {
			t.Fatalf("%s: FindFork = %d, %v, %v; want not found", name, e.Height, ok, err)
		}
	}
	// A block a holds off its best chain is passed over.
	side := mine(t, a, common[49].Hash, 3, "side")
	mustAdd(t, a, side)
	if e, ok, err := a.FindFork([]chain.Hash{side[2].Hash, common[40].Hash}); err != nil || !ok || e.Hash != common[40].Hash {
		t.Fatalf("side block in locator: FindFork = %d, %v, %v; want 41", e.Height, ok, err)
	}
}

func TestForEach(t *testing.T) {
	s, _ := newStore(t, chain.TestNet())
	run := mine(t, s, s.Tip().Hash, 50, "main")
	mustAdd(t, s, run)
	all := append([]chain.Block{s.Params().Genesis}, run...)

	collect := func(from, to uint64) []*chain.Block {
		t.Helper()
		var got []*chain.Block
		if err := s.ForEach(from, to, func(b *chain.Block) error {
			got = append(got, b)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	for _, tt := range []struct {
		from, to uint64
		first    uint64
		n        int
	}{
		{0, 50, 0, 51},
		{0, math.MaxUint64, 0, 51},
		{10, 20, 10, 11},
		{40, 1000, 40, 11}, // clipped to the tip
		{50, 50, 50, 1},
		{51, 60, 0, 0},
		{20, 10, 0, 0},
	} {
		got := collect(tt.from, tt.to)
		if len(got) != tt.n {
			t.Fatalf("ForEach(%d, %d): %d blocks, want %d", tt.from, tt.to, len(got), tt.n)
		}
		for i, b := range got {
			// Blocks are the caller's to keep: compare after the walk.
			if *b != all[tt.first+uint64(i)] {
				t.Fatalf("ForEach(%d, %d)[%d] = block %d %s, want %d", tt.from, tt.to, i, b.Index, b.Hash.Short(), tt.first+uint64(i))
			}
		}
	}

	// Early stop: fn's error comes back unchanged.
	errStop := errors.New("stop")
	calls := 0
	err := s.ForEach(10, 50, func(b *chain.Block) error {
		calls++
		if b.Index == 15 {
			return errStop
		}
		return nil
	})
	if err != errStop || calls != 6 {
		t.Fatalf("early stop: %v after %d calls, want errStop after 6", err, calls)
	}

	// After a reorg to another branch, ForEach follows the new best chain.
	side := mine(t, s, run[29].Hash, 25, "side")
	mustAdd(t, s, side)
	got := collect(0, math.MaxUint64)
	want := append(all[:31:31], side...)
	if len(got) != len(want) {
		t.Fatalf("after reorg: %d blocks, want %d", len(got), len(want))
	}
	for i := range want {
		if *got[i] != want[i] {
			t.Fatalf("after reorg: block %d is %s, want %s", i, got[i].Hash.Short(), want[i].Hash.Short())
		}
	}
}

func TestTemplate(t *testing.T) {
	s, _ := newStore(t, chain.TestNet())
	mustAdd(t, s, mine(t, s, s.Tip().Hash, 15, "main"))
	m := &chain.Miner{Threads: 1}
	tip := s.Tip()
	tmpl, bits := mustTemplate(t, s, "mined from a template")
	if tmpl.Index != tip.Height+1 || tmpl.PrevHash != tip.Hash || tmpl.Timestamp != testNow || tmpl.Data != "mined from a template" || bits != 1 {
		t.Fatalf("template %+v, bits %d on tip %d %s", tmpl, bits, tip.Height, tip.Hash.Short())
	}
	b, err := m.Solve(context.Background(), tmpl, bits)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := s.AddBlock(b); err != nil || !res.Extended || res.Tip.Hash != b.Hash {
		t.Fatalf("AddBlock(solved template) = %+v, %v", res, err)
	}

	// A clock behind the chain: the template is dated just after the
	// median time and still accepted.
	dir := s.Path()
	s.Close()
	lagging := func() time.Time { return time.Unix(chain.TestNet().Genesis.Timestamp, 0) }
	s, err = storage.Open(filepath.Dir(dir), nil, storage.WithClock(lagging))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tmpl, bits = mustTemplate(t, s, "late clock")
	if tmpl.Timestamp <= chain.TestNet().Genesis.Timestamp {
		t.Fatalf("template dated %d, not after the median", tmpl.Timestamp)
	}
	if b, err = m.Solve(context.Background(), tmpl, bits); err != nil {
		t.Fatal(err)
	}
	if res, err := s.AddBlock(b); err != nil || res.Tip.Hash != b.Hash {
		t.Fatalf("AddBlock(solved late template) = %+v, %v", res, err)
	}
}

// TestTemplateRetarget checks that Template asks for the difficulty the
// store's window requires at a retarget height.
func TestTemplateRetarget(t *testing.T) {
	p := retargetNet(t)
	s, _ := newStore(t, p)
	mustAdd(t, s, mineOn(t, genesisValidator(t, p), 19, 1, "fast"))
	tmpl, bits := mustTemplate(t, s, "at the retarget")
	if tmpl.Index != 20 || bits <= p.Bits {
		t.Fatalf("template for block %d wants %d bits; a retarget after fast blocks must raise %d", tmpl.Index, bits, p.Bits)
	}
	// The block's timestamp is the clock; at that pace the retarget
	// would not rise, but the difficulty comes from its ancestors only.
	b, err := (&chain.Miner{Threads: 1}).Solve(context.Background(), tmpl, bits)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := s.AddBlock(b); err != nil || res.Tip.Bits != bits {
		t.Fatalf("AddBlock = %+v, %v; want tip bits %d", res, err, bits)
	}
	// The same block solved at too few bits is refused.
	weak := tmpl
	weak.Data = "too weak"
	for weak.Nonce = 0; ; weak.Nonce++ {
		weak.Hash = weak.ComputeHash()
		if z := chain.LeadingZeroBits(&weak.Hash); z >= int(p.Bits) && z < int(bits) {
			break
		}
	}
	_, err = s.AddBlock(weak)
	wantRule(t, err, chain.ErrDifficulty)
}

func mustTemplate(t *testing.T, s *storage.Store, data string) (chain.Block, uint8) {
	t.Helper()
	b, bits, err := s.Template(data)
	if err != nil {
		t.Fatal(err)
	}
	return b, bits
}

func TestVerifyProgress(t *testing.T) {
	s, _ := newStore(t, chain.TestNet())
	mustAdd(t, s, mine(t, s, s.Tip().Hash, 40, "main"))
	mustAdd(t, s, mine(t, s, mustHashAt(t, s, 30), 5, "side")) // a side branch, not verified
	var seen []uint64
	if err := s.Verify(func(h uint64) { seen = append(seen, h) }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 40 || seen[0] != 1 || seen[39] != 40 {
		t.Fatalf("progress saw %d heights (%v...), want 1..40", len(seen), seen[:min(len(seen), 3)])
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] != seen[i-1]+1 {
			t.Fatalf("progress out of order: %v", seen)
		}
	}
}

func mustHashAt(t *testing.T, s *storage.Store, h uint64) chain.Hash {
	t.Helper()
	hash, err := s.HashAt(h)
	if err != nil {
		t.Fatal(err)
	}
	return hash
}

// TestReadersDuringReorgs has readers walk the best chain while a writer
// switches it between two branches: every snapshot is one whole chain,
// linked from the genesis, never a mix of the two.
func TestReadersDuringReorgs(t *testing.T) {
	s, _ := newStore(t, chain.TestNet(), storage.WithNoSync())
	mustAdd(t, s, mine(t, s, s.Tip().Hash, 20, "base"))
	fork := s.Tip()
	done := make(chan struct{})
	var wg, started sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			for reads := 0; ; reads++ {
				if reads == 1 {
					started.Done()
				}
				select {
				case <-done:
					return
				default:
				}
				var prev chain.Hash
				n := uint64(0)
				err := s.ForEach(0, math.MaxUint64, func(b *chain.Block) error {
					if b.Index != n || b.PrevHash != prev {
						return errors.New("best chain snapshot is not one linked chain")
					}
					prev, n = b.Hash, n+1
					return nil
				})
				if err == nil && n <= fork.Height {
					err = errors.New("best chain snapshot shorter than the fork")
				}
				if err != nil {
					errs <- err
					if reads == 0 {
						started.Done()
					}
					return
				}
			}
		}()
	}
	started.Wait() // every reader is running before the first reorg
	var once sync.Once
	stop := func() { once.Do(func() { close(done); wg.Wait() }) }
	defer stop()
	tips := map[string]chain.Hash{"x": fork.Hash, "y": fork.Hash}
	length := map[string]int{}
	reorgs := 0
	for i := range 30 {
		br := "xy"[i%2 : i%2+1]
		other := "xy"[1-i%2 : 2-i%2]
		n := length[other] + 1 - length[br] + i%5 // more work than the other branch
		blocks := mine(t, s, tips[br], n, br)
		res := mustAdd(t, s, blocks)
		if i > 0 && !res.Reorg {
			t.Fatalf("round %d: no reorg: %+v", i, res)
		}
		if res.Reorg {
			reorgs++
		}
		tips[br], length[br] = tipOf(blocks).Hash, length[br]+n
	}
	stop()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if reorgs < 29 {
		t.Fatalf("%d reorgs, want 29", reorgs)
	}
	wantTipBranch(t, s)
}
