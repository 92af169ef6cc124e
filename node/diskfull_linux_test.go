package node

// A node syncing onto a full disk, for real: its data directory is a small
// tmpfs. Mounting needs root (CAP_SYS_ADMIN); without it the test skips.
// The tmpfs is mounted by a child process (this test binary, re-executed)
// in a mount namespace of its own, so that no mount can outlive the test:
// the namespace, and the mount with it, ends with the child however it
// ends (a failure, a timeout, SIGKILL), and the parent's namespace never
// sees it. The child also unmounts it in its cleanup.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/chainsync"
	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/protocol"
	"github.com/jbc-project/jbc/storage"
)

const (
	// diskFullChildEnv makes TestSyncDiskFull act as the child.
	diskFullChildEnv = "JBC_DISK_FULL_CHILD"
	// diskFullSkip starts the line by which the child tells the parent
	// it could not mount a tmpfs.
	diskFullSkip = "JBC-DISK-FULL-SKIP "
	// diskFullSize is the tmpfs the node syncs onto: a fraction of the
	// source's chain (diskFullBlocks of diskFullData bytes, about 20 MB).
	diskFullSize   = "8m"
	diskFullBlocks = 1200
	diskFullData   = 16 << 10
	// diskFullWatch is how long the node is watched with its disk full.
	// Backing off from storageRetryMin it retries at most four times in
	// it, each fetching at most chainsync.SyncAhead+1 pages; retrying at once, it
	// fetched about 20 pages a second.
	diskFullWatch = 10 * time.Second
)

// TestSyncDiskFull syncs a node whose data directory is an 8 MiB tmpfs
// from a peer serving a 20 MB chain. When the disk fills, the node must
// stop fetching and back off (a handful of pages fetched in 10 s, not
// hundreds), log the failure once at ERROR, say "disk full at DIR" in
// /status and in the doctor's report, keep a store that verifies, and,
// once the tmpfs is made larger, resume by itself and finish the sync.
func TestSyncDiskFull(t *testing.T) {
	if os.Getenv(diskFullChildEnv) != "" {
		diskFullChild(t)
		return
	}
	if testing.Short() {
		t.Skip("fills a tmpfs and watches the node back off (about 20 s)")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSyncDiskFull$", "-test.v", "-test.count=1", "-test.timeout=3m")
	cmd.Env = append(os.Environ(), diskFullChildEnv+"=1")
	// A mount namespace of its own (Go also makes its mounts private, so
	// nothing propagates back); killed if this process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if errors.Is(err, syscall.EPERM) {
		t.Skipf("cannot start a child in a mount namespace of its own (needs root, or CAP_SYS_ADMIN): %v", err)
	}
	if i := bytes.Index(out, []byte(diskFullSkip)); i >= 0 {
		line, _, _ := bytes.Cut(out[i+len(diskFullSkip):], []byte("\n"))
		t.Skipf("%s", line)
	}
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "disk full:") {
			t.Log(strings.TrimSpace(l))
		}
	}
}

// countingSource serves a store and counts the GetBlocks requests it
// answers and the block bytes it sends.
type countingSource struct {
	*storage.Store
	pages, bytes atomic.Int64
}

func (c *countingSource) FindFork(locator []chain.Hash) (chain.Entry, bool, error) {
	c.pages.Add(1)
	return c.Store.FindFork(locator)
}

func (c *countingSource) ForEach(from, to uint64, fn func(*chain.Block) error) error {
	return c.Store.ForEach(from, to, func(b *chain.Block) error {
		c.bytes.Add(int64(len(b.Data)))
		return fn(b)
	})
}

// levelCounter passes records on to a handler and counts those at ERROR
// and those whose message says the store is writable again.
type levelCounter struct {
	slog.Handler
	errors, recovered *atomic.Int64
}

func (h levelCounter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.errors.Add(1)
	}
	if strings.Contains(r.Message, "writable again") {
		h.recovered.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

func (h levelCounter) WithAttrs(as []slog.Attr) slog.Handler {
	return levelCounter{h.Handler.WithAttrs(as), h.errors, h.recovered}
}

func (h levelCounter) WithGroup(g string) slog.Handler {
	return levelCounter{h.Handler.WithGroup(g), h.errors, h.recovered}
}

func diskFullChild(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+diskFullSize); err != nil {
		fmt.Printf("%scannot mount a tmpfs (needs root, or CAP_SYS_ADMIN): %v\n", diskFullSkip, err)
		t.Skip(err)
	}
	// Runs after the node and store are closed (cleanups run last first),
	// before t.TempDir removes dir.
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})

	p := chain.TestNet()
	src := nodetest.NewStore(t, p)
	nodetest.Extend(t, src, 0, diskFullBlocks, strings.Repeat("x", diskFullData))
	cs := &countingSource{Store: src}
	sh := rawHost(t)
	srv, err := protocol.NewServer(protocol.ServerConfig{Host: sh, Source: cs, Agent: "source"})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Close() })

	s, err := storage.Open(dir, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var errs, recovered atomic.Int64
	logger := slog.New(levelCounter{nodetest.Logger(t).Handler(), &errs, &recovered})
	n, err := New(Config{Store: s, DataDir: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	dialNode(t, sh, n)

	// The disk is full once the tip stops short of the source's.
	stuck, since := s.Tip().Height, time.Now()
	nodetest.WaitFor(t, time.Minute, "the disk to fill", func() bool {
		if h := s.Tip().Height; h != stuck {
			stuck, since = h, time.Now()
		}
		return time.Since(since) > 2*time.Second
	})
	if stuck == src.Tip().Height {
		t.Fatal("the whole chain fit: make the tmpfs smaller")
	}
	pages0, bytes0 := cs.pages.Load(), cs.bytes.Load()
	time.Sleep(diskFullWatch)
	pages, sent := cs.pages.Load()-pages0, cs.bytes.Load()-bytes0
	if max := int64(4 * (chainsync.SyncAhead + 1)); pages > max {
		t.Errorf("with its disk full the node fetched %d pages (%d bytes) in %v; backing off, it fetches at most %d", pages, sent, diskFullWatch, max)
	}
	if n := errs.Load(); n != 1 {
		t.Errorf("%d records at ERROR while the disk was full, want exactly 1", n)
	}
	full := "disk full at " + dir
	if got := statusField(t, n, "storage_error"); got != full {
		t.Errorf("/status storage_error %q, want %q", got, full)
	}
	var inDoctor bool
	for _, pr := range n.Doctor(context.Background()).Problems {
		inDoctor = inDoctor || strings.Contains(pr.Problem, full)
	}
	if !inDoctor {
		t.Errorf("the doctor's report does not say %q", full)
	}
	if err := s.Verify(nil); err != nil {
		t.Fatalf("the store after the disk filled: %v", err)
	}
	t.Logf("disk full: stuck at height %d of %d; in %v, %d pages (%d bytes) fetched, %d ERROR record(s)", stuck, diskFullBlocks, diskFullWatch, pages, sent, errs.Load())

	// Space returns: the node resumes by itself and finishes.
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_REMOUNT, "size=256m"); err != nil {
		t.Fatalf("growing the tmpfs: %v", err)
	}
	grown := time.Now()
	nodetest.WaitFor(t, time.Minute, "the sync to resume and finish", func() bool { return s.Tip().Hash == src.Tip().Hash })
	resumed := time.Since(grown)
	nodetest.WaitFor(t, 5*time.Second, "/status to clear", func() bool { return statusField(t, n, "storage_error") == "" })
	if recovered.Load() == 0 {
		t.Error("no record says the store is writable again")
	}
	if err := s.Verify(nil); err != nil {
		t.Fatalf("the store after the sync: %v", err)
	}
	t.Logf("disk full: space returned; synced to height %d %v later", s.Tip().Height, resumed.Round(time.Millisecond))
}

// statusField returns a string field of n's GET /status body by its JSON
// name ("" if absent).
func statusField(t *testing.T, n *Node, name string) string {
	t.Helper()
	js, err := json.Marshal(n.Status())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatal(err)
	}
	v, _ := m[name].(string)
	return v
}
