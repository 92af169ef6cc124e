package chain_test

import (
	"testing"
	"time"

	"github.com/jbc-project/jbc/chain"
)

// retargetParams: 8 bits to start, retarget every 10 blocks toward 10 s a
// block, at most 2 bits a step, within [4, 12]. The target time of a
// retarget is 9 intervals of 10 s: 90 s.
func retargetParams(tb testing.TB) *chain.Params {
	p := &chain.Params{
		Name:             "retarget",
		Genesis:          chain.NewGenesis("retarget test network", testNetGenesisTime),
		Bits:             8,
		Spacing:          10 * time.Second,
		RetargetInterval: 10,
		MaxRetargetStep:  2,
		MinBits:          4,
		MaxBits:          12,
		MaxDataSize:      maxDataSize,
		MedianTimeBlocks: medianTimeBlocks,
		MaxFutureDrift:   maxFutureDrift * time.Second,
	}
	if err := p.Validate(); err != nil {
		tb.Fatal(err)
	}
	return p
}

// window returns n timestamps newest first, the newest actual seconds
// after the oldest, spread evenly between.
func window(n int, actual int64) []int64 {
	r := make([]int64, n)
	for i := range r {
		r[i] = testNetGenesisTime + actual - actual*int64(i)/int64(n-1)
	}
	return r
}

func TestNextBits(t *testing.T) {
	p := retargetParams(t)
	tests := []struct {
		name   string
		height uint64 // the parent's
		bits   uint8  // the parent's
		recent []int64
		want   uint8
	}{
		{"on target", 9, 8, window(10, 90), 8},
		{"just under 2x fast", 9, 8, window(10, 46), 8},
		{"2x fast", 9, 8, window(10, 45), 9},
		{"just under 4x fast", 9, 8, window(10, 23), 9},
		{"4x fast", 9, 8, window(10, 22), 10},
		{"8x fast, step bounded", 9, 8, window(10, 11), 10},
		{"all in one second", 9, 8, window(10, 1), 10},
		{"all at once", 9, 8, window(10, 0), 10},
		{"time ran backwards", 9, 8, window(10, -50), 10},
		{"just under 2x slow", 9, 8, window(10, 179), 8},
		{"2x slow", 9, 8, window(10, 180), 7},
		{"just under 4x slow", 9, 8, window(10, 359), 7},
		{"4x slow", 9, 8, window(10, 360), 6},
		{"very slow, step bounded", 9, 8, window(10, 1e9), 6},
		{"clamped to max", 9, 11, window(10, 22), 12},
		{"at max", 9, 12, window(10, 1), 12},
		{"clamped to min", 9, 5, window(10, 360), 4},
		{"at min", 9, 4, window(10, 1e6), 4},
		{"second interval", 19, 8, window(10, 22), 10},
		{"tenth interval", 99, 8, window(10, 360), 6},
		{"off interval, after", 10, 8, window(10, 1), 8},
		{"off interval, before", 8, 8, window(10, 1), 8},
		{"first block", 0, 8, []int64{testNetGenesisTime}, 8},
		{"window too short", 9, 8, window(9, 1), 8},
		{"window longer than the interval", 9, 8, append(window(10, 22), 0, 0, 0, 0), 10},
	}
	for _, tt := range tests {
		parent := chain.Entry{Height: tt.height, Bits: tt.bits, Time: tt.recent[0]}
		got := p.NextBits(&parent, tt.recent)
		if got != tt.want {
			t.Errorf("%s: NextBits = %d, want %d", tt.name, got, tt.want)
		}
		// Deterministic, and recent is only read.
		before := append([]int64(nil), tt.recent...)
		if again := p.NextBits(&parent, tt.recent); again != got || !equalInts(before, tt.recent) {
			t.Errorf("%s: second call %d, recent %v", tt.name, again, tt.recent)
		}
	}

	// Without spacing, or without a step, the difficulty never moves.
	fixed := retargetParams(t)
	fixed.Spacing = 0
	stuck := retargetParams(t)
	stuck.MaxRetargetStep = 0
	wide := retargetParams(t)
	wide.MaxRetargetStep = 5
	wide.MaxBits = 255
	wider := retargetParams(t)
	wider.MaxRetargetStep = 10
	wider.MaxBits = 255
	parent := chain.Entry{Height: 9, Bits: 8}
	for _, tt := range []struct {
		name string
		p    *chain.Params
		want uint8
	}{
		{"no spacing", fixed, 8},
		{"no step", stuck, 8},
		// 90 s in 1 s: 90x is six doublings, bounded by a step of 5.
		{"step of 5", wide, 13},
		// 90x: six doublings.
		{"step of 10", wider, 14},
	} {
		if got := tt.p.NextBits(&parent, window(10, 1)); got != tt.want {
			t.Errorf("%s: NextBits = %d, want %d", tt.name, got, tt.want)
		}
	}
	// An interval of zero or less seconds counts as one second.
	for _, actual := range []int64{0, -1000} {
		if got := wider.NextBits(&parent, window(10, actual)); got != 14 {
			t.Errorf("step of 10, %d s: NextBits = %d, want 14", actual, got)
		}
	}
}

// mineRetarget extends blocks (genesis first) by one block per gap, each
// gap seconds after its parent, mined at the difficulty the Validator asks
// for, and returns the blocks and the entries (genesis first).
func mineRetarget(tb testing.TB, p *chain.Params, gaps []int64) ([]chain.Block, []chain.Entry) {
	tb.Helper()
	g := p.GenesisEntry()
	v, err := chain.NewValidator(p, g, []int64{g.Time})
	if err != nil {
		tb.Fatal(err)
	}
	blocks, entries := []chain.Block{p.Genesis}, []chain.Entry{g}
	for _, gap := range gaps {
		tmpl, bits := v.Template("retarget", blocks[len(blocks)-1].Timestamp+gap)
		b := solve(tb, tmpl, int(bits))
		e, err := v.Next(&b, testNow)
		if err != nil {
			tb.Fatalf("block %d: %v", b.Index, err)
		}
		blocks, entries = append(blocks, b), append(entries, e)
	}
	return blocks, entries
}

func repeat(v int64, n int) []int64 {
	s := make([]int64, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// TestRetargetChain mines a chain whose blocks come 2 s apart, five times
// faster than the 10 s spacing, then 100 s apart, and checks the difficulty
// each block was held to.
func TestRetargetChain(t *testing.T) {
	p := retargetParams(t)
	gaps := append(repeat(2, 39), repeat(100, 50)...)
	blocks, entries := mineRetarget(t, p, gaps)

	// Blocks 1-9 are at the starting 8 bits. At 10, 20, 30 and 40 the last
	// 9 intervals took 18 s against a target of 90: five times fast, two
	// doublings, so +2 each time up to the maximum of 12. Blocks 40-89 come
	// 100 s after their parents, so from the retarget at 50 on, 9 intervals
	// took 900 s: ten times slow, bounded to -2 a retarget down to the
	// minimum of 4.
	want := func(h int) uint8 {
		switch {
		case h < 10:
			return 8
		case h < 20:
			return 10
		case h < 50:
			return 12
		case h < 60:
			return 10
		case h < 70:
			return 8
		case h < 80:
			return 6
		default:
			return 4
		}
	}
	var bits []uint8
	for h, e := range entries {
		if e.Bits != want(h) {
			t.Errorf("block %d held to %d bits, want %d", h, e.Bits, want(h))
		}
		if refZeroBits(blocks[h].Hash) < int(want(h)) && h > 0 {
			t.Errorf("block %d mined below its difficulty", h)
		}
		bits = append(bits, e.Bits)
	}
	if tip := entries[len(entries)-1]; tip.Work.Cmp(workOf(bits...)) != 0 {
		t.Errorf("work %s, want %s", tip.Work, workOf(bits...))
	}

	// The whole chain validates, and a block meeting only the old
	// difficulty right after a rise is refused.
	c := &chain.Chain{Params: p, Blocks: blocks}
	if err := c.Validate(func() time.Time { return time.Unix(testNow, 0) }); err != nil {
		t.Fatal(err)
	}
	if c.Work().Cmp(workOf(bits...)) != 0 {
		t.Errorf("chain work %s", c.Work())
	}
	short := &chain.Chain{Params: p, Blocks: append([]chain.Block(nil), blocks[:10]...)}
	if err := short.Validate(nil); err != nil {
		t.Fatal(err)
	}
	tmpl := blocks[10]
	for _, n := range []int{8, 9} {
		weak := solveExact(t, tmpl, n)
		if err := short.Append(weak, time.Unix(testNow, 0)); err == nil {
			t.Errorf("block 10 with %d bits accepted after a rise to 10", n)
		} else {
			wantRule(t, err, chain.ErrDifficulty)
		}
	}
	if err := short.Append(solveExact(t, tmpl, 10), time.Unix(testNow, 0)); err != nil {
		t.Errorf("block 10 with exactly 10 bits: %v", err)
	}

	// A Validator started mid-chain from a stored entry and window (as the
	// store does) holds every later block to the same difficulty.
	for _, start := range []int{5, 19, 25, 39, 60} {
		recent := timestamps(blocks[:start+1])
		v, err := chain.NewValidator(p, entries[start], recent[:min(len(recent), p.TimeWindow())])
		if err != nil {
			t.Fatal(err)
		}
		for h := start + 1; h < len(blocks); h++ {
			if nb := v.NextBits(); nb != want(h) {
				t.Fatalf("from %d: NextBits at %d = %d, want %d", start, h, nb, want(h))
			}
			e, err := v.Next(&blocks[h], testNow)
			if err != nil {
				t.Fatalf("from %d: block %d: %v", start, h, err)
			}
			if e.Bits != entries[h].Bits || e.Work.Cmp(entries[h].Work) != 0 {
				t.Fatalf("from %d: block %d entry %+v, want %+v", start, h, e, entries[h])
			}
		}
	}
}

// TestNextBitsAnchored checks the retarget of the anchored time rules: the
// time a window took is measured from the previous window's last block, so
// that W intervals count (target 100 s on retargetParams), except in the
// first window, which starts at the genesis (9 intervals, 90 s).
func TestNextBitsAnchored(t *testing.T) {
	p := retargetParams(t)
	p.TimeRules = chain.TimeRulesAnchored
	if p.TimeWindow() != 11 {
		t.Fatalf("TimeWindow = %d, want 11", p.TimeWindow())
	}
	// gapBefore returns a window of 10 blocks 10 s apart (90 s first to
	// last), preceded by the previous window's last block gap s earlier.
	gapBefore := func(gap int64) []int64 {
		r := window(10, 90)
		return append(r, r[9]-gap)
	}
	tests := []struct {
		name   string
		height uint64 // the parent's
		recent []int64
		want   uint8
	}{
		{"first window, on target", 9, window(10, 90), 8},
		{"first window, 2x fast", 9, window(10, 45), 9},
		{"first window, 2x slow", 9, window(10, 180), 7},
		{"on target", 19, window(11, 100), 8},
		{"just under 2x fast", 19, window(11, 51), 8},
		{"2x fast", 19, window(11, 50), 9},
		{"4x fast", 19, window(11, 25), 10},
		{"2x slow", 19, window(11, 200), 7},
		{"just under 2x slow", 19, window(11, 199), 8},
		{"4x slow", 19, window(11, 400), 6},
		{"very slow, step bounded", 19, window(11, 1e9), 6},
		// The original rules would see 90 s and hold: the gap before the
		// window counts now.
		{"gap of 110 s before the window", 19, gapBefore(110), 7},
		{"gap of 310 s before the window", 19, gapBefore(310), 6},
		// The previous window closed later than this one: time ran
		// backwards, which counts as one second.
		{"previous window closed later", 19, gapBefore(-500), 10},
		{"window too short", 19, window(10, 90), 8},
		{"off interval", 20, window(11, 1), 8},
		{"tenth interval", 99, window(11, 25), 10},
	}
	for _, tt := range tests {
		parent := chain.Entry{Height: tt.height, Bits: 8, Time: tt.recent[0]}
		if got := p.NextBits(&parent, tt.recent); got != tt.want {
			t.Errorf("%s: NextBits = %d, want %d", tt.name, got, tt.want)
		}
	}
	// The original rules read only the window's own blocks.
	orig := retargetParams(t)
	parent := chain.Entry{Height: 19, Bits: 8}
	if got := orig.NextBits(&parent, gapBefore(310)); got != 8 {
		t.Errorf("original rules with a gap before the window: NextBits = %d, want 8", got)
	}
}
