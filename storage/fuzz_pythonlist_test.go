package storage

import (
	"bytes"
	"testing"

	"github.com/jbc-project/jbc/chain"
)

// FuzzReadPythonList: whatever a legacy peer sends, ReadPythonList returns
// an error or blocks with consecutive indices from 0, never panics, and
// never reads past its limit.
func FuzzReadPythonList(f *testing.F) {
	f.Add([]byte(`[{"index": "0", "timestamp": "1", "prev_hash": "", "hash": "` + chain.Hash{}.String() + `", "data": "", "nonce": "0"}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"nonce": 0}, 1]`))
	f.Add([]byte(`[{"index": 0, "timestamp": 1, "prev_hash": "", "hash": "", "data": "", "nonce": 0}] x`))
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 4096
		r := bytes.NewReader(data)
		var n uint64
		err := ReadPythonList(r, "fuzz", 0, limit, func(b chain.Block) error {
			if b.Index != n {
				t.Fatalf("block %d handed over as block %d", b.Index, n)
			}
			n++
			return nil
		})
		if read := int64(len(data)) - int64(r.Len()); read > limit+1 {
			t.Fatalf("read %d bytes, limit %d", read, limit)
		}
		if err == nil && n == 0 {
			t.Fatal("no error and no blocks")
		}
	})
}
