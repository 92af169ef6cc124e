package node

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// testLogger routes a node's logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// newStore opens a fresh store on network p in a temp dir.
func newStore(t testing.TB, p *chain.Params) *storage.Store {
	t.Helper()
	s, err := storage.Open(t.TempDir(), p, storage.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// extend mines n blocks on top of the store's block at height from (its
// best chain), with timestamps one second apart starting after the
// parent's, tagging data with tag so that branches differ, and stores them.
func extend(t testing.TB, s *storage.Store, from uint64, n int, tag string) []chain.Block {
	t.Helper()
	parent, err := s.HashAt(from)
	if err != nil {
		t.Fatal(err)
	}
	blocks := mine(t, s, parent, n, tag)
	if _, err := s.AddBlocks(blocks); err != nil {
		t.Fatal(err)
	}
	return blocks
}

// mine mines n blocks after the stored block parent without storing them.
func mine(t testing.TB, s *storage.Store, parent chain.Hash, n int, tag string) []chain.Block {
	t.Helper()
	v, err := s.Validator(parent)
	if err != nil {
		t.Fatal(err)
	}
	m := &chain.Miner{Threads: 1}
	out := make([]chain.Block, 0, n)
	now := time.Now().Unix()
	for i := 0; i < n; i++ {
		tmpl, bits := v.Template(tag, v.Tip().Time+1)
		b, err := m.Solve(context.Background(), tmpl, bits)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Next(&b, now); err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// mockNodes starts one node per store on a fully linked mocknet (not yet
// connected), with discovery off.
func mockNodes(t testing.TB, stores ...*storage.Store) (mocknet.Mocknet, []*Node) {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	nodes := startMockNodes(t, mn, stores...)
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	return mn, nodes
}

// startMockNodes starts one node per store, each on a new host of mn.
func startMockNodes(t testing.TB, mn mocknet.Mocknet, stores ...*storage.Store) []*Node {
	t.Helper()
	nodes := make([]*Node, len(stores))
	for i, s := range stores {
		h, err := mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = startNode(t, h, s)
	}
	return nodes
}

func startNode(t testing.TB, h host.Host, s *storage.Store) *Node {
	t.Helper()
	return startNodeWith(t, Config{Store: s, Host: h})
}

// startNodeWith starts a node with cfg (its Logger set to the test's) and
// closes it when the test ends.
func startNodeWith(t testing.TB, cfg Config) *Node {
	t.Helper()
	cfg.Logger = testLogger(t)
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
