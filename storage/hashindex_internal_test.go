package storage

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/jbc-project/jbc/chain"
)

// hashWithTag returns a hash with the given first byte and tag.
func hashWithTag(first byte, tag uint32) chain.Hash {
	var h chain.Hash
	h[0] = first
	h[28], h[29], h[30], h[31] = byte(tag>>24), byte(tag>>16), byte(tag>>8), byte(tag)
	return h
}

// TestHashIndexCases covers the tag cases real blocks hit too rarely to
// test with them: two blocks of one tag at the same height, one at another
// height, and heights beyond 32 bits; in memory and loaded back from the
// tags bucket of a real bbolt file.
func TestHashIndexCases(t *testing.T) {
	a := chain.Entry{Hash: hashWithTag(1, 7), Height: 5}
	b := chain.Entry{Hash: hashWithTag(2, 7), Height: 5}                  // same tag, same height
	c := chain.Entry{Hash: hashWithTag(3, 7), Height: 9}                  // same tag, another height
	d := chain.Entry{Hash: hashWithTag(4, 8), Height: math.MaxUint32 + 3} // beyond 32 bits
	e := chain.Entry{Hash: hashWithTag(5, 9), Height: 300}                // an ordinary block
	all := []chain.Entry{a, b, c, d, e}

	check := func(t *testing.T, x *hashIndex) {
		t.Helper()
		for _, en := range all {
			if h, ok := x.height(en.Hash); !ok || h != en.Height {
				t.Fatalf("height(%x..) = %d, %v; want %d", en.Hash[:1], h, ok, en.Height)
			}
		}
		if _, ok := x.height(hashWithTag(9, 1)); ok {
			t.Fatal("a hash with an unknown tag has a height")
		}
		if len(x.exact) != 2 {
			t.Fatalf("%d hashes kept whole, want 2 (the other height's and the 33-bit one)", len(x.exact))
		}
	}
	t.Run("memory", func(t *testing.T) {
		x := newHashIndex()
		x.add(all)
		check(t, x)
	})
	t.Run("loaded", func(t *testing.T) {
		db, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		err = db.Update(func(tx *bolt.Tx) error {
			idx, err := tx.CreateBucket(bucketIndex)
			if err != nil {
				return err
			}
			if _, err := tx.CreateBucket(bucketTags); err != nil {
				return err
			}
			meta, err := tx.CreateBucket(bucketMeta)
			if err != nil {
				return err
			}
			if err := meta.Put(keyCount, binary.BigEndian.AppendUint64(nil, uint64(len(all)))); err != nil {
				return err
			}
			for i := range all {
				if err := idx.Put(blockKey(all[i].Height, all[i].Hash), []byte("entry")); err != nil {
					return err
				}
			}
			// In height order, as AddBlocks writes them.
			if err := putTags(tx, all[:3]); err != nil {
				return err
			}
			if err := putTags(tx, all[4:]); err != nil {
				return err
			}
			return putTags(tx, all[3:4])
		})
		if err != nil {
			t.Fatal(err)
		}
		x := newHashIndex()
		if err := db.View(x.load); err != nil {
			t.Fatal(err)
		}
		check(t, x)
	})
}

// TestHashIndexMerge adds enough blocks to merge the recent map into the
// sorted array several times, and finds every one, in memory and reloaded.
func TestHashIndexMerge(t *testing.T) {
	x := newHashIndex()
	var all []chain.Entry
	for batch := range 6 {
		var entries []chain.Entry
		for i := range 3000 {
			height := uint64(batch*3000 + i)
			h := chain.Hash(sha256.Sum256(binary.BigEndian.AppendUint64(nil, height)))
			entries = append(entries, chain.Entry{Hash: h, Height: height})
		}
		x.add(entries)
		all = append(all, entries...)
	}
	if len(x.sorted) < minMerge || len(x.recent) >= len(all)-minMerge {
		t.Fatalf("%d sorted, %d recent: the test did not merge", len(x.sorted), len(x.recent))
	}
	if !slices.IsSorted(x.sorted) {
		t.Fatal("sorted is not sorted")
	}
	for _, e := range all {
		if h, ok := x.height(e.Hash); !ok || h != e.Height {
			t.Fatalf("height of block %d: %d, %v", e.Height, h, ok)
		}
	}
	if got, want := x.Bytes(), 8*len(all); got < want || got > 3*want {
		t.Fatalf("Bytes() = %d for %d entries", got, len(all))
	}
}
