package node

// The simulation's instruments (see sim_test.go): the random graph of
// links, the watch of each block's propagation, and the count of log
// events.

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/jbc-project/jbc/chain"
)

// simGraph is an undirected graph of simulated nodes.
type simGraph struct {
	adj   [][]int
	edges [][2]int
}

// newSimGraph returns a random connected graph of n nodes, each with
// between lo and hi neighbours: a ring through a random order (connected,
// and still so after any one link is lost), then random chords up to a
// random degree per node.
func newSimGraph(rng *rand.Rand, n, lo, hi int) *simGraph {
	g := &simGraph{adj: make([][]int, n)}
	add := func(a, b int) {
		g.adj[a] = append(g.adj[a], b)
		g.adj[b] = append(g.adj[b], a)
		g.edges = append(g.edges, [2]int{a, b})
	}
	order := rng.Perm(n)
	for i, a := range order {
		add(a, order[(i+1)%n])
	}
	for _, a := range rng.Perm(n) {
		want := lo + rng.IntN(hi-lo+1)
		for try := 0; len(g.adj[a]) < want && try < 10*n; try++ {
			b := rng.IntN(n)
			if b != a && !slices.Contains(g.adj[a], b) && len(g.adj[b]) < hi {
				add(a, b)
			}
		}
	}
	return g
}

// hops returns the hop count from a to every node (-1: unreachable).
func (g *simGraph) hops(a int) []int {
	d := make([]int, len(g.adj))
	for i := range d {
		d[i] = -1
	}
	d[a] = 0
	queue := []int{a}
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		for _, y := range g.adj[x] {
			if d[y] < 0 {
				d[y] = d[x] + 1
				queue = append(queue, y)
			}
		}
	}
	return d
}

// diameter returns the longest shortest path, and false if the graph is
// not connected.
func (g *simGraph) diameter() (int, bool) {
	longest := 0
	for a := range g.adj {
		for _, h := range g.hops(a) {
			if h < 0 {
				return 0, false
			}
			longest = max(longest, h)
		}
	}
	return longest, true
}

// farthestPair returns two nodes a diameter apart.
func (g *simGraph) farthestPair() (int, int) {
	var fa, fb, longest int
	for a := range g.adj {
		for b, h := range g.hops(a) {
			if h > longest {
				fa, fb, longest = a, b, h
			}
		}
	}
	return fa, fb
}

// propWatch records when each tracked block reaches each node's store, by
// polling every simPoll. It is safe for concurrent use.
type propWatch struct {
	nodes []*Node
	done  chan struct{}
	exit  chan struct{}
	once  sync.Once

	mu     sync.Mutex
	blocks []*propBlock
}

type propBlock struct {
	hash   chain.Hash
	miner  int
	height uint64
	label  string
	sent   time.Time
	// seen holds, per node, how long after sent the node had the block
	// (-1: not yet); have counts the nodes that have it.
	seen []time.Duration
	have int
}

func newPropWatch(nodes []*Node) *propWatch {
	return &propWatch{nodes: nodes, done: make(chan struct{}), exit: make(chan struct{})}
}

// track starts watching block h, published by node miner at sent.
func (w *propWatch) track(h chain.Hash, miner int, height uint64, label string, sent time.Time) {
	b := &propBlock{hash: h, miner: miner, height: height, label: label, sent: sent, seen: make([]time.Duration, len(w.nodes))}
	for i := range b.seen {
		b.seen[i] = -1
	}
	w.mu.Lock()
	w.blocks = append(w.blocks, b)
	w.mu.Unlock()
}

// run polls until stop.
func (w *propWatch) run() {
	defer close(w.exit)
	tick := time.NewTicker(simPoll)
	defer tick.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-tick.C:
		}
		w.mu.Lock()
		var pending []*propBlock
		for _, b := range w.blocks {
			if b.have < len(w.nodes) {
				pending = append(pending, b)
			}
		}
		w.mu.Unlock()
		for _, b := range pending {
			for i, n := range w.nodes {
				w.mu.Lock()
				known := b.seen[i] >= 0
				w.mu.Unlock()
				if known || !n.store.Has(b.hash) {
					continue
				}
				w.mu.Lock()
				b.seen[i] = time.Since(b.sent)
				b.have++
				w.mu.Unlock()
			}
		}
	}
}

// stop ends run and waits for it; it may be called more than once.
func (w *propWatch) stop() {
	w.once.Do(func() { close(w.done) })
	<-w.exit
}

// waitAll waits until every tracked block is on every node, and reports
// whether that happened within timeout.
func (w *propWatch) waitAll(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		all := true
		for _, b := range w.blocks {
			all = all && b.have == len(w.nodes)
		}
		w.mu.Unlock()
		if all {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(simPoll)
	}
}

// missing describes the blocks not yet on every node, and the state of
// the first few nodes lacking one.
func (w *propWatch) missing() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var s strings.Builder
	for _, b := range w.blocks {
		if b.have == len(w.nodes) {
			continue
		}
		var lacking []int
		for i, d := range b.seen {
			if d < 0 {
				lacking = append(lacking, i)
			}
		}
		fmt.Fprintf(&s, "block %s at height %d from node %d: missing on nodes %v\n", b.hash.Short(), b.height, b.miner, lacking)
		for _, i := range lacking[:min(3, len(lacking))] {
			fmt.Fprintf(&s, "  node %d: %s\n", i, nodeState(w.nodes[i]))
		}
	}
	return s.String()
}

// nodeState describes what a node has and whom it hears, for failures.
func nodeState(n *Node) string {
	tip := n.store.Tip()
	var scored []string
	now := time.Now()
	for _, p := range n.host.Network().Peers() {
		if v := n.scores.Get(p, now); v != 0 {
			scored = append(scored, fmt.Sprintf("%s:%.0f", p.ShortString(), v))
		}
	}
	return fmt.Sprintf("tip %d %s, %d peers (%d in the block topic), %d banned, gossip accepted %d ignored %d rejected %d, orphans %d, scores %v",
		tip.Height, tip.Hash.Short(), len(n.host.Network().Peers()), len(n.gossip.BlockPeers()), n.peers.BannedCount(),
		n.gossip.Accepted(), n.gossip.Ignored(), n.gossip.Rejected(), n.gossip.Orphans().Len(), scored)
}

// last returns a copy of the block tracked last.
func (w *propWatch) last() propBlock {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := *w.blocks[len(w.blocks)-1]
	b.seen = slices.Clone(b.seen)
	return b
}

// snapshot returns copies of the tracked blocks in publishing order.
func (w *propWatch) snapshot() []propBlock {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]propBlock, len(w.blocks))
	for i, b := range w.blocks {
		out[i] = *b
		out[i].seen = slices.Clone(b.seen)
	}
	return out
}

// toFraction returns how long the block took to reach the fraction f of
// the nodes, and false if it has not reached them.
func (b *propBlock) toFraction(f float64) (time.Duration, bool) {
	var got []time.Duration
	for _, d := range b.seen {
		if d >= 0 {
			got = append(got, d)
		}
	}
	need := max(1, int(f*float64(len(b.seen))+0.999))
	if len(got) < need {
		return 0, false
	}
	slices.Sort(got)
	return got[need-1], true
}

// percentile returns the nearest-rank q-quantile of sorted ds (0 if none).
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(q*float64(len(ds))+0.999) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

// eventCounter is a slog handler that counts the nodes' and stores' log
// messages, syncs by result, and passes warnings and errors to t.Log. It
// is safe for concurrent use.
type eventCounter struct {
	t  testing.TB
	mu sync.Mutex
	n  map[string]int
}

func newEventCounter(t testing.TB) *eventCounter {
	return &eventCounter{t: t, n: map[string]int{}}
}

func (c *eventCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (c *eventCounter) WithAttrs([]slog.Attr) slog.Handler           { return c }
func (c *eventCounter) WithGroup(string) slog.Handler                { return c }

func (c *eventCounter) Handle(_ context.Context, r slog.Record) error {
	key := r.Message
	var attrs strings.Builder
	r.Attrs(func(a slog.Attr) bool {
		if r.Message == "sync" && a.Key == "result" {
			key += " " + a.Value.String()
		}
		fmt.Fprintf(&attrs, " %s=%v", a.Key, a.Value)
		return true
	})
	c.mu.Lock()
	c.n[key]++
	c.mu.Unlock()
	if r.Level >= slog.LevelWarn {
		c.t.Logf("%s %s%s", r.Level, r.Message, attrs.String())
	}
	return nil
}

// summary lists the counts, most frequent first.
func (c *eventCounter) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.n))
	for k := range c.n {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if c.n[a] != c.n[b] {
			return c.n[b] - c.n[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, c.n[k])
	}
	return strings.Join(parts, ", ")
}

// latentHost makes a mocknet host's streams pay the link latency when they
// close. A mocknet stream delivers each write at its arrival time, except
// that closing it delivers at once the small writes (under 256 bytes) it
// still holds: a short request/response exchange (a status, a page of a
// block or two: write, CloseWrite, read) would cross a 20 ms link in no
// time while gossip, on streams that stay open, pays 20 ms a hop, and sync
// would win races with gossip that it cannot win on a real network.
type latentHost struct{ host.Host }

func (h latentHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	return &latentStream{Stream: s}, nil
}

func (h latentHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, func(s network.Stream) { handler(&latentStream{Stream: s}) })
}

func (h latentHost) SetStreamHandlerMatch(pid protocol.ID, match func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, match, func(s network.Stream) { handler(&latentStream{Stream: s}) })
}

// latentStream delays closing until its last write has arrived.
type latentStream struct {
	network.Stream
	lastWrite atomic.Int64 // UnixNano
}

func (s *latentStream) Write(p []byte) (int, error) {
	s.lastWrite.Store(time.Now().UnixNano())
	return s.Stream.Write(p)
}

func (s *latentStream) CloseWrite() error {
	s.waitArrival()
	return s.Stream.CloseWrite()
}

func (s *latentStream) Close() error {
	s.waitArrival()
	return s.Stream.Close()
}

func (s *latentStream) waitArrival() {
	if last := s.lastWrite.Load(); last != 0 {
		time.Sleep(time.Until(time.Unix(0, last).Add(simLatency)))
	}
}
