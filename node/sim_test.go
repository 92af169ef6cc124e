package node

import (
	"context"
	"fmt"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/storage"
)

// The simulated network. Latency is per message and per hop, like a
// continental WAN link; bandwidth is that of a modest uplink. Each node has
// a handful of peers, as nodes found by the DHT do: far from a full mesh.
const (
	simNodes     = 50
	simMinDegree = 4
	simMaxDegree = 6
	simLatency   = 20 * time.Millisecond
	simBandwidth = 1 << 20 // bytes per second per link
	simMiners    = 5
	simBlocks    = 20
	// simForkAt is the block at which two miners a diameter apart publish
	// rival blocks on the same parent at the same instant.
	simForkAt = 8
	// simMinGap and simMaxGap space the blocks: about one propagation
	// time, so that natural forks happen besides the deliberate one.
	simMinGap = 100 * time.Millisecond
	simMaxGap = 200 * time.Millisecond
	// simPoll is how often the watcher looks at every store: the
	// resolution of the figures.
	simPoll = 2 * time.Millisecond
)

// Bounds the run must meet. A block crosses a hop in 20 ms and the graph's
// diameter is about 4, so gossip brings it everywhere in 100-150 ms; the
// bounds leave a busy 2-core CI machine tenfold headroom, and fail when
// blocks wait for the periodic status refresh (StatusInterval) instead.
// The race detector slows the nodes several times over: under it every
// wait is five times longer and propagation is not held to its bound.
const (
	simMaxP95Propagation = 2 * time.Second
	simMaxConvergence    = 5 * time.Second
	// simMinGossipShare: of the blocks nodes receive, the share that must
	// come by gossip rather than sync. Without relaying, gossip would bring
	// only the miners' neighbours their copies: about a tenth.
	simMinGossipShare = 0.75
)

// TestSimulation50 runs 50 nodes on a mocknet with link latency, mines
// blocks from a few of them, one moment with two rival blocks, and
// measures how long each block takes to reach every node and how long the
// network takes to agree on one tip after mining stops. The figures go to
// the test log and, if JBC_SIM_OUT names a file, are appended to it.
// JBC_SIM_SEED repeats a run's topology and choice of miners.
func TestSimulation50(t *testing.T) {
	start := time.Now()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("JBC_SIM_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("JBC_SIM_SEED: %v", err)
		}
	}
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	events := newEventCounter(t)
	sn := startSimNet(t, rng, slog.New(events))
	nodes, slack := sn.nodes, sn.slack
	setup := time.Since(start)
	goroutines := runtime.NumGoroutine()
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)

	// The miners: the two ends of a longest shortest path, which will
	// fork, and a few others.
	fa, fb := sn.graph.farthestPair()
	miners := []int{fa, fb}
	for _, i := range rng.Perm(simNodes) {
		if len(miners) < simMiners && i != fa && i != fb {
			miners = append(miners, i)
		}
	}
	w := newPropWatch(nodes)
	go w.run()
	defer w.stop()
	maxWork := new(big.Int)
	var forkSplit [2]int
	for i := 0; i < simBlocks; i++ {
		if i > 0 {
			time.Sleep(simMinGap + time.Duration(rng.Int64N(int64(simMaxGap-simMinGap))))
		}
		if i == simForkAt {
			forkSplit = sn.rivals(t, w, fa, fb, maxWork)
			continue
		}
		m := miners[rng.IntN(len(miners))]
		n := nodes[m]
		label := ""
		if i == simForkAt-1 || i == simBlocks-1 {
			// The rivals and the end of the run need one tip everywhere.
			// A block on a tip of the most work published has more work
			// than any other, and every node adopts it; rival tips of
			// equal work would stay split, since the first seen wins.
			nodetest.WaitFor(t, slack*5*time.Second, "the miner to hold a heaviest tip", func() bool {
				return n.store.Tip().Work.Cmp(maxWork) >= 0
			})
			label = "settles"
		}
		b, work, err := simMine(n, n.store.Tip().Hash, fmt.Sprintf("sim %d by %d", i, m))
		if err != nil {
			t.Fatal(err)
		}
		w.track(b.Hash, m, b.Index, label, time.Now())
		n.gossip.PublishBlock(context.Background(), &b)
		if work.Cmp(maxWork) > 0 {
			maxWork.Set(work)
		}
	}
	miningTime := time.Since(start) - setup

	// Convergence: every node on the last block, which has the most work.
	last := w.last()
	var converged time.Duration
	nodetest.WaitFor(t, slack*simMaxConvergence, "every node to adopt the last block", func() bool {
		for _, n := range nodes {
			if n.store.Tip().Hash != last.hash {
				return false
			}
		}
		converged = time.Since(last.sent)
		return true
	})
	// Stale blocks need not reach every node (a node that fetched one by
	// sync does not relay it, and sync fetches only more work); give
	// stragglers a moment, no more.
	w.waitAll(slack * time.Second)
	w.stop()

	// The figures.
	blocks := w.snapshot()
	var toAll, toHalf []time.Duration
	var staleReach []string
	var unseen []string
	var report strings.Builder
	fmt.Fprintf(&report, "jbc simulation %s: %d nodes, %d links (degree %d-%d, mean %.1f, diameter %d), latency %s, bandwidth %d KiB/s, seed %d\n",
		time.Now().UTC().Format(time.RFC3339), simNodes, len(sn.graph.edges), simMinDegree, simMaxDegree,
		2*float64(len(sn.graph.edges))/simNodes, sn.diameter, simLatency, simBandwidth>>10, seed)
	fmt.Fprintf(&report, "%5s %6s %5s %6s %5s %8s %8s %8s  %s\n", "block", "height", "miner", "best", "nodes", "to 50%", "to 90%", "to all", "note")
	for i, b := range blocks {
		onBest, err := nodes[0].store.OnBest(b.hash)
		if err != nil {
			t.Fatal(err)
		}
		half, _ := b.toFraction(0.5)
		ninety, _ := b.toFraction(0.9)
		all, reached := b.toFraction(1)
		switch {
		case onBest && reached:
			toAll = append(toAll, all)
			toHalf = append(toHalf, half)
		case onBest:
			unseen = append(unseen, b.hash.Short())
		default:
			staleReach = append(staleReach, strconv.Itoa(b.have))
		}
		allText := "-"
		if reached {
			allText = ms(all)
		}
		fmt.Fprintf(&report, "%5d %6d %5d %6t %5d %8s %8s %8s  %s\n", i, b.height, b.miner, onBest, b.have, ms(half), ms(ninety), allText, b.label)
	}
	slices.Sort(toAll)
	slices.Sort(toHalf)
	p95 := percentile(toAll, 0.95)
	fmt.Fprintf(&report, "propagation of the %d best-chain blocks to every node: p50 %s, p95 %s, max %s; to half the nodes: p50 %s, p95 %s\n",
		len(toAll), ms(percentile(toAll, 0.5)), ms(p95), ms(percentile(toAll, 1)), ms(percentile(toHalf, 0.5)), ms(percentile(toHalf, 0.95)))
	fmt.Fprintf(&report, "convergence after the last block: %s; %d stale blocks, which reached %s nodes; the rival blocks split the nodes %d/%d\n",
		ms(converged), len(staleReach), strings.Join(staleReach, ", "), forkSplit[0], forkSplit[1])
	var rejected uint64
	for _, n := range nodes {
		rejected += n.gossip.Rejected()
	}
	via, err := blocksVia(nodes)
	if err != nil {
		t.Fatal(err)
	}
	received := via[viaGossip] + via[viaSync] + via[viaOrphan]
	fmt.Fprintf(&report, "blocks received: %.0f by gossip, %.0f by sync, %.0f as orphans connected later; gossip rejected %d\n",
		via[viaGossip], via[viaSync], via[viaOrphan], rejected)
	fmt.Fprintf(&report, "log events: %s\n", events.summary())
	fmt.Fprintf(&report, "setup %s, mining %s; after setup %d goroutines, heap %d MiB\n",
		setup.Round(time.Millisecond), miningTime.Round(time.Millisecond), goroutines, mem.HeapAlloc>>20)
	t.Log("\n" + report.String())
	if out := os.Getenv("JBC_SIM_OUT"); out != "" {
		if err := appendFile(out, report.String()+"\n"); err != nil {
			t.Errorf("JBC_SIM_OUT: %v", err)
		}
	}

	// What must hold.
	if len(unseen) > 0 {
		t.Errorf("the watcher never saw best-chain blocks %v on every node:\n%s", unseen, w.missing())
	}
	if p95 > simMaxP95Propagation && slack == 1 {
		t.Errorf("propagation p95 %s, want at most %s", p95, simMaxP95Propagation)
	}
	if share := via[viaGossip] / received; share < simMinGossipShare {
		t.Errorf("%.0f%% of received blocks came by gossip, want at least %.0f%%", 100*share, 100*simMinGossipShare)
	}
	if len(staleReach) == 0 {
		t.Error("no stale block: the rival blocks did not fork the chain")
	}
	if rejected != 0 {
		t.Errorf("%d valid gossiped blocks were rejected", rejected)
	}
	// Honest peers racing each other (a status ahead of its block, rival
	// tips) must cost nothing.
	now := time.Now()
	for i, n := range nodes {
		for _, j := range sn.graph.adj[i] {
			if v := n.scores.Get(nodes[j].ID(), now); v != 0 {
				t.Errorf("node %d holds a misbehaviour score of %.0f against honest node %d", i, v, j)
			}
		}
		if b := n.peers.BannedCount(); b != 0 {
			t.Errorf("node %d banned %d honest peers", i, b)
		}
		if err := n.store.Verify(nil); err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}

// simNet is a simulated network of nodes on a mocknet.
type simNet struct {
	nodes    []*Node
	graph    *simGraph
	diameter int
	// slack multiplies the timeouts: 1, or 5 under the race detector.
	slack time.Duration
}

// startSimNet starts simNodes nodes on a mocknet with link latency,
// connects them along a random graph and waits for their gossip meshes.
func startSimNet(t testing.TB, rng *rand.Rand, log *slog.Logger) *simNet {
	t.Helper()
	p := nodetest.GossipParams(t)
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	mn.SetLinkDefaults(mocknet.LinkOptions{Latency: simLatency, Bandwidth: simBandwidth})
	sn := &simNet{nodes: make([]*Node, simNodes), graph: newSimGraph(rng, simNodes, simMinDegree, simMaxDegree), slack: 1}
	if raceEnabled() {
		sn.slack = 5
	}
	var ok bool
	if sn.diameter, ok = sn.graph.diameter(); !ok {
		t.Fatal("the simulated graph is not connected")
	}
	for i := range sn.nodes {
		s, err := storage.Open(t.TempDir(), p, storage.WithNoSync(), storage.WithLogger(log))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		h, err := mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		n, err := New(Config{Store: s, Host: latentHost{h}, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		sn.nodes[i] = n
	}

	// Connect in parallel: each connection waits for identify, a few
	// round trips. Setup is not what the test measures: its bounds are
	// generous, since a loaded machine makes some of the many handshakes
	// at once wait for seconds (each wait ends as soon as it is done).
	var wg sync.WaitGroup
	errs := make(chan error, len(sn.graph.edges))
	for _, e := range sn.graph.edges {
		a, b := sn.nodes[e[0]], sn.nodes[e[1]]
		if _, err := mn.LinkPeers(a.ID(), b.ID()); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), sn.slack*30*time.Second)
			defer cancel()
			if err := a.Host().Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Host().Addrs()}); err != nil {
				errs <- fmt.Errorf("connect %d-%d: %w", e[0], e[1], err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	nodetest.WaitFor(t, sn.slack*30*time.Second, "every node to see its peers in both topics", func() bool {
		for i, n := range sn.nodes {
			d := len(sn.graph.adj[i])
			if len(n.gossip.BlockPeers()) < d || len(n.gossip.DataPeers()) < d {
				return false
			}
		}
		return true
	})
	// Meshes form at a heartbeat; wait for one so that relaying, not only
	// the publishers' flooding, carries the blocks.
	time.Sleep(pubsub.GossipSubHeartbeatInterval + 200*time.Millisecond)
	return sn
}

// rivals forks the chain: once every node has the tracked block last
// published as its tip, nodes a and b mine on it and publish at the same
// instant. It returns how many nodes then take a's block and b's as their
// tip.
func (sn *simNet) rivals(t testing.TB, w *propWatch, a, b int, maxWork *big.Int) [2]int {
	t.Helper()
	parent := w.last().hash
	sn.waitTips(t, "every node to adopt the block before the fork", func(h chain.Hash) bool { return h == parent })
	var blocks [2]chain.Block
	for k, i := range []int{a, b} {
		blk, work, err := simMine(sn.nodes[i], parent, fmt.Sprintf("sim rival %d", k))
		if err != nil {
			t.Fatal(err)
		}
		blocks[k] = blk
		if work.Cmp(maxWork) > 0 {
			maxWork.Set(work)
		}
	}
	now := time.Now()
	w.track(blocks[0].Hash, a, blocks[0].Index, "rival", now)
	w.track(blocks[1].Hash, b, blocks[1].Index, "rival", now)
	var wg sync.WaitGroup
	for k, i := range []int{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sn.nodes[i].gossip.PublishBlock(context.Background(), &blocks[k])
		}()
	}
	wg.Wait()
	sn.waitTips(t, "every node to adopt a rival block", func(h chain.Hash) bool { return h == blocks[0].Hash || h == blocks[1].Hash })
	var split [2]int
	for _, n := range sn.nodes {
		if n.store.Tip().Hash == blocks[0].Hash {
			split[0]++
		} else {
			split[1]++
		}
	}
	return split
}

// waitTips waits until every node's tip passes ok.
func (sn *simNet) waitTips(t testing.TB, what string, ok func(chain.Hash) bool) {
	t.Helper()
	nodetest.WaitFor(t, sn.slack*5*time.Second, what, func() bool {
		for _, n := range sn.nodes {
			if !ok(n.store.Tip().Hash) {
				return false
			}
		}
		return true
	})
}

// simMine mines a block with data on the stored block parent and stores it
// in n, as n's miner does, without publishing it. It returns the block and
// the work of the branch it ends.
func simMine(n *Node, parent chain.Hash, data string) (chain.Block, *big.Int, error) {
	v, err := n.store.Validator(parent)
	if err != nil {
		return chain.Block{}, nil, err
	}
	tmpl, bits := v.Template(data, time.Now().Unix())
	b, err := (&chain.Miner{Threads: 1}).Solve(context.Background(), tmpl, bits)
	if err != nil {
		return chain.Block{}, nil, err
	}
	if _, err := n.addBlocksVia(viaMiner, []chain.Block{b}); err != nil {
		return chain.Block{}, nil, err
	}
	e, err := n.store.Entry(b.Hash)
	if err != nil {
		return chain.Block{}, nil, err
	}
	return b, e.Work, nil
}

// blocksVia sums the nodes' stored blocks (jbc_blocks_accepted_total) by
// how they came.
func blocksVia(nodes []*Node) (map[string]float64, error) {
	out := map[string]float64{}
	for _, n := range nodes {
		mfs, err := n.metrics.reg.Gather()
		if err != nil {
			return nil, err
		}
		for _, mf := range mfs {
			if mf.GetName() != "jbc_blocks_accepted_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "via" {
						out[l.GetValue()] += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	return out, nil
}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

func appendFile(name, text string) error {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

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
