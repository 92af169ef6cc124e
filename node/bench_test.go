package node

// Benchmarks of sync between two nodes on real libp2p hosts listening on
// 127.0.0.1 only (no NAT port mapping, no mDNS, no DHT), and of the Python
// layout's import and export on the same chains (bench_python_test.go).
// They run only with -bench; see docs/performance.md and cmd/jbcbench.
//
// The chains are TestNet chains (1 bit, blocks one second apart from the
// genesis), the same chain for every length: block data is fixed and the
// miner takes the first nonce that works, so a shorter chain is a prefix of
// a longer one. Each length is generated once into os.TempDir() (a store
// written without fsync) and reused by later runs; delete
// $TMPDIR/jbc-bench-* to regenerate.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/node/peering"
	"github.com/jbc-project/jbc/protocol"
	"github.com/jbc-project/jbc/storage"
)

// benchCacheVersion names the generator in the cache directories' names:
// bump it when the generated chain changes.
const benchCacheVersion = "v2"

// benchData is every generated block's data: the length of what a miner
// writes ("mined by " and a peer ID), so that pages and stores have the
// size of a real chain of empty blocks.
const benchData = "mined by 12D3KooWJbcBenchmarkChainForSyncAndStorageFigures0000"

// benchGenBatch is how many blocks the generator stores per transaction.
const benchGenBatch = 5000

// benchLoopback is the only address benchmark nodes listen on.
const benchLoopback = "/ip4/127.0.0.1/tcp/0"

var benchGenMu sync.Mutex // one generator at a time within the process

// benchChainDir returns a directory whose chain.db holds the first n
// blocks after TestNet's genesis of the benchmark chain, generating it if
// no earlier run left one in os.TempDir(). The directory is shared: open it
// read-only in spirit (serve from it), or copy it (copyStore).
func benchChainDir(tb testing.TB, n int) string {
	tb.Helper()
	benchGenMu.Lock()
	defer benchGenMu.Unlock()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("jbc-bench-%s-testnet-%d", benchCacheVersion, n))
	if s, err := storage.Open(dir, nil, storage.WithNoSync()); err == nil {
		h := s.Tip().Height
		s.Close()
		if h == uint64(n) {
			return dir
		}
	}
	os.RemoveAll(dir)
	start := time.Now()
	tmp, err := os.MkdirTemp(os.TempDir(), filepath.Base(dir)+".tmp")
	if err != nil {
		tb.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	p := chain.TestNet()
	s, err := storage.Create(tmp, p, storage.WithNoSync())
	if err != nil {
		tb.Fatal(err)
	}
	v, err := chain.NewValidator(p, p.GenesisEntry(), []int64{p.Genesis.Timestamp})
	if err != nil {
		tb.Fatal(err)
	}
	m := &chain.Miner{Threads: 1}
	batch := make([]chain.Block, 0, benchGenBatch)
	const far = 1 << 62 // every generated timestamp is in the past anyway
	for h := 1; h <= n; h++ {
		tmpl, bits := v.Template(benchData, v.Tip().Time+1)
		b, err := m.Solve(context.Background(), tmpl, bits)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := v.Next(&b, far); err != nil {
			tb.Fatal(err)
		}
		batch = append(batch, b)
		if len(batch) == cap(batch) || h == n {
			if _, err := s.AddBlocks(batch); err != nil {
				tb.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("generated a %d-block TestNet chain in %s (%s)", n, dir, time.Since(start).Round(time.Millisecond))
	return dir
}

// copyStore copies the store in src into a new temporary directory, synced,
// and returns the directory.
func copyStore(tb testing.TB, src string) string {
	tb.Helper()
	dst := tb.TempDir()
	in, err := os.Open(filepath.Join(src, storage.FileName))
	if err != nil {
		tb.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(filepath.Join(dst, storage.FileName), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		tb.Fatal(err)
	}
	// Synced now, so that the copy's first commit does not pay for
	// writing the whole file back.
	if err := out.Sync(); err != nil {
		tb.Fatal(err)
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
	return dst
}

// loopbackNode starts a node serving and extending s on a real libp2p host,
// built as a node builds its own (resource manager with the chain
// protocol's limits, connection manager and gater, no NAT port mapping),
// listening on TCP on 127.0.0.1 only, with mDNS and the DHT off. Its
// identity key goes in keyDir, or a fresh temporary directory if empty.
func loopbackNode(tb testing.TB, s *storage.Store, keyDir string) *Node {
	tb.Helper()
	if keyDir == "" {
		keyDir = tb.TempDir()
	}
	n, err := New(Config{Store: s, DataDir: keyDir, Listen: []string{benchLoopback}})
	if err != nil {
		tb.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.Close() })
	return n
}

// waitTip waits until n's best chain ends in want, woken by each change of
// the tip, and returns when it saw it.
func waitTip(n *Node, want chain.Hash, timeout time.Duration) (time.Time, error) {
	deadline := time.After(timeout)
	for {
		ch := n.tips.Wait()
		if n.store.Tip().Hash == want {
			return time.Now(), nil
		}
		select {
		case <-ch:
		case <-deadline:
			return time.Time{}, fmt.Errorf("tip at %d after %s, want %s", n.store.Tip().Height, timeout, want.Short())
		}
	}
}

// dialAndSync dials server from client and returns the time from the dial
// until client's best chain ends in want.
func dialAndSync(b *testing.B, client, server *Node, want chain.Hash) time.Duration {
	b.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := client.Host().Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Host().Addrs()})
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	done, err := waitTip(client, want, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	return done.Sub(start)
}

// benchSyncSizes are the chain lengths BenchmarkSync syncs. 100 000 is the
// issue's throughput figure; 300 000 and 1 000 000 show whether memory grows
// with the chain (the RSS target is set at 1 000 000).
var benchSyncSizes = []int{100_000, 300_000, 1_000_000}

// BenchmarkSync measures initial sync: a node with an empty, fsynced store
// dials a node serving an n-block TestNet chain on loopback and syncs until
// the serving node's tip is stored. The syncing node runs alone in a child
// process (this test binary, TestSyncBenchChild), so that its peak resident
// memory can be measured. One op is one whole sync.
//
// Select a length with -bench 'Sync/blocks=100000$'. Targets: at least
// 50 000 blocks/s; peak RSS under 200 MB at 1 000 000 blocks.
func BenchmarkSync(b *testing.B) {
	for _, n := range benchSyncSizes {
		b.Run(fmt.Sprintf("blocks=%d", n), func(b *testing.B) { benchSync(b, n) })
	}
}

func benchSync(b *testing.B, n int) {
	src := benchChainDir(b, n)
	ss, err := storage.Open(src, nil, storage.WithNoSync())
	if err != nil {
		b.Fatal(err)
	}
	defer ss.Close()
	tip := ss.Tip()
	server := loopbackNode(b, ss, "")
	addrs := server.Addrs()
	if len(addrs) == 0 {
		b.Fatal("serving node has no address")
	}
	var results []syncChildResult
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dir := filepath.Join(b.TempDir(), "sync")
		job, _ := json.Marshal(syncChildJob{Dir: dir, Peer: addrs[0].String(), Tip: tip.Hash.String(), Height: tip.Height})
		args := []string{"-test.run=^TestSyncBenchChild$", "-test.count=1", "-test.timeout=" + (syncTimeout + time.Minute).String()}
		args = append(args, strings.Fields(os.Getenv(syncChildArgsEnv))...)
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), syncChildEnv+"="+string(job))
		var stderr strings.Builder
		cmd.Stderr = &stderr // shown only on failure: it would break the result line
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("sync child: %v\n%s%s", err, out, stderr.String())
		}
		var r syncChildResult
		for _, line := range strings.Split(string(out), "\n") {
			if rest, ok := strings.CutPrefix(line, syncChildPrefix); ok {
				if err := json.Unmarshal([]byte(rest), &r); err != nil {
					b.Fatal(err)
				}
			}
		}
		if r.Blocks == 0 {
			b.Fatalf("sync child reported nothing:\n%s", out)
		}
		results = append(results, r)
		// The synced store must be the serving node's chain, whole.
		b.StopTimer()
		s, err := storage.Open(dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		if s.Tip().Hash != tip.Hash {
			b.Fatalf("synced store ends at %d %s, want %s", s.Tip().Height, s.Tip().Hash.Short(), tip.Hash.Short())
		}
		s.Close()
		os.RemoveAll(dir)
		b.StartTimer()
	}
	b.StopTimer()
	appendRate := benchAppendRate(b, ss)
	secs := make([]float64, len(results))
	var peak, anon, file, heap uint64
	for i, r := range results {
		secs[i] = r.Seconds
		peak, anon, file, heap = max(peak, r.PeakRSS), max(anon, r.PeakRSSAnon), max(file, r.PeakRSSFile), max(heap, r.PeakGoHeap)
	}
	slices.Sort(secs)
	med := secs[len(secs)/2]
	const mb = 1 << 20
	b.ReportMetric(float64(n)/med, "blocks/s")
	b.ReportMetric(appendRate, "store-append-blocks/s")
	b.ReportMetric(float64(n)/med/appendRate, "sync/append")
	b.ReportMetric(float64(peak)/mb, "peak-RSS-MB")
	b.ReportMetric(float64(anon)/mb, "peak-anon-MB")
	b.ReportMetric(float64(file)/mb, "peak-file-MB")
	b.ReportMetric(float64(heap)/mb, "peak-goheap-MB")
	b.ReportMetric(float64(results[0].StoreBytes)/mb, "store-MB")
	b.ReportMetric(float64(results[0].IndexBytes)/mb, "index-MB")
	b.ReportMetric(float64(results[0].LiveHeap)/mb, "live-heap-MB")
	b.ReportMetric(float64(results[0].DiskWrites)/float64(n), "disk-bytes/block")
	b.Logf("sync of %d blocks: %.2f s median of %d (%.0f blocks/s); peak RSS (VmHWM) %.1f MB (sampled peaks: VmRSS %.1f, anon %.1f, file %.1f, Go heap %.1f); after: live Go heap %.1f MB, of it hash index %.1f MB; store %.1f MB; %.0f bytes written to disk per block; sync record %+v",
		n, med, len(secs), float64(n)/med, float64(peak)/mb, float64(results[0].PeakVmRSS)/mb, float64(anon)/mb, float64(file)/mb, float64(heap)/mb,
		float64(results[0].LiveHeap)/mb, float64(results[0].IndexBytes)/mb,
		float64(results[0].StoreBytes)/mb, float64(results[0].DiskWrites)/float64(n), results[0].SyncRecord)
}

// appendBatch is how many blocks benchAppendRate stores per AddBlocks
// call: about what one GetRange page of small blocks brings, as the syncer
// stores them.
const appendBatch = 8192

// benchAppendRate returns the rate, in blocks per second, at which a new
// fsynced store appends src's best chain in runs of appendBatch, counting
// only the AddBlocks calls: the store's own bound on a sync, measured in the
// same run as the sync it bounds.
func benchAppendRate(b *testing.B, src *storage.Store) float64 {
	b.Helper()
	dst, err := storage.Create(filepath.Join(b.TempDir(), "append"), src.Params())
	if err != nil {
		b.Fatal(err)
	}
	defer dst.Close()
	var (
		took time.Duration
		n    int
	)
	tip := src.Tip().Height
	for from := uint64(1); from <= tip; from += appendBatch {
		run := make([]chain.Block, 0, appendBatch)
		if err := src.ForEach(from, min(from+appendBatch-1, tip), func(blk *chain.Block) error {
			run = append(run, *blk)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := dst.AddBlocks(run); err != nil {
			b.Fatal(err)
		}
		took += time.Since(start)
		n += len(run)
	}
	return float64(n) / took.Seconds()
}

// incrementalNew is how many blocks BenchmarkSyncIncremental adds on top of
// the shared chain.
const incrementalNew = 10

// BenchmarkSyncIncremental measures the cost of syncing the last few blocks
// onto a long chain against a short one: two nodes on loopback share a
// chain of 1 000 blocks, or of 100 000, the server has incrementalNew more,
// and the other dials it. Time is from the dial to the last block stored
// (fsynced); bytes are every /jbc/chain/1.0.0 byte the syncing node sent
// and received (statuses included). The two lengths alternate, one of each
// per op, so that machine load hits both alike; the ratios (100 000 over
// 1 000) should be near 1.
func BenchmarkSyncIncremental(b *testing.B) {
	short, long := benchChainDir(b, 1_000), benchChainDir(b, 100_000)
	var tShort, tLong []float64
	var bShort, bLong, rShort, rLong float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, c := range []struct {
			dir        string
			times      *[]float64
			bytes, rec *float64
		}{{short, &tShort, &bShort, &rShort}, {long, &tLong, &bLong, &rLong}} {
			d, wire, rec := incrementalSync(b, c.dir, i)
			*c.times = append(*c.times, d.Seconds())
			*c.bytes += float64(wire)
			*c.rec += float64(rec)
		}
	}
	b.StopTimer()
	slices.Sort(tShort)
	slices.Sort(tLong)
	ms, ml := tShort[len(tShort)/2], tLong[len(tLong)/2]
	n := float64(b.N)
	b.ReportMetric(ms*1000, "ms-1k")
	b.ReportMetric(ml*1000, "ms-100k")
	b.ReportMetric(ml/ms, "time-ratio")
	b.ReportMetric(bShort/n, "bytes-1k")
	b.ReportMetric(bLong/n, "bytes-100k")
	b.ReportMetric(bLong/bShort, "bytes-ratio")
	b.ReportMetric(rShort/n, "page-bytes-1k")
	b.ReportMetric(rLong/n, "page-bytes-100k")
}

// incrementalSync copies the chain in base for two nodes, mines
// incrementalNew blocks on the server's copy, and times the other's sync
// from the dial. It returns the time, the /jbc/chain/1.0.0 bytes the
// syncing node moved, and the bytes its sync record counted (pages read).
func incrementalSync(b *testing.B, base string, round int) (time.Duration, int64, int) {
	b.StopTimer()
	srcDir, dstDir := copyStore(b, base), copyStore(b, base)
	ss, err := storage.Open(srcDir, nil, storage.WithNoSync())
	if err != nil {
		b.Fatal(err)
	}
	defer ss.Close()
	nodetest.Extend(b, ss, ss.Tip().Height, incrementalNew, "incremental "+strconv.Itoa(round))
	ds, err := storage.Open(dstDir, nil) // fsynced, as a real node's
	if err != nil {
		b.Fatal(err)
	}
	defer ds.Close()
	server := loopbackNode(b, ss, "")
	client := loopbackNode(b, ds, "")
	defer server.Close()
	defer client.Close()
	want := ss.Tip().Hash
	b.StartTimer()

	d := dialAndSync(b, client, server, want)
	b.StopTimer()
	var rec peering.SyncRecord
	nodetest.WaitFor(b, 10*time.Second, "the sync record", func() bool {
		pi, ok := client.peers.Get(server.ID())
		if ok && pi.LastSync != nil {
			rec = *pi.LastSync
		}
		return ok && pi.LastSync != nil
	})
	if rec.Blocks != incrementalNew {
		b.Fatalf("sync record %+v: want %d blocks", rec, incrementalNew)
	}
	// The bandwidth counter's totals are updated once a second.
	time.Sleep(1500 * time.Millisecond)
	st := client.metrics.bandwidth.GetBandwidthForProtocol(protocol.ID)
	b.StartTimer()
	return d, st.TotalIn + st.TotalOut, rec.Bytes
}

// Chain lengths of BenchmarkSyncReorg.
const (
	reorgOwn    = 10_000 // the syncing node's own chain
	reorgBranch = 20_000 // the server's heavier chain, forking at the genesis
)

// BenchmarkSyncReorg times a sync that reorganises: the syncing node has
// its own chain of reorgOwn blocks, the server a heavier one of reorgBranch
// forking at the genesis. The node holds the branch in memory, validated,
// until it outweighs its own chain (reorgOwn+1 blocks), stores it in the
// commit that makes it best, then extends it. The baseline is the same sync
// onto an empty store, where every page extends the best chain and is
// stored at once. The two alternate, one of each per op, so that machine
// load hits both alike; reorg-ratio is the reorg's median time over the
// baseline's. Time is from the dial to the server's tip stored (fsynced).
func BenchmarkSyncReorg(b *testing.B) {
	p := chain.TestNet()
	ss, err := storage.Open(copyStore(b, benchChainDir(b, reorgBranch)), nil, storage.WithNoSync())
	if err != nil {
		b.Fatal(err)
	}
	defer ss.Close()
	server := loopbackNode(b, ss, "")
	want := ss.Tip().Hash
	ownDir := b.TempDir()
	own, err := storage.Create(ownDir, p, storage.WithNoSync())
	if err != nil {
		b.Fatal(err)
	}
	nodetest.Extend(b, own, 0, reorgOwn, "own")
	if err := own.Close(); err != nil {
		b.Fatal(err)
	}

	var tBase, tReorg []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, c := range []struct {
			dir   string
			times *[]float64
		}{{"", &tBase}, {ownDir, &tReorg}} {
			b.StopTimer()
			var ds *storage.Store
			if c.dir == "" {
				ds, err = storage.Create(b.TempDir(), p) // fsynced, as a real node's
			} else {
				ds, err = storage.Open(copyStore(b, c.dir), nil)
			}
			if err != nil {
				b.Fatal(err)
			}
			client := loopbackNode(b, ds, "")
			b.StartTimer()
			d := dialAndSync(b, client, server, want)
			b.StopTimer()
			*c.times = append(*c.times, d.Seconds())
			if c.dir != "" && !client.store.Has(want) {
				b.Fatal("reorg did not store the server's tip")
			}
			client.Close()
			ds.Close()
			b.StartTimer()
		}
	}
	b.StopTimer()
	slices.Sort(tBase)
	slices.Sort(tReorg)
	mb, mr := tBase[len(tBase)/2], tReorg[len(tReorg)/2]
	b.ReportMetric(mb*1000, "ms-baseline")
	b.ReportMetric(mr*1000, "ms-reorg")
	b.ReportMetric(mr/mb, "reorg-ratio")
	b.ReportMetric(reorgBranch/mr, "blocks/s-reorg")
}
