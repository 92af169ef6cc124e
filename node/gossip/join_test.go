package gossip

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/jbc-project/jbc/node/internal/nodetest"
)

// meshTracer records, in order, a node's joins of the block topic, its
// grafts into that topic's mesh and the GossipSub streams it opens.
type meshTracer struct {
	topic  string
	mu     sync.Mutex
	events []string
}

func (m *meshTracer) add(e string) {
	m.mu.Lock()
	m.events = append(m.events, e)
	m.mu.Unlock()
}

func (m *meshTracer) log() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.events...)
}

func (m *meshTracer) OnNewOutboundStream(peer.ID, protocol.ID) { m.add("stream") }
func (m *meshTracer) Join(topic string) {
	if topic == m.topic {
		m.add("join")
	}
}
func (m *meshTracer) Graft(_ peer.ID, topic string) {
	if topic == m.topic {
		m.add("graft")
	}
}
func (m *meshTracer) OnClosedOutboundStream(peer.ID)                       {}
func (m *meshTracer) Leave(string)                                         {}
func (m *meshTracer) Prune(peer.ID, string)                                {}
func (m *meshTracer) ValidateMessage(*pubsub.Message)                      {}
func (m *meshTracer) DeliverMessage(*pubsub.Message)                       {}
func (m *meshTracer) RejectMessage(*pubsub.Message, string)                {}
func (m *meshTracer) DuplicateMessage(*pubsub.Message)                     {}
func (m *meshTracer) ThrottlePeer(peer.ID)                                 {}
func (m *meshTracer) RecvRPC(*pubsub.RPC)                                  {}
func (m *meshTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (m *meshTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (m *meshTracer) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (m *meshTracer) UndeliverableMessage(*pubsub.Message)                 {}

// TestJoinMeshAtSubscribe: a node joining a running network enters the
// block topic's mesh when it subscribes, with the peers it connected to,
// not at a heartbeat up to a second later: it subscribes once it knows
// its peers' subscriptions, and GossipSub grafts them at once. Before, it
// subscribed at its start, with no peer known, and grafted none there.
func TestJoinMeshAtSubscribe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := nodetest.GossipParams(t)
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	// A running network of 6, each in the topic with the 5 others: their
	// meshes are full, so none of them grafts a newcomer at its heartbeat.
	var running []*relayNode
	for range meshJoinPeers {
		running = append(running, newRelayNode(t, ctx, mn, p))
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if err := mn.ConnectAllButSelf(); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitFor(t, 10*time.Second, "the running nodes in the block topic together", func() bool {
		for _, n := range running {
			if len(n.g.BlockPeers()) < len(running)-1 {
				return false
			}
		}
		return true
	})

	tr := &meshTracer{topic: BlockTopic(p.ID())}
	newcomer := newTracedNode(t, ctx, mn, p, tr)
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	for _, n := range running {
		if _, err := mn.ConnectPeers(newcomer.g.host.ID(), n.g.host.ID()); err != nil {
			t.Fatal(err)
		}
	}
	nodetest.WaitFor(t, 5*time.Second, "the newcomer to join the block topic", func() bool {
		return strings.Contains(strings.Join(tr.log(), " "), "join")
	})
	// The grafts of the Join itself come right after it, before any
	// stream opened later (GossipSub traces them in one call, which the
	// pause lets end).
	time.Sleep(100 * time.Millisecond)
	ev := tr.log()
	at := 0
	for ev[at] != "join" {
		at++
	}
	grafts := 0
	for _, e := range ev[at+1:] {
		if e != "graft" {
			break
		}
		grafts++
	}
	if grafts < meshLow {
		t.Fatalf("the newcomer grafted %d peers when it joined the block topic, want at least %d; its events: %s",
			grafts, meshLow, strings.Join(ev, " "))
	}
}
