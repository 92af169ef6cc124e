package storage_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// FuzzStoreValue damages one stored value of a small store, as a bad disk
// or a hand edit might, and opens it checking the whole chain: Open,
// Verify and the reads a node makes must return an error (ErrCorrupt, or
// ErrNotFound from a lookup) or good data, never panic. It reaches the
// decoders of every bucket (blocks, index entries, tags, best chain, meta
// with its params and count, and the entry index) through the store's own
// paths. Run it with:
//
//	go test ./storage -run '^$' -fuzz '^FuzzStoreValue$' -fuzztime 30s
//
// Inputs that once failed are kept under testdata/fuzz and rerun by go test.
func FuzzStoreValue(f *testing.F) {
	// A best chain of 24 blocks, the last two carrying entries (so the
	// entry index has keys), and a side branch of 2 from height 19.
	const height = 24
	s, dir := newStore(f, chain.TestNet(), storage.WithNoSync())
	main := mine(f, s, s.Tip().Hash, height-2, "main")
	mustAdd(f, s, main)
	mustAdd(f, s, mine(f, s, main[height-6].Hash, 2, "side"))
	v, err := s.Validator(s.Tip().Hash)
	if err != nil {
		f.Fatal(err)
	}
	for _, entries := range [][]string{{"alpha", "beta"}, {"gamma"}} {
		data, _ := chain.PackEntries(entries, 1<<10)
		tmpl, bits := v.Template(data, v.Tip().Time+1)
		b, err := (&chain.Miner{Threads: 1}).Solve(context.Background(), tmpl, bits)
		if err != nil {
			f.Fatal(err)
		}
		if _, err := v.Next(&b, testNow); err != nil {
			f.Fatal(err)
		}
		mustAdd(f, s, []chain.Block{b})
		main = append(main, b)
	}
	if s.Tip().Height != height {
		f.Fatalf("fixture at height %d, want %d", s.Tip().Height, height)
	}
	if err := s.Close(); err != nil {
		f.Fatal(err)
	}
	fixture, err := os.ReadFile(filepath.Join(dir, storage.FileName))
	if err != nil {
		f.Fatal(err)
	}
	buckets := [][]byte{bucketBlocks, bucketIndex, bucketTags, bucketBest, bucketMeta, []byte("entries")}
	// keys lists each bucket's keys in the fixture, in bbolt's order.
	keys := make([][][]byte, len(buckets))
	db, err := bolt.Open(filepath.Join(dir, storage.FileName), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		f.Fatal(err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		for i, name := range buckets {
			err := tx.Bucket(name).ForEach(func(k, _ []byte) error {
				keys[i] = append(keys[i], bytes.Clone(k))
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		f.Fatal(err)
	}

	// Seeds: each bucket's first and last value emptied, cut short, grown,
	// and deleted.
	for b := range buckets {
		for _, k := range []uint16{0, uint16(len(keys[b]) - 1)} {
			f.Add(uint8(b), k, false, []byte{})
			f.Add(uint8(b), k, false, []byte{0x01})
			f.Add(uint8(b), k, false, bytes.Repeat([]byte{0xff}, 49))
			f.Add(uint8(b), k, false, bytes.Repeat([]byte{0x00}, 80))
			f.Add(uint8(b), k, true, []byte(nil))
		}
	}
	f.Add(uint8(4), uint16(0), false, []byte(`{"name":"x","genesis":{}}`))

	f.Fuzz(func(t *testing.T, bucket uint8, key uint16, del bool, value []byte) {
		b := int(bucket) % len(buckets)
		if len(keys[b]) == 0 {
			t.Skip()
		}
		k := keys[b][int(key)%len(keys[b])]
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, storage.FileName), fixture, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := bolt.Open(filepath.Join(dir, storage.FileName), 0o600, &bolt.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			if del {
				return tx.Bucket(buckets[b]).Delete(k)
			}
			return tx.Bucket(buckets[b]).Put(k, value)
		})
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}

		s, err := storage.Open(dir, nil, storage.WithClock(clock), storage.WithNoSync(), storage.WithCheckDepth(height+1))
		if err != nil {
			if !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("Open: %v, want nil or ErrCorrupt", err)
			}
			return
		}
		defer s.Close()
		wantOK := func(what string, err error) {
			t.Helper()
			if err != nil && !errors.Is(err, storage.ErrCorrupt) && !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("%s: %v, want nil, ErrCorrupt or ErrNotFound", what, err)
			}
		}
		verr := s.Verify(nil)
		wantOK("Verify", verr)
		tip := s.Tip()
		_, err = s.Locator(64)
		wantOK("Locator", err)
		_, _, err = s.FindFork([]chain.Hash{tip.Hash, main[3].Hash})
		wantOK("FindFork", err)
		_, err = s.Count()
		wantOK("Count", err)
		for _, id := range []chain.Hash{chain.EntryID("alpha"), chain.EntryID("gamma"), {1}} {
			_, _, _, err = s.EntryBlock(id)
			wantOK("EntryBlock", err)
		}
		_, _, err = s.Template("next")
		wantOK("Template", err)
		var last *chain.Block
		err = s.ForEach(0, tip.Height, func(blk *chain.Block) error {
			last = blk
			return nil
		})
		wantOK("ForEach", err)
		// A store that opens and verifies serves a best chain whose
		// blocks hash to their keys and end at the tip.
		if verr == nil && err == nil {
			if last == nil || last.Hash != tip.Hash || last.Index != tip.Height {
				t.Fatalf("verified store: best chain ends at %v, tip is #%d %s", last, tip.Height, tip.Hash.Short())
			}
			if got := last.ComputeHash(); got != tip.Hash {
				t.Fatalf("verified store: tip block hashes to %s, not %s", got.Short(), tip.Hash.Short())
			}
		}
	})
}
