package node

// The syncer's hold of a forked branch (branchHold): a branch that does not
// outweigh the best chain never reaches the disk, whatever its blocks
// weigh, and what it can cost in memory is bounded; a heavier branch too
// large to hold is fetched again and stored.

import (
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/chainsync"
	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/node/peering"
	"github.com/jbc-project/jbc/protocol"
	"github.com/jbc-project/jbc/protocol/pb"
)

// TestHostileLighterBranchBigBlocks is the attack of issue 11: a liar
// whose status claims more work than it has serves a valid branch of 700
// blocks of 64 KiB forking at the genesis, lighter than the node's chain
// of 800 small blocks. The hold (chainsync.SyncHoldBytes, 32 MiB) fills after about
// 511 of them; before the fix the rest were stored as a side branch (544
// blocks, chain.db from 0.26 to 53 MB). Now none is stored (the file does
// not grow by a byte), the data is dropped and only the hashes are kept
// past the limit, and the liar, whose claimed tip the node validated with
// less work than claimed, is banned.
func TestHostileLighterBranchBigBlocks(t *testing.T) {
	p := chain.TestNet()
	s := nodetest.NewStore(t, p)
	nodetest.Extend(t, s, 0, 800, "target")
	n := hostileNode(t, s)
	hp := newHonestPeer(t, n)
	tip := s.Tip()
	count, err := s.Count()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	h, light := lighterLiar(t, p, 700, strings.Repeat("L", p.MaxDataSize), liar{})

	// The heap's peak during the attack, for the log.
	var base runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&base)
	var peakHeap atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peakHeap.Load() {
				peakHeap.Store(ms.HeapInuse)
			}
		}
	}()

	w := hp.watch(n)
	start := time.Now()
	dialNode(t, h, n)
	took := wantBanned(t, n, h, start, 60*time.Second)
	slowest := w.check(t)
	close(stop)
	<-sampled

	wantChain(t, n, tip.Hash)
	for _, b := range light {
		if n.store.Has(b.Hash) {
			t.Fatalf("lighter block %d (%s) stored", b.Index, b.Hash.Short())
		}
	}
	if c, err := s.Count(); err != nil || c != count {
		t.Fatalf("store holds %d blocks, %v; want the %d it had", c, err, count)
	}
	after, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if after.Size() != fi.Size() {
		t.Fatalf("chain.db grew from %d to %d bytes", fi.Size(), after.Size())
	}
	bound := int64(chainsync.SyncHoldBytes)
	if peak := n.sync.HeldPeak(); peak > bound || peak < bound-int64(p.MaxDataSize+chainsync.HeldBlockOverhead) {
		t.Fatalf("held at most %d bytes of the branch; want the hold filled, to at most %d", peak, bound)
	}
	t.Logf("700 blocks of 64 KiB: banned %v after connecting, none stored (chain.db %d bytes, unchanged); held at most %d bytes (bound %d); heap in use %d MiB before, %d MiB at its peak; honest slowest %v",
		took.Round(time.Millisecond), after.Size(), n.sync.HeldPeak(), bound, base.HeapInuse>>20, peakHeap.Load()>>20, slowest.Round(time.Microsecond))
}

// pagedPeer is a peer serving a branch forking at the genesis in pages of
// per blocks, each page after the first a little later (so that the
// node's syncer stores each as a batch of its own), and counting the
// refetches: requests for the blocks after a single hash. A refetch is
// served from alt when it is set, and answered NO_COMMON_ANCESTOR when
// gone is.
func pagedPeer(t *testing.T, p *chain.Params, claim *pb.Status, blocks, alt []chain.Block, gone bool, per int, refetches *atomic.Int32) *fakePeer {
	t.Helper()
	gen := p.ID()
	return newFakePeer(t, claim, func(str network.Stream, gb *pb.GetBlocks) {
		from := blocks
		if len(gb.GetLocator()) == 1 {
			refetches.Add(1)
			if gone {
				_, _ = protocol.WriteFrame(str, &pb.Response{Code: protocol.CodeNoCommonAncestor})
				return
			}
			if alt != nil {
				from = alt
			}
		}
		// The blocks after the first locator hash of the branch.
		start := -1
		for _, l := range gb.GetLocator() {
			h := chain.Hash(l)
			if h == gen {
				start = 0
				break
			}
			for i := range from {
				if from[i].Hash == h {
					start = i + 1
				}
			}
			if start >= 0 {
				break
			}
		}
		if start < 0 {
			_, _ = protocol.WriteFrame(str, &pb.Response{Code: protocol.CodeNoCommonAncestor})
			return
		}
		if start > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		end := min(start+per, len(from))
		fork := gen
		if start > 0 {
			fork = from[start-1].Hash
		}
		_, _ = str.Write(pageFrame(t, fork, from[start:end], uint64(len(from))))
	})
}

// TestSyncHoldRefetch syncs a heavier branch forking at the genesis, sent
// in pages of 10 blocks, with the hold lowered to 8 KiB: its data is
// dropped after a few blocks, and once its validated work exceeds the
// node's chain (block 21) the blocks not in memory (the first 20) are
// fetched again, each checked against the hash validated, and stored. The
// node adopts the branch; every block is stored once.
func TestSyncHoldRefetch(t *testing.T) {
	p := chain.TestNet()
	s := nodetest.NewStore(t, p)
	nodetest.Extend(t, s, 0, 20, "own")
	n := hostileNode(t, s)
	n.sync.SetHoldBytes(8 << 10)

	src := nodetest.NewStore(t, p)
	branch := nodetest.Extend(t, src, 0, 60, strings.Repeat("b", 2<<10))
	var refetches atomic.Int32
	peer := pagedPeer(t, p, claimStatus(src, src.Tip().Hash, src.Tip().Height, src.Tip().Work), branch, nil, false, 10, &refetches)
	dialNode(t, peer.h, n)
	nodetest.WaitFor(t, syncBanWithin, "the heavier branch adopted", func() bool {
		pi, ok := n.peers.Get(peer.h.ID())
		return s.Tip().Hash == src.Tip().Hash && ok && pi.LastSync != nil
	})
	pi, _ := n.peers.Get(peer.h.ID())
	if pi.LastSync.Result != "adopted" || pi.LastSync.Blocks != len(branch) {
		t.Fatalf("sync record %+v; want adopted, %d blocks stored", pi.LastSync, len(branch))
	}
	if refetches.Load() == 0 {
		t.Fatal("the branch was never fetched again")
	}
	if c, err := s.Count(); err != nil || c != 1+20+len(branch) {
		t.Fatalf("store holds %d blocks, %v; want %d", c, err, 1+20+len(branch))
	}
	if err := s.Verify(nil); err != nil {
		t.Fatal(err)
	}
	if peak := n.sync.HeldPeak(); peak > 8<<10 {
		t.Fatalf("held %d bytes at most, over the 8 KiB hold", peak)
	}
	t.Logf("adopted %d blocks in %v, %d refetch requests; held at most %d bytes", pi.LastSync.Blocks,
		pi.LastSync.Duration.Round(time.Millisecond), refetches.Load(), n.sync.HeldPeak())
}

// TestSyncRefetchDiffers: a peer serves a heavier branch whose data the
// hold drops, then, asked for it again, serves other blocks, or answers
// that the fork is not on its best chain. The node stores none of it (it
// stores only what it validated to outweigh its chain), does not blame the
// peer (it may have moved to another branch meanwhile) and keeps its tip.
func TestSyncRefetchDiffers(t *testing.T) {
	for _, c := range []struct {
		name string
		gone bool
	}{{"other blocks", false}, {"no common ancestor", true}} {
		t.Run(c.name, func(t *testing.T) {
			p := chain.TestNet()
			s := nodetest.NewStore(t, p)
			nodetest.Extend(t, s, 0, 20, "own")
			n := hostileNode(t, s)
			n.sync.SetHoldBytes(8 << 10)
			tip := s.Tip()

			sa, sb := nodetest.NewStore(t, p), nodetest.NewStore(t, p)
			a := nodetest.Extend(t, sa, 0, 40, strings.Repeat("a", 2<<10))
			b := nodetest.Extend(t, sb, 0, 40, strings.Repeat("z", 2<<10))
			var refetches atomic.Int32
			att := pagedPeer(t, p, claimStatus(sa, sa.Tip().Hash, sa.Tip().Height, sa.Tip().Work), a, b, c.gone, 10, &refetches)
			dialNode(t, att.h, n)
			var rec *peering.SyncRecord
			nodetest.WaitFor(t, syncBanWithin, "a sync attempt with the peer", func() bool {
				pi, ok := n.peers.Get(att.h.ID())
				rec = pi.LastSync
				return ok && rec != nil
			})
			if !strings.Contains(rec.Result, "no longer serves the branch") || rec.Blocks != 0 || refetches.Load() == 0 {
				t.Fatalf("sync record %+v after %d refetch requests; want the refetch refused, nothing stored", rec, refetches.Load())
			}
			wantChain(t, n, tip.Hash)
			for i := range a {
				if s.Has(a[i].Hash) || s.Has(b[i].Hash) {
					t.Fatalf("block %d of a branch stored", i+1)
				}
			}
			if v := n.scores.Get(att.h.ID(), time.Now()); v != 0 || n.peers.IsBanned(att.h.ID()) {
				t.Fatalf("score %v (banned %v) for a peer that may only have moved to another branch", v, n.peers.IsBanned(att.h.ID()))
			}
			t.Logf("%s", rec.Result)
		})
	}
}
