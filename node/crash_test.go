package node

// Crash tests at node level. A node syncing a long chain, and a node
// reorganising onto a heavier branch, run in a child process (this test
// binary, re-executed in child mode) with a real, fsynced store, syncing
// from a source node in the parent over loopback. The parent SIGKILLs the
// child at random moments while it works, reopens its store after each
// kill and checks that:
//
//   - the store opens and Verify passes;
//   - the blocks stored of the branch being synced are exactly a prefix of
//     it (Count says nothing else was stored);
//   - the tip is a committed one: the end of that prefix when it has more
//     work than the child's own chain, else the child's own tip, and the
//     best chain is the source's (or the child's own) block for block;
//   - the kill landed mid-work: the child had stored part of the branch
//     since its start and not all of it (most kills must);
//
// and finally lets a child finish the sync. Everything listens on
// 127.0.0.1 only.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/protocol"
	"github.com/jbc-project/jbc/storage"
)

const (
	// nodeCrashChildEnv holds the child's job (nodeCrashJob as JSON); a
	// crash test acts as the child only when it is set.
	nodeCrashChildEnv = "JBC_NODE_CRASH_CHILD"
	// nodeCrashLine starts every line the child reports on stdout.
	nodeCrashLine = "JBC-NODE-CRASH "
	// nodeCrashKills is how many times each test kills a child.
	nodeCrashKills = 20
	// nodeCrashPoll is how often the child looks at its store to report
	// progress: the resolution of the kill moments.
	nodeCrashPoll = 2 * time.Millisecond
	// nodeCrashMaxPause bounds the random pause between the progress
	// report that triggers a kill and the kill: a few commits' time, so
	// that kills land anywhere in the work, commits included.
	nodeCrashMaxPause = 20 * time.Millisecond
	// nodeCrashHoldPause spreads the timed kills of a reorganising child:
	// the i-th of n lands a random moment in the i-th n-th of
	// (0, nodeCrashHoldPause] after the child reports its start (which it
	// does late, once its node runs). Holding the 12 001 blocks before the
	// switch (a few spans fetched by GetRange at once, and validation)
	// takes a few tens of ms, the switch's commit about as long, so the
	// kills walk from the hold through the switch's commit to after it;
	// the whole 50 000-block sync, unpaced since issue 15, took 300 to
	// 400 ms on a loaded 2-core machine, so the last kill must land before
	// that.
	nodeCrashHoldPause = 150 * time.Millisecond
	// nodeCrashChildLifetime ends a child nobody killed.
	nodeCrashChildLifetime = time.Minute
	// nodeCrashTail is the end of a branch no kill threshold falls in:
	// a child killed after its threshold may store one more commit of up
	// to eight pages, plus what it syncs during the pause, and must still
	// have work left when the next child starts. Three such commits.
	nodeCrashTail = 3 * 8 * protocol.MaxBlocksPerPage
	// nodeCrashStoreDir is the store's directory inside the child's data
	// directory, which holds its identity key.
	nodeCrashStoreDir = "chain"
)

// nodeCrashJob tells the child what to sync, from whom and where to.
type nodeCrashJob struct {
	Dir     string // data directory: the key, and the store in nodeCrashStoreDir
	Peer    string // the source node's full multiaddr
	Targets string // file of the synced branch's hashes, 32 bytes each, oldest first
}

// nodeCrashScenario describes one crash test: the chain the child starts
// with and the one the source serves.
type nodeCrashScenario struct {
	// shared blocks after the genesis are on both chains.
	shared int
	// own blocks after shared are the child's alone (its best chain at
	// start); none for an initial sync.
	own int
	// branch blocks after shared are the source's: what the child syncs.
	branch int
}

// TestNodeCrashDuringSync kills a node syncing a 40 000-block chain from
// an empty store 20 times, at random moments of the sync, and checks that
// every restart finds a valid chain whose tip is a block of the source's
// chain that was committed, and that the sync then finishes.
func TestNodeCrashDuringSync(t *testing.T) {
	if job := os.Getenv(nodeCrashChildEnv); job != "" {
		nodeCrashChild(t, job)
		return
	}
	if testing.Short() {
		t.Skip("kills a syncing child process 20 times")
	}
	runNodeCrash(t, "^TestNodeCrashDuringSync$", nodeCrashScenario{branch: 40_000})
}

// TestNodeCrashDuringReorg kills, 20 times, a node whose own 12 000-block
// branch is being replaced by a source's heavier 50 000-block branch from
// a common block at height 500: while the new branch is held in memory
// (nothing of it may be stored until it outweighs the old one), as the
// best chain switches to it (one transaction storing 12 001 blocks and
// rewriting 12 000 heights), and as it is extended. Every restart must find
// the old best chain or a committed prefix of the new one, never a mix.
func TestNodeCrashDuringReorg(t *testing.T) {
	if job := os.Getenv(nodeCrashChildEnv); job != "" {
		nodeCrashChild(t, job)
		return
	}
	if testing.Short() {
		t.Skip("kills a reorganising child process 20 times")
	}
	runNodeCrash(t, "^TestNodeCrashDuringReorg$", nodeCrashScenario{shared: 500, own: 12_000, branch: 50_000})
}

// runNodeCrash runs scenario sc: sets up the source and the child's store,
// kills nodeCrashKills children, then lets one finish.
func runNodeCrash(t *testing.T, run string, sc nodeCrashScenario) {
	start := time.Now()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("JBC_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("JBC_CRASH_SEED: %v", err)
		}
	}
	t.Logf("seed %d (set JBC_CRASH_SEED to repeat the kill moments)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	// The chains: the source's is genesis, shared, branch; the child's
	// own is genesis, shared, own.
	p := chain.TestNet()
	src := nodetest.NewStore(t, p)
	shared := nodetest.Extend(t, src, 0, sc.shared, "shared")
	branch := nodetest.Extend(t, src, uint64(sc.shared), sc.branch, "source")
	dir := t.TempDir()
	cs, err := storage.Create(filepath.Join(dir, nodeCrashStoreDir), p, storage.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	var own []chain.Block
	if sc.shared > 0 {
		if _, err := cs.AddBlocks(shared); err != nil {
			t.Fatal(err)
		}
	}
	if sc.own > 0 {
		own = nodetest.Extend(t, cs, uint64(sc.shared), sc.own, "own")
	}
	cs.Close()
	srcChain := chainHashes(p, shared, branch)
	ownChain := chainHashes(p, shared, own)
	branchChain := srcChain[1+sc.shared:]
	targets := filepath.Join(t.TempDir(), "targets")
	var buf bytes.Buffer
	for _, h := range branchChain {
		buf.Write(h[:])
	}
	if err := os.WriteFile(targets, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	source := hostileNode(t, src)
	job, err := json.Marshal(nodeCrashJob{Dir: dir, Peer: source.Addrs()[0].String(), Targets: targets})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("set up in %v: child at height %d, source at %d", time.Since(start).Round(time.Millisecond), len(ownChain)-1, len(srcChain)-1)

	// check reopens the child's store and returns how many blocks of the
	// branch it holds, after checking the invariants.
	base := 1 + sc.shared + sc.own // blocks stored before any sync
	check := func(what string) int {
		t.Helper()
		s, err := storage.Open(filepath.Join(dir, nodeCrashStoreDir), nil)
		if err != nil {
			t.Fatalf("%s: open: %v", what, err)
		}
		defer s.Close()
		if err := s.Verify(nil); err != nil {
			t.Fatalf("%s: verify: %v", what, err)
		}
		k := storedPrefix(s, branchChain)
		if n, err := s.Count(); err != nil || n != base+k {
			t.Fatalf("%s: %d blocks stored (%v), want %d: the old ones and the first %d of the branch", what, n, err, base+k, k)
		}
		// Fixed difficulty: more blocks is more work, and on equal work
		// the old chain stays.
		want := ownChain
		if sc.shared+k > len(ownChain)-1 {
			want = srcChain[:1+sc.shared+k]
		}
		tip := s.Tip()
		if tip.Height != uint64(len(want)-1) || tip.Hash != want[len(want)-1] {
			t.Fatalf("%s: tip %s at %d; with %d branch blocks stored the committed tip is %s at %d",
				what, tip.Hash.Short(), tip.Height, k, want[len(want)-1].Short(), len(want)-1)
		}
		h := 0
		err = s.ForEach(0, tip.Height, func(b *chain.Block) error {
			if b.Hash != want[h] {
				return fmt.Errorf("best chain at %d is %s, want %s", h, b.Hash.Short(), want[h].Short())
			}
			h++
			return nil
		})
		if err != nil || h != len(want) {
			t.Fatalf("%s: best chain: %v (%d blocks compared)", what, err, h)
		}
		return k
	}

	// Kill moments. In a reorg the child holds the new branch in memory
	// until it outweighs the child's own chain, then stores it in one
	// commit that makes it best (rewriting sc.own heights): nothing of it
	// is stored before. So a fifth of the kills land at random times after
	// the child starts, while it holds the branch or commits the switch,
	// and the rest (all of them in an initial sync) once the child has
	// stored a random point of the branch, in order, short of its tail so
	// that every child has work left.
	timed, lo := 0, 1
	if sc.own > 0 {
		timed, lo = nodeCrashKills/5, sc.own+1
	}
	thresholds := make([]int, nodeCrashKills-timed)
	for i := range thresholds {
		thresholds[i] = lo + rng.IntN(sc.branch-nodeCrashTail-lo)
	}
	sort.Ints(thresholds)

	var midWork, held, switched int
	var landed []string
	prev := check("before the first child")
	for i := 0; i < nodeCrashKills; i++ {
		c := startCrashChild(t, run, job)
		if i < timed {
			// Kill a random moment of the i-th slice of the pause after the
			// child reports its start.
			if c.waitProgress(t, 0) {
				t.Fatalf("kill %d: the child finished the sync before the kill", i+1)
			}
			slice := nodeCrashHoldPause / time.Duration(timed)
			time.Sleep(time.Duration(i)*slice + time.Duration(rng.Int64N(int64(slice))))
		} else {
			// Kill when the child has stored the threshold's blocks, after
			// a random pause: during the next fetch, validation or commit.
			if c.waitProgress(t, max(thresholds[i-timed], prev+1)) {
				t.Fatalf("kill %d: the child finished the sync before the kill", i+1)
			}
			time.Sleep(time.Duration(rng.Int64N(int64(nodeCrashMaxPause))))
		}
		if !c.killNow(t) {
			t.Fatalf("kill %d: the child finished the sync before the kill", i+1)
		}
		k := check(fmt.Sprintf("kill %d", i+1))
		if k > 0 && k <= sc.own {
			// A prefix of the branch lighter than the child's own chain.
			t.Fatalf("kill %d: %d blocks of the branch stored, less work than the child's own %d: a held branch was stored before it outweighed the chain", i+1, k, sc.own)
		}
		if k > prev && k < sc.branch {
			midWork++
		}
		if sc.own > 0 && prev == 0 && k == 0 {
			held++ // killed before the switch: nothing of the branch stored
		}
		if sc.own > 0 && prev <= sc.own && k > sc.own {
			switched++ // the best chain switched during this child's run
		}
		landed = append(landed, fmt.Sprintf("%d->%d", prev, k))
		prev = k
	}
	t.Logf("kills (branch blocks stored before->after): %s", strings.Join(landed, " "))

	// The last child finishes the sync.
	c := startCrashChild(t, run, job)
	finishStart := time.Now()
	if !c.waitProgress(t, sc.branch+1) {
		t.Fatalf("the last child did not finish: %s", c.stderr.String())
	}
	if err := c.wait(); err != nil {
		t.Fatalf("the last child: %v\n%s", err, c.stderr.String())
	}
	if k := check("after the sync finished"); k != sc.branch {
		t.Fatalf("after the sync finished, %d of %d branch blocks stored", k, sc.branch)
	}
	t.Logf("%d kills: %d mid-work, %d while the branch was held (none of it stored), %d runs across the switch; last run finished in %v; total %v",
		nodeCrashKills, midWork, held, switched, time.Since(finishStart).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	// The kills must have hit the work, not the start-up or an idle node.
	if midWork+held < nodeCrashKills*3/4 {
		t.Fatalf("only %d of %d kills landed mid-sync", midWork+held, nodeCrashKills)
	}
	if sc.own > 0 && (held == 0 || switched == 0) {
		t.Fatalf("kills while the branch was held: %d, runs across the switch: %d; want some of each", held, switched)
	}
}

// chainHashes returns the hashes of p's genesis and the blocks of runs, in
// order: a best chain by height.
func chainHashes(p *chain.Params, runs ...[]chain.Block) []chain.Hash {
	out := []chain.Hash{p.ID()}
	for _, r := range runs {
		for _, b := range r {
			out = append(out, b.Hash)
		}
	}
	return out
}

// storedPrefix returns how many of branch's blocks, oldest first, s holds:
// sync stores them in order, so the ones held are a prefix.
func storedPrefix(s *storage.Store, branch []chain.Hash) int {
	return sort.Search(len(branch), func(i int) bool { return !s.Has(branch[i]) })
}

// crashChild is a running child node.
type crashChild struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr bytes.Buffer
	exited chan struct{}
	err    error
}

func startCrashChild(t *testing.T, run string, job []byte) *crashChild {
	t.Helper()
	c := &crashChild{lines: make(chan string, 1<<12), exited: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "-test.run="+run)
	c.cmd.Env = append(os.Environ(), nodeCrashChildEnv+"="+string(job))
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
			if l, ok := strings.CutPrefix(sc.Text(), nodeCrashLine); ok {
				c.lines <- l
			}
		}
		close(c.lines)
	}()
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
	})
	return c
}

// waitProgress waits until the child reports at least k branch blocks
// stored, or reports the sync done; it returns whether it did the latter.
func (c *crashChild) waitProgress(t *testing.T, k int) bool {
	t.Helper()
	timeout := time.After(nodeCrashChildLifetime)
	got := 0
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				c.cmd.Wait()
				t.Fatalf("child ended at %d blocks before reporting %d: %v\n%s", got, k, c.cmd.ProcessState, c.stderr.String())
			}
			word, rest, _ := strings.Cut(l, " ")
			switch word {
			case "progress":
				n, err := strconv.Atoi(rest)
				if err != nil {
					t.Fatalf("child line %q", l)
				}
				if got = n; got >= k {
					return false
				}
			case "done":
				return true
			default:
				t.Fatalf("child line %q", l)
			}
		case <-timeout:
			t.Fatalf("child reported %d blocks in %v, waiting for %d\n%s", got, nodeCrashChildLifetime, k, c.stderr.String())
		}
	}
}

// killNow SIGKILLs the child and reaps it. It returns false if the child
// had exited by itself, successfully, before the signal.
func (c *crashChild) killNow(t *testing.T) bool {
	t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	for range c.lines {
	}
	err := c.cmd.Wait()
	if err == nil {
		return false
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	t.Fatalf("child failed: %v\n%s", err, c.stderr.String())
	return false
}

// wait waits for the child to exit by itself.
func (c *crashChild) wait() error {
	for range c.lines {
	}
	return c.cmd.Wait()
}

// nodeCrashChild is the child's side: open the store (fsynced), start a
// node that dials the source, and report, on every change, how many
// branch blocks the store holds; when it holds them all and they are the
// best chain, say "done", shut down cleanly and exit.
func nodeCrashChild(t *testing.T, raw string) {
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "node crash child: "+format+"\n", args...)
		os.Exit(2)
	}
	var job nodeCrashJob
	if err := json.Unmarshal([]byte(raw), &job); err != nil {
		fail("job: %v", err)
	}
	data, err := os.ReadFile(job.Targets)
	if err != nil || len(data)%chain.HashSize != 0 || len(data) == 0 {
		fail("targets: %v (%d bytes)", err, len(data))
	}
	branch := make([]chain.Hash, len(data)/chain.HashSize)
	for i := range branch {
		branch[i] = chain.Hash(data[i*chain.HashSize:])
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := storage.Open(filepath.Join(job.Dir, nodeCrashStoreDir), nil, storage.WithLogger(log))
	if err != nil {
		fail("open: %v", err)
	}
	n, err := New(Config{Store: s, DataDir: job.Dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Peers: []string{job.Peer}, Logger: log})
	if err != nil {
		fail("node: %v", err)
	}
	if err := n.Start(t.Context()); err != nil {
		fail("start: %v", err)
	}
	last := -1
	stop := time.Now().Add(nodeCrashChildLifetime)
	for time.Now().Before(stop) {
		k := storedPrefix(s, branch)
		if k != last {
			fmt.Printf("%sprogress %d\n", nodeCrashLine, k)
			last = k
		}
		if k == len(branch) && s.Tip().Hash == branch[k-1] {
			fmt.Printf("%sdone\n", nodeCrashLine)
			n.Close()
			if err := s.Close(); err != nil {
				fail("close: %v", err)
			}
			os.Exit(0)
		}
		time.Sleep(nodeCrashPoll)
	}
	fail("not killed and not done within %v: at %d of %d", nodeCrashChildLifetime, last, len(branch))
}
