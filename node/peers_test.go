package node

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/api"
	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/node/peering"
)

// getPeers fetches GET /peers from n's API.
func getPeers(t *testing.T, n *Node) []api.PeerJSON {
	t.Helper()
	srv := httptest.NewServer(n.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/peers")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []api.PeerJSON
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func findPeer(ps []api.PeerJSON, id string) *api.PeerJSON {
	for i := range ps {
		if ps[i].ID == id {
			return &ps[i]
		}
	}
	return nil
}

// TestBansShown bans a peer for misbehaving and another for being on
// another network: GET /peers, the doctor and the dashboard's first state
// must each list them, with why and until when, rather than forget them.
func TestBansShown(t *testing.T) {
	other, err := chain.NewParams("other", "another genesis", 1577836800, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	sa, sb, sc := nodetest.NewStore(t, chain.TestNet()), nodetest.NewStore(t, chain.TestNet()), nodetest.NewStore(t, other)
	_, nodes := mockNodes(t, sa, sb, sc)
	a, liar, stranger := nodes[0], nodes[1], nodes[2]
	connect(t, a, liar)
	nodetest.WaitFor(t, 10*time.Second, "a status from the peer", func() bool {
		pi, ok := a.peers.Get(liar.ID())
		return ok && pi.Status != nil
	})

	start := time.Now()
	a.scores.Penalise(liar.ID(), peering.MisInvalidBlock, "block 7: hash does not meet the difficulty")
	connect(t, a, stranger)
	nodetest.WaitFor(t, 15*time.Second, "the other network's peer banned and cut off", func() bool {
		return a.peers.IsBanned(stranger.ID()) && a.Host().Network().Connectedness(stranger.ID()) != network.Connected
	})

	peers := getPeers(t, a)
	for _, c := range []struct {
		id     string
		reason []string
		d      time.Duration
	}{
		{liar.ID().String(), []string{"invalid-block", "block 7: hash does not meet the difficulty"}, peering.MisbehaviourBan},
		{stranger.ID().String(), []string{"on another network (genesis " + other.ID().Short() + ")"}, peering.BanDuration},
	} {
		p := findPeer(peers, c.id)
		if p == nil {
			t.Fatalf("GET /peers does not list banned peer %s: %+v", c.id, peers)
		}
		if p.Ban == nil || p.Connected {
			t.Fatalf("GET /peers: banned peer %s without its ban, or connected: %+v", c.id, p)
		}
		for _, r := range c.reason {
			if !strings.Contains(p.Ban.Reason, r) {
				t.Errorf("ban of %s: reason %q lacks %q", c.id, p.Ban.Reason, r)
			}
		}
		if lo, hi := start.Add(c.d), time.Now().Add(c.d); p.Ban.Until.Before(lo) || p.Ban.Until.After(hi) {
			t.Errorf("ban of %s ends %s, want between %s and %s", c.id, p.Ban.Until, lo, hi)
		}
	}
	// What was known of the liar when it was banned stays with the ban.
	if p := findPeer(peers, liar.ID().String()); p.Status == nil || p.Status.Network != chain.TestNet().ID().String() {
		t.Errorf("banned peer lost what was known of it: %+v", p)
	}

	r := a.Doctor(t.Context())
	if len(r.Banned) != 2 {
		t.Fatalf("doctor lists %d banned peers, want 2: %+v", len(r.Banned), r.Banned)
	}
	for _, b := range r.Banned {
		if b.Reason == "" || b.Until.Before(start) {
			t.Errorf("doctor: ban without reason or end: %+v", b)
		}
	}
	for _, p := range r.Peers {
		if p.ID == liar.ID().String() || p.ID == stranger.ID().String() {
			t.Errorf("doctor lists banned peer %s among the known peers", p.ID)
		}
	}

	st, err := a.api.FirstState()
	if err != nil {
		t.Fatal(err)
	}
	if p := findPeer(st.Peers, stranger.ID().String()); p == nil || p.Ban == nil {
		t.Errorf("the dashboard's first state does not show the ban: %+v", st.Peers)
	}
}

// TestSyncOutcomeShown: GET /peers shows a peer's last sync with its
// outcome (sorted in package peering, TestSyncOutcome).
func TestSyncOutcomeShown(t *testing.T) {
	_, nodes := mockNodes(t, nodetest.NewStore(t, chain.TestNet()), nodetest.NewStore(t, chain.TestNet()))
	connect(t, nodes[0], nodes[1])
	nodetest.WaitFor(t, 10*time.Second, "the peer known", func() bool { _, ok := nodes[0].peers.Get(nodes[1].ID()); return ok })
	nodes[0].peers.SetSync(nodes[1].ID(), peering.SyncRecord{At: time.Now(), Result: peering.ResultNoMoreWork})
	if p := findPeer(getPeers(t, nodes[0]), nodes[1].ID().String()); p == nil || p.LastSync == nil || p.LastSync.Outcome != peering.SyncNoMoreWork {
		t.Fatalf("GET /peers: last sync %+v", p)
	}
}
