package node

// The syncing node of BenchmarkSync, run as a child process so that its
// memory is measured alone (see bench_test.go).

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/peering"
	"github.com/jbc-project/jbc/storage"
)

// Environment of the child process of BenchmarkSync.
const (
	// syncChildEnv holds the child's job (syncChildJob as JSON); the child
	// test runs only when it is set.
	syncChildEnv = "JBC_BENCH_SYNC_CHILD"
	// syncChildPrefix starts the child's result line on stdout.
	syncChildPrefix = "JBCBENCH-SYNC "
	// syncTimeout bounds one benchmark sync: far beyond any healthy rate.
	syncTimeout = 20 * time.Minute
	// syncChildArgsEnv, if set, holds extra arguments for the child test
	// binary, space-separated: -test.cpuprofile=FILE to profile the
	// syncing node alone.
	syncChildArgsEnv = "JBC_BENCH_SYNC_CHILD_ARGS"
	// memSampleEvery is how often the child samples its memory.
	memSampleEvery = 20 * time.Millisecond
)

// syncChildJob tells the child what to sync from whom, and where to.
type syncChildJob struct {
	Dir    string // empty data directory for the child's store
	Peer   string // the serving node's full multiaddr
	Tip    string // the hash the sync must end at
	Height uint64
}

// syncChildResult is what the child reports.
type syncChildResult struct {
	Seconds      float64 // from dialling the peer to the tip stored
	Blocks       uint64
	PeakRSS      uint64 // VmHWM: peak resident set, bytes
	PeakVmRSS    uint64 // peak of VmRSS seen by sampling
	PeakRSSAnon  uint64 // peak of RssAnon (heap, stacks) seen by sampling
	PeakRSSFile  uint64 // peak of RssFile (mapped file pages: the bbolt file)
	PeakGoHeap   uint64 // peak of the Go heap's live and unswept objects
	SyncRecord   peering.SyncRecord
	GoMaxProcs   int
	StoreBytes   int64
	SampledTimes int
	// DiskWrites is the bytes the child caused to be written to disk
	// during the sync (/proc/self/io write_bytes): the store's write
	// amplification.
	DiskWrites uint64
	// IndexBytes is the store's in-memory hash index after the sync, and
	// LiveHeap the Go heap's live bytes then (after a GC), index included.
	IndexBytes uint64
	LiveHeap   uint64
}

// TestSyncBenchChild is the syncing node of BenchmarkSync, run in a child
// process so that its peak memory is its own. It is skipped unless the
// benchmark set syncChildEnv.
func TestSyncBenchChild(t *testing.T) {
	raw := os.Getenv(syncChildEnv)
	if raw == "" {
		t.Skip("child process of BenchmarkSync; runs only when " + syncChildEnv + " is set")
	}
	var job syncChildJob
	if err := json.Unmarshal([]byte(raw), &job); err != nil {
		t.Fatal(err)
	}
	want, err := chain.ParseHash(job.Tip)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := ma.NewMultiaddr(job.Peer)
	if err != nil {
		t.Fatal(err)
	}
	pi, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	// A real store: every commit fsynced.
	s, err := storage.Create(job.Dir, chain.TestNet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := loopbackNode(t, s, job.Dir)

	var res syncChildResult
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(memSampleEvery)
		defer t.Stop()
		for {
			st := procStatus()
			res.PeakVmRSS = max(res.PeakVmRSS, st["VmRSS"])
			res.PeakRSSAnon = max(res.PeakRSSAnon, st["RssAnon"])
			res.PeakRSSFile = max(res.PeakRSSFile, st["RssFile"])
			metrics.Read(sample)
			res.PeakGoHeap = max(res.PeakGoHeap, sample[0].Value.Uint64())
			res.SampledTimes++
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()

	io0 := procIO()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err = n.Host().Connect(ctx, *pi)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	done, err := waitTip(n, want, syncTimeout)
	if err != nil {
		t.Fatal(err)
	}
	res.DiskWrites = procIO()["write_bytes"] - io0["write_bytes"]
	close(stop)
	<-sampled
	res.Seconds = done.Sub(start).Seconds()
	res.Blocks = job.Height
	res.PeakRSS = procStatus()["VmHWM"]
	res.GoMaxProcs = runtime.GOMAXPROCS(0)
	res.IndexBytes = uint64(s.IndexBytes())
	runtime.GC()
	runtime.GC() // and sync.Pools' victim caches (bbolt's page buffers)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.LiveHeap = ms.HeapAlloc
	if info, ok := n.peers.Get(pi.ID); ok && info.LastSync != nil {
		res.SyncRecord = *info.LastSync
	}
	if fi, err := os.Stat(s.Path()); err == nil {
		res.StoreBytes = fi.Size()
	}
	out, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%s%s\n", syncChildPrefix, out)
}

// procIO returns the counters of /proc/self/io (write_bytes, ...), or an
// empty map where there are none.
func procIO() map[string]uint64 {
	out := map[string]uint64{}
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); ok && err == nil {
			out[k] = n
		}
	}
	return out
}

// procStatus returns the byte-valued fields of /proc/self/status (VmHWM,
// VmRSS, RssAnon, RssFile, ...), or an empty map where there is none.
func procStatus() map[string]uint64 {
	out := map[string]uint64{}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(v)
		if !ok || len(fields) != 2 || fields[1] != "kB" {
			continue
		}
		if kb, err := strconv.ParseUint(fields[0], 10, 64); err == nil {
			out[k] = kb << 10
		}
	}
	return out
}
