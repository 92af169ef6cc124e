package chainsync

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/protocol"
)

// overtake is a range fetch of heights 1..4 in two spans: the first
// asked of slow, then hedged to fast a second later; the second asked of
// slow alone. done holds each ask's context, which its cancel ends.
type overtake struct {
	f                                *rangeFetch
	slow, fast                       *carrier
	slowFirst, fastFirst, slowSecond *ask
	blocks                           []chain.Block
	done                             map[*ask]context.Context
}

func newOvertake(t *testing.T) *overtake {
	t.Helper()
	o := &overtake{done: map[*ask]context.Context{}}
	var prev chain.Hash
	prev[0] = 0xaa
	o.blocks = make([]chain.Block, 4)
	for i := range o.blocks {
		o.blocks[i] = chain.Block{Index: uint64(i + 1), PrevHash: prev}
		o.blocks[i].Hash[0], o.blocks[i].Hash[1] = 0xbb, byte(i)
		prev = o.blocks[i].Hash
	}
	o.f = &rangeFetch{next: 1, t: rangeTarget{from: 1, tipHeight: 4}}
	o.f.prev[0] = 0xaa
	o.slow = &carrier{id: peer.ID("slow"), window: protocol.RangeWindow, pageTime: 10 * time.Millisecond}
	o.fast = &carrier{id: peer.ID("fast"), window: protocol.RangeWindow, pageTime: 10 * time.Millisecond}
	o.f.carriers = []*carrier{o.slow, o.fast}
	first := &span{start: 1, end: 2, next: 1, owners: map[peer.ID]*ask{}, excluded: map[peer.ID]bool{}}
	second := &span{start: 3, end: 4, next: 3, owners: map[peer.ID]*ask{}, excluded: map[peer.ID]bool{}}
	o.f.spans = []*span{first, second}
	now := time.Now()
	ask1 := func(c *carrier, sp *span, at time.Time) *ask {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		a := &ask{c: c, sp: sp, from: sp.next, at: at, cancel: cancel}
		sp.owners[c.id] = a
		c.inflight++
		o.done[a] = ctx
		return a
	}
	o.slowFirst = ask1(o.slow, first, now.Add(-2*time.Second))
	o.slowSecond = ask1(o.slow, second, now.Add(-2*time.Second))
	o.fastFirst = ask1(o.fast, first, now.Add(-time.Second))
	return o
}

func (o *overtake) cancelled(a *ask) bool { return o.done[a].Err() != nil }

// TestOvertakenPeer: when a hedge answers first, the peer it overtook
// is taken as slow: its page time becomes at least what its request took,
// its window drops to one, and its other requests are cancelled and their
// spans freed for the others at once. The hedger is not touched.
func TestOvertakenPeer(t *testing.T) {
	o := newOvertake(t)
	f, slow, fast := o.f, o.slow, o.fast
	if err := f.handle(answer{a: o.fastFirst, page: protocol.RangePage{Blocks: o.blocks[:2]}}); err != nil {
		t.Fatal(err)
	}
	if !o.cancelled(o.slowFirst) || !o.cancelled(o.slowSecond) {
		t.Fatalf("the overtaken peer's requests cancelled: first %v, second %v; want both", o.cancelled(o.slowFirst), o.cancelled(o.slowSecond))
	}
	if slow.window != 1 || slow.pageTime < 2*time.Second {
		t.Fatalf("overtaken peer: window %d, page time %s; want 1 and at least 2s", slow.window, slow.pageTime)
	}
	if second := f.spans[0]; second.start != 3 || len(second.owners) != 0 {
		t.Fatalf("the second span: start %d, owners %d; want 3 and none (free for the others)", second.start, len(second.owners))
	}
	if fast.window != protocol.RangeWindow || fast.pageTime > time.Second+100*time.Millisecond {
		t.Fatalf("the hedger: window %d, page time %s; want %d and its own", fast.window, fast.pageTime, protocol.RangeWindow)
	}
	if f.next != 3 {
		t.Fatalf("delivered up to %d, want 3", f.next)
	}
}

// TestHedgeThatLost: when the peer first asked answers before the hedge,
// the hedger, asked later, is cancelled and judged for nothing: it was
// not slow, only late.
func TestHedgeThatLost(t *testing.T) {
	o := newOvertake(t)
	f, slow, fast := o.f, o.slow, o.fast
	if err := f.handle(answer{a: o.slowFirst, page: protocol.RangePage{Blocks: o.blocks[:2]}}); err != nil {
		t.Fatal(err)
	}
	if !o.cancelled(o.fastFirst) {
		t.Fatal("the hedge that lost is still in flight")
	}
	if o.cancelled(o.slowSecond) {
		t.Fatal("the first-asked peer's other request was cancelled")
	}
	if fast.window != protocol.RangeWindow || fast.pageTime != 10*time.Millisecond {
		t.Fatalf("the hedger: window %d, page time %s; want %d and 10ms", fast.window, fast.pageTime, protocol.RangeWindow)
	}
	if slow.window != protocol.RangeWindow {
		t.Fatalf("the peer that answered first: window %d, want %d", slow.window, protocol.RangeWindow)
	}
}

// TestSpansWiden: a short sync's spans stay window-sized while answers
// take a round trip worth saving, and widen once one comes within
// quickAnswer.
func TestSpansWiden(t *testing.T) {
	for _, c := range []struct {
		name string
		ago  time.Duration
		want uint64
	}{
		{"slow answer", 10 * quickAnswer, 10},
		{"quick answer", 0, 100},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := newOvertake(t)
			o.f.spanLen, o.f.wideSpanLen = 10, 100
			o.slowFirst.at = time.Now().Add(-c.ago)
			if err := o.f.handle(answer{a: o.slowFirst, page: protocol.RangePage{Blocks: o.blocks[:2]}}); err != nil {
				t.Fatal(err)
			}
			if o.f.spanLen != c.want {
				t.Fatalf("span length %d after an answer in %s, want %d", o.f.spanLen, c.ago, c.want)
			}
		})
	}
}
