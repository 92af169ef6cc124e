package storage

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/jbc-project/jbc/chain"
)

// TestImportPythonEqualTimestamps imports a chain as the Python original
// makes it on a fast machine: several blocks in the same second, so runs of
// equal timestamps. The imported network must accept it, and a network with
// the strict median rule must not.
func TestImportPythonEqualTimestamps(t *testing.T) {
	const ts = 1500000000
	genesis := chain.NewGenesis("First block data", ts)
	blocks := []chain.Block{genesis}
	m := &chain.Miner{Threads: 1}
	for i := 1; i <= 15; i++ {
		prev := blocks[len(blocks)-1]
		b, err := m.Solve(context.Background(), chain.Block{Index: uint64(i), Timestamp: ts, Data: "same second", PrevHash: prev.Hash}, 4)
		if err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, b)
	}
	src := t.TempDir()
	for i := range blocks {
		data, err := EncodePythonFile(&blocks[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, PythonFileName(uint64(i))), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The strict rule refuses the second block whose time equals the median.
	strict, err := PythonParams(blocks, 1)
	if err != nil {
		t.Fatal(err)
	}
	strict.MedianTimeInclusive = false
	c := &chain.Chain{Params: strict, Blocks: blocks}
	if err := c.Validate(nil); err == nil {
		t.Fatal("the strict median rule accepted equal timestamps; the test chain proves nothing")
	}

	res, err := ImportPython(filepath.Join(t.TempDir(), "data"), src, PythonImport{Zeros: 1})
	if err != nil {
		t.Fatalf("import of a chain with equal timestamps: %v", err)
	}
	if !res.Created || res.Tip.Height != 15 || !res.Params.MedianTimeInclusive {
		t.Fatalf("import result %+v", res)
	}
}
