package node

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/chainsync"
	"github.com/jbc-project/jbc/storage"
)

// BenchmarkImportPythonURL100k measures `jbc import --from URL` of the
// 100 000-block benchmark chain served as a Python node serves it (one
// JSON list, from memory over loopback): chainsync.FetchLegacyChain
// streaming and decoding it, then storage.ImportPythonList validating it
// and writing a new store, as the command does. Compare BenchmarkImportPython100k, the
// same chain from a chaindata directory. One op is one whole import.
func BenchmarkImportPythonURL100k(b *testing.B) {
	src := benchPythonDir(b)
	blocks, err := storage.ReadPython(src)
	if err != nil {
		b.Fatal(err)
	}
	list := pythonList(b, blocks)
	blocks = nil
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(list) }))
	defer srv.Close()
	b.SetBytes(int64(len(list)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dataDir := filepath.Join(b.TempDir(), "data")
		b.StartTimer()
		var got []chain.Block
		if err := chainsync.FetchLegacyChain(context.Background(), srv.URL+"/blockchain.json", func(b chain.Block) error {
			got = append(got, b)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		res, err := storage.ImportPythonList(dataDir, srv.URL, got, storage.PythonImport{Zeros: storage.InferZeros})
		if err != nil {
			b.Fatal(err)
		}
		if res.Tip.Height != benchPythonBlocks {
			b.Fatalf("imported up to %d, want %d", res.Tip.Height, benchPythonBlocks)
		}
		b.StopTimer()
		os.RemoveAll(dataDir)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*(benchPythonBlocks+1))/b.Elapsed().Seconds(), "blocks/s")
}

// benchPythonBlocks is the chain length of the Python layout benchmarks.
const benchPythonBlocks = 100_000

// benchPythonDir returns a Python chaindata directory holding the
// benchmark chain of benchPythonBlocks blocks, exporting it into
// os.TempDir() if no earlier run left one.
func benchPythonDir(b *testing.B) string {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("jbc-bench-%s-python-%d", benchCacheVersion, benchPythonBlocks))
	if _, err := os.Stat(filepath.Join(dir, storage.PythonFileName(benchPythonBlocks))); err == nil {
		return dir
	}
	os.RemoveAll(dir)
	s, err := storage.Open(benchChainDir(b, benchPythonBlocks), nil, storage.WithNoSync())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if _, err := storage.ExportPython(s, tmp, 0, benchPythonBlocks); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkExportPython100k measures `jbc export --out DIR` of a
// 100 000-block chain: storage.ExportPython, which the command calls,
// writing one file per block, each synced and renamed into place. One op is
// one whole export.
func BenchmarkExportPython100k(b *testing.B) {
	s, err := storage.Open(benchChainDir(b, benchPythonBlocks), nil, storage.WithNoSync())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		out := filepath.Join(b.TempDir(), "chaindata")
		b.StartTimer()
		n, err := storage.ExportPython(s, out, 0, benchPythonBlocks)
		if err != nil {
			b.Fatal(err)
		}
		if n != benchPythonBlocks+1 {
			b.Fatalf("exported %d blocks, want %d", n, benchPythonBlocks+1)
		}
		b.StopTimer()
		os.RemoveAll(out)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*(benchPythonBlocks+1))/b.Elapsed().Seconds(), "blocks/s")
}

// BenchmarkImportPython100k measures `jbc import --from DIR` of a
// 100 000-block Python chaindata directory into an empty data directory:
// storage.ImportPython, which the command calls, reading every file,
// validating the chain, writing a new store and syncing it once. One op is
// one whole import.
func BenchmarkImportPython100k(b *testing.B) {
	src := benchPythonDir(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dataDir := filepath.Join(b.TempDir(), "data")
		b.StartTimer()
		res, err := storage.ImportPython(dataDir, src, storage.PythonImport{Zeros: storage.InferZeros})
		if err != nil {
			b.Fatal(err)
		}
		if res.Tip.Height != benchPythonBlocks {
			b.Fatalf("imported up to %d, want %d", res.Tip.Height, benchPythonBlocks)
		}
		b.StopTimer()
		os.RemoveAll(dataDir)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*(benchPythonBlocks+1))/b.Elapsed().Seconds(), "blocks/s")
}
