package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/discovery"
	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/node/peering"
)

func TestDoctorReportsUnreachableBootstrap(t *testing.T) {
	s := nodetest.NewStore(t, chain.TestNet())
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	h, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	_, pub, _ := crypto.GenerateEd25519Key(nil)
	ghost, _ := peer.IDFromPublicKey(pub)
	// A mocknet host can dial only linked mocknet peers: this one is never
	// reachable, and nothing leaves the process.
	boot := "/ip4/127.0.0.1/tcp/9/p2p/" + ghost.String()
	n, err := New(Config{Store: s, Host: h, Bootstrap: []string{boot}, Logger: nodetest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	r := n.Doctor(context.Background())
	if len(r.Bootstrap) != 1 || r.Bootstrap[0].Reachable || r.Bootstrap[0].ID != ghost.String() {
		t.Fatalf("bootstrap check %+v", r.Bootstrap)
	}
	if !discovery.HasProblem(r.Problems, "cannot be reached") {
		t.Fatalf("unreachable bootstrap not a problem: %+v", r.Problems)
	}
}

// lockedBuffer collects a node's log lines for a test.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// refusedAddr returns a loopback multiaddr nothing listens on (a port
// just freed), for a peer with a new ID: dials to it are refused at once,
// and nothing leaves the machine.
func refusedAddr(t *testing.T) (peer.ID, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	_, pub, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPublicKey(pub)
	return id, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, id)
}

// TestUnreachablePeersReported runs a real node on loopback given a
// --peer and a bootstrap peer that refuse connections, as in the README's
// loopback example with the other node not running. The node must say so
// at info once each, with the real cause, and keep retrying quietly; the
// doctor must show the real cause (not the swarm's "dial backoff"), list
// the bootstrap peer once, and take loopback-only listening for what the
// operator chose.
func TestUnreachablePeersReported(t *testing.T) {
	direct, directAddr := refusedAddr(t)
	boot, bootAddr := refusedAddr(t)
	var logs lockedBuffer
	n, err := New(Config{
		Store:     nodetest.NewStore(t, chain.TestNet()),
		DataDir:   t.TempDir(),
		Listen:    []string{"/ip4/127.0.0.1/tcp/0"},
		Peers:     []string{directAddr},
		Bootstrap: []string{bootAddr},
		Logger:    slog.New(slog.NewTextHandler(io.MultiWriter(&logs, nodetest.Writer(t)), &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()

	infoLines := func(id peer.ID) []string {
		var out []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "level=INFO") && strings.Contains(l, id.String()) {
				out = append(out, l)
			}
		}
		return out
	}
	// Retried: two real attempts each (the --peer every 5 s, the
	// bootstrap peer after 2 s, then 4 s).
	nodetest.WaitFor(t, 20*time.Second, "two failed dials of each peer", func() bool {
		d, _ := n.peers.Get(direct)
		b, _ := n.peers.Get(boot)
		return d.DialFailures >= 2 && b.DialFailures >= 2
	})
	for _, c := range []struct {
		id   peer.ID
		what string
	}{{direct, "cannot reach direct peer"}, {boot, "cannot reach bootstrap peer"}} {
		lines := infoLines(c.id)
		if len(lines) != 1 || !strings.Contains(lines[0], c.what) || !strings.Contains(lines[0], "connection refused") {
			t.Errorf("want one info line %q with the cause for %s, got %q", c.what, c.id, lines)
		}
	}

	r := n.Doctor(context.Background())
	if len(r.Bootstrap) != 1 || r.Bootstrap[0].ID != boot.String() || r.Bootstrap[0].Reachable {
		t.Fatalf("bootstrap checks %+v", r.Bootstrap)
	}
	for _, pc := range append(append([]discovery.PeerCheck{}, r.Bootstrap...), r.Peers...) {
		if !strings.Contains(pc.Error, "connection refused") {
			t.Errorf("doctor: peer %s: error %q, want the real cause (connection refused)", pc.ID, pc.Error)
		}
		if pc.ID == boot.String() && pc.Source != peering.SourceBootstrap {
			t.Errorf("doctor lists the bootstrap peer twice: %+v", r.Peers)
		}
	}
	if len(r.Peers) != 1 || r.Peers[0].ID != direct.String() {
		t.Errorf("known peers %+v, want the --peer only", r.Peers)
	}
	mentions := 0
	for _, p := range r.Problems {
		if strings.Contains(p.Problem, boot.String()) {
			mentions++
		}
	}
	if mentions != 1 {
		t.Errorf("the bootstrap peer is in %d problems, want 1: %+v", mentions, r.Problems)
	}
	if discovery.HasProblem(r.Problems, "loopback only") || len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "loopback only") {
		t.Errorf("loopback-only listening with mDNS off and loopback peers: problems %+v, notes %q", r.Problems, r.Notes)
	}
	// GET /peers shows the cause too.
	if p := findPeer(getPeers(t, n), direct.String()); p == nil || !strings.Contains(p.DialError, "connection refused") {
		t.Errorf("GET /peers: %+v", p)
	}
}
