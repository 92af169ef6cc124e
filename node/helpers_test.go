package node

import (
	"context"
	"testing"

	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/storage"
)

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
	cfg.Logger = nodetest.Logger(t)
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
