package gossip

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jbc-project/jbc/chain"
)

func TestPoolListsEntriesOnce(t *testing.T) {
	p := NewPool()
	for _, e := range []string{"a", "b", "c"} {
		if _, added, err := p.Add(e); err != nil || !added {
			t.Fatalf("add %q: %v %v", e, added, err)
		}
	}
	// Mined, then dropped by a reorg: the entries come back, oldest first.
	p.Remove([]string{"a", "b"})
	p.Restore("b")
	p.Restore("a")
	// Removed and submitted again.
	p.Remove([]string{"c"})
	p.Add("c")
	got := p.Pending(0)
	want := []string{"a", "b", "c"}
	if len(got) != len(want) {
		t.Fatalf("pending %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("pending %q, want %q", got, want)
		}
	}
	data := p.BlockData(1<<10, "none")
	if n := len(chain.UnpackEntries(data)); n != 3 {
		t.Fatalf("block data %q holds %d entries, want 3", data, n)
	}
}

func TestPoolBounds(t *testing.T) {
	p := NewPool()
	for i := 0; i < MaxPoolEntries; i++ {
		if _, _, err := p.Add(string(rune('a'+i%26)) + string(rune(i))); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	if _, _, err := p.Add("one too many"); err != ErrPoolFull {
		t.Fatalf("entry over the bound: %v, want ErrPoolFull", err)
	}
	// Restored entries are never refused: nothing submitted is lost.
	p.Restore("from a dropped block")
	if !p.Has(chain.EntryID("from a dropped block")) {
		t.Fatal("restore over the bound dropped the entry")
	}
}

// TestPoolSpamFromManyIDs fills the Pool from 100 peer IDs gossiping 60 KB
// entries, as an attacker with fresh keys would (each ID well within its
// share), and checks that the Pool's bounds hold, that an entry submitted
// here is admitted all the same, evicting the largest contributor's newest
// entry, that a peer holding little gets its entry in as well, that no ID
// exceeds its share, and that both honest entries are mined first.
func TestPoolSpamFromManyIDs(t *testing.T) {
	const ids = 100
	p := NewPool()
	spam := func(i, k int) string { return fmt.Sprintf("spam %d/%d %s", i, k, strings.Repeat("x", 60<<10)) }
	refused := 0
	for k := 0; refused < ids; k++ {
		for i := 0; i < ids; i++ {
			_, _, err := p.AddGossip(spam(i, k), peer.ID(fmt.Sprint("spammer-", i)), ids)
			switch {
			case err == nil:
			case errors.Is(err, ErrPoolFull):
				refused++
			default:
				t.Fatalf("spam entry %d of ID %d: %v", k, i, err)
			}
		}
	}
	checkPoolBounds(t, p)
	before := p.Size()

	local := "an honest entry, submitted here " + strings.Repeat("h", 2<<10)
	if _, added, err := p.Add(local); err != nil || !added {
		t.Fatalf("local entry into a Pool full of spam: added %v, %v; want it admitted", added, err)
	}
	relayed := "an honest entry, gossiped by a peer holding nothing"
	if _, added, err := p.AddGossip(relayed, "honest", ids); err != nil || !added {
		t.Fatalf("an honest peer's entry into a Pool full of spam: added %v, %v; want it admitted", added, err)
	}
	checkPoolBounds(t, p)
	if p.evicted == 0 || p.Size() > before+2 {
		t.Fatalf("%d entries evicted, Pool %d -> %d", p.evicted, before, p.Size())
	}
	for id, c := range p.peers {
		if c.bytes > MaxPoolBytes/PoolShares || c.count > MaxPoolEntries/PoolShares {
			t.Fatalf("%s holds %d entries, %d bytes: over its share", id, c.count, c.bytes)
		}
	}
	got := p.Pending(2)
	if len(got) != 2 || got[0] != local || got[1] != relayed {
		t.Fatalf("mined first: %.40q; want the local entry, then the honest peer's", got)
	}
}

// TestPoolEvictsLargestContributor: a full Pool makes room for a local
// entry by evicting the newest entry of the peer holding most of it, and
// for a gossiped one only from a peer holding more than the sender would;
// a peer at its share is refused (errOverShare); a Pool full of local
// entries refuses another (ErrPoolFull).
func TestPoolEvictsLargestContributor(t *testing.T) {
	p := NewPool()
	big := func(tag string, k int) string { return fmt.Sprintf("%s %d %s", tag, k, strings.Repeat("y", 1<<20-64)) }
	// With 7 peers a share is an eighth: 2 MiB, two of these entries.
	for k := 0; k < 2; k++ {
		if _, _, err := p.AddGossip(big("a", k), "a", 7); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := p.AddGossip(big("a", 2), "a", 7); !errors.Is(err, errOverShare) {
		t.Fatalf("a third MiB from a peer with a 2 MiB share: %v, want errOverShare", err)
	}
	// With one peer, the share is half the Pool: "a" fills it up to 8 MiB,
	// "b" takes 2 MiB, local entries the rest.
	for k := 2; k < 8; k++ {
		if _, _, err := p.AddGossip(big("a", k), "a", 1); err != nil {
			t.Fatalf("entry %d of the only peer: %v", k, err)
		}
	}
	for k := 0; k < 2; k++ {
		if _, _, err := p.AddGossip(big("b", k), "b", 1); err != nil {
			t.Fatal(err)
		}
	}
	for k := 0; p.bytes+(1<<20) <= MaxPoolBytes; k++ {
		if _, _, err := p.Add(big("local", k)); err != nil {
			t.Fatal(err)
		}
	}
	// The Pool is full. a holds 8 MiB, b 2: b's entries evict a's newest
	// until b would hold more than a; a cannot evict its own.
	if _, _, err := p.AddGossip(big("a", 8), "a", 1); !errors.Is(err, ErrPoolFull) && !errors.Is(err, errOverShare) {
		t.Fatalf("the largest contributor's entry into a full Pool: %v, want it refused", err)
	}
	k := 2
	for ; ; k++ {
		_, added, err := p.AddGossip(big("b", k), "b", 1)
		if errors.Is(err, ErrPoolFull) {
			break
		}
		if err != nil || !added {
			t.Fatalf("b's entry %d into a full Pool: %v, %v", k, added, err)
		}
		if p.Has(chain.EntryID(big("a", 7-(k-2)))) {
			t.Fatalf("b's entry %d did not evict a's newest", k)
		}
	}
	if a, b := p.peers["a"].count, p.peers["b"].count; k != 5 || a != b {
		t.Fatalf("b refused at its entry %d holding %d entries, a %d; want refused at 5, holding as many as a", k, b, a)
	}
	// a and b hold 5 MiB each; c's first entry evicts from either.
	if _, added, err := p.AddGossip(big("c", 0), "c", 1); err != nil || !added {
		t.Fatalf("c's first entry into a full Pool: %v, %v", added, err)
	}
	if _, added, err := p.Add(big("local", 99)); err != nil || !added {
		t.Fatalf("local entry into a full Pool: %v, %v", added, err)
	}
	if a, b := p.peers["a"].count, p.peers["b"].count; a+b != 8 {
		t.Fatalf("a and b hold %d and %d entries after two evictions for c and a local entry, want 8 together", a, b)
	}
	checkPoolBounds(t, p)
	// Only local entries left to evict: nothing can make room.
	for k := 0; len(p.peers) > 0; k++ {
		if k > 20 {
			t.Fatalf("20 local entries of 1 MiB did not evict every gossiped one: %d peers left", len(p.peers))
		}
		if _, _, err := p.Add(big("more local", k)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := p.Add(big("local", 100)); !errors.Is(err, ErrPoolFull) {
		t.Fatalf("local entry into a Pool full of local entries: %v, want ErrPoolFull", err)
	}
}

// checkPoolBounds checks the Pool's totals against its entries and bounds.
func checkPoolBounds(t *testing.T, p *Pool) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	bytes, perPeer := 0, map[peer.ID]int{}
	for _, e := range p.entries {
		bytes += len(e.text)
		if e.from != "" {
			perPeer[e.from] += len(e.text)
		}
	}
	if bytes != p.bytes || bytes > MaxPoolBytes || len(p.entries) > MaxPoolEntries {
		t.Fatalf("Pool holds %d entries of %d bytes (counted %d); bounds %d, %d", len(p.entries), bytes, p.bytes, MaxPoolEntries, MaxPoolBytes)
	}
	for id, c := range p.peers {
		if perPeer[id] != c.bytes {
			t.Fatalf("%s: counted %d bytes, holds %d", id, c.bytes, perPeer[id])
		}
	}
}

func TestPoolDueGoesRound(t *testing.T) {
	p := NewPool()
	for _, e := range []string{"a", "b", "c", "d", "e"} {
		if _, _, err := p.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now().Add(time.Hour)
	check := func(got []string, want ...string) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("due %q, want %q", got, want)
		}
	}
	// Least recently announced first, then oldest first: the rounds go
	// round the whole pool, not over its oldest entries again and again.
	check(p.Due(t0, 2, t0), "a", "b")
	check(p.Due(t0, 2, t0.Add(time.Second)), "c", "d")
	check(p.Due(t0.Add(time.Second), 2, t0.Add(2*time.Second)), "e", "a")
	// Only entries last announced at or before the cut-off are due.
	check(p.Due(t0, 10, t0.Add(3*time.Second)), "b")
	// An entry a reorg restored is due first, and alone due in a round
	// for restored entries (a zero cut-off).
	p.Remove([]string{"c"})
	p.Restore("c")
	check(p.Due(time.Time{}, 10, t0.Add(4*time.Second)), "c")
	check(p.Due(time.Time{}, 10, t0.Add(4*time.Second)))
	check(p.Due(t0.Add(time.Hour), 0, t0.Add(5*time.Second)))
}
