package chain_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jbc-project/jbc/chain"
)

// scalingWindow is how long each of the three measurements of one
// BenchmarkMinerScaling op runs: long enough that starting the goroutines
// and the last partial batch are noise, short enough that the three
// alternate often and share the machine's load alike.
const scalingWindow = 300 * time.Millisecond

// impossibleBits is a difficulty no hash meets in practice, so that Solve
// searches until its deadline.
const impossibleBits = 255

// BenchmarkMinerScaling measures the miner's hash rate through its public
// API, Miner.Solve under a deadline with an impossible target, on one
// goroutine and on one per CPU (GOMAXPROCS), and the rate of a plain loop
// of sha256.Sum256 over a header of the same length (the nonce's digits
// rewritten in place each time) on one goroutine. The three alternate
// within each op so that a change of machine load hits all of them.
//
// Reported: hashes/s on one core and on all cores, the scaling (all-core
// rate over one-core rate; linear is the number of CPUs), the efficiency
// (scaling over the CPUs), and vs-plain (miner over plain, one core each).
// Targets: vs-plain at least 1.0, efficiency near 1. On a machine other
// work is loading, the all-core run cannot have all cores: cores-obtained
// is the process CPU time over the wall time of the runs, and
// per-cpu-efficiency compares hashes per CPU-second of the two runs, which
// is near 1 when the miner itself scales.
func BenchmarkMinerScaling(b *testing.B) {
	p := chain.TestNet()
	tmpl := chain.Block{Index: 1, Timestamp: p.Genesis.Timestamp + 1, Data: "benchmark block data", PrevHash: p.Genesis.Hash}
	cpus := runtime.GOMAXPROCS(0)
	var one, all solveStats
	var plainRateSum float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		one.add(timedSolve(b, tmpl, 1))
		all.add(timedSolve(b, tmpl, cpus))
		plainRateSum += plainRate(tmpl)
	}
	b.StopTimer()
	oneRate, allRate, plainR := one.rate(), all.rate(), plainRateSum/float64(b.N)
	b.ReportMetric(oneRate, "hashes/s-1core")
	b.ReportMetric(allRate, "hashes/s-allcores")
	b.ReportMetric(plainR, "plain-hashes/s-1core")
	b.ReportMetric(allRate/oneRate, "scaling")
	b.ReportMetric(allRate/oneRate/float64(cpus), "efficiency")
	b.ReportMetric(oneRate/plainR, "vs-plain")
	b.ReportMetric(float64(cpus), "cpus")
	b.ReportMetric(one.cpu.Seconds()/one.wall.Seconds(), "cores-obtained-1")
	b.ReportMetric(all.cpu.Seconds()/all.wall.Seconds(), "cores-obtained-all")
	b.ReportMetric(all.perCPU()/one.perCPU(), "per-cpu-efficiency")
}

// solveStats sums the attempts, wall time and process CPU time of Solve runs.
type solveStats struct {
	attempts  uint64
	wall, cpu time.Duration
}

func (s *solveStats) add(o solveStats) {
	s.attempts += o.attempts
	s.wall += o.wall
	s.cpu += o.cpu
}

func (s solveStats) rate() float64   { return float64(s.attempts) / s.wall.Seconds() }
func (s solveStats) perCPU() float64 { return float64(s.attempts) / s.cpu.Seconds() }

// timedSolve runs Solve on threads goroutines for scalingWindow.
func timedSolve(b *testing.B, tmpl chain.Block, threads int) solveStats {
	m := &chain.Miner{Threads: threads}
	ctx, cancel := context.WithTimeout(context.Background(), scalingWindow)
	defer cancel()
	cpu0 := processCPU()
	start := time.Now()
	_, err := m.Solve(ctx, tmpl, impossibleBits)
	wall := time.Since(start)
	cpu := processCPU() - cpu0
	if !errors.Is(err, context.DeadlineExceeded) {
		b.Fatalf("Solve with an impossible target: %v", err)
	}
	return solveStats{attempts: m.Attempts(), wall: wall, cpu: cpu}
}

// processCPU returns the CPU time (user and system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// plainRate hashes tmpl's header with successive nonces for scalingWindow
// and returns the hashes per second. The header up to the nonce is built
// once; each hash rewrites the nonce's digits and hashes the whole header.
func plainRate(tmpl chain.Block) float64 {
	buf := tmpl.AppendHeader(nil)
	prefix := len(buf) - len(strconv.AppendUint(nil, tmpl.Nonce, 10))
	var (
		sink  byte
		n     uint64
		nonce = tmpl.Nonce
	)
	start := time.Now()
	deadline := start.Add(scalingWindow)
	for {
		for range 1 << 12 {
			buf = strconv.AppendUint(buf[:prefix], nonce, 10)
			s := sha256.Sum256(buf)
			sink ^= s[0]
			nonce++
		}
		n += 1 << 12
		if time.Now().After(deadline) {
			break
		}
	}
	scalingSink ^= sink
	return float64(n) / time.Since(start).Seconds()
}

var scalingSink byte
