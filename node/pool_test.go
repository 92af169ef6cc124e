package node

import (
	"testing"

	"github.com/jbc-project/jbc/chain"
)

func TestPoolListsEntriesOnce(t *testing.T) {
	p := newPool()
	for _, e := range []string{"a", "b", "c"} {
		if _, added, err := p.add(e); err != nil || !added {
			t.Fatalf("add %q: %v %v", e, added, err)
		}
	}
	// Mined, then dropped by a reorg: the entries come back, oldest first.
	p.remove([]string{"a", "b"})
	p.restore("b")
	p.restore("a")
	// Removed and submitted again.
	p.remove([]string{"c"})
	p.add("c")
	got := p.pending(0)
	want := []string{"a", "b", "c"}
	if len(got) != len(want) {
		t.Fatalf("pending %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("pending %q, want %q", got, want)
		}
	}
	data := p.blockData(1<<10, "none")
	if n := len(chain.UnpackEntries(data)); n != 3 {
		t.Fatalf("block data %q holds %d entries, want 3", data, n)
	}
}

func TestPoolBounds(t *testing.T) {
	p := newPool()
	for i := 0; i < MaxPoolEntries; i++ {
		if _, _, err := p.add(string(rune('a'+i%26)) + string(rune(i))); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	if _, _, err := p.add("one too many"); err != ErrPoolFull {
		t.Fatalf("entry over the bound: %v, want ErrPoolFull", err)
	}
	// Restored entries are never refused: nothing submitted is lost.
	p.restore("from a dropped block")
	if !p.has(chain.EntryID("from a dropped block")) {
		t.Fatal("restore over the bound dropped the entry")
	}
}
