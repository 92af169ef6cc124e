package chain_test

import (
	"sync"
	"testing"

	"github.com/jbc-project/jbc/chain"
)

// benchChainLen is the length of the pre-generated chain the validation
// benchmark walks: 2^16 blocks, enough that the walk restarts rarely.
const benchChainLen = 1 << 16

var (
	benchOnce   sync.Once
	benchBlocks []chain.Block
)

// benchChain returns the pre-generated chain, generating it on first use.
func benchChain(tb testing.TB) []chain.Block {
	benchOnce.Do(func() {
		benchBlocks = genChain(tb, chain.TestNet(), benchChainLen, 1, "jbc benchmark block, 32 bytes...")
	})
	return benchBlocks
}

// BenchmarkValidate measures blocks validated per second on one goroutine:
// Validator.Next over a pre-generated TestNet chain. The target is at least
// 1,000,000 blocks/s on one core.
func BenchmarkValidate(b *testing.B) {
	blocks := benchChain(b)
	p := chain.TestNet()
	g := p.GenesisEntry()
	newValidator := func() *chain.Validator {
		v, err := chain.NewValidator(p, g, []int64{g.Time})
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	v := newValidator()
	next := 1
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if next == len(blocks) {
			b.StopTimer()
			v, next = newValidator(), 1
			b.StartTimer()
		}
		if _, err := v.Next(&blocks[next], testNow); err != nil {
			b.Fatal(err)
		}
		next++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
}

// TestValidatorNextAllocs: validating a block allocates only its entry's
// cumulative work (a big.Int and its digits), not the block's own work,
// which is read from a table.
func TestValidatorNextAllocs(t *testing.T) {
	blocks := genChain(t, chain.TestNet(), 200, 1, "allocs")
	p := chain.TestNet()
	g := p.GenesisEntry()
	v, err := chain.NewValidator(p, g, []int64{g.Time})
	if err != nil {
		t.Fatal(err)
	}
	next := 1
	n := testing.AllocsPerRun(100, func() {
		if _, err := v.Next(&blocks[next], testNow); err != nil {
			t.Fatal(err)
		}
		next++
	})
	if n > 2 {
		t.Fatalf("Validator.Next made %.1f allocations a block, want at most 2", n)
	}
	// The table is not handed out: callers own what BlockWork returns.
	w := chain.BlockWork(5)
	w.SetInt64(0)
	if got := chain.BlockWork(5).Int64(); got != 32 {
		t.Fatalf("BlockWork(5) = %d after a caller changed its result, want 32", got)
	}
}
