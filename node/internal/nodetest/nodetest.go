// Package nodetest holds the helpers that the tests of several packages
// under node/ share: a logger routed to t.Log, stores on a temporary
// directory, blocks mined on an easy network, peer IDs, and a wait for a
// condition with a deadline. It is imported by tests only.
//
// What it does not do: start nodes. A helper that starts a node would
// import package node, which imports the packages whose tests use this
// one; node's own tests start nodes (node/helpers_test.go).
//
// Error contract: every helper fails the test (t.Fatal) on an error, and
// returns only what works.
package nodetest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// Logger routes a node's logs to t.Log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(Writer(t), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// Writer writes each line written to it to t.Log.
func Writer(t testing.TB) io.Writer { return tWriter{t} }

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// NewStore opens a fresh store on network p in a temp dir.
func NewStore(t testing.TB, p *chain.Params) *storage.Store {
	t.Helper()
	s, err := storage.Open(t.TempDir(), p, storage.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Extend mines n blocks on top of the store's block at height from (its
// best chain), with timestamps one second apart starting after the
// parent's, tagging data with tag so that branches differ, and stores them.
func Extend(t testing.TB, s *storage.Store, from uint64, n int, tag string) []chain.Block {
	t.Helper()
	parent, err := s.HashAt(from)
	if err != nil {
		t.Fatal(err)
	}
	blocks := Mine(t, s, parent, n, tag)
	if _, err := s.AddBlocks(blocks); err != nil {
		t.Fatal(err)
	}
	return blocks
}

// Mine mines n blocks after the stored block parent without storing them.
func Mine(t testing.TB, s *storage.Store, parent chain.Hash, n int, tag string) []chain.Block {
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

// GossipParams is a network whose blocks take a few hundred hashes: fast
// to mine in tests, yet a block with a random nonce almost never passes.
func GossipParams(t testing.TB) *chain.Params {
	t.Helper()
	p, err := chain.NewParams("gossip-test", "gossip test network", 1577836800, 8, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// NewPeerID returns the ID of a fresh Ed25519 key.
func NewPeerID(t testing.TB) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// WaitFor polls cond until it holds or the timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
