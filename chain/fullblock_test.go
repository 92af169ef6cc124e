package chain_test

import (
	"context"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/jbc-project/jbc/chain"
)

// This file is a generator of named blocks, each either accepted or
// rejected for one named rule, offered in order to the consensus code three
// ways: one Validator, Chain.Append, and Chain.Validate over whole chains.
// It follows the idea of btcd's blockchain/fullblocktests on jbc's much
// smaller rule set.

// blockCase is one block offered to the rules and the verdict expected.
type blockCase struct {
	name   string
	block  chain.Block
	accept bool
	code   chain.ErrorCode // the rule broken, when !accept
	// height is how many accepted blocks (genesis included) precede it:
	// the case's block is offered as the child of accepted[height-1].
	height int
}

// blockGen builds blocks on one chain of a fixed-difficulty network and
// records the cases. Blocks are mined independently of the code under test
// (helpers_test.go solve) unless miner is set.
type blockGen struct {
	tb       testing.TB
	p        *chain.Params
	miner    *chain.Miner
	accepted []chain.Block
	cases    []blockCase
}

func newBlockGen(tb testing.TB, p *chain.Params) *blockGen {
	if p.Spacing != 0 && p.MinBits != p.MaxBits {
		tb.Fatal("blockGen needs a fixed difficulty")
	}
	return &blockGen{tb: tb, p: p, accepted: []chain.Block{p.Genesis}}
}

func (g *blockGen) tip() chain.Block { return g.accepted[len(g.accepted)-1] }

// blockOpt changes a block before it is mined.
type blockOpt func(*chain.Block)

func at(ts int64) blockOpt           { return func(b *chain.Block) { b.Timestamp = ts } }
func withIndex(i uint64) blockOpt    { return func(b *chain.Block) { b.Index = i } }
func withPrev(h chain.Hash) blockOpt { return func(b *chain.Block) { b.PrevHash = h } }
func withData(data string) blockOpt  { return func(b *chain.Block) { b.Data = data } }

// next returns a child of the tip, 60 s after it and carrying its name as
// data, changed by opts and then mined at the network's difficulty.
func (g *blockGen) next(name string, opts ...blockOpt) chain.Block {
	g.tb.Helper()
	tip := g.tip()
	b := chain.Block{Index: tip.Index + 1, Timestamp: tip.Timestamp + 60, Data: name, PrevHash: tip.Hash}
	for _, o := range opts {
		o(&b)
	}
	if g.miner == nil {
		return solve(g.tb, b, int(g.p.Bits))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mined, err := g.miner.Solve(ctx, b, g.p.Bits)
	if err != nil {
		g.tb.Fatalf("%s: %v", name, err)
	}
	return mined
}

// exact returns the block next would, mined to exactly bits leading zero
// bits: enough or one short of the difficulty.
func (g *blockGen) exact(name string, bits int, opts ...blockOpt) chain.Block {
	g.tb.Helper()
	b := g.next(name, opts...)
	return solveExact(g.tb, b, bits)
}

func (g *blockGen) accept(name string, b chain.Block) {
	g.cases = append(g.cases, blockCase{name: name, block: b, accept: true, height: len(g.accepted)})
	g.accepted = append(g.accepted, b)
}

func (g *blockGen) reject(name string, b chain.Block, code chain.ErrorCode) {
	g.cases = append(g.cases, blockCase{name: name, block: b, code: code, height: len(g.accepted)})
}

// testNetCases generates the cases on TestNet (1 bit, fixed).
func testNetCases(tb testing.TB) *blockGen {
	g := newBlockGen(tb, chain.TestNet())
	const t0 = testNetGenesisTime
	if g.p.Genesis.Timestamp != t0 {
		tb.Fatalf("TestNet genesis time %d, want %d", g.p.Genesis.Timestamp, t0)
	}

	// Time against a short history: the median of the genesis alone is its
	// own time.
	g.reject("b1-time-equals-genesis", g.next("b1", at(t0)), chain.ErrTimeTooOld)
	g.reject("b1-time-before-genesis", g.next("b1", at(t0-1)), chain.ErrTimeTooOld)
	g.accept("b1", g.next("b1", at(t0+60)))
	// Of two timestamps the median is the later (the upper median), so a
	// block between its parent and grandparent is too old.
	g.reject("b2-time-between-ancestors", g.next("b2", at(t0+30)), chain.ErrTimeTooOld)
	g.reject("b2-time-equals-parent", g.next("b2", at(t0+60)), chain.ErrTimeTooOld)
	g.accept("b2", g.next("b2", at(t0+61)))
	for i := int64(3); i <= 11; i++ {
		g.accept("b"+itoa(i), g.next("b"+itoa(i), at(t0+60*i)))
	}

	// Time against a full window: the last 11 timestamps are 60, 61, 180,
	// 240, ..., 660 after genesis, so the median is 360.
	if m := refMedian(timestamps(g.accepted)); m != t0+360 {
		tb.Fatalf("generator: median %d, want %d", m-t0, 360)
	}
	g.reject("b12-time-equals-median", g.next("b12", at(t0+360)), chain.ErrTimeTooOld)
	g.reject("b12-time-below-median", g.next("b12", at(t0+359)), chain.ErrTimeTooOld)
	g.accept("b12-time-before-parent", g.next("b12", at(t0+361)))

	// Proof of work.
	b := g.next("b13")
	b.Hash[31] ^= 1
	g.reject("b13-hash-bit-flipped", b, chain.ErrBadHash)
	b = g.next("b13")
	b.Nonce++
	g.reject("b13-nonce-changed", b, chain.ErrBadHash)
	b = g.next("b13")
	b.Data += "!"
	g.reject("b13-data-changed", b, chain.ErrBadHash)
	b = g.next("b13")
	b.Timestamp++
	g.reject("b13-time-changed", b, chain.ErrBadHash)
	b = g.next("b13")
	b.Hash = g.tip().Hash
	g.reject("b13-parent-hash", b, chain.ErrBadHash)
	g.reject("b13-no-work", g.exact("b13", 0), chain.ErrDifficulty)
	g.accept("b13-just-enough-work", g.exact("b13", 1))

	// Position.
	g.reject("b14-index-skips", g.next("b14", withIndex(15)), chain.ErrBadIndex)
	g.reject("b14-index-repeats-parent", g.next("b14", withIndex(13)), chain.ErrBadIndex)
	g.reject("b14-index-zero", g.next("b14", withIndex(0)), chain.ErrBadIndex)
	g.reject("b14-index-max", g.next("b14", withIndex(^uint64(0))), chain.ErrBadIndex)
	g.reject("b14-link-grandparent", g.next("b14", withPrev(g.accepted[12].Hash)), chain.ErrBadLink)
	g.reject("b14-link-empty", g.next("b14", withPrev(chain.Hash{})), chain.ErrBadLink)
	g.reject("b14-link-genesis", g.next("b14", withPrev(g.p.Genesis.Hash)), chain.ErrBadLink)
	g.accept("b14", g.next("b14"))

	// Data: the limit is in bytes, not characters; the data must be UTF-8.
	atLimit := strings.Repeat("é", maxDataSize/2)
	g.accept("b15-data-at-limit", g.next("b15", withData(atLimit)))
	g.reject("b16-data-over-limit", g.next("b16", withData(atLimit+"x")), chain.ErrDataTooLarge)
	g.reject("b16-data-bad-utf8", g.next("b16", withData("caf\xff")), chain.ErrBadData)
	g.reject("b16-data-surrogate", g.next("b16", withData("\xed\xa0\x80")), chain.ErrBadData)
	g.reject("b16-data-truncated-rune", g.next("b16", withData("caf\xc3")), chain.ErrBadData)
	g.accept("b16-data-controls", g.next("b16", withData("\x00\x01\n\"\\ 🌍")))
	g.accept("b17-data-empty", g.next("b17", withData("")))

	// The cheapest rule is reported first.
	b = g.next("b18", withData(atLimit+"x"))
	b.Hash[0] ^= 0x80
	g.reject("b18-oversized-and-bad-hash", b, chain.ErrDataTooLarge)
	g.reject("b18-bad-utf8-and-bad-index", g.next("b18", withData("\xff"), withIndex(99)), chain.ErrBadData)
	g.reject("b18-bad-index-and-bad-link", g.next("b18", withIndex(99), withPrev(chain.Hash{})), chain.ErrBadIndex)
	g.reject("b18-bad-link-and-too-old", g.next("b18", withPrev(chain.Hash{}), at(t0)), chain.ErrBadLink)
	b = g.next("b18", at(t0))
	b.Hash[0] ^= 0x80
	g.reject("b18-too-old-and-bad-hash", b, chain.ErrTimeTooOld)
	b = g.next("b18", at(testNow+maxFutureDrift+1))
	b.Hash[0] ^= 0x80
	g.reject("b18-too-new-and-bad-hash", b, chain.ErrTimeTooNew)
	b = g.exact("b18", 0)
	b.Hash[31] ^= 1
	g.reject("b18-bad-hash-and-no-work", b, chain.ErrBadHash)
	g.accept("b18", g.next("b18"))

	// The future: at most 2 h ahead of the local clock. A block may then
	// be earlier than its parent, as long as it is after the median.
	g.reject("b19-time-too-new", g.next("b19", at(testNow+maxFutureDrift+1)), chain.ErrTimeTooNew)
	g.accept("b19-time-at-limit", g.next("b19", at(testNow+maxFutureDrift)))
	g.accept("b20-back-to-now", g.next("b20", at(testNow)))
	return g
}

// eightBitCases generates cases on a network of 8 bits, mined with Miner.
func eightBitCases(tb testing.TB) *blockGen {
	p, err := chain.NewParams("eight", "eight-bit test network", testNetGenesisTime, 8, 0)
	if err != nil {
		tb.Fatal(err)
	}
	g := newBlockGen(tb, p)
	g.miner = &chain.Miner{Threads: 2}
	g.accept("b1-mined", g.next("b1"))
	g.reject("b2-seven-bits", g.exact("b2", 7), chain.ErrDifficulty)
	g.reject("b2-one-bit", g.exact("b2", 1), chain.ErrDifficulty)
	g.reject("b2-no-bits", g.exact("b2", 0), chain.ErrDifficulty)
	g.accept("b2-eight-bits", g.exact("b2", 8))
	g.accept("b3-mined", g.next("b3"))
	g.accept("b4-mined", g.next("b4"))
	for _, b := range g.accepted[1:] {
		if refZeroBits(b.Hash) < 8 || refHash(&b) != b.Hash {
			tb.Fatalf("Miner made block %d with hash %s", b.Index, b.Hash)
		}
	}
	return g
}

// anchoredParams is a network under the anchored time rules whose
// difficulty cannot move (MinBits = MaxBits = 1), so that the window rules
// can be walked block by block: windows of 5 blocks toward 10 s a block,
// a drift of 60 s, a timestamp may equal the median.
func anchoredParams(tb testing.TB) *chain.Params {
	p := &chain.Params{
		Name:                "anchored",
		Genesis:             chain.NewGenesis("anchored test network", testNetGenesisTime),
		Bits:                1,
		Spacing:             10 * time.Second,
		RetargetInterval:    5,
		MaxRetargetStep:     2,
		MinBits:             1,
		MaxBits:             1,
		MaxDataSize:         maxDataSize,
		MedianTimeBlocks:    medianTimeBlocks,
		MedianTimeInclusive: true,
		MaxFutureDrift:      60 * time.Second,
		TimeRules:           chain.TimeRulesAnchored,
	}
	if err := p.Validate(); err != nil {
		tb.Fatal(err)
	}
	return p
}

// anchoredCases generates the cases of the anchored time rules: windows
// are heights 0-4, 5-9, 10-14, ...; blocks 5, 10, 15 open a window, blocks
// 4, 9, 14 close one.
func anchoredCases(tb testing.TB) *blockGen {
	g := newBlockGen(tb, anchoredParams(tb))
	const t0 = testNetGenesisTime
	median := func() int64 { return refMedian(timestamps(g.accepted)) }

	// The median of the past may be equalled, not undercut.
	g.reject("b1-time-before-genesis", g.next("b1", at(t0-1)), chain.ErrTimeTooOld)
	g.accept("b1-time-equals-genesis", g.next("b1", at(t0)))
	g.accept("b2", g.next("b2", at(t0+10)))
	g.accept("b3", g.next("b3", at(t0+20)))
	// Block 4 closes the first window far ahead of the others.
	g.accept("b4-closes-window-ahead", g.next("b4", at(t0+200)))

	// Block 5 opens a window: at most 60 s before its parent, though the
	// median (t0+10) would allow far earlier.
	if m := median(); m != t0+10 {
		tb.Fatalf("generator: median %d, want %d", m-t0, 10)
	}
	g.reject("b5-opens-61s-before-parent", g.next("b5", at(t0+139)), chain.ErrTimeWarp)
	g.reject("b5-opens-at-median", g.next("b5", at(t0+10)), chain.ErrTimeWarp)
	g.accept("b5-opens-60s-before-parent", g.next("b5", at(t0+140)))

	// Inside a window a block may go back to the median.
	if m := median(); m != t0+20 {
		tb.Fatalf("generator: median %d, want %d", m-t0, 20)
	}
	g.reject("b6-time-below-median", g.next("b6", at(t0+19)), chain.ErrTimeTooOld)
	g.accept("b6-time-equals-median-before-parent", g.next("b6", at(t0+20)))
	g.accept("b7", g.next("b7", at(t0+21)))
	g.accept("b8", g.next("b8", at(t0+22)))

	// Block 9 closes the window: not before block 5 opened it.
	g.reject("b9-closes-before-window-opened", g.next("b9", at(t0+139)), chain.ErrTimeWarp)
	g.reject("b9-closes-at-median", g.next("b9", at(median())), chain.ErrTimeWarp)
	g.accept("b9-closes-when-window-opened", g.next("b9", at(t0+140)))

	// The cheaper rules are reported first: the median, then the future.
	g.reject("b10-too-old-and-warped", g.next("b10", at(median()-1)), chain.ErrTimeTooOld)
	b := g.next("b10", at(t0+79))
	b.Hash[0] ^= 0x80
	g.reject("b10-warped-and-bad-hash", b, chain.ErrTimeWarp)
	g.reject("b10-too-new", g.next("b10", at(testNow+61)), chain.ErrTimeTooNew)
	g.accept("b10-opens-at-limit", g.next("b10", at(t0+80)))
	for i := int64(11); i <= 13; i++ {
		g.accept("b"+itoa(i), g.next("b"+itoa(i), at(t0+80+i)))
	}
	g.accept("b14-closes-later", g.next("b14", at(t0+150)))
	// A window may open later than its parent by any amount, up to the
	// future limit.
	g.accept("b15-opens-at-future-limit", g.next("b15", at(testNow+60)))
	return g
}

// TestAnchoredRulesVersioned offers the blocks the anchored rules refuse as
// time warps to the same network under the original rules, which accept
// them: the rules are chosen by the network's TimeRules, not by the code's
// version.
func TestAnchoredRulesVersioned(t *testing.T) {
	g := anchoredCases(t)
	orig := *g.p
	orig.TimeRules = chain.TimeRulesOriginal
	now := func() time.Time { return time.Unix(testNow, 0) }
	n := 0
	for _, c := range g.cases {
		if c.accept || c.code != chain.ErrTimeWarp || c.name == "b10-warped-and-bad-hash" {
			continue
		}
		blocks := append(append([]chain.Block(nil), g.accepted[:c.height]...), c.block)
		if err := (&chain.Chain{Params: &orig, Blocks: blocks}).Validate(now); err != nil {
			t.Errorf("%s under the original rules: %v", c.name, err)
		}
		n++
	}
	if n != 4 {
		t.Fatalf("%d time-warp cases, want 4", n)
	}
}

func itoa(i int64) string { return big.NewInt(i).String() }

func TestBlockCases(t *testing.T) {
	for name, gen := range map[string]func(testing.TB) *blockGen{
		"testnet":   testNetCases,
		"eight-bit": eightBitCases,
		"anchored":  anchoredCases,
	} {
		t.Run(name, func(t *testing.T) {
			g := gen(t)
			t.Run("Validator", func(t *testing.T) { runValidator(t, g) })
			t.Run("Append", func(t *testing.T) { runAppend(t, g) })
			t.Run("Validate", func(t *testing.T) { runValidate(t, g) })
		})
	}
}

// runValidator offers every case to one Validator in order.
func runValidator(t *testing.T, g *blockGen) {
	genesis := g.p.GenesisEntry()
	v, err := chain.NewValidator(g.p, genesis, []int64{genesis.Time})
	if err != nil {
		t.Fatal(err)
	}
	entries := []chain.Entry{genesis}
	for _, c := range g.cases {
		before, beforeRecent := v.Tip(), v.Recent()
		e, err := v.Next(&c.block, testNow)
		if !c.accept {
			if err == nil {
				t.Fatalf("%s: accepted, want %s", c.name, c.code)
			}
			wantRule(t, err, c.code)
			if v.Tip().Hash != before.Hash || v.Tip().Work != before.Work || !equalInts(v.Recent(), beforeRecent) {
				t.Fatalf("%s: rejected block changed the validator", c.name)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		want := chain.Entry{
			Hash: c.block.Hash, Parent: before.Hash, Height: c.block.Index,
			Time: c.block.Timestamp, Bits: g.p.Bits,
		}
		if e.Hash != want.Hash || e.Parent != want.Parent || e.Height != want.Height || e.Time != want.Time || e.Bits != want.Bits {
			t.Fatalf("%s: entry %+v, want %+v", c.name, e, want)
		}
		if e.Height != uint64(c.height) {
			t.Fatalf("%s: height %d, want %d", c.name, e.Height, c.height)
		}
		if v.Tip().Hash != e.Hash {
			t.Fatalf("%s: tip not advanced", c.name)
		}
		entries = append(entries, e)
	}
	// Work is cumulative, 2^bits a block, genesis included, and no entry's
	// work changed when later blocks were added.
	for i, e := range entries {
		if want := workOf(bitsN(g.p.Bits, i+1)...); e.Work.Cmp(want) != 0 {
			t.Errorf("entry %d: work %s, want %s", i, e.Work, want)
		}
	}
	if len(entries) != len(g.accepted) {
		t.Errorf("%d blocks accepted, want %d", len(entries), len(g.accepted))
	}
}

func bitsN(b uint8, n int) []uint8 {
	s := make([]uint8, n)
	for i := range s {
		s[i] = b
	}
	return s
}

func equalInts(a, b []int64) bool {
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

// runAppend offers every case to Chain.Append.
func runAppend(t *testing.T, g *blockGen) {
	c := chain.NewChain(g.p)
	now := time.Unix(testNow, 0)
	for _, tc := range g.cases {
		n := len(c.Blocks)
		err := c.Append(tc.block, now)
		if !tc.accept {
			wantRule(t, err, tc.code)
			if len(c.Blocks) != n {
				t.Fatalf("%s: rejected block appended", tc.name)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.Tip().Hash != tc.block.Hash || c.BlockByHash(tc.block.Hash) != c.Tip() || c.Height() != tc.block.Index {
			t.Fatalf("%s: not at the tip", tc.name)
		}
	}
	want := &chain.Chain{Blocks: g.accepted}
	if !c.Equal(want) {
		t.Error("appended chain differs from the accepted blocks")
	}
	if c.Work().Cmp(workOf(bitsN(g.p.Bits, len(g.accepted))...)) != 0 {
		t.Errorf("work %s", c.Work())
	}
}

// runValidate checks whole chains: the accepted blocks validate, and each
// rejected block after the accepted ones before it fails at its position.
func runValidate(t *testing.T, g *blockGen) {
	now := func() time.Time { return time.Unix(testNow, 0) }
	c := &chain.Chain{Params: g.p, Blocks: g.accepted}
	if err := c.Validate(now); err != nil {
		t.Fatal(err)
	}
	if c.Height() != uint64(len(g.accepted)-1) || c.Work().Cmp(workOf(bitsN(g.p.Bits, len(g.accepted))...)) != 0 {
		t.Errorf("height %d work %s", c.Height(), c.Work())
	}
	for _, tc := range g.cases {
		if tc.accept {
			continue
		}
		blocks := append(append([]chain.Block(nil), g.accepted[:tc.height]...), tc.block)
		bad := &chain.Chain{Params: g.p, Blocks: blocks}
		err := bad.Validate(now)
		var ie *chain.IndexError
		if !errors.As(err, &ie) {
			t.Errorf("%s: error %v, want an *IndexError", tc.name, err)
			continue
		}
		if ie.Index != tc.height {
			t.Errorf("%s: error at block %d, want %d", tc.name, ie.Index, tc.height)
		}
		wantRule(t, err, tc.code)
		if !strings.HasPrefix(err.Error(), "block "+itoa(int64(tc.height))+": "+tc.code.String()) {
			t.Errorf("%s: message %q", tc.name, err)
		}
	}
}

// TestValidateGenesis: Chain.Validate starts at the network's own genesis.
func TestValidateGenesis(t *testing.T) {
	p := chain.TestNet()
	blocks := genChain(t, p, 3, 60, "x")
	other := p.Genesis
	other.Nonce = 1
	other.Hash = refHash(&other)
	renamed := p.Genesis
	renamed.Data = "jbc test network!"
	renamed.Hash = refHash(&renamed)
	broken := p.Genesis
	broken.Hash[0] ^= 1
	// The genesis hash with other content: block 0 is compared whole,
	// not by hash.
	forged := p.Genesis
	forged.Data = "jbc test network, forged"

	tests := []struct {
		name   string
		blocks []chain.Block
		index  int
		code   chain.ErrorCode
	}{
		{"empty chain", nil, 0, chain.ErrBadGenesis},
		{"mainnet genesis", []chain.Block{chain.MainNet().Genesis}, 0, chain.ErrBadGenesis},
		{"other nonce", []chain.Block{other}, 0, chain.ErrBadGenesis},
		{"other data", append([]chain.Block{renamed}, blocks[1:]...), 0, chain.ErrBadGenesis},
		{"bad hash", []chain.Block{broken}, 0, chain.ErrBadGenesis},
		{"forged content", append([]chain.Block{forged}, blocks[1:]...), 0, chain.ErrBadGenesis},
		{"genesis twice", []chain.Block{p.Genesis, p.Genesis}, 1, chain.ErrBadIndex},
		{"block missing", []chain.Block{blocks[0], blocks[2]}, 1, chain.ErrBadIndex},
		{"blocks swapped", []chain.Block{blocks[0], blocks[2], blocks[1]}, 1, chain.ErrBadIndex},
	}
	for _, tt := range tests {
		c := &chain.Chain{Params: p, Blocks: tt.blocks}
		err := c.Validate(nil)
		var ie *chain.IndexError
		if !errors.As(err, &ie) || ie.Index != tt.index {
			t.Errorf("%s: error %v, want one at block %d", tt.name, err, tt.index)
			continue
		}
		wantRule(t, err, tt.code)
	}
	if err := (&chain.Chain{Params: p, Blocks: blocks}).Validate(nil); err != nil {
		t.Errorf("good chain: %v", err)
	}
	if err := p.CheckGenesis(&blocks[0]); err != nil {
		t.Errorf("CheckGenesis: %v", err)
	}
	wantRule(t, p.CheckGenesis(&other), chain.ErrBadGenesis)
	wantRule(t, p.CheckGenesis(&forged), chain.ErrBadGenesis)
}

// TestErrorCodes pins the rules' short names, which appear in logs and in
// peers' error counters.
func TestErrorCodes(t *testing.T) {
	want := map[chain.ErrorCode]string{
		chain.ErrBadHash: "bad-hash", chain.ErrDifficulty: "difficulty", chain.ErrBadIndex: "bad-index",
		chain.ErrBadLink: "bad-link", chain.ErrTimeTooOld: "time-too-old", chain.ErrTimeTooNew: "time-too-new",
		chain.ErrDataTooLarge: "data-too-large", chain.ErrBadData: "bad-data", chain.ErrBadGenesis: "bad-genesis",
		0: "ErrorCode(0)", 99: "ErrorCode(99)",
	}
	for c, s := range want {
		if c.String() != s {
			t.Errorf("ErrorCode(%d) = %q, want %q", int(c), c.String(), s)
		}
	}
	err := error(&chain.IndexError{Index: 4, Err: &chain.RuleError{Code: chain.ErrBadLink, Reason: "why"}})
	if err.Error() != "block 4: bad-link: why" {
		t.Errorf("message %q", err)
	}
	wantRule(t, err, chain.ErrBadLink)
	var re *chain.RuleError
	if errors.As(errors.New("disk on fire"), &re) {
		t.Error("a plain error reads as a rule error")
	}
}
