package chain

import (
	"context"
	"crypto/sha256"
	"encoding"
	"errors"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// minerBatch is how many nonces a mining goroutine tries between looks at
// its context and updates of the shared attempt counter: a few hundred
// microseconds of work, so cancellation is prompt and the counter is not
// a point of contention.
const minerBatch = 1 << 12

// Miner searches for nonces that give a block enough proof of work, on
// several goroutines. Its methods are safe for concurrent use; Solve may
// run more than once at a time.
type Miner struct {
	// Threads is the number of goroutines per Solve; zero means one per CPU.
	Threads int

	attempts atomic.Uint64
}

// Workers returns how many goroutines Solve runs: Threads, or one per CPU
// when Threads is zero.
func (m *Miner) Workers() int {
	if m.Threads <= 0 {
		return runtime.NumCPU()
	}
	return m.Threads
}

// Attempts returns the number of nonces tried so far by all Solve calls.
// Callers derive the hash rate from two readings.
func (m *Miner) Attempts() uint64 { return m.attempts.Load() }

// MaxStampAhead is how far ahead of its own clock, in seconds, a miner
// stamps a block beyond the newest timestamp already on its chain (see
// StampDelay). One second is the step the strict median rule asks for:
// with timestamps in whole seconds, a block so stamped is less than 2 s
// ahead of the clock.
const MaxStampAhead = 1

// Template returns the block a miner should search a nonce for on top of
// the Validator's tip, and the difficulty it must meet. Its timestamp is
// now, or the earliest the rules allow (EarliestTime) if that is later:
// check it with StampDelay before mining.
func (v *Validator) Template(data string, now int64) (Block, uint8) {
	ts := max(now, v.EarliestTime())
	b := Block{Index: v.tip.Height + 1, Timestamp: ts, Data: data, PrevHash: v.tip.Hash}
	return b, v.NextBits()
}

// StampDelay returns how long a miner whose clock reads now must wait
// before mining a block stamped ts on the Validator's tip; zero when it may
// mine at once. A miner never makes its chain's time later than both its
// clock (plus MaxStampAhead) and the newest timestamp already among the
// tip and its recent ancestors. Following blocks stamped ahead of its clock
// (a fast clock, an attacker) runs the chain no further ahead, so it mines
// on rather than leave the chain to whoever stamped them. Only the strict
// median rule asks for more, when six of the last 11 blocks share the
// newest second: a chain making more than about six blocks a second of
// timestamps; the miner then waits for its clock, and the chain keeps to
// its miners' clocks instead of running ahead. After a wait the miner makes
// a new template.
func (v *Validator) StampDelay(ts int64, now time.Time) time.Duration {
	d := time.Unix(ts-MaxStampAhead, 0).Sub(now)
	if d <= 0 || ts <= slices.Max(v.recent()) {
		return 0
	}
	return d
}

// ErrNonceSpace is returned by Solve when every nonce has been tried; the
// caller should change the timestamp or data and try again.
var ErrNonceSpace = errors.New("chain: nonce space exhausted")

// Solve searches for a nonce that gives tmpl a hash with at least bits
// leading zero bits, and returns the block with its Nonce and Hash set. It
// returns ctx.Err() when ctx is done first (for example when the tip
// changes). The header prefix before the nonce is hashed once; each attempt
// hashes only the remaining bytes and allocates nothing.
func (m *Miner) Solve(ctx context.Context, tmpl Block, bits uint8) (Block, error) {
	threads := m.Workers()
	prefix := tmpl.appendPrefix(nil)
	base := sha256.New()
	base.Write(prefix)
	state, err := base.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return Block{}, err
	}

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		found Block
		ok    bool
	)
	for w := 0; w < threads; w++ {
		wg.Add(1)
		go func(start uint64) {
			defer wg.Done()
			if nonce, hit := m.search(ctx, state, start, uint64(threads), int(bits)); hit {
				once.Do(func() {
					found = tmpl
					found.Nonce = nonce
					found.Hash = found.ComputeHash()
					ok = true
					cancel()
				})
			}
		}(uint64(w))
	}
	wg.Wait()
	switch {
	case ok:
		return found, nil
	case parent.Err() != nil:
		return Block{}, parent.Err()
	default:
		return Block{}, ErrNonceSpace
	}
}

// search tries nonces start, start+step, ... until one meets bits or ctx
// is done.
func (m *Miner) search(ctx context.Context, state []byte, start, step uint64, bits int) (uint64, bool) {
	d := sha256.New()
	um := d.(encoding.BinaryUnmarshaler)
	var (
		digits [20]byte
		sum    = make([]byte, 0, sha256.Size)
	)
	nonce := start
	for {
		for i := 0; i < minerBatch; i++ {
			_ = um.UnmarshalBinary(state)
			d.Write(strconv.AppendUint(digits[:0], nonce, 10))
			sum = d.Sum(sum[:0])
			if hasZeroBits(sum, bits) {
				m.attempts.Add(uint64(i + 1))
				return nonce, true
			}
			next := nonce + step
			if next < nonce {
				m.attempts.Add(uint64(i + 1))
				return 0, false
			}
			nonce = next
		}
		m.attempts.Add(minerBatch)
		if ctx.Err() != nil {
			return 0, false
		}
	}
}

// hasZeroBits reports whether sum starts with at least n zero bits.
func hasZeroBits(sum []byte, n int) bool {
	i := 0
	for ; n >= 8; n -= 8 {
		if sum[i] != 0 {
			return false
		}
		i++
	}
	return n == 0 || sum[i]>>(8-n) == 0
}
