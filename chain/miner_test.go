package chain

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"math"
	"math/big"
	"strconv"
	"sync"
	"testing"
	"time"
)

// refBlockHash hashes the header string built independently of
// AppendHeader and appendPrefix.
func refBlockHash(b *Block) Hash {
	prev := ""
	if !b.PrevHash.IsZero() {
		prev = hex.EncodeToString(b.PrevHash[:])
	}
	s := strconv.FormatUint(b.Index, 10) + prev + b.Data + strconv.FormatInt(b.Timestamp, 10) + strconv.FormatUint(b.Nonce, 10)
	return sha256.Sum256([]byte(s))
}

func refLeadingZeros(h Hash) int { return 256 - new(big.Int).SetBytes(h[:]).BitLen() }

// minerTemplate is a TestNet block 1 with a header of typical size: about
// 100 bytes, two SHA-256 blocks, of which the miner hashes the first once.
func minerTemplate() Block {
	p := TestNet()
	return Block{Index: 1, Timestamp: p.Genesis.Timestamp + 1, Data: "benchmark block data", PrevHash: p.Genesis.Hash}
}

func prefixState(tb testing.TB, tmpl Block) []byte {
	tb.Helper()
	d := sha256.New()
	d.Write(tmpl.appendPrefix(nil))
	s, err := d.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// firstNonce finds by brute force the smallest nonce giving tmpl bits
// leading zero bits.
func firstNonce(tmpl Block, bits int) uint64 {
	for n := uint64(0); ; n++ {
		tmpl.Nonce = n
		if refLeadingZeros(refBlockHash(&tmpl)) >= bits {
			return n
		}
	}
}

func TestSolve(t *testing.T) {
	tmpl := minerTemplate()
	tmpl.Nonce = 12345 // ignored: the search starts at zero
	tmpl.Hash = Hash{1}
	for _, threads := range []int{1, 4, 0} {
		for _, bits := range []uint8{0, 1, 12, 16} {
			m := &Miner{Threads: threads}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			b, err := m.Solve(ctx, tmpl, bits)
			cancel()
			if err != nil {
				t.Fatalf("threads %d bits %d: %v", threads, bits, err)
			}
			if b.Index != tmpl.Index || b.Timestamp != tmpl.Timestamp || b.Data != tmpl.Data || b.PrevHash != tmpl.PrevHash {
				t.Errorf("threads %d bits %d: header changed: %+v", threads, bits, b)
			}
			if b.Hash != refBlockHash(&b) {
				t.Errorf("threads %d bits %d: hash %s does not match the header", threads, bits, b.Hash)
			}
			if got := refLeadingZeros(b.Hash); got < int(bits) {
				t.Errorf("threads %d bits %d: hash has %d zero bits", threads, bits, got)
			}
			if m.Attempts() == 0 {
				t.Errorf("threads %d bits %d: no attempts counted", threads, bits)
			}
			if threads == 1 {
				// One thread tries nonces in order: it finds the first, and
				// counts exactly the nonces it tried.
				want := firstNonce(tmpl, int(bits))
				if b.Nonce != want {
					t.Errorf("bits %d: nonce %d, want the first, %d", bits, b.Nonce, want)
				}
				if m.Attempts() != want+1 {
					t.Errorf("bits %d: %d attempts, want %d", bits, m.Attempts(), want+1)
				}
			}
		}
	}
}

// TestSolveBlockValidates: a solved template is accepted by the rules.
func TestSolveBlockValidates(t *testing.T) {
	p, err := NewParams("miner", "miner test", 1577836800, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	g := p.GenesisEntry()
	v, err := NewValidator(p, g, []int64{g.Time})
	if err != nil {
		t.Fatal(err)
	}
	m := &Miner{Threads: 2}
	for i := 0; i < 5; i++ {
		tmpl, bits := v.Template("block "+strconv.Itoa(i), g.Time+int64(60*(i+1)))
		b, err := m.Solve(context.Background(), tmpl, bits)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Next(&b, g.Time+1e6); err != nil {
			t.Fatalf("mined block %d refused: %v", i, err)
		}
	}
}

func TestSolveCancel(t *testing.T) {
	tmpl := minerTemplate()
	m := &Miner{Threads: 4}

	// Already cancelled: nothing found, the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	b, err := m.Solve(ctx, tmpl, 255)
	if !errors.Is(err, context.Canceled) || b != (Block{}) {
		t.Fatalf("Solve = %+v, %v; want context.Canceled", b, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("cancelled Solve took %s", d)
	}

	// Cancelled while searching: 255 bits is never found, so Solve returns
	// only because of the cancel, within a batch of attempts.
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	before := m.Attempts()
	go func() {
		_, err := m.Solve(ctx, tmpl, 255)
		done <- err
	}()
	// Wait for the search to be under way (a loaded machine can take a
	// while to schedule it): Attempts grows with each batch.
	for deadline := time.Now().Add(10 * time.Second); m.Attempts() <= before && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if m.Attempts() <= before {
		t.Error("Attempts did not increase while searching")
	}
	cancelled := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Solve = %v, want context.Canceled", err)
		}
		// A batch is well under a millisecond; allow for -race and a
		// loaded machine.
		if d := time.Since(cancelled); d > time.Second {
			t.Errorf("Solve returned %s after the cancel", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Solve did not return after its context was cancelled")
	}

	// A deadline reads as such.
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := m.Solve(ctx, tmpl, 255); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Solve = %v, want context.DeadlineExceeded", err)
	}
}

// TestSolveConcurrent runs several Solves on one Miner at once, as its
// documentation allows; -race checks the sharing.
func TestSolveConcurrent(t *testing.T) {
	m := &Miner{Threads: 2}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			tmpl := minerTemplate()
			tmpl.Data = strconv.Itoa(i)
			b, err := m.Solve(context.Background(), tmpl, 10)
			if err == nil && (b.Hash != refBlockHash(&b) || refLeadingZeros(b.Hash) < 10) {
				err = errors.New("bad block " + b.Hash.String())
			}
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestSearchNonceSpace: the search stops, and says so, at the end of the
// nonce space instead of wrapping around to nonces already tried.
func TestSearchNonceSpace(t *testing.T) {
	tmpl := minerTemplate()
	state := prefixState(t, tmpl)
	m := &Miner{}
	nonce, ok := m.search(context.Background(), state, math.MaxUint64-5, 1, 255)
	if ok || nonce != 0 {
		t.Errorf("search = %d, %v at the end of the nonce space", nonce, ok)
	}
	if m.Attempts() != 6 {
		t.Errorf("%d attempts, want 6", m.Attempts())
	}
	// With a step, the last nonces tried are MaxUint64-10, -6, -2.
	m = &Miner{}
	if _, ok := m.search(context.Background(), state, math.MaxUint64-10, 4, 255); ok || m.Attempts() != 3 {
		t.Errorf("stepped search: ok %v, %d attempts, want 3", ok, m.Attempts())
	}
	// The last nonce is tried too: search the last four for the difficulty
	// the last one meets, and expect the first of them that meets it.
	last := tmpl
	last.Nonce = math.MaxUint64
	bits := refLeadingZeros(refBlockHash(&last))
	want := uint64(math.MaxUint64 - 3)
	for ; ; want++ {
		b := tmpl
		b.Nonce = want
		if refLeadingZeros(refBlockHash(&b)) >= bits {
			break
		}
	}
	m = &Miner{}
	if nonce, ok := m.search(context.Background(), state, math.MaxUint64-3, 1, bits); !ok || nonce != want {
		t.Errorf("search = %d, %v; want %d", nonce, ok, want)
	}
}

// TestSearchNoAllocPerAttempt: a search of one attempt and one of a whole
// batch allocate the same (the digest and buffers set up once), so an
// attempt allocates nothing.
func TestSearchNoAllocPerAttempt(t *testing.T) {
	tmpl := minerTemplate()
	state := prefixState(t, tmpl)
	m := &Miner{}
	live := context.Background()
	cancelled, cancel := context.WithCancel(live)
	cancel()
	one := testing.AllocsPerRun(50, func() {
		if _, ok := m.search(live, state, 0, 1, 0); !ok {
			t.Fatal("0 bits not met at once")
		}
	})
	before := m.Attempts()
	batch := testing.AllocsPerRun(50, func() {
		if _, ok := m.search(cancelled, state, 0, 1, 255); ok {
			t.Fatal("255 bits met")
		}
	})
	perRun := (m.Attempts() - before) / 51 // AllocsPerRun runs once more to warm up
	if perRun != minerBatch {
		t.Fatalf("%d attempts per search, want %d", perRun, minerBatch)
	}
	if batch != one {
		t.Errorf("a search of %d attempts allocates %.0f times, one of 1 attempt %.0f", minerBatch, batch, one)
	}
	if one > 4 {
		t.Errorf("search setup allocates %.0f times", one)
	}
}

func TestHasZeroBits(t *testing.T) {
	var sums [][]byte
	for i := 0; i <= 256; i++ {
		// A hash whose first set bit is bit i (none when i is 256), followed
		// by ones.
		var h Hash
		for j := i; j < 256; j++ {
			h[j/8] |= 0x80 >> (j % 8)
		}
		sums = append(sums, h[:])
		// And one with only that bit set.
		var s Hash
		if i < 256 {
			s[i/8] = 0x80 >> (i % 8)
		}
		sums = append(sums, s[:])
	}
	for _, sum := range sums {
		h := Hash(sum)
		lz := refLeadingZeros(h)
		if LeadingZeroBits(&h) != lz {
			t.Fatalf("LeadingZeroBits(%x) = %d, want %d", sum, LeadingZeroBits(&h), lz)
		}
		for n := 0; n <= 255; n++ {
			if got := hasZeroBits(sum, n); got != (lz >= n) {
				t.Fatalf("hasZeroBits(%x, %d) = %v; the hash has %d zero bits", sum, n, got, lz)
			}
		}
	}
}

// plainHashes is the baseline the miner is measured against: the whole
// header rebuilt and hashed with sha256.Sum256 for each nonce.
func plainHashes(tmpl Block, from, n uint64) byte {
	buf := make([]byte, 0, 256)
	var sink byte
	for nonce := from; nonce < from+n; nonce++ {
		tmpl.Nonce = nonce
		buf = tmpl.AppendHeader(buf[:0])
		s := sha256.Sum256(buf)
		sink ^= s[0]
	}
	return sink
}

// minerAttempts runs the miner's search for at least n attempts on one
// goroutine (whole batches: a cancelled search does one batch and stops)
// and returns how many it made.
func minerAttempts(m *Miner, state []byte, n uint64) uint64 {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var done uint64
	for done < n {
		m.search(ctx, state, done, 1, 255) // 255 bits: never met
		done += minerBatch
	}
	return done
}

var benchSink byte

// BenchmarkMinerAttempt measures one mining attempt on one core: the
// prefix state restored, the nonce digits hashed. An op is an attempt (b.N
// rounded up to whole batches of minerBatch). Compare BenchmarkPlainSHA256.
func BenchmarkMinerAttempt(b *testing.B) {
	tmpl := minerTemplate()
	state := prefixState(b, tmpl)
	m := &Miner{}
	b.ReportAllocs()
	b.ResetTimer()
	minerAttempts(m, state, uint64(b.N))
}

// BenchmarkPlainSHA256 is the baseline: sha256.Sum256 over the whole
// header of the same block, rebuilt for each nonce.
func BenchmarkPlainSHA256(b *testing.B) {
	tmpl := minerTemplate()
	b.ReportAllocs()
	b.ResetTimer()
	benchSink ^= plainHashes(tmpl, 0, uint64(b.N))
}

// BenchmarkMinerVsPlain times the miner and the plain baseline over the
// same nonces in one run and reports their ratio (plain time / miner time:
// how many times faster the miner's attempt is). The two alternate batch by
// batch so that a change in machine load hits both alike. ns/op is one
// attempt of each.
func BenchmarkMinerVsPlain(b *testing.B) {
	tmpl := minerTemplate()
	state := prefixState(b, tmpl)
	m := &Miner{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var minerTime, plainTime time.Duration
	var n uint64
	b.ResetTimer()
	for n < uint64(b.N) {
		start := time.Now()
		m.search(ctx, state, n, 1, 255) // one batch
		mid := time.Now()
		benchSink ^= plainHashes(tmpl, n, minerBatch)
		minerTime += mid.Sub(start)
		plainTime += time.Since(mid)
		n += minerBatch
	}
	b.ReportMetric(float64(minerTime.Nanoseconds())/float64(n), "miner-ns/attempt")
	b.ReportMetric(float64(plainTime.Nanoseconds())/float64(n), "plain-ns/attempt")
	b.ReportMetric(float64(plainTime)/float64(minerTime), "ratio")
}
