package gossip

import (
	"context"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/node/peering"
	"github.com/jbc-project/jbc/storage"
)

// relayNode is one Gossip on a mocknet host, storing into a store of its
// own; hold, while not nil, stops its Add until closed.
type relayNode struct {
	g     *Gossip
	store *storage.Store
	mu    sync.Mutex
	hold  chan struct{}
	// added receives each block Add is asked to store, when asked.
	added chan chain.Hash
}

func newRelayNode(t *testing.T, ctx context.Context, mn mocknet.Mocknet, p *chain.Params) *relayNode {
	t.Helper()
	return newTracedNode(t, ctx, mn, p, nil)
}

// newTracedNode is newRelayNode with tracer seeing its GossipSub's events.
func newTracedNode(t *testing.T, ctx context.Context, mn mocknet.Mocknet, p *chain.Params, tracer pubsub.RawTracer) *relayNode {
	t.Helper()
	h, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	rn := &relayNode{store: nodetest.NewStore(t, p), added: make(chan chain.Hash, 16)}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	rn.g, err = New(ctx, Config{
		Host:     h,
		Store:    rn.store,
		Pool:     NewPool(),
		Interval: time.Hour,
		Add: func(blocks []chain.Block) (storage.Result, error) {
			for _, b := range blocks {
				rn.added <- b.Hash
			}
			rn.mu.Lock()
			hold := rn.hold
			rn.mu.Unlock()
			if hold != nil {
				<-hold
			}
			return rn.store.AddBlocks(blocks)
		},
		Penalise:  func(p peer.ID, m peering.Misbehaviour, why string) { t.Errorf("peer %s penalised: %v %s", p, m, why) },
		AskStatus: func(peer.ID) {},
		Served:    func(peer.ID, int) {},
		Go: func(f func(context.Context)) {
			wg.Add(1)
			go func() { defer wg.Done(); f(ctx) }()
		},
		Logger: nodetest.Logger(t),
		tracer: tracer,
	})
	if err != nil {
		t.Fatal(err)
	}
	return rn
}

// TestRelayBeforeStore: a gossiped block that extends the chain is
// relayed once validated against its parent, while the relaying node
// still stores it: a node whose disk is slow (here, whose store does not
// return at all) does not hold the block up for the nodes behind it. A
// child of that block waits for its parent's store, and both end stored.
// Before, B relayed only after its store returned, and C saw nothing.
func TestRelayBeforeStore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := nodetest.GossipParams(t)
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	a, b, c := newRelayNode(t, ctx, mn, p), newRelayNode(t, ctx, mn, p), newRelayNode(t, ctx, mn, p)
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	// A line: A - B - C. C hears only through B.
	if _, err := mn.ConnectPeers(a.g.host.ID(), b.g.host.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := mn.ConnectPeers(b.g.host.ID(), c.g.host.ID()); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitFor(t, 10*time.Second, "B in the block topic with A and C", func() bool {
		return len(b.g.BlockPeers()) == 2 && len(a.g.BlockPeers()) == 1 && len(c.g.BlockPeers()) == 1
	})
	// B's mesh takes C in at its next heartbeat (1 s).
	time.Sleep(1500 * time.Millisecond)

	blocks := nodetest.Mine(t, a.store, p.Genesis.Hash, 2, "relay")
	hold := make(chan struct{})
	b.mu.Lock()
	b.hold = hold
	b.mu.Unlock()

	a.g.PublishBlock(ctx, &blocks[0])
	waitAdded := func(n *relayNode, name string, want chain.Hash) {
		t.Helper()
		select {
		case h := <-n.added:
			if h != want {
				t.Fatalf("%s stores %s, want %s", name, h.Short(), want.Short())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s was not asked to store %s within 10 s", name, want.Short())
		}
	}
	waitAdded(b, "B", blocks[0].Hash)
	// B's store is held: C still gets the block, through B.
	waitAdded(c, "C", blocks[0].Hash)
	if b.store.Has(blocks[0].Hash) {
		t.Fatal("B stored the block while its store was held")
	}

	// The child waits for B's store of its parent.
	a.g.PublishBlock(ctx, &blocks[1])
	select {
	case h := <-c.added:
		t.Fatalf("C got %s while B had not stored its parent", h.Short())
	case <-time.After(300 * time.Millisecond):
	}
	close(hold)
	waitAdded(b, "B", blocks[1].Hash)
	waitAdded(c, "C", blocks[1].Hash)
	for _, n := range []*relayNode{b, c} {
		nodetest.WaitFor(t, 5*time.Second, "the child stored", func() bool { return n.store.Tip().Hash == blocks[1].Hash })
	}
	if got := b.g.Accepted(); got != 2 {
		t.Errorf("B accepted %d blocks, want 2", got)
	}
}
