package storage_test

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// The crash test re-runs the test binary as a child that reorganises a
// store over and over, and kills it at random moments.
const (
	// crashChildEnv names the store directory in the child's environment;
	// its presence is what makes TestCrashDuringReorg act as the child.
	crashChildEnv = "JBC_STORAGE_CRASH_CHILD"
	// crashKills is how many times the child is killed.
	crashKills = 24
	// crashBase is the height of the chain the first child starts from,
	// enough for reorgs of crashMaxDepth at once.
	crashBase = 500
	// crashMaxDepth bounds the depth of the child's reorgs.
	crashMaxDepth = 400
	// crashMaxWait bounds the random wait before a kill, counted from the
	// child's first announced AddBlocks: several rounds of work.
	crashMaxWait = 250 * time.Millisecond
	// crashChildLifetime ends a child the parent failed to kill.
	crashChildLifetime = time.Minute
	// journalName is the file in which the child records, fsynced, the
	// tip it is about to commit ("about") and has committed ("done").
	journalName = "journal"
)

// TestCrashDuringReorg checks that a process killed at any moment leaves
// the store holding the old best chain or the new one: Open succeeds,
// Verify passes, and the tip is the last one the child committed or the
// one it was committing, with the best chain exactly that tip's branch.
func TestCrashDuringReorg(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("kills a child process many times; several seconds")
	}
	dir := t.TempDir()
	s, err := storage.Create(dir, chain.TestNet(), storage.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	mustAdd(t, s, mine(t, s, s.Tip().Hash, crashBase, "base"))
	tip := s.Tip().Hash
	s.Close()
	journal := filepath.Join(dir, journalName)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	var inFlight, landed int
	start := time.Now()
	for kill := 1; kill <= crashKills; kill++ {
		// The journal starts from the tip the parent saw.
		line := []byte("done " + tip.String() + "\n")
		if err := os.WriteFile(journal, line, 0o600); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDuringReorg$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()

		// Wait for the child's first announcement, then a random moment.
		deadline := time.Now().Add(30 * time.Second)
		for {
			if fi, err := os.Stat(journal); err == nil && fi.Size() > int64(len(line)) {
				break
			}
			select {
			case err := <-exited:
				t.Fatalf("kill %d: child exited before working (%v):\n%s", kill, err, out.Bytes())
			case <-time.After(time.Millisecond):
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("kill %d: child announced nothing in 30 s:\n%s", kill, out.Bytes())
			}
		}
		time.Sleep(time.Duration(rng.Int64N(int64(crashMaxWait))))
		if err := cmd.Process.Kill(); err != nil {
			t.Fatalf("kill %d: %v", kill, err)
		}
		if err := <-exited; cmd.ProcessState.Exited() {
			t.Fatalf("kill %d: child exited by itself before the kill (%v):\n%s", kill, err, out.Bytes())
		}

		committed, next := readJournal(t, journal)
		if !next.IsZero() {
			inFlight++
		}
		s, err := storage.Open(dir, nil, storage.WithClock(clock))
		if err != nil {
			t.Fatalf("kill %d: Open after the kill: %v", kill, err)
		}
		got := s.Tip().Hash
		switch {
		case got == committed:
		case got == next && !next.IsZero():
			landed++ // committed, killed before it could say so
		default:
			s.Close()
			t.Fatalf("kill %d: tip %s is neither the committed %s nor the next %s", kill, got.Short(), committed.Short(), next.Short())
		}
		if err := s.Verify(nil); err != nil {
			s.Close()
			t.Fatalf("kill %d: Verify: %v", kill, err)
		}
		wantTipBranch(t, s)
		tip = got
		s.Close()
	}
	t.Logf("%d kills in %v: %d during an announced AddBlocks, %d of those after its commit; final height %d",
		crashKills, time.Since(start).Round(time.Millisecond), inFlight, landed, mustHeight(t, dir))
	// The kills must have hit the work, not the gaps between it.
	if inFlight < crashKills/3 {
		t.Fatalf("only %d of %d kills landed during an AddBlocks", inFlight, crashKills)
	}
}

func mustHeight(t *testing.T, dir string) uint64 {
	t.Helper()
	s := reopen(t, dir)
	defer s.Close()
	return s.Tip().Height
}

// readJournal returns the last committed tip in the journal and, if the
// child announced a commit after it, the tip being committed. A line cut
// short by the kill is ignored.
func readJournal(t *testing.T, path string) (committed, next chain.Hash) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		word, hex, ok := strings.Cut(sc.Text(), " ")
		h, err := chain.ParseHash(hex)
		if !ok || err != nil {
			t.Fatalf("journal line %q", sc.Text())
		}
		switch word {
		case "about":
			next = h
		case "done":
			if h != next && !next.IsZero() {
				t.Fatalf("journal: done %s after about %s", h.Short(), next.Short())
			}
			committed, next = h, chain.Hash{}
		default:
			t.Fatalf("journal line %q", sc.Text())
		}
	}
	if committed.IsZero() {
		t.Fatal("journal records no committed tip")
	}
	return committed, next
}

// crashChild is the child's side: open the store, then until killed mine
// and add runs of blocks, mostly reorganisations of up to crashMaxDepth
// blocks, sometimes appends, each announced in the journal before the
// call and recorded after it returns, both fsynced.
func crashChild(t *testing.T, dir string) {
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "crash child: "+format+"\n", args...)
		os.Exit(2)
	}
	s, err := storage.Open(dir, nil, storage.WithClock(clock))
	if err != nil {
		fail("open: %v", err)
	}
	j, err := os.OpenFile(filepath.Join(dir, journalName), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		fail("%v", err)
	}
	record := func(word string, h chain.Hash) {
		if _, err := fmt.Fprintf(j, "%s %s\n", word, h); err != nil {
			fail("journal: %v", err)
		}
		if err := j.Sync(); err != nil {
			fail("journal: %v", err)
		}
	}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(time.Now().UnixNano())))
	stop := time.Now().Add(crashChildLifetime)
	for round := 0; time.Now().Before(stop); round++ {
		tip := s.Tip()
		parent, n := tip.Hash, 100+rng.IntN(200)
		if rng.IntN(4) != 0 {
			depth := uint64(50 + rng.IntN(crashMaxDepth-50))
			h, err := s.HashAt(tip.Height - depth)
			if err != nil {
				fail("HashAt: %v", err)
			}
			parent, n = h, int(depth)+1+rng.IntN(20)
		}
		blocks := mine(t, s, parent, n, fmt.Sprintf("child%d.%d", os.Getpid(), round))
		next := tipOf(blocks).Hash
		record("about", next)
		res, err := s.AddBlocks(blocks)
		if err != nil || res.Tip.Hash != next {
			fail("AddBlocks: %+v, %v", res, err)
		}
		record("done", next)
	}
	fail("not killed within %v", crashChildLifetime)
}
