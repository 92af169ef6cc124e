package chain

import (
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"time"
	"unicode/utf8"
)

// LeadingZeroBits returns the number of leading zero bits of h.
func LeadingZeroBits(h *Hash) int {
	for i, b := range h {
		if b != 0 {
			return i*8 + bits.LeadingZeros8(b)
		}
	}
	return 8 * HashSize
}

// BlockWork returns the work a block of difficulty bits proves: 2^bits, the
// expected number of hashes needed to find it. The caller owns the result.
func BlockWork(b uint8) *big.Int {
	return new(big.Int).Set(blockWork[b])
}

// blockWork holds 2^b for every difficulty b, made once: validation adds
// one to each block's parent work, and making it anew cost three of the
// four allocations a block's validation made. Read only.
var blockWork = func() (w [256]*big.Int) {
	for b := range w {
		w[b] = new(big.Int).Lsh(big.NewInt(1), uint(b))
	}
	return w
}()

// Entry is what the block index keeps for each stored block: enough to
// validate its children and to choose between branches without reading
// block data. An Entry is immutable once made; Work is shared, not copied.
type Entry struct {
	Hash   Hash
	Parent Hash
	Height uint64
	Time   int64
	// Bits is the difficulty this block was required to meet.
	Bits uint8
	// Work is the cumulative work of the branch up to and including this
	// block: the sum of 2^Bits over it and all its ancestors.
	Work *big.Int
}

// GenesisEntry returns the index entry of the network's genesis block.
func (p *Params) GenesisEntry() Entry {
	return Entry{
		Hash:   p.Genesis.Hash,
		Height: 0,
		Time:   p.Genesis.Timestamp,
		Bits:   p.Bits,
		Work:   BlockWork(p.Bits),
	}
}

// MoreWork reports whether a has strictly more cumulative work than b. Fork
// choice takes a branch only when it has more work than the current best
// chain: on equal work the current chain stays.
func MoreWork(a, b *Entry) bool { return a.Work.Cmp(b.Work) > 0 }

// NextBits returns the difficulty required of the child of parent. recent
// holds the timestamps of parent and its ancestors, newest first (recent[0]
// is parent.Time), at least min(TimeWindow, parent.Height+1) of them.
//
// With Spacing zero the difficulty is fixed at parent.Bits. Otherwise the
// difficulty changes only at heights h that are multiples of
// RetargetInterval W (h >= W), and reads the time the last window took:
// under TimeRulesOriginal the W-1 intervals between the window's first and
// last block, recent[0] - recent[W-1]; under TimeRulesAnchored the W
// intervals from the previous window's last block to this window's last,
// recent[0] - recent[W] (the first window, which has no previous one,
// starts at the genesis: W-1 intervals). That time (at least one second)
// is compared with the target, Spacing times the intervals. When blocks
// came k or more doublings too fast the difficulty rises by k bits; k or
// more halvings too slow, it falls by k; within a factor of two it stays. A
// step is at most MaxRetargetStep bits and the result stays within
// [MinBits, MaxBits]. The rule reads only ancestors, so every node computes
// the same value.
func (p *Params) NextBits(parent *Entry, recent []int64) uint8 {
	w := p.RetargetInterval
	h := parent.Height + 1
	if p.Spacing <= 0 || w < 2 || h%w != 0 || h < w {
		return parent.Bits
	}
	n := w - 1 // intervals measured
	if p.TimeRules == TimeRulesAnchored && h > w {
		n = w
	}
	if uint64(len(recent)) <= n {
		return parent.Bits
	}
	actual := recent[0] - recent[n]
	if actual < 1 {
		actual = 1
	}
	target := int64(n) * int64(p.Spacing.Seconds())
	var step int
	if actual < target {
		step = bits.Len64(uint64(target/actual)) - 1
	} else {
		step = -(bits.Len64(uint64(actual/target)) - 1)
	}
	maxStep := int(p.MaxRetargetStep)
	step = max(-maxStep, min(maxStep, step))
	nb := int(parent.Bits) + step
	nb = max(int(p.MinBits), min(int(p.MaxBits), nb))
	return uint8(nb)
}

// EarliestTime returns the earliest timestamp a child of parent may carry
// (recent as for NextBits): later than the median of the past, or equal to
// it with MedianTimeInclusive, and on a network with TimeRulesAnchored
// within the window bounds (see CheckBlock).
func (p *Params) EarliestTime(parent *Entry, recent []int64) int64 {
	t := p.MedianTime(recent)
	if !p.MedianTimeInclusive {
		t++
	}
	if p.anchored() {
		if first, ok := p.windowFloor(parent, recent); ok {
			t = max(t, first)
		}
	}
	return t
}

// windowFloor returns the earliest time the window rules of
// TimeRulesAnchored allow a child of parent, and whether they bound it: a
// block opening a window may be at most MaxFutureDrift before its parent
// (the previous window's last block); a block closing a window may not be
// before the window's first block.
func (p *Params) windowFloor(parent *Entry, recent []int64) (int64, bool) {
	w := p.RetargetInterval
	h := parent.Height + 1
	switch {
	case h%w == 0:
		drift := int64(p.MaxFutureDrift / time.Second)
		if parent.Time < math.MinInt64+drift {
			return math.MinInt64, true
		}
		return parent.Time - drift, true
	case (h+1)%w == 0 && uint64(len(recent)) >= w-1:
		// The window's first block is at height h-w+1; recent[0] is h-1.
		return recent[w-2], true
	}
	return 0, false
}

// MedianTime returns the median of the first MedianTimeBlocks entries of
// recent (timestamps, newest first). A child's timestamp must be later, or
// with MedianTimeInclusive no earlier.
func (p *Params) MedianTime(recent []int64) int64 {
	n := min(len(recent), p.MedianTimeBlocks)
	var buf [32]int64
	var s []int64
	if n <= len(buf) {
		s = buf[:n]
	} else {
		s = make([]int64, n)
	}
	copy(s, recent[:n])
	// Insertion sort: n is 11 on every built-in network.
	for i := 1; i < n; i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[n/2]
}

// CheckBlock validates b as a child of parent, given recent (the parent's
// and its ancestors' timestamps, newest first, as for NextBits) and now, the
// local time in Unix seconds. It returns b's index entry, or a *RuleError
// naming the first rule b breaks. The checks run cheapest first.
func (p *Params) CheckBlock(b *Block, parent *Entry, recent []int64, now int64) (Entry, error) {
	// Shape: the data field fits and is text.
	if len(b.Data) > p.MaxDataSize {
		return Entry{}, ruleError(ErrDataTooLarge, "block %d: data is %d bytes, limit %d", b.Index, len(b.Data), p.MaxDataSize)
	}
	if !utf8.ValidString(b.Data) {
		return Entry{}, ruleError(ErrBadData, "block %d: data is not valid UTF-8", b.Index)
	}

	// Position: the block is the parent's child.
	if b.Index != parent.Height+1 {
		return Entry{}, ruleError(ErrBadIndex, "block index %d, want %d (parent %s at %d)", b.Index, parent.Height+1, parent.Hash.Short(), parent.Height)
	}
	if b.PrevHash != parent.Hash {
		return Entry{}, ruleError(ErrBadLink, "block %d: prev_hash %s is not the parent's hash %s", b.Index, b.PrevHash.Short(), parent.Hash.Short())
	}

	// Time: later than the median of the past (or equal, when the network
	// allows it), not far in the future.
	if med := p.MedianTime(recent); b.Timestamp < med || (b.Timestamp == med && !p.MedianTimeInclusive) {
		rel := "after"
		if p.MedianTimeInclusive {
			rel = "at or after"
		}
		return Entry{}, ruleError(ErrTimeTooOld, "block %d: timestamp %d is not %s the median %d of the last %d blocks", b.Index, b.Timestamp, rel, med, min(len(recent), p.MedianTimeBlocks))
	}
	if limit := now + int64(p.MaxFutureDrift.Seconds()); b.Timestamp > limit {
		return Entry{}, ruleError(ErrTimeTooNew, "block %d: timestamp %d is more than %s ahead of local time %d", b.Index, b.Timestamp, p.MaxFutureDrift, now)
	}

	// Retarget windows (TimeRulesAnchored): a window opens no more than
	// MaxFutureDrift before the previous one closed and closes no earlier
	// than it opened, so that the time the retarget reads cannot be run
	// backwards and spent again.
	if p.anchored() {
		if floor, ok := p.windowFloor(parent, recent); ok && b.Timestamp < floor {
			if b.Index%p.RetargetInterval == 0 {
				return Entry{}, ruleError(ErrTimeWarp, "block %d opens a retarget window at %d, more than %s before its parent's timestamp %d", b.Index, b.Timestamp, p.MaxFutureDrift, parent.Time)
			}
			return Entry{}, ruleError(ErrTimeWarp, "block %d closes a retarget window at %d, before the window's first block at %d", b.Index, b.Timestamp, floor)
		}
	}

	// Proof of work: the hash recomputes and has enough leading zeros.
	if h := b.ComputeHash(); h != b.Hash {
		return Entry{}, ruleError(ErrBadHash, "block %d: hash %s does not match its header (%s)", b.Index, b.Hash.Short(), h.Short())
	}
	need := p.NextBits(parent, recent)
	if got := LeadingZeroBits(&b.Hash); got < int(need) {
		return Entry{}, ruleError(ErrDifficulty, "block %d: hash %s has %d leading zero bits, %d required", b.Index, b.Hash.Short(), got, need)
	}

	return Entry{
		Hash:   b.Hash,
		Parent: parent.Hash,
		Height: b.Index,
		Time:   b.Timestamp,
		Bits:   need,
		Work:   new(big.Int).Add(parent.Work, blockWork[need]),
	}, nil
}

// CheckGenesis checks that b is the network's genesis block.
func (p *Params) CheckGenesis(b *Block) error {
	if *b != p.Genesis {
		return ruleError(ErrBadGenesis, "block 0 (hash %s) is not the network's genesis %s", b.Hash.Short(), p.Genesis.Hash.Short())
	}
	return nil
}

// Validator validates a run of blocks, each the child of the one before,
// keeping the window of recent timestamps itself so that each block costs
// O(1) beyond its hash. A Validator is not safe for concurrent use.
type Validator struct {
	p    *Params
	tip  Entry
	ring []int64 // recent timestamps, ring[pos] newest
	n    int     // valid entries in ring
	pos  int
	buf  []int64 // scratch: recent timestamps newest first
}

// NewValidator returns a Validator whose first block must be a child of
// parent. recent holds parent's and its ancestors' timestamps, newest first,
// at least min(p.TimeWindow(), parent.Height+1) of them.
func NewValidator(p *Params, parent Entry, recent []int64) (*Validator, error) {
	w := p.TimeWindow()
	if need := min(uint64(w), parent.Height+1); uint64(len(recent)) < need {
		return nil, fmt.Errorf("chain: validator needs %d recent timestamps, have %d", need, len(recent))
	}
	if len(recent) > 0 && recent[0] != parent.Time {
		return nil, fmt.Errorf("chain: recent[0] = %d is not the parent's time %d", recent[0], parent.Time)
	}
	v := &Validator{p: p, tip: parent, ring: make([]int64, w), buf: make([]int64, w)}
	// Fill the ring oldest first so that the newest ends at pos.
	k := min(len(recent), w)
	for i := k - 1; i >= 0; i-- {
		v.push(recent[i])
	}
	return v, nil
}

func (v *Validator) push(t int64) {
	if v.n > 0 {
		v.pos = (v.pos + 1) % len(v.ring)
	}
	v.ring[v.pos] = t
	if v.n < len(v.ring) {
		v.n++
	}
}

// recent returns the window newest first, in v.buf.
func (v *Validator) recent() []int64 {
	s := v.buf[:v.n]
	for i := range s {
		s[i] = v.ring[(v.pos-i+len(v.ring))%len(v.ring)]
	}
	return s
}

// Tip returns the entry of the last block accepted (at first, the parent).
func (v *Validator) Tip() Entry { return v.tip }

// Recent returns a copy of the recent timestamps, newest first.
func (v *Validator) Recent() []int64 { return append([]int64(nil), v.recent()...) }

// NextBits returns the difficulty the next block must meet.
func (v *Validator) NextBits() uint8 { return v.p.NextBits(&v.tip, v.recent()) }

// MedianTime returns the median of the recent timestamps, which the next
// block's timestamp must exceed (or, with MedianTimeInclusive, reach).
func (v *Validator) MedianTime() int64 { return v.p.MedianTime(v.recent()) }

// EarliestTime returns the earliest timestamp the next block may carry.
func (v *Validator) EarliestTime() int64 { return v.p.EarliestTime(&v.tip, v.recent()) }

// Next validates b as the child of the current tip; on success b becomes the
// tip and its entry is returned. On error the Validator is unchanged.
func (v *Validator) Next(b *Block, now int64) (Entry, error) {
	e, err := v.p.CheckBlock(b, &v.tip, v.recent(), now)
	if err != nil {
		return Entry{}, err
	}
	v.tip = e
	v.push(b.Timestamp)
	return e, nil
}
