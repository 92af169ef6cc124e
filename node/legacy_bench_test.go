package node

import (
	"context"
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
// JSON list, from memory over loopback): chainsync.FetchLegacyChain streaming and
// decoding it, then storage.ImportPythonList validating it and writing a
// new store, as the command does. Compare BenchmarkImportPython100k, the
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
