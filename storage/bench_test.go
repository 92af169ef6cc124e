package storage_test

import (
	"errors"
	"math"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// appendBatch is how many blocks one AddBlocks call carries in the append
// benchmarks: the size of a sync page, the way blocks arrive in bulk.
const appendBatch = 1000

// benchChain is a TestNet chain mined once per test binary and extended on
// demand, so that benchmarks time storage, not mining.
var benchChain struct {
	sync.Mutex
	v      *chain.Validator
	blocks []chain.Block
}

// benchBlocks returns the first n blocks after TestNet's genesis of one
// fixed chain, one second apart.
func benchBlocks(b *testing.B, n int) []chain.Block {
	b.Helper()
	benchChain.Lock()
	defer benchChain.Unlock()
	if benchChain.v == nil {
		benchChain.v = genesisValidator(b, chain.TestNet())
	}
	if more := n - len(benchChain.blocks); more > 0 {
		benchChain.blocks = append(benchChain.blocks, mineOn(b, benchChain.v, more, 1, "bench")...)
	}
	return benchChain.blocks[:n]
}

// BenchmarkAppend appends a pre-mined chain to a new store in batches of
// appendBatch, each batch one fsynced transaction. One op is one block.
func BenchmarkAppend(b *testing.B) { benchAppend(b, appendBatch) }

// BenchmarkAppendLargeBatch is BenchmarkAppend with ten times larger
// transactions, as an import or a sync of many pages makes: more blocks
// share each index page written and each fsync.
func BenchmarkAppendLargeBatch(b *testing.B) { benchAppend(b, 10*appendBatch) }

// BenchmarkAppendNoSync is BenchmarkAppend without fsync: the cost of the
// store's own work, for comparison.
func BenchmarkAppendNoSync(b *testing.B) { benchAppend(b, appendBatch, storage.WithNoSync()) }

func benchAppend(b *testing.B, batch int, opts ...storage.Option) {
	blocks := benchBlocks(b, b.N)
	s, _ := newStore(b, chain.TestNet(), opts...)
	runtime.GC() // not the garbage of mining during the timed part
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		mustAdd(b, s, blocks[i:min(i+batch, b.N)])
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
	if got := s.Tip().Height; got != uint64(b.N) {
		b.Fatalf("tip at %d after appending %d blocks", got, b.N)
	}
}

// reorgDepth is the depth of the reorganisation BenchmarkReorg times.
const reorgDepth = 100

// BenchmarkReorg times AddBlocks of a branch forking reorgDepth blocks
// below the tip with reorgDepth+1 blocks: storing them, dropping the old
// best chain above the fork and writing the new one, in one fsynced
// transaction. One op is one reorg; mining the branch is not timed.
func BenchmarkReorg(b *testing.B) {
	s, _ := newStore(b, chain.TestNet())
	mustAdd(b, s, benchBlocks(b, 2*reorgDepth))
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		tip := s.Tip()
		fork, err := s.HashAt(tip.Height - reorgDepth)
		if err != nil {
			b.Fatal(err)
		}
		branch := mine(b, s, fork, reorgDepth+1, "reorg"+strconv.Itoa(i))
		b.StartTimer()
		res := mustAdd(b, s, branch)
		if !res.Reorg || res.Tip.Height-res.ForkHeight != reorgDepth+1 {
			b.Fatalf("result %+v: want a reorg of depth %d", res, reorgDepth)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reorgs/s")
}

// BenchmarkForEach reads the best chain of a 100 000-block store with
// ForEach. One op is one block.
func BenchmarkForEach(b *testing.B) {
	const n = 100_000
	s, _ := newStore(b, chain.TestNet(), storage.WithNoSync())
	blocks := benchBlocks(b, n)
	for i := 0; i < n; i += appendBatch * 10 {
		mustAdd(b, s, blocks[i:i+appendBatch*10])
	}
	errEnough := errors.New("enough")
	b.ResetTimer()
	read := 0
	for read < b.N {
		err := s.ForEach(0, math.MaxUint64, func(blk *chain.Block) error {
			read++
			if read == b.N {
				return errEnough
			}
			return nil
		})
		if err != nil && !errors.Is(err, errEnough) {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
}
