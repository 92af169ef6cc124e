package protocol

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// Several GetRange requests in flight from one client, to one server and
// to several, on real loopback hosts (TCP, yamux) over real stores.

// barrierSource is a store whose ForEach, the read of a best-chain range,
// holds the first n callers until all n are inside at once: a test that
// gets past it had n requests in flight at the same time. Later callers
// pass freely.
type barrierSource struct {
	*storage.Store
	b *barrier
}

type barrier struct {
	n       int
	mu      sync.Mutex
	inside  int
	arrived int
	open    chan struct{}
	max     atomic.Int64
}

func newBarrier(n int) *barrier { return &barrier{n: n, open: make(chan struct{})} }

// enter waits at the barrier if it is still closed, and returns the
// function to call on leaving.
func (b *barrier) enter() (leave func(), err error) {
	b.mu.Lock()
	b.inside++
	b.max.Store(max(b.max.Load(), int64(b.inside)))
	b.arrived++
	wait := b.arrived <= b.n
	if b.arrived == b.n {
		close(b.open)
	}
	b.mu.Unlock()
	leave = func() {
		b.mu.Lock()
		b.inside--
		b.mu.Unlock()
	}
	if wait {
		select {
		case <-b.open:
		case <-time.After(20 * time.Second):
			return leave, fmt.Errorf("only %d of %d requests in flight at once", b.arrived, b.n)
		}
	}
	return leave, nil
}

func (s barrierSource) ForEach(from, to uint64, fn func(*chain.Block) error) error {
	leave, err := s.b.enter()
	defer leave()
	if err != nil {
		return err
	}
	return s.Store.ForEach(from, to, fn)
}

// fetchRange gets heights start..end of the chain ending at tip from p, a
// page at a time (each at most maxBytes), and returns the blocks.
func fetchRange(ctx context.Context, cl *Client, p peer.ID, tip chain.Entry, start, end uint64, maxBytes int) ([]chain.Block, error) {
	var out []chain.Block
	for start <= end {
		page, err := cl.GetRange(ctx, p, RangeRequest{Tip: tip.Hash, TipHeight: tip.Height, Start: start, Count: end - start + 1, MaxBytes: maxBytes})
		if err != nil {
			return nil, fmt.Errorf("heights %d..%d from %s: %w", start, end, p, err)
		}
		out = append(out, page.Blocks...)
		start += uint64(len(page.Blocks))
	}
	return out, nil
}

// reassemble checks that ranges, keyed by their first height, make exactly
// the blocks 1..tip of c, each range linked to the one below it.
func reassemble(t *testing.T, c *chain.Chain, ranges map[uint64][]chain.Block) {
	t.Helper()
	prev := c.Blocks[0].Hash
	for h := uint64(1); h <= c.Height(); {
		r, ok := ranges[h]
		if !ok || len(r) == 0 {
			t.Fatalf("no range starts at height %d", h)
		}
		for _, b := range r {
			if b.Index != h || b.PrevHash != prev || b != *c.BlockAt(h) {
				t.Fatalf("height %d: got block %d (%s), not the chain's", h, b.Index, b.Hash.Short())
			}
			prev = b.Hash
			h++
		}
	}
}

// splitRanges cuts heights 1..tip into ranges of size heights.
func splitRanges(tip, size uint64) [][2]uint64 {
	var out [][2]uint64
	for a := uint64(1); a <= tip; a += size {
		out = append(out, [2]uint64{a, min(a+size-1, tip)})
	}
	return out
}

// fetchAll fetches every range from the servers, with window workers per
// server taking ranges from one queue, and returns them by first height
// and how many each server answered.
func fetchAll(ctx context.Context, cl *Client, servers []peer.ID, window int, tip chain.Entry, ranges [][2]uint64, maxBytes int) (map[uint64][]chain.Block, map[peer.ID]int, error) {
	queue := make(chan [2]uint64, len(ranges))
	for _, r := range ranges {
		queue <- r
	}
	close(queue)
	var (
		mu   sync.Mutex
		got  = map[uint64][]chain.Block{}
		per  = map[peer.ID]int{}
		errs []error
		wg   sync.WaitGroup
	)
	for _, p := range servers {
		for range window {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := range queue {
					blocks, err := fetchRange(ctx, cl, p, tip, r[0], r[1], maxBytes)
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					} else {
						got[r[0]] = blocks
						per[p]++
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	return got, per, errors.Join(errs...)
}

// connectAll connects a to each of bs.
func connectAll(t *testing.T, a host.Host, bs ...host.Host) {
	t.Helper()
	for _, b := range bs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestRangeInflightOneServer(t *testing.T) {
	p := chain.TestNet()
	c := buildChain(t, p, 2000, sizedData)
	ch, sh := loopbackPair(t)
	b := newBarrier(RangeWindow)
	srv, _ := startServer(t, sh, barrierSource{storeOf(t, c), b})
	cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))

	// 16 ranges of 125 heights, in pages of at most 32 KiB (about 20
	// blocks of these), RangeWindow at a time.
	got, per, err := fetchAll(ctxT(t), cl, []peer.ID{sh.ID()}, RangeWindow, c.TipEntry(), splitRanges(2000, 125), 32<<10)
	if err != nil {
		t.Fatal(err)
	}
	reassemble(t, c, got)
	if per[sh.ID()] != 16 || b.max.Load() < RangeWindow {
		t.Fatalf("ranges %v, at most %d requests in flight at once", per, b.max.Load())
	}
	if st := srv.Stats(); st.Refused != 0 || st.Failed != 0 || st.Served < 16*2 {
		t.Fatalf("server stats %+v: want no refusal, several pages a range", st)
	}
}

func TestRangeInflightSeveralServers(t *testing.T) {
	p := chain.TestNet()
	c := buildChain(t, p, 2000, sizedData)
	ch := loopbackHost(t)
	const servers = 3
	b := newBarrier(servers * RangeWindow) // every worker in flight at once
	var (
		ids  []peer.ID
		srvs []*Server
	)
	for range servers {
		sh := loopbackHost(t)
		srv, _ := startServer(t, sh, barrierSource{storeOf(t, c), b})
		connectAll(t, ch, sh)
		ids, srvs = append(ids, sh.ID()), append(srvs, srv)
	}
	cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))

	got, per, err := fetchAll(ctxT(t), cl, ids, RangeWindow, c.TipEntry(), splitRanges(2000, 100), 32<<10)
	if err != nil {
		t.Fatal(err)
	}
	reassemble(t, c, got)
	// Nine requests in flight at once, at most MaxInflightPerPeer to each
	// server: every server had some.
	if b.max.Load() < servers*RangeWindow {
		t.Fatalf("at most %d requests in flight at once", b.max.Load())
	}
	for i, id := range ids {
		if st := srvs[i].Stats(); per[id] == 0 || st.Refused != 0 || st.Failed != 0 {
			t.Fatalf("server %d: %d ranges, stats %+v", i, per[id], st)
		}
	}
}

// gateSource holds every range read until released.
type gateSource struct {
	*storage.Store
	entered chan struct{}
	gate    chan struct{}
}

func (s gateSource) ForEach(from, to uint64, fn func(*chain.Block) error) error {
	s.entered <- struct{}{}
	<-s.gate
	return s.Store.ForEach(from, to, fn)
}

// TestRangeRateLimitedLoopback: a server serves MaxInflightPerPeer
// requests of one peer at once, whatever their protocol version; one more,
// of either version, is answered CODE_RATE_LIMITED at once (no fault:
// ErrRateLimited, not ErrMalformed), and once the requests in flight end,
// the peer is served again. Another peer is served meanwhile.
func TestRangeRateLimitedLoopback(t *testing.T) {
	p := chain.TestNet()
	c := buildChain(t, p, 50, plainData)
	ch, sh := loopbackPair(t)
	other := loopbackHost(t)
	connectAll(t, other, sh)
	src := gateSource{storeOf(t, c), make(chan struct{}, 2*MaxInflightPerPeer), make(chan struct{})}
	var once sync.Once
	release := func() { once.Do(func() { close(src.gate) }) }
	srv, _ := startServer(t, sh, src)
	t.Cleanup(release) // before the server's Close, which waits for handlers
	cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))
	tip := c.TipEntry()
	ctx := ctxT(t)

	// MaxInflightPerPeer-1 ranges on 1.1.0 and a GetBlocks on 1.0.0, all
	// held in the server.
	errs := make(chan error, MaxInflightPerPeer)
	for i := range MaxInflightPerPeer - 1 {
		go func() {
			_, err := cl.GetRange(ctx, sh.ID(), RangeRequest{Tip: tip.Hash, TipHeight: 50, Start: uint64(1 + 10*i), Count: 10})
			errs <- err
		}()
	}
	go func() {
		_, err := cl.GetBlocks(ctx, sh.ID(), []chain.Hash{p.ID()}, 5)
		errs <- err
	}()
	for range MaxInflightPerPeer {
		select {
		case <-src.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the requests did not all reach the server")
		}
	}

	// One more of either version is refused at once (were it served, it
	// would wait at the gate until the deadline).
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := cl.GetRange(short, sh.ID(), RangeRequest{Tip: tip.Hash, TipHeight: 50, Start: 41, Count: 10})
	if !errors.Is(err, ErrRateLimited) || errors.Is(err, ErrMalformed) {
		t.Fatalf("fifth request (1.1.0): err = %v, want ErrRateLimited", err)
	}
	if _, err := cl.Status(short, sh.ID()); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("fifth request (1.0.0): err = %v, want ErrRateLimited", err)
	}

	// Another peer is served meanwhile (its requests are its own).
	ocl := newTestClient(t, other, newMemSource(chain.NewChain(p)))
	if _, err := ocl.Status(ctx, sh.ID()); err != nil {
		t.Fatalf("another peer: %v", err)
	}

	release()
	for range MaxInflightPerPeer {
		if err := <-errs; err != nil {
			t.Fatalf("held request: %v", err)
		}
	}
	// The slots are free again.
	if _, err := cl.GetRange(ctx, sh.ID(), RangeRequest{Tip: tip.Hash, TipHeight: 50, Start: 41, Count: 10}); err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.Refused != 2 || st.Failed != 0 {
		t.Fatalf("stats %+v, want the 2 refusals", st)
	}
}
