package chain_test

import (
	"encoding/json"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jbc-project/jbc/chain"
)

func TestBlockWork(t *testing.T) {
	for _, tt := range []struct {
		bits uint8
		want string
	}{
		{0, "1"},
		{1, "2"},
		{8, "256"},
		{22, "4194304"},
		{64, "18446744073709551616"},
		{255, "57896044618658097711785492504343953926634992332820282019728792003956564819968"},
	} {
		if got := chain.BlockWork(tt.bits).String(); got != tt.want {
			t.Errorf("BlockWork(%d) = %s, want %s", tt.bits, got, tt.want)
		}
	}
	// Each call returns its own value.
	w := chain.BlockWork(3)
	w.SetInt64(0)
	if chain.BlockWork(3).Int64() != 8 {
		t.Error("BlockWork returns shared values")
	}
}

func TestLeadingZeroBits(t *testing.T) {
	for _, tt := range []struct {
		hex  string
		want int
	}{
		{"80" + strings.Repeat("00", 31), 0},
		{"7f" + strings.Repeat("ff", 31), 1},
		{"01" + strings.Repeat("00", 31), 7},
		{"0080" + strings.Repeat("00", 30), 8},
		{"0001" + strings.Repeat("00", 30), 15},
		{strings.Repeat("00", 31) + "01", 255},
		{strings.Repeat("00", 31) + "80", 248},
	} {
		h := mustHash(t, tt.hex)
		if got := chain.LeadingZeroBits(&h); got != tt.want || got != refZeroBits(h) {
			t.Errorf("LeadingZeroBits(%s) = %d, want %d", tt.hex, got, tt.want)
		}
	}
	var zero chain.Hash
	if got := chain.LeadingZeroBits(&zero); got != 256 {
		t.Errorf("LeadingZeroBits(zero) = %d, want 256", got)
	}
}

func TestMoreWork(t *testing.T) {
	e := func(height uint64, bits ...uint8) chain.Entry {
		return chain.Entry{Height: height, Work: workOf(bits...)}
	}
	tests := []struct {
		name string
		a, b chain.Entry
		want bool
	}{
		{"more", e(2, 1, 1, 1), e(1, 1, 1), true},
		{"less", e(1, 1, 1), e(2, 1, 1, 1), false},
		{"equal work, same height: keep the current", e(2, 1, 1, 1), e(2, 1, 1, 1), false},
		// 768 either way: a shorter chain with the same work does not
		// replace a longer one, nor the other way round.
		{"equal work, shorter", e(1, 8, 9), e(2, 8, 8, 8), false},
		{"equal work, longer", e(2, 8, 8, 8), e(1, 8, 9), false},
		{"short and hard beats long and easy", e(1, 8, 12), e(100, bitsN(4, 101)...), true},
		{"one more unit", chain.Entry{Work: big.NewInt(769)}, e(1, 8, 9), true},
		{"one less unit", chain.Entry{Work: big.NewInt(767)}, e(1, 8, 9), false},
	}
	for _, tt := range tests {
		if got := chain.MoreWork(&tt.a, &tt.b); got != tt.want {
			t.Errorf("%s: MoreWork = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestForkChoice: on a retargeting network a long branch of easy blocks
// loses to a shorter branch of hard ones; between equal branches the
// current one stays.
func TestForkChoice(t *testing.T) {
	p := retargetParams(t)
	now := func() time.Time { return time.Unix(testNow, 0) }

	// Slow: 100 s gaps, ten times the spacing. Bits 8 for blocks 1-9,
	// 6 for 10-19, then the minimum 4: 256 + 9*256 + 10*64 + 80*16.
	slowBlocks, slowEntries := mineRetarget(t, p, repeat(100, 99))
	// Fast: 2 s gaps. Bits 8, then 10 for 10-19, then 12 for 20-25:
	// 256 + 9*256 + 10*1024 + 6*4096.
	fastBlocks, fastEntries := mineRetarget(t, p, repeat(2, 25))

	slow := &chain.Chain{Params: p, Blocks: slowBlocks}
	fast := &chain.Chain{Params: p, Blocks: fastBlocks}
	for _, c := range []*chain.Chain{slow, fast} {
		if err := c.Validate(now); err != nil {
			t.Fatal(err)
		}
	}
	if got := slow.Work().String(); got != "4480" {
		t.Errorf("slow branch work %s, want 4480", got)
	}
	if got := fast.Work().String(); got != "37376" {
		t.Errorf("fast branch work %s, want 37376", got)
	}
	if slow.Height() != 99 || fast.Height() != 25 {
		t.Fatalf("heights %d, %d", slow.Height(), fast.Height())
	}
	if fast.CompareWork(slow) != 1 || slow.CompareWork(fast) != -1 {
		t.Errorf("CompareWork: fast %d, slow %d", fast.CompareWork(slow), slow.CompareWork(fast))
	}
	fastTip, slowTip := fastEntries[len(fastEntries)-1], slowEntries[len(slowEntries)-1]
	if !chain.MoreWork(&fastTip, &slowTip) || chain.MoreWork(&slowTip, &fastTip) {
		t.Error("MoreWork prefers the longer, easier branch")
	}
	if ft, st := fast.TipEntry(), slow.TipEntry(); ft.Hash != fastTip.Hash || st.Hash != slowTip.Hash {
		t.Error("TipEntry differs from the Validator's entries")
	}

	// Two TestNet branches of the same length and different blocks: equal
	// work, neither replaces the other.
	tp := chain.TestNet()
	a := &chain.Chain{Params: tp, Blocks: genChain(t, tp, 5, 60, "branch a")}
	b := &chain.Chain{Params: tp, Blocks: genChain(t, tp, 5, 60, "branch b")}
	for _, c := range []*chain.Chain{a, b} {
		if err := c.Validate(now); err != nil {
			t.Fatal(err)
		}
	}
	if a.Equal(b) {
		t.Fatal("branches are equal")
	}
	at, bt := a.TipEntry(), b.TipEntry()
	if a.CompareWork(b) != 0 || chain.MoreWork(&at, &bt) || chain.MoreWork(&bt, &at) {
		t.Errorf("equal branches: CompareWork %d, MoreWork %v %v", a.CompareWork(b), chain.MoreWork(&at, &bt), chain.MoreWork(&bt, &at))
	}
	// One more block tips it.
	if err := b.Append(solve(t, chain.Block{Index: 6, Timestamp: b.Tip().Timestamp + 60, PrevHash: b.Tip().Hash}, 1), now()); err != nil {
		t.Fatal(err)
	}
	bt = b.TipEntry()
	if b.CompareWork(a) != 1 || !chain.MoreWork(&bt, &at) {
		t.Error("a longer TestNet branch does not have more work")
	}
}

func TestChainAccessors(t *testing.T) {
	p := chain.TestNet()
	c := chain.NewChain(p)
	if c.Height() != 0 || *c.Tip() != p.Genesis || c.TipEntry().Hash != p.ID() || c.Work().Cmp(big.NewInt(2)) != 0 {
		t.Errorf("new chain: height %d tip %+v work %s", c.Height(), c.Tip(), c.Work())
	}
	if c.BlockAt(0) == nil || *c.BlockAt(0) != p.Genesis || c.BlockAt(1) != nil || c.BlockAt(^uint64(0)) != nil {
		t.Error("BlockAt on a new chain")
	}
	if c.BlockByHash(p.ID()) == nil || c.BlockByHash(chain.Hash{1}) != nil {
		t.Error("BlockByHash on a new chain")
	}

	blocks := genChain(t, p, 20, 30, "accessors")
	c = &chain.Chain{Params: p, Blocks: blocks}
	if err := c.Validate(nil); err != nil {
		t.Fatal(err)
	}
	for i := range blocks {
		if got := c.BlockByHash(blocks[i].Hash); got == nil || *got != blocks[i] {
			t.Fatalf("BlockByHash(block %d) = %v", i, got)
		}
		if got := c.BlockAt(uint64(i)); got == nil || *got != blocks[i] {
			t.Fatalf("BlockAt(%d) = %v", i, got)
		}
	}
	if c.Height() != 20 || c.Tip().Hash != blocks[20].Hash || c.TipEntry().Height != 20 {
		t.Errorf("height %d", c.Height())
	}

	// Equal compares every block.
	same := &chain.Chain{Blocks: slices.Clone(blocks)}
	shorter := &chain.Chain{Blocks: slices.Clone(blocks[:20])}
	changed := &chain.Chain{Blocks: slices.Clone(blocks)}
	changed.Blocks[7].Nonce++
	if !c.Equal(same) || c.Equal(shorter) || shorter.Equal(c) || c.Equal(changed) {
		t.Error("Equal wrong")
	}

	// JSON: a list of blocks in jbc's form.
	enc, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(enc), `[{"index":0,"timestamp":1577836800,"data":"jbc test network","prev_hash":"",`) {
		t.Errorf("chain JSON starts %.80s", enc)
	}
	var back []chain.Block
	if err := json.Unmarshal(enc, &back); err != nil || !c.Equal(&chain.Chain{Blocks: back}) {
		t.Errorf("chain JSON round trip: %v", err)
	}

	// Validate with a nil clock uses the real one: a block 3 h ahead of
	// now is refused.
	future := solve(t, chain.Block{Index: 21, Timestamp: time.Now().Add(3 * time.Hour).Unix(), PrevHash: blocks[20].Hash}, 1)
	c.Blocks = append(c.Blocks, future)
	err = c.Validate(nil)
	var ie *chain.IndexError
	if !errors.As(err, &ie) || ie.Index != 21 {
		t.Fatalf("future block: %v", err)
	}
	wantRule(t, err, chain.ErrTimeTooNew)
	if err := c.Validate(func() time.Time { return time.Now().Add(2 * time.Hour) }); err != nil {
		t.Errorf("future block with the clock 2 h ahead: %v", err)
	}
}

func TestValidatorSetup(t *testing.T) {
	p := chain.TestNet()
	blocks := genChain(t, p, 15, 60, "setup")
	c := &chain.Chain{Params: p, Blocks: blocks}
	if err := c.Validate(nil); err != nil {
		t.Fatal(err)
	}
	tip := c.TipEntry()
	all := timestamps(blocks)

	// Misuse is an error but not a rule error.
	for name, recent := range map[string][]int64{
		"too few":       all[:10],
		"none":          nil,
		"wrong newest":  all[1:12],
		"not the chain": append([]int64{all[0] + 1}, all[1:]...),
	} {
		v, err := chain.NewValidator(p, tip, recent)
		var re *chain.RuleError
		if err == nil || v != nil || errors.As(err, &re) {
			t.Errorf("%s: NewValidator = %v, %v", name, v, err)
		}
	}

	// More timestamps than needed are fine; only the window is kept.
	v, err := chain.NewValidator(p, tip, all)
	if err != nil {
		t.Fatal(err)
	}
	got := v.Recent()
	if !equalInts(got, all[:medianTimeBlocks]) {
		t.Errorf("Recent = %v, want %v", got, all[:medianTimeBlocks])
	}
	got[0] = 0
	if v.Recent()[0] != all[0] {
		t.Error("Recent returns the Validator's own slice")
	}
	if m := v.MedianTime(); m != refMedian(all) {
		t.Errorf("MedianTime = %d, want %d", m, refMedian(all))
	}
	if v.Tip().Hash != tip.Hash || v.NextBits() != 1 {
		t.Errorf("tip %s bits %d", v.Tip().Hash, v.NextBits())
	}

	// Template: the next index and link, the clock's time unless the clock
	// is behind the median.
	for _, now := range []int64{testNow, refMedian(all), refMedian(all) - 1000} {
		tmpl, bits := v.Template("tmpl", now)
		wantTime := max(now, refMedian(all)+1)
		if tmpl.Index != 16 || tmpl.PrevHash != tip.Hash || tmpl.Data != "tmpl" || tmpl.Timestamp != wantTime || bits != 1 {
			t.Errorf("Template(now %d) = %+v, %d", now, tmpl, bits)
		}
		b := solve(t, tmpl, int(bits))
		v2, _ := chain.NewValidator(p, tip, all)
		if _, err := v2.Next(&b, testNow); err != nil {
			t.Errorf("block from Template(now %d): %v", now, err)
		}
	}

	// After a block the window moves on: newest first, the oldest dropped.
	b := solve(t, chain.Block{Index: 16, Timestamp: all[0] + 5, PrevHash: tip.Hash}, 1)
	if _, err := v.Next(&b, testNow); err != nil {
		t.Fatal(err)
	}
	want := append([]int64{b.Timestamp}, all[:medianTimeBlocks-1]...)
	if got := v.Recent(); !equalInts(got, want) {
		t.Errorf("Recent after a block = %v, want %v", got, want)
	}
}

// TestMedianTime covers windows longer than the built-in 11 and histories
// shorter than the window.
func TestMedianTime(t *testing.T) {
	p := chain.TestNet()
	ts := []int64{50, 10, 40, 20, 30, 99, 1, 2, 3, 4, 5, 1000, 2000}
	for n := 1; n <= len(ts); n++ {
		want := slices.Clone(ts[:min(n, medianTimeBlocks)])
		slices.Sort(want)
		if got := p.MedianTime(ts[:n]); got != want[len(want)/2] {
			t.Errorf("MedianTime(%v) = %d, want %d", ts[:n], got, want[len(want)/2])
		}
	}
	p.MedianTimeBlocks = 101
	long := make([]int64, 150)
	for i := range long {
		long[i] = int64((i * 37) % 151) // a permutation-like spread
	}
	want := slices.Clone(long[:101])
	slices.Sort(want)
	if got := p.MedianTime(long); got != want[50] {
		t.Errorf("MedianTime over 101 = %d, want %d", got, want[50])
	}
	if long[0] != 0 || long[1] != 37 {
		t.Error("MedianTime changed its input")
	}
}
