package chain_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jbc-project/jbc/chain"
)

// This file walks attackers through retarget windows on a network like the
// one `jbc init --difficulty 12 --spacing 10s` makes, under the anchored
// time rules and, to show what they close, the original ones. Time is
// simulated: each block takes the expected time its miner needs at the
// difficulty the rules ask for; the blocks are mined for real and offered
// to a Validator whose clock is the simulated one.

// warpBits and warpSpacing are the network of the attack: 12 bits,
// retargeting every 20 blocks toward 10 s a block. The walks start at
// walkBits instead, sixteen times cheaper to mine: the rules read only
// differences of bits.
const (
	warpBits    = 12
	walkBits    = 8
	warpSpacing = 10 * time.Second
)

// maxWarpRise bounds how far above its start a walk may take the
// difficulty: the anchored rules' walks stay within 5 bits of it.
const maxWarpRise = 8

// netRate is the whole network's hash rate, in hashes a second, that makes
// blocks of p's starting difficulty every 10 s.
func netRate(p *chain.Params) float64 { return math.Ldexp(1, int(p.Bits)) / warpSpacing.Seconds() }

// warpParams returns the network of bits under the rules named:
// "anchored" as NewParams makes it today, "original" as NewParams made it
// before (strict median, 2 h drift, original retarget), both with a genesis
// at t0.
func warpParams(tb testing.TB, rules string, t0 int64, bits uint8) *chain.Params {
	tb.Helper()
	p, err := chain.NewParams("warp", "time warp test network", t0, bits, warpSpacing)
	if err != nil {
		tb.Fatal(err)
	}
	switch rules {
	case "anchored":
	case "original":
		p.TimeRules = chain.TimeRulesOriginal
		p.MedianTimeInclusive = false
		p.MaxFutureDrift = maxFutureDrift * time.Second
	default:
		tb.Fatalf("rules %q", rules)
	}
	if err := p.Validate(); err != nil {
		tb.Fatal(err)
	}
	return p
}

// warpSim mines one chain with a simulated clock.
type warpSim struct {
	tb     testing.TB
	p      *chain.Params
	v      *chain.Validator
	miner  *chain.Miner
	clock  float64 // simulated Unix time, seconds
	blocks []chain.Block
}

func newWarpSim(tb testing.TB, p *chain.Params, clock float64) *warpSim {
	g := p.GenesisEntry()
	v, err := chain.NewValidator(p, g, []int64{g.Time})
	if err != nil {
		tb.Fatal(err)
	}
	return &warpSim{tb: tb, p: p, v: v, miner: &chain.Miner{Threads: 2}, clock: clock, blocks: []chain.Block{p.Genesis}}
}

// now is the simulated clock in whole seconds, as a node reads it.
func (s *warpSim) now() int64 { return int64(math.Floor(s.clock)) }

// time is the simulated clock.
func (s *warpSim) time() time.Time {
	sec, frac := math.Modf(s.clock)
	return time.Unix(int64(sec), int64(frac*1e9))
}

// latest is the latest timestamp a node with the simulated clock accepts.
func (s *warpSim) latest() int64 { return s.now() + int64(s.p.MaxFutureDrift/time.Second) }

// mine spends the time a miner of rate hashes a second needs for the next
// block, then mines it stamped by stamp (given the earliest and latest
// timestamps the rules allow, and the clock) and adds it; it fails the
// test if the block is refused.
func (s *warpSim) mine(rate float64, stamp func(earliest, latest, now int64) int64) chain.Block {
	s.tb.Helper()
	bits := s.v.NextBits()
	if bits > s.p.Bits+maxWarpRise {
		// No walk under the anchored rules goes near this: fail
		// rather than mine for ever.
		s.tb.Fatalf("block %d needs %d bits, more than %d above the start", s.v.Tip().Height+1, bits, maxWarpRise)
	}
	s.clock += math.Ldexp(1, int(bits)) / rate
	if stamp == nil {
		// An honest miner waits for its clock to come within
		// MaxStampAhead of the earliest time the rules allow.
		if d := s.v.StampDelay(max(s.v.EarliestTime(), s.now()), s.time()); d > 0 {
			s.clock += d.Seconds()
		}
		stamp = honestStamp
	}
	if e := s.v.EarliestTime(); e > s.latest() {
		// No timestamp is allowed yet: wait for the clock.
		s.clock = float64(e) - s.p.MaxFutureDrift.Seconds()
	}
	tmpl, _ := s.v.Template(fmt.Sprintf("warp %d", s.v.Tip().Height+1), s.now())
	earliest, latest := s.v.EarliestTime(), s.latest()
	tmpl.Timestamp = stamp(earliest, latest, s.now())
	if tmpl.Timestamp < earliest || tmpl.Timestamp > latest {
		s.tb.Fatalf("block %d: strategy stamped %d outside [%d, %d]", tmpl.Index, tmpl.Timestamp, earliest, latest)
	}
	b, err := s.miner.Solve(context.Background(), tmpl, bits)
	if err != nil {
		s.tb.Fatal(err)
	}
	if _, err := s.v.Next(&b, s.now()); err != nil {
		s.tb.Fatalf("block %d stamped %d (earliest %d, latest %d): %v", b.Index, b.Timestamp, earliest, latest, err)
	}
	s.blocks = append(s.blocks, b)
	return b
}

// honestStamp is what an honest miner stamps: its clock, or the earliest
// the rules allow if later (it would wait for its clock to come close).
func honestStamp(earliest, _, now int64) int64 { return max(earliest, now) }

// Attacker timestamp strategies. Each stamps a block given its height, the
// earliest and latest timestamps the rules allow and the clock; s is the
// chain so far.
type warpStrategy func(s *warpSim, h uint64, earliest, latest, now int64) int64

// closing reports whether height h closes a retarget window.
func (s *warpSim) closing(h uint64) bool { return (h+1)%s.p.RetargetInterval == 0 }

// prevClose is the timestamp of the block that closed the window before
// the one h is in (the genesis for the first window).
func (s *warpSim) prevClose(h uint64) int64 {
	w := s.p.RetargetInterval
	at := h - h%w
	if at > 0 {
		at--
	}
	return s.blocks[at].Timestamp
}

// warpTarget is a full window's target time in seconds.
func (s *warpSim) warpTarget() int64 {
	return int64(s.p.RetargetInterval) * int64(s.p.Spacing/time.Second)
}

var warpStrategies = map[string]warpStrategy{
	// The attack: every block at the earliest allowed, except
	// each window's last, stamped far enough ahead for the largest fall.
	"spike": func(s *warpSim, h uint64, e, l, _ int64) int64 {
		if s.closing(h) {
			return min(l, e+4*s.warpTarget())
		}
		return e
	},
	// Every block as early as allowed but each window's last as late as
	// allowed.
	"warp": func(s *warpSim, h uint64, e, l, _ int64) int64 {
		if s.closing(h) {
			return l
		}
		return e
	},
	// Every block as late as allowed: drag the median ahead.
	"ahead": func(s *warpSim, h uint64, e, l, _ int64) int64 { return l },
	// Close each window four targets after the previous one when the
	// clock allows: the largest fall at the least cost in time.
	"greedy": func(s *warpSim, h uint64, e, l, _ int64) int64 {
		if s.closing(h) {
			return min(l, max(e, s.prevClose(h)+4*s.warpTarget()))
		}
		return e
	},
	// Hold the difficulty for ten windows with the shortest window that
	// does not raise it, banking time behind the clock, then spend it
	// greedily.
	"bank": func(s *warpSim, h uint64, e, l, now int64) int64 {
		if !s.closing(h) {
			return e
		}
		if h < 10*s.p.RetargetInterval {
			return min(l, max(e, s.prevClose(h)+s.warpTarget()/2+1))
		}
		return min(l, max(e, s.prevClose(h)+4*s.warpTarget()))
	},
	// Close two windows as late as allowed, then one as early as allowed,
	// hoping to spend the same time twice.
	"rewind": func(s *warpSim, h uint64, e, l, _ int64) int64 {
		if s.closing(h) && h/s.p.RetargetInterval%3 != 2 {
			return l
		}
		return e
	},
}

// warpRun mines windows retarget windows on p from a genesis at the clock.
// The attacker has share of the hash rate (the honest miners the rest): on
// a private chain (shared false) it mines every block alone; on the chain
// honest miners extend too, it mines the blocks attacks picks and honest
// miners the others. It returns the difficulty after each window and the
// sim.
func warpRun(tb testing.TB, p *chain.Params, windows int, share float64, shared bool, attacks func(h uint64) bool, strat warpStrategy) ([]uint8, *warpSim) {
	tb.Helper()
	s := newWarpSim(tb, p, float64(p.Genesis.Timestamp))
	var bits []uint8
	w := p.RetargetInterval
	rate := netRate(p)
	if !shared {
		rate *= share
	}
	for h := uint64(1); h <= uint64(windows)*w; h++ {
		var stamp func(e, l, n int64) int64
		if strat != nil && (!shared || attacks(h)) {
			stamp = func(e, l, n int64) int64 { return strat(s, h, e, l, n) }
		}
		s.mine(rate, stamp)
		if s.closing(h) {
			bits = append(bits, s.v.NextBits())
		}
	}
	return bits, s
}

// warpWindows is how many windows each walk lasts.
const warpWindows = 20

// TestTimeWarpAttack replays the attack of issue 12: an attacker with far
// more hash rate than a 12-bit, 10 s network was made for mines 400 blocks
// in little real time, each at the earliest timestamp the rules allow but
// each window's last, which it stamps far enough ahead for the largest
// fall. Under the original rules the difficulty falls 12, 10, 8, 6, 4, 2, 1
// within 120 blocks and the blocks span about a minute; the anchored rules
// refuse those blocks, and the same attack played by their rules lowers
// the difficulty not at all.
func TestTimeWarpAttack(t *testing.T) {
	const t0 = testNow
	orig := warpParams(t, "original", t0, warpBits)
	bits, s := warpRun(t, orig, warpWindows, 50, false, nil, warpStrategies["spike"])
	if got := fmt.Sprint(bits[:7]); got != "[10 8 6 4 2 1 1]" {
		t.Fatalf("original rules: difficulty after each window %s, want [10 8 6 4 2 1 1]", got)
	}
	blocks := s.blocks
	span := blocks[len(blocks)-1].Timestamp - blocks[1].Timestamp
	t.Logf("original rules: %d blocks over %d s of timestamps and %.0f s of real time; difficulty %v", len(blocks)-1, span, s.clock-t0, bits)
	if span > 100 {
		t.Fatalf("the attack's blocks span %d s, want about a minute", span)
	}

	// The same blocks on the network under the anchored rules (the same
	// genesis): refused at once for the window closed 800 s ahead, and
	// once the clock has passed it, for the window opened back at the
	// median.
	anch := warpParams(t, "anchored", t0, warpBits)
	for _, tt := range []struct {
		now   int64
		index int
		code  chain.ErrorCode
	}{
		{s.now(), 19, chain.ErrTimeTooNew},
		{s.now() + 3*3600, 20, chain.ErrTimeWarp},
	} {
		err := (&chain.Chain{Params: anch, Blocks: blocks}).Validate(func() time.Time { return time.Unix(tt.now, 0) })
		var ie *chain.IndexError
		if !errors.As(err, &ie) || ie.Index != tt.index {
			t.Fatalf("anchored rules at %d: %v, want a refusal of block %d", tt.now, err, tt.index)
		}
		wantRule(t, err, tt.code)
	}

	// The attack played by the anchored rules for three windows (made
	// this fast, it raises the difficulty and gets slower): every block
	// is valid, and the difficulty never falls.
	bits, s = warpRun(t, anch, 3, 50, false, nil, warpStrategies["spike"])
	t.Logf("anchored rules: %.0f s of real time; difficulty %v", s.clock-t0, bits)
	prev := uint8(warpBits)
	for i, b := range bits {
		if b < warpBits {
			t.Fatalf("anchored rules: difficulty %d bits after window %d, below the starting %d", b, i+1, warpBits)
		}
		if d := int(b) - int(prev); d > 2 || d < -2 {
			t.Fatalf("anchored rules: window %d moved the difficulty %d bits", i+1, d)
		}
		prev = b
	}
}

// TestTimeWarpHalfHashRate walks an attacker with 50 % of the hash rate
// through 20 windows of the chain honest miners extend with the other 50 %,
// under each strategy, on two schedules: the attacker mines every window's
// first and last block and every other one between (the schedule a time
// warp wants), or a random half. Honest miners stamp their clock (or the
// earliest allowed, following blocks stamped ahead). The stated
// bound (docs/protocol.md, section 13): under the anchored rules the
// difficulty after every window is at most one bit below that of the chain
// all-honest miners make, which is the rule's own resolution (it moves
// only when blocks come a factor of two off target). Under the original
// rules the same attacker takes it to the minimum.
func TestTimeWarpHalfHashRate(t *testing.T) {
	const t0 = testNow
	const bound = 1
	w := uint64(20)
	schedules := map[string]func(seed uint64) func(h uint64) bool{
		"first-last-odd": func(uint64) func(h uint64) bool {
			return func(h uint64) bool { p := h % w; return p == 0 || p == w-1 || p%2 == 1 }
		},
		"random": func(seed uint64) func(h uint64) bool {
			rng := rand.New(rand.NewPCG(seed, 12))
			return func(uint64) bool { return rng.IntN(2) == 0 }
		},
	}
	honest, _ := warpRun(t, warpParams(t, "anchored", t0, walkBits), warpWindows, 0.5, true, func(uint64) bool { return false }, nil)
	for i, b := range honest {
		if b != walkBits {
			t.Fatalf("all-honest chain: %d bits after window %d, want %d", b, i+1, walkBits)
		}
	}
	for _, sched := range []string{"first-last-odd", "random"} {
		for name, strat := range warpStrategies {
			for seed := uint64(1); seed <= 1; seed++ {
				bits, _ := warpRun(t, warpParams(t, "anchored", t0, walkBits), warpWindows, 0.5, true, schedules[sched](seed), strat)
				low := uint8(255)
				for i, b := range bits {
					low = min(low, b)
					if int(b) < int(honest[i])-bound {
						t.Errorf("anchored, %s %s seed %d: %d bits after window %d, more than %d below the honest %d: %v", sched, name, seed, b, i+1, bound, honest[i], bits)
						break
					}
				}
				t.Logf("anchored, %-14s %-6s seed %d: lowest %d bits", sched, name, seed, low)
			}
		}
	}

	// The hole the anchored rules close: the original rules let the same
	// attacker take the shared chain to the minimum within six windows.
	bits, _ := warpRun(t, warpParams(t, "original", t0, walkBits), warpWindows, 0.5, true, schedules["first-last-odd"](0), warpStrategies["spike"])
	t.Logf("original, first-last-odd spike: %v", bits)
	if bits[4] != 1 {
		t.Fatalf("original rules: %d bits after five windows, want the minimum 1: %v", bits[4], bits)
	}
}

// TestTimeWarpPrivate walks an attacker with 50 % of the hash rate through
// 20 windows of a chain it mines alone, under each strategy, and checks the
// bound the anchored rules give whatever the timestamps (docs/protocol.md,
// section 13): over windows j+1..k (after the first), with L the
// timestamps of the blocks closing them and T a window's target time, the
// difficulty falls by at most (L_k - L_j - (k-j)·T/2) / (1.5·T) bits. As no
// block is accepted more than MaxFutureDrift ahead of the clock, a fall
// must be paid for in real time. The original rules break it.
func TestTimeWarpPrivate(t *testing.T) {
	const t0 = testNow
	check := func(s *warpSim, bits []uint8) error {
		T := s.warpTarget()
		w := s.p.RetargetInterval
		for j := 1; j < len(bits); j++ {
			for k := j + 1; k <= len(bits); k++ {
				fall := int64(bits[j-1]) - int64(bits[k-1])
				lj := s.blocks[uint64(j)*w+w-1-w].Timestamp
				lk := s.blocks[uint64(k)*w-1].Timestamp
				if 3*T*fall > 2*(lk-lj)-int64(k-j)*T {
					return fmt.Errorf("windows %d..%d: fell %d bits with the window ends %d s apart", j+1, k, fall, lk-lj)
				}
			}
		}
		return nil
	}
	strats := map[string]warpStrategy{"honest": nil}
	for name, s := range warpStrategies {
		strats[name] = s
	}
	for name, strat := range strats {
		bits, s := warpRun(t, warpParams(t, "anchored", t0, walkBits), warpWindows, 0.5, false, nil, strat)
		t.Logf("anchored, %-6s: %5.0f s, difficulty %v", name, s.clock-t0, bits)
		if err := check(s, bits); err != nil {
			t.Errorf("anchored, %s: %v: %v", name, err, bits)
		}
	}
	bits, s := warpRun(t, warpParams(t, "original", t0, walkBits), warpWindows, 0.5, false, nil, warpStrategies["spike"])
	if err := check(s, bits); err == nil {
		t.Fatalf("original rules, spike: bound held: %v", bits)
	} else {
		t.Logf("original rules, spike: %v: %v", err, bits)
	}
}
