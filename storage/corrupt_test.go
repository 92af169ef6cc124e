package storage_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// corruptFixture is a closed store holding a best chain of corruptHeight
// blocks and a side branch of 5 blocks forking at 290, in a directory the
// test may copy but not change.
type corruptFixture struct {
	dir  string
	main []chain.Block // heights 1..corruptHeight
	side []chain.Block // heights 291..295
}

// corruptHeight is the fixture's height: three times DefaultCheckDepth, so
// that damage deep in the chain is out of Open's reach but not Verify's.
const corruptHeight = 3 * storage.DefaultCheckDepth

func newCorruptFixture(t *testing.T) *corruptFixture {
	t.Helper()
	s, dir := newStore(t, chain.TestNet(), storage.WithNoSync())
	f := &corruptFixture{dir: dir}
	f.main = mine(t, s, s.Tip().Hash, corruptHeight, "main")
	mustAdd(t, s, f.main)
	f.side = mine(t, s, f.main[289].Hash, 5, "side")
	if res := mustAdd(t, s, f.side); res.Extended {
		t.Fatal("test setup: side branch became best")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return f
}

// copyStore copies the store file of dir into a new directory.
func copyStore(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, storage.FileName))
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := os.WriteFile(filepath.Join(dst, storage.FileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}

// blockKeyOf finds the key under which block h is stored in the blocks
// bucket: the key is, or ends with, the hash.
func blockKeyOf(tx *bolt.Tx, h chain.Hash) ([]byte, error) {
	c := tx.Bucket(bucketBlocks).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if bytes.HasSuffix(k, h[:]) {
			return bytes.Clone(k), nil
		}
	}
	return nil, fmt.Errorf("block %s not in the blocks bucket", h.Short())
}

// update returns a copy of bucket's value at key changed by fn, and stores it.
func update(tx *bolt.Tx, bucket, key []byte, fn func(v []byte)) error {
	b := tx.Bucket(bucket)
	v := b.Get(key)
	if v == nil {
		return fmt.Errorf("no key %x in %s", key, bucket)
	}
	v = bytes.Clone(v)
	fn(v)
	return b.Put(key, v)
}

func heightKey(h uint64) []byte { return binary.BigEndian.AppendUint64(nil, h) }

// TestCorruption damages the file the way a disk, a bug or a person with
// a bbolt tool might, and checks that Open or Verify reports ErrCorrupt.
// Damage within DefaultCheckDepth of the tip is caught by Open; deeper
// damage by Verify (and by Open told to check the whole chain).
func TestCorruption(t *testing.T) {
	f := newCorruptFixture(t)
	const deep, near = 10, corruptHeight - 10
	mainHash := func(h uint64) []byte { return f.main[h-1].Hash[:] }
	mainKey := func(h uint64) []byte { return append(heightKey(h), mainHash(h)...) }

	changeData := func(h uint64) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			k, err := blockKeyOf(tx, f.main[h-1].Hash)
			if err != nil {
				return err
			}
			return update(tx, bucketBlocks, k, func(v []byte) { v[len(v)-1] ^= 1 })
		}
	}
	deleteBlock := func(h uint64) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			k, err := blockKeyOf(tx, f.main[h-1].Hash)
			if err != nil {
				return err
			}
			return tx.Bucket(bucketBlocks).Delete(k)
		}
	}
	deleteHeight := func(h uint64) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error { return tx.Bucket(bucketBest).Delete(heightKey(h)) }
	}
	changeWork := func(h uint64) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			return update(tx, bucketIndex, mainKey(h), func(v []byte) { v[len(v)-1] ^= 1 })
		}
	}
	changeEntry := func(h uint64, fn func(v []byte)) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error { return update(tx, bucketIndex, mainKey(h), fn) }
	}
	// changeTag changes the tag record of block h in the tags bucket.
	changeTag := func(h uint64) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			return update(tx, bucketTags, heightKey(h>>8), func(v []byte) {
				for i := 0; i+tagRecord <= len(v); i += tagRecord {
					if v[i] == byte(h) {
						v[i+tagRecord-1] ^= 1
					}
				}
			})
		}
	}
	putMeta := func(key string, v []byte) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte(key), v) }
	}

	tests := []struct {
		name string
		// deepOnly: Open with the default check depth does not see it.
		deepOnly bool
		tamper   func(tx *bolt.Tx) error
	}{
		{"block data changed near tip", false, changeData(near)},
		{"block data changed deep", true, changeData(deep)},
		{"tip block data changed", false, changeData(corruptHeight)},
		{"block missing near tip", false, deleteBlock(near)},
		{"block missing deep", true, deleteBlock(deep)},
		{"best height deleted near tip", false, deleteHeight(near)},
		{"best height deleted deep", true, deleteHeight(deep)},
		{"best height of the tip deleted", false, deleteHeight(corruptHeight)},
		{"best height above the tip", false, func(tx *bolt.Tx) error {
			return tx.Bucket(bucketBest).Put(heightKey(corruptHeight+1), f.side[4].Hash[:])
		}},
		{"best height points at a side block", false, func(tx *bolt.Tx) error {
			return tx.Bucket(bucketBest).Put(heightKey(f.side[1].Index), f.side[1].Hash[:])
		}},
		{"best key malformed", false, func(tx *bolt.Tx) error {
			return tx.Bucket(bucketBest).Put([]byte{0xff}, f.main[0].Hash[:])
		}},
		{"best key malformed inside the chain", false, func(tx *bolt.Tx) error {
			return tx.Bucket(bucketBest).Put(append(heightKey(near), 0), f.main[0].Hash[:])
		}},
		{"best genesis replaced", false, func(tx *bolt.Tx) error {
			return tx.Bucket(bucketBest).Put(heightKey(0), f.main[0].Hash[:])
		}},
		{"tip points at a side block", false, putMeta("tip", f.side[4].Hash[:])},
		{"tip points at a lower best block", false, putMeta("tip", mainHash(near))},
		{"tip unknown", false, putMeta("tip", bytes.Repeat([]byte{7}, chain.HashSize))},
		{"tip malformed", false, putMeta("tip", []byte("short"))},
		{"tip missing", false, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete([]byte("tip")) }},
		{"entry work changed near tip", false, changeWork(near)},
		{"entry work changed deep", true, changeWork(deep)},
		{"tip entry work changed", false, changeWork(corruptHeight)},
		{"entry height changed", false, changeEntry(near, func(v []byte) { v[chain.HashSize+7]++ })},
		{"entry parent changed", false, changeEntry(near, func(v []byte) { v[0] ^= 1 })},
		{"entry bits changed", false, changeEntry(near, func(v []byte) { v[entryWorkOffset-1]++ })},
		{"entry time changed", false, changeEntry(near, func(v []byte) { v[chain.HashSize+8+7]++ })},
		{"entry truncated", false, func(tx *bolt.Tx) error {
			return tx.Bucket(bucketIndex).Put(mainKey(near), []byte("truncated"))
		}},
		{"entry missing", false, func(tx *bolt.Tx) error { return tx.Bucket(bucketIndex).Delete(mainKey(near)) }},
		{"entry under another height", false, func(tx *bolt.Tx) error {
			v := bytes.Clone(tx.Bucket(bucketIndex).Get(mainKey(near)))
			if err := tx.Bucket(bucketIndex).Delete(mainKey(near)); err != nil {
				return err
			}
			return tx.Bucket(bucketIndex).Put(append(heightKey(near+1), mainHash(near)...), v)
		}},
		{"tag changed near tip", false, changeTag(near)},
		{"tag changed deep", true, changeTag(deep)},
		{"tag of the tip changed", false, changeTag(corruptHeight)},
		{"tags record cut off", false, func(tx *bolt.Tx) error {
			v := bytes.Clone(tx.Bucket(bucketTags).Get(heightKey(0)))
			return tx.Bucket(bucketTags).Put(heightKey(0), v[:len(v)-1])
		}},
		{"tags of 256 heights missing", false, func(tx *bolt.Tx) error { return tx.Bucket(bucketTags).Delete(heightKey(0)) }},
		{"block count changed", false, putMeta("count", binary.BigEndian.AppendUint64(nil, corruptHeight+5))},
		{"block count malformed", false, putMeta("count", []byte{1})},
		{"tags bucket missing", false, func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketTags) }},
		{"schema version", false, putMeta("version", binary.BigEndian.AppendUint64(nil, 99))},
		{"schema version of a development build", false, putMeta("version", binary.BigEndian.AppendUint64(nil, 2))},
		{"params garbage", false, putMeta("params", []byte("{not json"))},
		{"best bucket missing", false, func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketBest) }},
		{"index bucket missing", false, func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketIndex) }},
	}

	// The undamaged fixture opens and verifies: the errors below are
	// the damage's.
	t.Run("undamaged", func(t *testing.T) {
		s := reopen(t, copyStore(t, f.dir))
		if err := s.Verify(nil); err != nil {
			t.Fatal(err)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyStore(t, f.dir)
			tamper(t, dir, tt.tamper)
			s, err := storage.Open(dir, nil, storage.WithClock(clock))
			if !tt.deepOnly {
				if !errors.Is(err, storage.ErrCorrupt) {
					if err == nil {
						s.Close()
					}
					t.Fatalf("Open: %v, want ErrCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open (damage below the check depth): %v", err)
			}
			err = s.Verify(nil)
			s.Close()
			if !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("Verify: %v, want ErrCorrupt", err)
			}
			// Open told to check the whole chain sees it too.
			s, err = storage.Open(dir, nil, storage.WithCheckDepth(corruptHeight))
			if !errors.Is(err, storage.ErrCorrupt) {
				if err == nil {
					s.Close()
				}
				t.Fatalf("Open checking the whole chain: %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestCheckDepth pins how deep Open looks: damage just inside the depth is
// found, just outside it is not.
func TestCheckDepth(t *testing.T) {
	f := newCorruptFixture(t)
	const depth = 50
	for _, tt := range []struct {
		below   uint64 // the damaged block's distance below the tip
		caught  bool
		options []storage.Option
	}{
		{depth - 1, true, []storage.Option{storage.WithCheckDepth(depth)}},
		{depth + 1, false, []storage.Option{storage.WithCheckDepth(depth)}},
		{storage.DefaultCheckDepth - 1, true, nil},
		{storage.DefaultCheckDepth + 1, false, nil},
	} {
		dir := copyStore(t, f.dir)
		h := uint64(corruptHeight) - tt.below
		tamper(t, dir, func(tx *bolt.Tx) error {
			k, err := blockKeyOf(tx, f.main[h-1].Hash)
			if err != nil {
				return err
			}
			return update(tx, bucketBlocks, k, func(v []byte) { v[len(v)-1] ^= 1 })
		})
		s, err := storage.Open(dir, nil, tt.options...)
		if err == nil {
			s.Close()
		}
		if caught := errors.Is(err, storage.ErrCorrupt); caught != tt.caught || (!caught && err != nil) {
			t.Fatalf("block %d below the tip damaged, %d options: Open: %v; want caught %v", tt.below, len(tt.options), err, tt.caught)
		}
	}
}
