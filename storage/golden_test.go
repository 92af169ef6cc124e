package storage_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// goldenDir holds a store written by this version of the package and what
// it contains. A store written today must open in every later version; a
// layout change needs a new schema version, and a new golden store next to
// this one, never this one rewritten. Regenerate only by deleting it and
// running with JBC_UPDATE_GOLDEN=1. (Version 2 was never released: it was
// replaced, not kept, when version 3 keyed the index by height.)
const goldenDir = "testdata/store-v3"

// goldenWant is the golden store's content, as want.json records it.
type goldenWant struct {
	Tip     chain.Hash `json:"tip"`
	Height  uint64     `json:"height"`
	Work    string     `json:"work"`
	Count   int        `json:"count"`
	SideTip chain.Hash `json:"side_tip"`
}

// writeGolden makes the golden store: 40 blocks on TestNet and a side
// branch of 5 forking at 30.
func writeGolden(t *testing.T) {
	if err := os.MkdirAll(goldenDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if storage.Exists(goldenDir) {
		t.Fatalf("%s exists: golden stores are never rewritten", goldenDir)
	}
	s, err := storage.Create(goldenDir, chain.TestNet(), storage.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	main := mine(t, s, s.Tip().Hash, 40, "golden")
	mustAdd(t, s, main)
	side := mine(t, s, main[29].Hash, 5, "golden side")
	mustAdd(t, s, side)
	n, _ := s.Count()
	want := goldenWant{Tip: s.Tip().Hash, Height: s.Tip().Height, Work: s.Tip().Work.String(), Count: n, SideTip: side[4].Hash}
	data, err := json.MarshalIndent(want, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(goldenDir, "want.json"), append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestGoldenStore opens a store written by an earlier run of the package:
// the file layout and the schema version must still be understood.
func TestGoldenStore(t *testing.T) {
	if os.Getenv("JBC_UPDATE_GOLDEN") != "" {
		writeGolden(t)
	}
	data, err := os.ReadFile(filepath.Join(goldenDir, "want.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want goldenWant
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	dir := copyStore(t, goldenDir)

	s, err := storage.Open(dir, chain.TestNet(), storage.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	tip := s.Tip()
	if tip.Hash != want.Tip || tip.Height != want.Height || tip.Work.String() != want.Work {
		t.Fatalf("tip %s at %d with work %v, want %s at %d with work %s", tip.Hash.Short(), tip.Height, tip.Work, want.Tip.Short(), want.Height, want.Work)
	}
	if n, err := s.Count(); err != nil || n != want.Count {
		t.Fatalf("Count = %d, %v; want %d", n, err, want.Count)
	}
	if err := s.Verify(nil); err != nil {
		t.Fatal(err)
	}
	if on, err := s.OnBest(want.SideTip); err != nil || on || !s.Has(want.SideTip) {
		t.Fatalf("side tip: OnBest %v, %v; Has %v", on, err, s.Has(want.SideTip))
	}
	wantTipBranch(t, s)
	// The store still takes blocks.
	mustAdd(t, s, mine(t, s, tip.Hash, 3, "after golden"))
	s.Close()

	// The layout, read without the package: every best-chain block
	// decodes by the written-out encoding and hashes to its key.
	readGoldenLayout(t, filepath.Join(goldenDir, storage.FileName), want)
}

func readGoldenLayout(t *testing.T, path string, want goldenWant) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get([]byte("version")); len(v) != 8 || binary.BigEndian.Uint64(v) != 3 {
			t.Fatalf("schema version %x, want 3", v)
		}
		if v := meta.Get([]byte("count")); len(v) != 8 || binary.BigEndian.Uint64(v) != uint64(want.Count) {
			t.Fatalf("meta count %x, want %d", v, want.Count)
		}
		if !bytes.Equal(meta.Get([]byte("tip")), want.Tip[:]) {
			t.Fatal("meta tip is not the tip")
		}
		var p chain.Params
		if err := json.Unmarshal(meta.Get([]byte("params")), &p); err != nil || p.ID() != chain.TestNet().ID() {
			t.Fatalf("meta params: %v, %v", p.Name, err)
		}
		best, blocks, index, tags := tx.Bucket(bucketBest), tx.Bucket(bucketBlocks), tx.Bucket(bucketIndex), tx.Bucket(bucketTags)
		var prev chain.Hash
		work := new(big.Int)
		for h := uint64(0); h <= want.Height; h++ {
			var hash chain.Hash
			copy(hash[:], best.Get(heightKey(h)))
			v := blocks.Get(append(heightKey(h), hash[:]...))
			if len(v) < blockDataOffset {
				t.Fatalf("block %d: %d bytes under key height|hash", h, len(v))
			}
			b := chain.Block{
				Index:     binary.BigEndian.Uint64(v[0:]),
				Timestamp: int64(binary.BigEndian.Uint64(v[8:])),
				Nonce:     binary.BigEndian.Uint64(v[16:]),
				Data:      string(v[blockDataOffset:]),
				Hash:      hash,
			}
			copy(b.PrevHash[:], v[24:])
			if b.Index != h || b.PrevHash != prev || b.ComputeHash() != hash {
				t.Fatalf("block %d decodes to %+v", h, b)
			}
			e := index.Get(append(heightKey(h), hash[:]...))
			if len(e) < entryWorkOffset || !bytes.Equal(e[:chain.HashSize], prev[:]) ||
				binary.BigEndian.Uint64(e[chain.HashSize:]) != h || int64(binary.BigEndian.Uint64(e[chain.HashSize+8:])) != b.Timestamp || e[entryWorkOffset-1] != 1 {
				t.Fatalf("entry of block %d: %x", h, e)
			}
			work.Add(work, big.NewInt(2))
			if new(big.Int).SetBytes(e[entryWorkOffset:]).Cmp(work) != 0 {
				t.Fatalf("entry of block %d: work %x, want %v", h, e[entryWorkOffset:], work)
			}
			rec := append([]byte{byte(h)}, hash[chain.HashSize-4:]...)
			if v := tags.Get(heightKey(h >> 8)); len(v)%tagRecord != 0 || !hasRecord(v, rec) {
				t.Fatalf("tags of block %d: no record %x in %x", h, rec, v)
			}
			prev = hash
		}
		if k, _ := best.Cursor().Last(); binary.BigEndian.Uint64(k) != want.Height {
			t.Fatalf("best chain runs to %d", binary.BigEndian.Uint64(k))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// hasRecord reports whether the tag records v include rec.
func hasRecord(v, rec []byte) bool {
	for ; len(v) >= tagRecord; v = v[tagRecord:] {
		if bytes.Equal(v[:tagRecord], rec) {
			return true
		}
	}
	return false
}

// TestMemoryFlat checks that the memory an open store holds grows with the
// chain only by the in-memory hash index (a 4-byte tag and a 4-byte height
// a block, packed in a sorted array: about 9 bytes a block); blocks and
// entries stay in the file.
func TestMemoryFlat(t *testing.T) {
	s, dir := newStore(t, chain.TestNet(), storage.WithNoSync())
	// retained returns the live heap with the store freshly opened and
	// after a run of appends and a reorg.
	retained := func() (heap, index uint64) {
		s.Close()
		var err error
		if s, err = storage.Open(dir, nil, storage.WithClock(clock), storage.WithNoSync()); err != nil {
			t.Fatal(err)
		}
		mustAdd(t, s, mine(t, s, s.Tip().Hash, 100, "measured"))
		mustAdd(t, s, mine(t, s, mustHashAt(t, s, s.Tip().Height-50), 60, "measured reorg"))
		runtime.GC()
		runtime.GC() // and the pools' victim caches
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc, uint64(s.IndexBytes())
	}
	mustAdd(t, s, mine(t, s, s.Tip().Hash, 1000, "small"))
	small, smallIndex := retained()
	const more = 30_000
	for range more / 1000 {
		mustAdd(t, s, mine(t, s, s.Tip().Hash, 1000, "big"))
	}
	big, bigIndex := retained()
	perBlock := (float64(big) - float64(small)) / more
	beyond := (float64(big) - float64(bigIndex) - (float64(small) - float64(smallIndex))) / more
	t.Logf("live heap with %d blocks: %d B (index %d); with %d blocks: %d B (index %d): %.1f B a block more, %.1f beyond the index",
		1000+160, small, smallIndex, s.Tip().Height, big, bigIndex, perBlock, beyond)
	// Keeping blocks, entries or full hashes in memory would cost 100 B
	// a block and more; the index costs 8 in its array, 20 in its map of
	// recent blocks.
	if perBlock > 24 {
		t.Fatalf("live heap grew from %d to %d B with the chain: %.1f B a block, want at most 24", small, big, perBlock)
	}
	if beyond > 2 {
		t.Fatalf("live heap grew by %.1f B a block beyond the index, want at most 2", beyond)
	}
	s.Close()
}
