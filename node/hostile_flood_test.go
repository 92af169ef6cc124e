package node

// Hostile peers that flood or stall the node: slow, stalled and trickled
// requests and responses, request and gossip floods, orphans, peers of
// another network, Sybil slowloris (see hostile_test.go).

import (
	"context"
	"fmt"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/multiformats/go-varint"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/gossip"
	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/node/peering"
	"github.com/jbc-project/jbc/protocol"
	"github.com/jbc-project/jbc/protocol/pb"
)

// TestHostileSlowRequests holds all of an attacker's request slots the
// longest way left to it: each stream announces a request of MaxRequestSize
// bytes and sends all of it but the last byte at once. A request that small
// cannot keep up MinReceiveRate past MinReceiveGrace (it would need 32 KiB
// by then), so the server cuts each when the grace ends, not at
// RequestReadTimeout; meanwhile it answers the attacker's next request
// RATE_LIMITED and serves an honest peer. A slow requester is not provably
// faulty (docs/protocol.md, section 6), so its score stays 0.
func TestHostileSlowRequests(t *testing.T) {
	t.Parallel()
	s := nodetest.NewStore(t, chain.TestNet())
	nodetest.Extend(t, s, 0, 20, "target")
	n := hostileNode(t, s)
	hp := newHonestPeer(t, n)
	att := rawHost(t)
	dialNode(t, att, n)
	failedBefore := n.server.Stats().Failed
	frame := frameOf(mustMarshal(t, statusRequest(s)))

	var firstCut atomic.Int64 // Unix nanoseconds of the first cut, 0 before
	cut := make(chan time.Duration, protocol.MaxInflightPerPeer)
	held := append(varint.ToUvarint(protocol.MaxRequestSize), make([]byte, protocol.MaxRequestSize-1)...)
	for i := 0; i < protocol.MaxInflightPerPeer; i++ {
		str, err := att.NewStream(context.Background(), n.ID(), protocol.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer str.Reset()
		start := time.Now()
		if _, err := str.Write(held); err != nil {
			t.Fatal(err)
		}
		go func() {
			var buf [1]byte
			_, _ = str.Read(buf[:]) // returns when the server resets the stream
			firstCut.CompareAndSwap(0, time.Now().UnixNano())
			cut <- time.Since(start)
		}()
	}
	// A handler starts once its stream's first byte is in, which a loaded
	// machine can delay; the server attributes a stream to its service
	// once it has admitted it. Until the honest peer starts, only the
	// attacker sends the node requests.
	nodetest.WaitFor(t, 15*time.Second, "the server to hold the four requests (or cut one)", func() bool {
		held := 0
		_ = n.host.Network().ResourceManager().ViewService(protocol.ServiceName, func(sc network.ServiceScope) error {
			held = sc.Stat().NumStreamsInbound
			return nil
		})
		return held >= protocol.MaxInflightPerPeer || firstCut.Load() != 0
	})
	w := hp.watch(n)
	resp, err := rawExchange(att, n.ID(), frame)
	answered := time.Now().UnixNano()
	switch fc := firstCut.Load(); {
	case err == nil && resp.GetCode() == protocol.CodeRateLimited:
	case fc != 0 && fc < answered:
		// One of the four was cut before the fifth was answered, as a
		// loaded machine may delay the fifth past the grace: its slot was
		// free, and any answer is right.
		t.Logf("a held request was cut before the fifth was answered (%v, %v)", resp.GetCode(), err)
	default:
		t.Fatalf("a fifth request while four are held: %v, %v; want RATE_LIMITED", resp, err)
	}
	var cuts []time.Duration
	for range protocol.MaxInflightPerPeer {
		d := <-cut
		cuts = append(cuts, d.Round(time.Millisecond))
		if d < protocol.MinReceiveGrace-200*time.Millisecond || d > protocol.MinReceiveGrace+2*time.Second {
			t.Errorf("a held request was cut after %v, want about %v (RequestReadTimeout is %v)", d, protocol.MinReceiveGrace, protocol.RequestReadTimeout)
		}
	}
	slowest := w.check(t)
	if got := n.server.Stats().Failed - failedBefore; got < protocol.MaxInflightPerPeer {
		t.Errorf("server reset %d streams, want %d", got, protocol.MaxInflightPerPeer)
	}
	if v := n.scores.Get(att.ID(), time.Now()); v != 0 {
		t.Errorf("a slow requester scored %v", v)
	}
	wantChain(t, n, s.Tip().Hash)
	t.Logf("held requests cut after %v; fifth request %v; honest slowest %v", cuts, resp.GetCode(), slowest.Round(time.Microsecond))
}

// TestHostileStalledResponse syncs the node from an attacker that claims
// more work, then answers GetBlocks with nothing at all: the node gives up
// at FirstByteTimeout, scores the stall (peering.MisStalled, not a ban: an honest
// peer can be slow), and keeps its chain.
func TestHostileStalledResponse(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the 5 s first-byte deadline")
	}
	t.Parallel()
	s := nodetest.NewStore(t, chain.TestNet())
	nodetest.Extend(t, s, 0, 20, "target")
	n := hostileNode(t, s)
	hp := newHonestPeer(t, n)
	tip := s.Tip()
	release := make(chan struct{})
	defer close(release)
	att := newFakePeer(t, claimStatus(s, chain.Hash{9}, 1000, new(big.Int).Lsh(tip.Work, 10)), func(str network.Stream, gb *pb.GetBlocks) {
		<-release
	})
	w := hp.watch(n)
	dialNode(t, att.h, n)
	var asked time.Time
	select {
	case asked = <-att.asked:
	case <-time.After(syncBanWithin):
		t.Fatal("the attacker was never asked for blocks")
	}
	nodetest.WaitFor(t, protocol.FirstByteTimeout+3*time.Second, "the stall scored", func() bool {
		return n.scores.Get(att.h.ID(), time.Now()) > 0
	})
	took := time.Since(asked)
	slowest := w.check(t)
	if took < protocol.FirstByteTimeout-200*time.Millisecond || took > protocol.FirstByteTimeout+2*time.Second {
		t.Errorf("gave up %v after asking, want about %v", took, protocol.FirstByteTimeout)
	}
	if v := n.scores.Get(att.h.ID(), time.Now()); v < peering.Penalty(peering.MisStalled)*0.99 || v >= peering.BanScore {
		t.Errorf("score %v after one stall, want %v", v, peering.Penalty(peering.MisStalled))
	}
	wantChain(t, n, tip.Hash)
	t.Logf("gave up %v after asking; score %.0f; honest slowest %v", took.Round(time.Millisecond), n.scores.Get(att.h.ID(), time.Now()), slowest.Round(time.Microsecond))
}

// TestHostileTrickledResponse syncs the node from an attacker that answers
// GetBlocks with a page of valid, heavier blocks sent a byte every 100 ms:
// its first byte comes at once, then far less than MinReceiveRate. The
// node cuts it once MinReceiveGrace is over, long before ResponseTimeout,
// scores the stall and stores none of it.
func TestHostileTrickledResponse(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the minimum receive rate's grace")
	}
	t.Parallel()
	p := chain.TestNet()
	s := nodetest.NewStore(t, p)
	base := nodetest.Extend(t, s, 0, 20, "target")
	n := hostileNode(t, s)
	hp := newHonestPeer(t, n)
	tip := s.Tip()
	// The attacker's chain: the node's and 10 valid blocks more.
	as := nodetest.NewStore(t, p)
	if _, err := as.AddBlocks(base); err != nil {
		t.Fatal(err)
	}
	more := nodetest.Extend(t, as, tip.Height, 10, "trickled")
	raw := pageFrame(t, tip.Hash, more, as.Tip().Height)
	if len(raw)/10 < int(protocol.ResponseTimeout/time.Second)+5 {
		t.Fatalf("a %d-byte page trickles in under the response deadline", len(raw))
	}
	att := newFakePeer(t, protocol.StatusToPB(protocol.LocalStatus(as, "trickler")), func(str network.Stream, gb *pb.GetBlocks) {
		for _, b := range raw {
			if _, err := str.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	w := hp.watch(n)
	dialNode(t, att.h, n)
	var asked time.Time
	select {
	case asked = <-att.asked:
	case <-time.After(syncBanWithin):
		t.Fatal("the attacker was never asked for blocks")
	}
	nodetest.WaitFor(t, protocol.ResponseTimeout+5*time.Second, "the trickle scored", func() bool {
		return n.scores.Get(att.h.ID(), time.Now()) > 0
	})
	took := time.Since(asked)
	slowest := w.check(t)
	if took < protocol.MinReceiveGrace-200*time.Millisecond || took > protocol.MinReceiveGrace+5*time.Second {
		t.Errorf("gave up %v after asking, want about %v (the minimum rate's grace; ResponseTimeout is %v)", took, protocol.MinReceiveGrace, protocol.ResponseTimeout)
	}
	if v := n.scores.Get(att.h.ID(), time.Now()); v < peering.Penalty(peering.MisStalled)*0.99 || v >= peering.BanScore {
		t.Errorf("score %v after one stall, want %v", v, peering.Penalty(peering.MisStalled))
	}
	wantChain(t, n, tip.Hash, more[0].Hash)
	t.Logf("gave up %v after asking (page of %d bytes at 10 B/s); score %.0f; honest slowest %v",
		took.Round(time.Millisecond), len(raw), n.scores.Get(att.h.ID(), time.Now()), slowest.Round(time.Microsecond))
}

// TestHostileRequestFlood has an attacker send valid requests, one per
// stream, sixteen streams at a time. Streams beyond the per-peer limits are
// refused (by the resource manager, or answered RATE_LIMITED for
// MaxInflightPerPeer) at no cost to the attacker; requests beyond the
// per-peer token bucket are answered RATE_LIMITED unread and each costs
// peering.MisFlood, so the attacker is banned after ten of them. An honest peer is
// served throughout.
func TestHostileRequestFlood(t *testing.T) {
	s := nodetest.NewStore(t, chain.TestNet())
	nodetest.Extend(t, s, 0, 600, "target")
	n := hostileNode(t, s)
	// The node's bucket is scaled down to a quarter (50 requests a second,
	// a burst of 100), so that the attacker outruns it on any machine
	// (under the race detector the server answers only a few hundred
	// requests a second in all). The honest peer sends about 40 a second.
	// Set before any peer connects: nothing reads it yet.
	n.reqLimit = peering.NewLimiter(peering.RequestRate/4, peering.RequestBurst/4)
	hp := newHonestPeer(t, n)
	att := rawHost(t)
	dialNode(t, att, n)
	// Mostly status requests, the cheapest to send; every fourth a page.
	status, page := frameOf(mustMarshal(t, statusRequest(s))), frameOf(mustMarshal(t, getBlocksRequest(s)))
	frames := [][]byte{status, status, status, page}

	var (
		mu     sync.Mutex
		counts = map[string]int{}
		wg     sync.WaitGroup
	)
	stop := make(chan struct{})
	refusedBefore := n.server.Stats().Refused
	w := hp.watch(n)
	start := time.Now()
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := i; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := rawExchange(att, n.ID(), frames[j%len(frames)])
				what := "stream refused or cut"
				if err == nil {
					what = resp.GetCode().String()
				}
				mu.Lock()
				counts[what]++
				mu.Unlock()
				if err != nil && att.Network().Connectedness(n.ID()) != network.Connected {
					return
				}
			}
		}()
	}
	// The ban comes once the attacker has outrun the bucket's refill; on a
	// loaded machine it sends barely faster than that, and takes seconds.
	took := wantBanned(t, n, att, start, banWithin)
	close(stop)
	wg.Wait()
	sent := 0
	mu.Lock()
	for _, c := range counts {
		sent += c
	}
	mu.Unlock()
	slowest := w.check(t)
	wantChain(t, n, s.Tip().Hash)
	mu.Lock()
	defer mu.Unlock()
	// The requests over the bucket are answered RATE_LIMITED, but the one
	// that reaches peering.BanScore closes the connection, and with sixteen
	// streams in flight the attacker may not have read any of those
	// answers by then: its streams die with their answers unread. The
	// server counts each answer it writes, after the penalty that may have
	// banned: wait for them there when the attacker saw none.
	nodetest.WaitFor(t, 15*time.Second, "the node to answer RATE_LIMITED", func() bool {
		return counts[protocol.CodeRateLimited.String()] > 0 || n.server.Stats().Refused > refusedBefore
	})
	if counts[protocol.CodeOK.String()] == 0 {
		t.Errorf("answers %v: want some served", counts)
	}
	t.Logf("%d requests (%.0f a second): %v; banned and cut off after %v; honest slowest %v",
		sent, float64(sent)/took.Seconds(), counts, took.Round(time.Millisecond), slowest.Round(time.Microsecond))
}

// gossipAttacker joins the node's block topic on a fresh host and waits
// until the node is in it.
func gossipAttacker(t testing.TB, n *Node) (host.Host, *pubsub.Topic) {
	t.Helper()
	att := rawHost(t)
	ps, err := pubsub.NewGossipSub(context.Background(), att)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(gossip.BlockTopic(n.store.Params().ID()))
	if err != nil {
		t.Fatal(err)
	}
	dialNode(t, att, n)
	nodetest.WaitFor(t, 15*time.Second, "the node in the attacker's topic", func() bool {
		for _, p := range topic.ListPeers() {
			if p == n.ID() {
				return true
			}
		}
		return false
	})
	return att, topic
}

// TestHostileGossipFlood has an attacker publish invalid blocks on the
// node's block topic as fast as it can: garbage, forged hashes, too
// little work. The first one it judges gets the attacker banned and cut
// off; none is stored, and an honest peer is served throughout.
func TestHostileGossipFlood(t *testing.T) {
	p := nodetest.GossipParams(t)
	s := nodetest.NewStore(t, p)
	nodetest.Extend(t, s, 0, 5, "target")
	n := hostileNode(t, s)
	hp := newHonestPeer(t, n)
	tip := s.Tip()
	att, topic := gossipAttacker(t, n)

	// 300 distinct invalid messages on the node's tip.
	v, err := s.Validator(tip.Hash)
	if err != nil {
		t.Fatal(err)
	}
	var msgs [][]byte
	var forged []chain.Hash
	for i := 0; i < 300; i++ {
		tmpl, bits := v.Template(fmt.Sprintf("flood %d", i), tip.Time+1)
		var b chain.Block
		switch i % 3 {
		case 0:
			msgs = append(msgs, []byte(fmt.Sprintf("\xff garbage %d", i)))
			continue
		case 1:
			b = solve(t, tmpl, bits)
			b.Hash = chain.Hash{0, 0, 0, 0, byte(i), byte(i >> 8), 1}
		case 2:
			b = underMine(tmpl, 0, int(bits))
		}
		forged = append(forged, b.Hash)
		msgs = append(msgs, mustMarshal(t, protocol.BlockToPB(&b)))
	}

	w := hp.watch(n)
	start := time.Now()
	published := 0
	for _, m := range msgs {
		if att.Network().Connectedness(n.ID()) != network.Connected {
			break
		}
		if err := topic.Publish(context.Background(), m); err != nil {
			break
		}
		published++
	}
	took := wantBanned(t, n, att, start, banWithin)
	slowest := w.check(t)
	if n.gossip.Rejected() == 0 {
		t.Fatal("the node rejected no gossiped block")
	}
	wantChain(t, n, tip.Hash, forged...)
	t.Logf("published %d of %d; node rejected %d, ignored %d; banned and cut off after %v; honest slowest %v",
		published, len(msgs), n.gossip.Rejected(), n.gossip.Ignored(), took.Round(time.Millisecond), slowest.Round(time.Microsecond))
}

// TestHostileGossipOrphans has an attacker publish blocks whose parent is
// unknown. A well-mined one is kept as an orphan and costs nothing (its
// parent may simply not have arrived yet); ones whose hash does not
// recompute are invalid whatever their parent, so the first gets the
// attacker banned, and none joins the orphan pool.
func TestHostileGossipOrphans(t *testing.T) {
	p := nodetest.GossipParams(t)
	s := nodetest.NewStore(t, p)
	nodetest.Extend(t, s, 0, 5, "target")
	n := hostileNode(t, s)
	tip := s.Tip()
	att, topic := gossipAttacker(t, n)

	// A plausible orphan: the second of two valid blocks, the first withheld.
	v, err := s.Validator(tip.Hash)
	if err != nil {
		t.Fatal(err)
	}
	var valid []chain.Block
	for i := 0; i < 2; i++ {
		tmpl, bits := v.Template("withheld parent", v.Tip().Time+1)
		b := solve(t, tmpl, bits)
		if _, err := v.Next(&b, time.Now().Unix()); err != nil {
			t.Fatal(err)
		}
		valid = append(valid, b)
	}
	if err := topic.Publish(context.Background(), mustMarshal(t, protocol.BlockToPB(&valid[1]))); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitFor(t, 15*time.Second, "the plausible orphan kept", func() bool { return n.gossip.Orphans().Len() == 1 })
	if v := n.scores.Get(att.ID(), time.Now()); v != 0 {
		t.Fatalf("a well-mined orphan cost its sender %v", v)
	}

	// Forged orphans: fewer than the gossip burst, so that only their
	// invalidity can stop them.
	start := time.Now()
	var forged []chain.Hash
	for i := 0; i < gossip.BlockBurst/2; i++ {
		b := chain.Block{Index: tip.Height + 5, Timestamp: tip.Time + 5, Data: fmt.Sprint("orphan ", i),
			PrevHash: chain.Hash{0xee, byte(i)}, Hash: chain.Hash{0, 0, 0, 0, byte(i), 1}}
		forged = append(forged, b.Hash)
		if att.Network().Connectedness(n.ID()) != network.Connected {
			break
		}
		if err := topic.Publish(context.Background(), mustMarshal(t, protocol.BlockToPB(&b))); err != nil {
			break
		}
	}
	took := wantBanned(t, n, att, start, banWithin)
	if got := n.gossip.Orphans().Len(); got != 1 {
		t.Fatalf("the orphan pool holds %d blocks, want only the well-mined one", got)
	}
	wantChain(t, n, tip.Hash, forged...)
	t.Logf("well-mined orphan kept at no cost; forged ones: rejected %d, ignored %d; banned and cut off after %v",
		n.gossip.Rejected(), n.gossip.Ignored(), took.Round(time.Millisecond))
}

// TestHostileOtherNetwork has peers of another network connect to the
// node, some answering its status request, some sending their own: each is
// cut off and banned (in milliseconds; the test logs how long), and each
// one's later dials are refused by the gater.
func TestHostileOtherNetwork(t *testing.T) {
	other, err := chain.NewParams("other", "another genesis", 1577836800, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := nodetest.NewStore(t, chain.TestNet())
	nodetest.Extend(t, s, 0, 10, "target")
	n := hostileNode(t, s)
	hp := newHonestPeer(t, n)
	otherStore := nodetest.NewStore(t, other)
	nodetest.Extend(t, otherStore, 0, 30, "other")
	w := hp.watch(n)
	var cuts []time.Duration
	for i := 0; i < 6; i++ {
		att := rawHost(t)
		asks := i%2 == 1
		if !asks {
			// It serves its chain: the node's own status request finds it out.
			srv, err := protocol.NewServer(protocol.ServerConfig{Host: att, Source: otherStore, Agent: "other"})
			if err != nil {
				t.Fatal(err)
			}
			srv.Start()
			t.Cleanup(func() { srv.Close() })
		}
		start := time.Now()
		dialNode(t, att, n)
		if asks {
			// It sends its status: the node answers WRONG_NETWORK.
			resp, err := rawExchange(att, n.ID(), frameOf(mustMarshal(t, statusRequest(otherStore))))
			if err == nil && resp.GetCode() != protocol.CodeWrongNetwork {
				t.Fatalf("answered %s, want WRONG_NETWORK", resp.GetCode())
			}
		}
		took := wantBanned(t, n, att, start, banWithin)
		cuts = append(cuts, took.Round(time.Millisecond))
		// It keeps reconnecting: the gater refuses it every time.
		for j := 0; j < 3; j++ {
			wantRefused(t, n, att)
		}
	}
	slowest := w.check(t)
	wantChain(t, n, s.Tip().Hash)
	if got := n.peers.BannedCount(); got != 6 {
		t.Fatalf("%d peers banned, want 6", got)
	}
	t.Logf("other-network peers cut off after %v; reconnections refused; honest slowest %v", cuts, slowest.Round(time.Microsecond))
}

// TestHostileSybilSlowloris: 17 peers each hold their 4 allowed streams
// open with one byte of a request, more than the server's MaxInflight. The
// server resets the oldest of them to admit the honest peer's requests.
func TestHostileSybilSlowloris(t *testing.T) {
	s := nodetest.NewStore(t, chain.TestNet())
	nodetest.Extend(t, s, 0, 20, "target")
	n := hostileNode(t, s)
	hp := newHonestPeer(t, n)
	frame := frameOf(mustMarshal(t, statusRequest(s)))
	held := 0
	for a := 0; a <= protocol.MaxInflight/protocol.MaxInflightPerPeer; a++ {
		att := rawHost(t)
		dialNode(t, att, n)
		for i := 0; i < protocol.MaxInflightPerPeer; i++ {
			str, err := att.NewStream(context.Background(), n.ID(), protocol.ID)
			if err != nil {
				continue
			}
			defer str.Reset()
			if _, err := str.Write(frame[:1]); err == nil {
				held++
			}
		}
	}
	time.Sleep(500 * time.Millisecond) // the handlers start on the first byte
	t.Logf("%d slow streams held", held)
	w := hp.watch(n)
	time.Sleep(2 * time.Second)
	w.check(t)
}
