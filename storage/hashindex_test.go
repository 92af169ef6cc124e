package storage_test

import (
	"encoding/binary"
	"testing"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// tagOf is the store's tag of a hash, as written out in the layout.
func tagOf(h chain.Hash) uint32 { return binary.BigEndian.Uint32(h[chain.HashSize-4:]) }

// TestHashTagCollision stores a block whose hash tag collides with a stored
// block's at another height (crafted by searching nonces: about 2^32 / 20 000
// hashes), and a child of it, and checks that every block is still found by its hash, before
// and after a reopen, and that unknown hashes sharing a tag are not.
func TestHashTagCollision(t *testing.T) {
	p := chain.TestNet()
	s, dir := newStore(t, p, storage.WithNoSync())
	main := mine(t, s, s.Tip().Hash, 20_000, "main")
	mustAdd(t, s, main)
	heightOf := make(map[uint32]uint64, len(main))
	for _, b := range main {
		heightOf[tagOf(b.Hash)] = b.Index
	}

	// craft returns a valid child of parent whose tag is that of a main
	// block accept agrees to, and that block's height.
	craft := func(parent *chain.Block, accept func(tag uint32, child uint64) bool) (chain.Block, uint64) {
		t.Helper()
		v, err := s.Validator(parent.Hash)
		if err != nil {
			t.Fatal(err)
		}
		b, bits := v.Template("collide", parent.Timestamp+1)
		for b.Nonce = 0; b.Nonce < 1<<32; b.Nonce++ {
			b.Hash = b.ComputeHash()
			if h, ok := heightOf[tagOf(b.Hash)]; ok && chain.LeadingZeroBits(&b.Hash) >= int(bits) && accept(tagOf(b.Hash), b.Index) {
				return b, h
			}
		}
		t.Fatal("no colliding nonce")
		return chain.Block{}, 0
	}
	// Another height: a child of block 100, its tag that of a block
	// elsewhere in the chain. Then a child of that one, whose parent is
	// found through the exact map.
	other, otherAt := craft(&main[99], func(tag uint32, child uint64) bool { return heightOf[tag] != child })
	if otherAt == other.Index {
		t.Fatal("test setup: collision at the same height")
	}
	mustAdd(t, s, []chain.Block{other})
	child := mine(t, s, other.Hash, 1, "after collision")
	mustAdd(t, s, child)
	check := func(s *storage.Store) {
		t.Helper()
		for _, b := range []chain.Block{other, child[0], main[otherAt-1], main[len(main)-1]} {
			if !s.Has(b.Hash) {
				t.Fatalf("block %d (%s) not found by hash", b.Index, b.Hash.Short())
			}
			got, err := s.Block(b.Hash)
			if err != nil || *got != b {
				t.Fatalf("Block(%s) = %v, %v", b.Hash.Short(), got, err)
			}
			if e, err := s.Entry(b.Hash); err != nil || e.Height != b.Index {
				t.Fatalf("Entry(%s) = height %d, %v; want %d", b.Hash.Short(), e.Height, err, b.Index)
			}
		}
		if on, err := s.OnBest(other.Hash); err != nil || on {
			t.Fatalf("OnBest(side block) = %v, %v", on, err)
		}
		// An unknown hash with a stored tag is not found.
		fake := other.Hash
		fake[0] ^= 0xff
		if s.Has(fake) {
			t.Fatal("an unknown hash sharing a tag is found")
		}
		if _, err := s.Block(fake); err == nil {
			t.Fatal("Block of an unknown hash sharing a tag succeeded")
		}
		if err := s.Verify(nil); err != nil {
			t.Fatal(err)
		}
	}
	check(s)
	s.Close()
	s = reopen(t, dir, storage.WithNoSync())
	check(s)
	// Storing a colliding block again changes nothing.
	if res := mustAdd(t, s, []chain.Block{other}); res.Added != 0 {
		t.Fatalf("a stored colliding block was added again: %+v", res)
	}
}
