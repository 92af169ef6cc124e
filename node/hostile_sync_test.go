package node

// Hostile peers that sync the node: lies about work, invalid blocks,
// lighter branches held and never stored (see hostile_test.go).

import (
	"bytes"
	"context"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/node/peering"
	"github.com/jbc-project/jbc/protocol"
	"github.com/jbc-project/jbc/protocol/pb"
	"github.com/jbc-project/jbc/storage"
)

// fakePeer is an attacker acting as a server: it answers the node's status
// requests with the status it claims and the node's GetBlocks with
// whatever getBlocks writes.
type fakePeer struct {
	h         host.Host
	claim     *pb.Status
	getBlocks func(str network.Stream, gb *pb.GetBlocks)
	// asked receives the time of each GetBlocks, when there is room.
	asked chan time.Time
}

func newFakePeer(t testing.TB, claim *pb.Status, getBlocks func(network.Stream, *pb.GetBlocks)) *fakePeer {
	t.Helper()
	f := &fakePeer{h: rawHost(t), claim: claim, getBlocks: getBlocks, asked: make(chan time.Time, 16)}
	f.h.SetStreamHandler(protocol.ID, f.handle)
	return f
}

func (f *fakePeer) handle(str network.Stream) {
	defer str.Close()
	_ = str.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf, err := protocol.ReadFrame(str, protocol.MaxFrameSize)
	if err != nil {
		str.Reset()
		return
	}
	req := new(pb.Request)
	if err := proto.Unmarshal(buf, req); err != nil {
		str.Reset()
		return
	}
	switch body := req.GetBody().(type) {
	case *pb.Request_Status:
		_, _ = protocol.WriteFrame(str, &pb.Response{Code: protocol.CodeOK, Body: &pb.Response_Status{Status: f.claim}})
	case *pb.Request_GetBlocks:
		select {
		case f.asked <- time.Now():
		default:
		}
		f.getBlocks(str, body.GetBlocks)
	}
}

// claimStatus returns a status on s's network claiming a chain ending in
// tip at height with work.
func claimStatus(s *storage.Store, tip chain.Hash, height uint64, work *big.Int) *pb.Status {
	return protocol.StatusToPB(protocol.Status{Genesis: s.Params().ID(), Tip: tip, Height: height, Work: work, Agent: "attacker"})
}

// pageFrame returns an OK response carrying blocks after fork as a frame.
func pageFrame(t testing.TB, fork chain.Hash, blocks []chain.Block, serverHeight uint64) []byte {
	t.Helper()
	page := &pb.Blocks{Fork: bytes.Clone(fork[:]), ServerHeight: serverHeight}
	for i := range blocks {
		page.Blocks = append(page.Blocks, protocol.BlockToPB(&blocks[i]))
	}
	return frameOf(mustMarshal(t, &pb.Response{Code: protocol.CodeOK, Body: &pb.Response_Blocks{Blocks: page}}))
}

// solve mines tmpl to bits leading zero bits.
func solve(t testing.TB, tmpl chain.Block, bits uint8) chain.Block {
	t.Helper()
	b, err := (&chain.Miner{Threads: 1}).Solve(context.Background(), tmpl, bits)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// underMine returns tmpl with the first nonce whose hash has at least lo
// and fewer than hi leading zero bits: a block whose hash is honest but
// whose work falls short of hi.
func underMine(tmpl chain.Block, lo, hi int) chain.Block {
	for nonce := uint64(0); ; nonce++ {
		tmpl.Nonce = nonce
		h := tmpl.ComputeHash()
		if z := chain.LeadingZeroBits(&h); z >= lo && z < hi {
			tmpl.Hash = h
			return tmpl
		}
	}
}

// hostileParams is a network whose difficulty starts at 6 bits and, with
// blocks one second apart against a 60 s spacing, rises by two bits at
// every 20th block: a block mined at the old difficulty is then wrong.
func hostileParams(t testing.TB) *chain.Params {
	t.Helper()
	p, err := chain.NewParams("hostile-test", "hostile test network", 1577836800, 6, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHostileBlocks syncs the node from attackers that claim more work and
// serve pages holding a block that breaks one rule, after valid blocks
// (kept: they are valid) or alone. Whether the protocol layer (the page's
// shape) or consensus refuses it, the attacker is banned, the bad block
// and everything after it is not stored, and the tip is the last valid
// block.
func TestHostileBlocks(t *testing.T) {
	p := hostileParams(t)
	s := nodetest.NewStore(t, p)
	// The next block is the 20th: the first retarget, to 8 bits.
	nodetest.Extend(t, s, 0, 19, "target")
	n := hostileNode(t, s)
	hp := newHonestPeer(t, n)

	const notUTF8 = "<<not utf-8>>"
	cases := []struct {
		name string
		// prefix valid blocks come before the bad one.
		prefix int
		// bad turns a template on the valid blocks' tip, needing bits,
		// into the bad block.
		bad func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block
		// protocol is true when the page's shape is wrong, so that the
		// protocol layer refuses the whole page before consensus sees it.
		protocol bool
	}{
		{name: "wrong difficulty: mined at the old difficulty across a retarget", bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			if bits != 8 {
				t.Fatalf("the next block needs %d bits, want the retarget to 8", bits)
			}
			return underMine(tmpl, 6, 8)
		}},
		{name: "too little work", prefix: 2, bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			return underMine(tmpl, 0, 1)
		}},
		{name: "hash does not recompute (forged proof of work)", prefix: 2, bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			b := solve(t, tmpl, bits)
			b.Hash = chain.Hash{0, 0, 0, 0, 0, 0, 0, 1, 2, 3}
			return b
		}},
		{name: "nonce changed after mining", prefix: 2, bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			b := solve(t, tmpl, bits)
			b.Nonce++
			return b
		}},
		{name: "wrong index", bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			tmpl.Index += 3
			return solve(t, tmpl, bits)
		}},
		{name: "broken link", prefix: 2, protocol: true, bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			tmpl.PrevHash = chain.Hash{1, 2, 3}
			return solve(t, tmpl, bits)
		}},
		{name: "timestamp far in the future", prefix: 2, bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			tmpl.Timestamp = time.Now().Add(3 * time.Hour).Unix()
			return solve(t, tmpl, bits)
		}},
		{name: "timestamp before the median of the past", prefix: 2, bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			// jbc init networks allow a timestamp equal to the median.
			tmpl.Timestamp = v.MedianTime() - 1
			return solve(t, tmpl, bits)
		}},
		{name: "data over the network's limit", prefix: 2, bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			tmpl.Data = strings.Repeat("x", p.MaxDataSize+1)
			return solve(t, tmpl, bits)
		}},
		{name: "data over the wire limit", protocol: true, bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			tmpl.Data = strings.Repeat("x", protocol.MaxDataBytes+1)
			return solve(t, tmpl, bits)
		}},
		{name: "data not UTF-8", prefix: 2, protocol: true, bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			tmpl.Data = notUTF8 // replaced by invalid bytes on the wire
			return solve(t, tmpl, bits)
		}},
		{name: "a genesis block in a page", protocol: true, bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			g := chain.NewGenesis("another genesis", tmpl.Timestamp)
			return g
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := s.Tip()
			v, err := s.Validator(before.Hash)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now().Unix()
			var page []chain.Block
			for i := 0; i < c.prefix; i++ {
				tmpl, bits := v.Template("valid before the bad one", v.Tip().Time+1)
				b := solve(t, tmpl, bits)
				if _, err := v.Next(&b, now); err != nil {
					t.Fatal(err)
				}
				page = append(page, b)
			}
			tmpl, bits := v.Template("bad", v.Tip().Time+1)
			bad := c.bad(t, v, tmpl, bits)
			after := solve(t, chain.Block{Index: bad.Index + 1, Timestamp: bad.Timestamp + 1, Data: "after the bad one", PrevHash: bad.Hash}, bits)
			page = append(page, bad, after)

			wantTip := before.Hash
			if c.prefix > 0 && !c.protocol {
				wantTip = page[c.prefix-1].Hash
			}
			raw := pageFrame(t, before.Hash, page, after.Index)
			raw = bytes.Replace(raw, []byte(notUTF8), bytes.Repeat([]byte{0xff}, len(notUTF8)), 1)

			claimed := new(big.Int).Lsh(before.Work, 10)
			att := newFakePeer(t, claimStatus(s, after.Hash, after.Index, claimed), func(str network.Stream, gb *pb.GetBlocks) {
				_, _ = str.Write(raw)
			})
			w := hp.watch(n)
			start := time.Now()
			dialNode(t, att.h, n)
			took := wantBanned(t, n, att.h, start, syncBanWithin)
			slowest := w.check(t)
			select {
			case <-att.asked:
			default:
				t.Fatal("the attacker was never asked for blocks")
			}
			wantChain(t, n, wantTip, bad.Hash, after.Hash)
			for i := 0; i < c.prefix; i++ {
				if n.store.Has(page[i].Hash) == c.protocol {
					t.Fatalf("valid block %d before the bad one stored: %v", i, !c.protocol)
				}
			}
			layer := "consensus"
			if c.protocol {
				layer = "protocol"
			}
			t.Logf("refused by %s; %d valid blocks before it kept; banned and cut off %v after connecting; honest slowest %v",
				layer, int(s.Tip().Height-before.Height), took.Round(time.Millisecond), slowest.Round(time.Microsecond))
		})
	}
}

// TestHostileStatusClaims syncs the node from attackers whose status
// claims enormous work that their answers do not back: an empty page,
// garbage, no common ancestor, or a valid chain lighter than the node's.
// The empty page, and a lighter chain that does not hold the tip the
// status named, are lies about work that nothing proves (peering.MisLiedWork: the
// score rises, the peer is skipped); a lighter chain ending in the tip the
// status named proves the claim false (peering.MisFalseClaim) and bans, as garbage
// (malformed) does; no common ancestor fails the sync and the peer is
// skipped.
func TestHostileStatusClaims(t *testing.T) {
	p := chain.TestNet()
	s := nodetest.NewStore(t, p)
	nodetest.Extend(t, s, 0, 40, "target")
	n := hostileNode(t, s)
	hp := newHonestPeer(t, n)
	tip := s.Tip()
	huge := new(big.Int).SetBytes(bytes.Repeat([]byte{0xff}, protocol.MaxWorkLen))

	// waitSync waits for the node's record of a sync with p.
	waitSync := func(t *testing.T, p peer.ID) *peering.SyncRecord {
		var rec *peering.SyncRecord
		nodetest.WaitFor(t, syncBanWithin, "a sync attempt with the attacker", func() bool {
			pi, ok := n.peers.Get(p)
			rec = pi.LastSync
			return ok && rec != nil
		})
		return rec
	}

	t.Run("enormous work then an empty page", func(t *testing.T) {
		att := newFakePeer(t, claimStatus(s, chain.Hash{9}, 1_000_000, huge), func(str network.Stream, gb *pb.GetBlocks) {
			_, _ = str.Write(pageFrame(t, chain.Hash(gb.GetLocator()[0]), nil, 1_000_000))
		})
		w := hp.watch(n)
		start := time.Now()
		dialNode(t, att.h, n)
		rec := waitSync(t, att.h.ID())
		took := time.Since(start)
		slowest := w.check(t)
		if !strings.Contains(rec.Result, "claimed work") {
			t.Fatalf("sync result %q, want a refusal naming the claimed work", rec.Result)
		}
		if v := n.scores.Get(att.h.ID(), time.Now()); v < peering.Penalty(peering.MisLiedWork)*0.99 {
			t.Fatalf("score %v after the lie, want %v", v, peering.Penalty(peering.MisLiedWork))
		}
		wantChain(t, n, tip.Hash)
		t.Logf("refused after %v (%q); score %.0f; honest slowest %v", took.Round(time.Millisecond), rec.Result, n.scores.Get(att.h.ID(), time.Now()), slowest.Round(time.Microsecond))
	})

	t.Run("enormous work then garbage", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		garbage := make([]byte, 1000)
		for i := range garbage {
			garbage[i] = byte(rng.Uint32())
		}
		att := newFakePeer(t, claimStatus(s, chain.Hash{9}, 1_000_000, huge), func(str network.Stream, gb *pb.GetBlocks) {
			_, _ = str.Write(garbage)
		})
		w := hp.watch(n)
		start := time.Now()
		dialNode(t, att.h, n)
		took := wantBanned(t, n, att.h, start, syncBanWithin)
		slowest := w.check(t)
		wantChain(t, n, tip.Hash)
		t.Logf("banned and cut off %v after connecting; honest slowest %v", took.Round(time.Millisecond), slowest.Round(time.Microsecond))
	})

	// A peer of our network always has our genesis, the last hash of
	// every locator: this answer is a lie too, but only one the protocol
	// cannot tell from a broken peer. The node skips the peer for
	// failedPeerPause without scoring it (docs/reliability.md).
	t.Run("enormous work then no common ancestor", func(t *testing.T) {
		att := newFakePeer(t, claimStatus(s, chain.Hash{9}, 1_000_000, huge), func(str network.Stream, gb *pb.GetBlocks) {
			_, _ = protocol.WriteFrame(str, &pb.Response{Code: protocol.CodeNoCommonAncestor, Message: "never heard of it"})
		})
		w := hp.watch(n)
		start := time.Now()
		dialNode(t, att.h, n)
		rec := waitSync(t, att.h.ID())
		took := time.Since(start)
		slowest := w.check(t)
		if !strings.HasPrefix(rec.Result, "failed") {
			t.Fatalf("sync result %q, want a failure", rec.Result)
		}
		wantChain(t, n, tip.Hash)
		t.Logf("sync failed after %v (%q), peer skipped; score %.0f; honest slowest %v", took.Round(time.Millisecond), rec.Result, n.scores.Get(att.h.ID(), time.Now()), slowest.Round(time.Microsecond))
	})

	t.Run("enormous work then a valid lighter chain", func(t *testing.T) {
		h, light := lighterLiar(t, p, 10, "lighter", liar{})
		w := hp.watch(n)
		start := time.Now()
		dialNode(t, h, n)
		// Its status names its real tip with work that tip does not have:
		// once the blocks are validated, a provable lie.
		took := wantBanned(t, n, h, start, syncBanWithin)
		slowest := w.check(t)
		wantChain(t, n, tip.Hash)
		// The lighter blocks are valid, but were held in memory until they
		// outweighed our chain, which they never did: none is stored.
		for _, b := range light {
			if n.store.Has(b.Hash) {
				t.Fatalf("lighter block %d (%s) stored; a branch with less work than ours must not be", b.Index, b.Hash.Short())
			}
		}
		t.Logf("banned and cut off %v after connecting, none of its %d blocks stored; honest slowest %v",
			took.Round(time.Millisecond), len(light), slowest.Round(time.Microsecond))
	})

	// The same, but its status names a tip it does not have: nothing
	// proves the claim false (an honest peer may have moved to another
	// chain since), so the lie costs lied-work (50) and a pause.
	t.Run("enormous work naming a tip it lacks, then a valid lighter chain", func(t *testing.T) {
		h, light := lighterLiar(t, p, 10, "lighter, unnamed", fakeTipLiar{})
		w := hp.watch(n)
		start := time.Now()
		dialNode(t, h, n)
		rec := waitSync(t, h.ID())
		took := time.Since(start)
		slowest := w.check(t)
		if !strings.Contains(rec.Result, "claimed work") || strings.Contains(rec.Result, "provable") {
			t.Fatalf("sync result %q, want a refusal naming the claimed work, not a proven lie", rec.Result)
		}
		if v := n.scores.Get(h.ID(), time.Now()); v < peering.Penalty(peering.MisLiedWork)*0.99 || n.peers.IsBanned(h.ID()) {
			t.Fatalf("score %v after the lie (banned %v), want %v", v, n.peers.IsBanned(h.ID()), peering.Penalty(peering.MisLiedWork))
		}
		wantChain(t, n, tip.Hash)
		for _, b := range light {
			if n.store.Has(b.Hash) {
				t.Fatalf("lighter block %d (%s) stored", b.Index, b.Hash.Short())
			}
		}
		if rec.Blocks != 0 || !strings.Contains(rec.Result, fmt.Sprintf("%d valid blocks of less work not stored", len(light))) {
			t.Fatalf("sync record: %d blocks, %q; want none stored and the %d held named", rec.Blocks, rec.Result, len(light))
		}
		t.Logf("refused after %v (%q); score %.0f; honest slowest %v",
			took.Round(time.Millisecond), rec.Result, n.scores.Get(h.ID(), time.Now()), slowest.Round(time.Microsecond))
	})
}

// fakeTipLiar is a chain source whose status claims enormous work for a
// tip that is not on its chain.
type fakeTipLiar struct{ *storage.Store }

func (l fakeTipLiar) Tip() chain.Entry {
	e := l.Store.Tip()
	e.Hash = chain.Hash{0xfa, 0xce}
	e.Work = new(big.Int).Lsh(big.NewInt(1), 200)
	return e
}

// lighterLiar starts a real server on a host of its own for a chain of n
// blocks of network p, whose blocks carry data, wrapped by as (liar{} or
// fakeTipLiar{}) so that its statuses claim enormous work: an attacker
// with a valid chain lighter than it says. It returns the host and the
// chain's blocks.
func lighterLiar(t *testing.T, p *chain.Params, n int, data string, as protocol.ChainSource) (host.Host, []chain.Block) {
	t.Helper()
	ls := nodetest.NewStore(t, p)
	blocks := nodetest.Extend(t, ls, 0, n, data)
	switch as.(type) {
	case liar:
		as = liar{ls}
	case fakeTipLiar:
		as = fakeTipLiar{ls}
	default:
		t.Fatalf("lighterLiar: unknown liar %T", as)
	}
	h := rawHost(t)
	srv, err := protocol.NewServer(protocol.ServerConfig{Host: h, Source: as, Agent: "liar"})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Close() })
	return h, blocks
}

// TestSyncHoldLimit lowers the syncer's hold limit to one byte: no block
// of a forked branch fits, so, as for a branch past chainsync.SyncHoldBytes, only
// the hashes of its blocks are kept while validation goes on. A lighter branch from a liar naming its
// real tip is still never stored (before the fix it was stored as a side
// branch past the limit), and its sender is banned.
func TestSyncHoldLimit(t *testing.T) {
	p := chain.TestNet()
	s := nodetest.NewStore(t, p)
	nodetest.Extend(t, s, 0, 20, "target")
	n := hostileNode(t, s)
	n.sync.SetHoldBytes(1)
	tip := s.Tip()
	count, err := s.Count()
	if err != nil {
		t.Fatal(err)
	}
	h, light := lighterLiar(t, p, 10, "lighter", liar{})
	start := time.Now()
	dialNode(t, h, n)
	took := wantBanned(t, n, h, start, syncBanWithin)
	wantChain(t, n, tip.Hash)
	for _, b := range light {
		if n.store.Has(b.Hash) {
			t.Fatalf("lighter block %d stored", b.Index)
		}
	}
	if c, err := s.Count(); err != nil || c != count {
		t.Fatalf("store holds %d blocks, %v; want the %d it had", c, err, count)
	}
	// No block's data fits: hashes only.
	if peak, bound := n.sync.HeldPeak(), len(light)*chain.HashSize; peak > int64(bound) {
		t.Fatalf("held %d bytes of the branch at most, want at most %d: its hashes", peak, bound)
	}
	t.Logf("banned %v after connecting; none of the branch stored; held at most %d bytes", took.Round(time.Millisecond), n.sync.HeldPeak())
}
