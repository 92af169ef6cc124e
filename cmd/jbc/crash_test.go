package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// crashKills is how many times each crash test SIGKILLs the command.
const crashKills = 20

// buildJBC builds the jbc binary into a temporary directory, with its
// version set at build time, and checks that the version took.
func buildJBC(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "jbc")
	cmd := exec.Command(goBin, "build", "-ldflags", "-X main.version=v0.0.0-crashtest", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "jbc v0.0.0-crashtest ") {
		t.Fatalf("version of the built binary: %q, %v", out, err)
	}
	return bin
}

// child is a jbc process whose stdout is read line by line.
type child struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr bytes.Buffer
}

func startChild(t *testing.T, bin string, args ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(bin, args...), lines: make(chan string, 1<<16)}
	c.cmd.Stderr = &c.stderr
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	return c
}

// trigger says when to kill a child: after a line for which afterLine
// returns true, or at the moment at after the start, whichever comes first
// (a zero at: only on a line, or after a minute as a safety net).
type trigger struct {
	afterLine func(line string) bool
	at        time.Duration
}

// kill waits for the trigger (or for the process to end), then SIGKILLs
// the process, reads what it printed to the end and reaps it. It returns
// every line and whether the process was killed by the signal (rather than
// having exited first).
func (c *child) kill(t *testing.T, tr trigger) ([]string, bool) {
	t.Helper()
	var got []string
	if tr.at == 0 {
		tr.at = time.Minute
	}
	timer := time.NewTimer(tr.at)
	defer timer.Stop()
wait:
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				break wait
			}
			got = append(got, l)
			if tr.afterLine != nil && tr.afterLine(l) {
				break wait
			}
		case <-timer.C:
			break wait
		}
	}
	c.cmd.Process.Signal(syscall.SIGKILL)
	for l := range c.lines {
		got = append(got, l)
	}
	err := c.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return got, true
		}
	}
	if err != nil {
		t.Fatalf("jbc %v: %v\nstderr: %s", c.cmd.Args[1:], err, c.stderr.String())
	}
	return got, false
}

// reopen opens the store as a restarted node would, verifies the whole
// best chain and returns its tip.
func reopen(t *testing.T, dir string) chain.Entry {
	t.Helper()
	s, err := storage.Open(dir, nil)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	if err := s.Verify(nil); err != nil {
		t.Fatalf("verify after kill: %v", err)
	}
	return s.Tip()
}

func crashRand(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	return rand.New(rand.NewPCG(seed, seed>>1))
}

// TestCrashMine SIGKILLs "jbc mine" at random moments, most of them just
// after it reported a committed block, and checks after each kill that the
// store opens, verifies, and has as tip the last block mine printed or the
// one after it (committed, not yet printed).
func TestCrashMine(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and kills processes")
	}
	bin := buildJBC(t)
	rng := crashRand(t)
	d := t.TempDir()
	mustJBC(t, "--datadir", d, "init", "--difficulty", "1")
	last := reopen(t, d)
	var killed, midWork, unprinted int
	for i := 0; i < crashKills; i++ {
		c := startChild(t, bin, "--datadir", d, "--log-level", "error", "mine", "--blocks", "100000000", "--threads", "1")
		var tr trigger
		if i%3 != 2 {
			// Just after the k-th committed block, while the next is
			// being mined and committed.
			k, seen := 1+rng.IntN(15), 0
			pause := time.Duration(rng.IntN(8000)) * time.Microsecond
			tr.afterLine = func(string) bool {
				if seen++; seen >= k {
					time.Sleep(pause)
					return true
				}
				return false
			}
		} else {
			// At any moment, start-up included.
			tr.at = time.Duration(1+rng.IntN(300)) * time.Millisecond
		}
		lines, wasKilled := c.kill(t, tr)
		if !wasKilled {
			t.Fatalf("run %d: mine exited before the kill:\n%s", i, strings.Join(lines, "\n"))
		}
		killed++
		printed := last
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) < 3 || f[0] != "block" {
				t.Fatalf("run %d: unexpected line %q", i, l)
			}
			h, err1 := strconv.ParseUint(f[1], 10, 64)
			hash, err2 := chain.ParseHash(f[2])
			if err1 != nil || err2 != nil || h != printed.Height+1 {
				t.Fatalf("run %d: bad block line %q after height %d", i, l, printed.Height)
			}
			printed = chain.Entry{Height: h, Hash: hash}
		}
		if len(lines) > 0 {
			midWork++
		}
		tip := reopen(t, d)
		switch {
		case tip.Hash == printed.Hash:
		case tip.Height == printed.Height+1 && tip.Parent == printed.Hash:
			unprinted++
		default:
			t.Fatalf("run %d: tip %d %s after the kill; last printed %d %s", i, tip.Height, tip.Hash.Short(), printed.Height, printed.Hash.Short())
		}
		last = tip
	}
	t.Logf("%d kills, %d after blocks were committed in that run, %d with a committed block not yet printed; height %d", killed, midWork, unprinted, last.Height)
	if midWork < crashKills/2 {
		t.Fatalf("only %d of %d kills landed while mining", midWork, crashKills)
	}
}

// crashChain writes a Python chaindata directory of n blocks of a network
// of difficulty 0 and returns the blocks.
func crashChain(t *testing.T, dir string, n int) []chain.Block {
	t.Helper()
	g := chain.NewGenesis("crash test chain", 1500000000)
	blocks := []chain.Block{g}
	for i := 1; i < n; i++ {
		b := chain.Block{Index: uint64(i), Timestamp: g.Timestamp + int64(i), Data: fmt.Sprintf("block %d", i), PrevHash: blocks[i-1].Hash}
		b.Hash = b.ComputeHash()
		blocks = append(blocks, b)
	}
	for i := range blocks {
		data, err := storage.EncodePythonFile(&blocks[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, storage.PythonFileName(uint64(i))), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return blocks
}

// importTrigger returns when to kill an import: for two runs in three,
// just after a random one of its first half of batches is stored; for the
// rest, at a random moment of a run that takes about d. The pause after a
// batch is short beside what the remaining batches take.
func importTrigger(rng *rand.Rand, i, batches int, d time.Duration) trigger {
	if i%3 == 2 {
		return trigger{at: time.Duration(1 + rng.Int64N(int64(d)*9/10))}
	}
	k, seen := 1+rng.IntN(batches/2), 0
	pause := time.Duration(rng.Int64N(int64(d) / int64(4*batches)))
	return trigger{afterLine: func(l string) bool {
		if strings.HasPrefix(l, "stored through height ") {
			seen++
		}
		if seen >= k {
			time.Sleep(pause)
			return true
		}
		return false
	}}
}

// TestCrashImport SIGKILLs "jbc import" of a 12,000-block directory at
// random moments. Into a data directory holding the network, the tip after
// the kill must be the last batch import reported stored or the next one;
// into an empty one, there must be no chain or the whole chain.
func TestCrashImport(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and kills processes")
	}
	bin := buildJBC(t)
	rng := crashRand(t)
	const n = 12000
	batches := (n + storage.ImportBatch - 1) / storage.ImportBatch
	src := t.TempDir()
	blocks := crashChain(t, src, n)

	// The base: a data directory holding the first 1000 blocks.
	prefix := t.TempDir()
	for i := 0; i < 1000; i++ {
		name := storage.PythonFileName(uint64(i))
		if err := os.Link(filepath.Join(src, name), filepath.Join(prefix, name)); err != nil {
			t.Fatal(err)
		}
	}
	base := t.TempDir()
	mustJBC(t, "--datadir", base, "import", "--from", prefix, "--zeros", "0")
	baseDB, err := os.ReadFile(filepath.Join(base, storage.FileName))
	if err != nil {
		t.Fatal(err)
	}
	fromBase := func() string {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, storage.FileName), baseDB, 0o600); err != nil {
			t.Fatal(err)
		}
		return d
	}
	// A full run, timed, for the random kill moments.
	start := time.Now()
	c := startChild(t, bin, "--datadir", fromBase(), "--log-level", "error", "import", "--from", src)
	if lines, killed := c.kill(t, trigger{}); killed || !strings.Contains(strings.Join(lines, "\n"), "imported 12000 blocks") {
		t.Fatalf("uninterrupted import: killed %v\n%s", killed, strings.Join(lines, "\n"))
	}
	full := time.Since(start)
	t.Logf("an uninterrupted import takes %s", full)

	// next returns the height the batch after the one ending at h ends at.
	next := func(h uint64) uint64 { return min(h-h%storage.ImportBatch+storage.ImportBatch, n-1) }
	// A run that ends before its kill (the kill is sent after its trigger
	// line is read, and a loaded machine can read late) is checked too,
	// but does not count: runs go on until crashKills kills.
	midWork, kills, finished := 0, 0, 0
	for i := 0; kills < crashKills; i++ {
		if i >= 3*crashKills {
			t.Fatalf("only %d of %d runs were killed before they finished", kills, i)
		}
		d := fromBase()
		c := startChild(t, bin, "--datadir", d, "--log-level", "error", "import", "--from", src)
		lines, killed := c.kill(t, importTrigger(rng, i, batches, full))
		if killed {
			kills++
		} else {
			finished++
		}
		stored, validated := uint64(999), false
		for _, l := range lines {
			if strings.HasPrefix(l, "validated ") {
				validated = true
			}
			if h, ok := strings.CutPrefix(l, "stored through height "); ok {
				if stored, err = strconv.ParseUint(h, 10, 64); err != nil {
					t.Fatal(err)
				}
			}
		}
		if validated && killed {
			midWork++
		}
		tip := reopen(t, d)
		if tip.Height != stored && tip.Height != next(stored) {
			t.Fatalf("run %d: tip at %d after the kill; last reported stored %d", i, tip.Height, stored)
		}
		if tip.Hash != blocks[tip.Height].Hash {
			t.Fatalf("run %d: tip %s is not the imported block %d", i, tip.Hash.Short(), tip.Height)
		}
		// Importing again completes it.
		if i == 0 && killed {
			mustJBC(t, "--datadir", d, "import", "--from", src)
			if tip := reopen(t, d); tip.Height != n-1 {
				t.Fatalf("import after the kill stopped at %d", tip.Height)
			}
		}
	}
	t.Logf("existing network: %d kills, %d after the chain was validated; %d runs finished first", kills, midWork, finished)
	if midWork < crashKills/2 {
		t.Fatalf("only %d of %d kills landed while storing", midWork, crashKills)
	}

	// Into an empty data directory the chain appears whole or not at all.
	// That import is faster (it syncs once, at the end): time it too.
	start = time.Now()
	c = startChild(t, bin, "--datadir", filepath.Join(t.TempDir(), "new"), "--log-level", "error", "import", "--from", src, "--zeros", "0")
	if lines, killed := c.kill(t, trigger{}); killed || !strings.Contains(strings.Join(lines, "\n"), "imported 12000 blocks") {
		t.Fatalf("uninterrupted import: killed %v\n%s", killed, strings.Join(lines, "\n"))
	}
	full = time.Since(start)
	t.Logf("an uninterrupted import into an empty directory takes %s", full)
	var none, whole int
	kills, finished = 0, 0
	for i := 0; kills < crashKills/2; i++ {
		if i >= 3*crashKills {
			t.Fatalf("only %d of %d runs were killed before they finished", kills, i)
		}
		d := filepath.Join(t.TempDir(), "new")
		c := startChild(t, bin, "--datadir", d, "--log-level", "error", "import", "--from", src, "--zeros", "0")
		if _, killed := c.kill(t, importTrigger(rng, i, batches, full)); killed {
			kills++
		} else {
			finished++
		}
		if !storage.Exists(d) {
			none++
		} else {
			if tip := reopen(t, d); tip.Height != n-1 {
				t.Fatalf("run %d: a partial chain (tip %d) after the kill", i, tip.Height)
			}
			whole++
		}
		if i == 0 {
			mustJBC(t, "--datadir", d, "import", "--from", src, "--zeros", "0")
			ents, _ := os.ReadDir(d)
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".import-") {
					t.Fatalf("%s left after a completed import", e.Name())
				}
			}
		}
	}
	t.Logf("new network: %d kills; no chain %d times, the whole chain %d times; %d runs finished first", kills, none, whole, finished)
}
