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
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
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
