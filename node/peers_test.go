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
	"github.com/jbc-project/jbc/node/internal/nodetest"
)

// getPeers fetches GET /peers from n's API.
func getPeers(t *testing.T, n *Node) []PeerJSON {
	t.Helper()
	srv := httptest.NewServer(n.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/peers")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []PeerJSON
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func findPeer(ps []PeerJSON, id string) *PeerJSON {
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
		pi, ok := a.peers.get(liar.ID())
		return ok && pi.Status != nil
	})

	start := time.Now()
	a.penalise(liar.ID(), MisInvalidBlock, "block 7: hash does not meet the difficulty")
	connect(t, a, stranger)
	nodetest.WaitFor(t, 15*time.Second, "the other network's peer banned and cut off", func() bool {
		return a.peers.isBanned(stranger.ID()) && a.Host().Network().Connectedness(stranger.ID()) != network.Connected
	})

	peers := getPeers(t, a)
	for _, c := range []struct {
		id     string
		reason []string
		d      time.Duration
	}{
		{liar.ID().String(), []string{"invalid-block", "block 7: hash does not meet the difficulty"}, misbehaviourBan},
		{stranger.ID().String(), []string{"on another network (genesis " + other.ID().Short() + ")"}, banDuration},
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

	st, err := a.FirstState()
	if err != nil {
		t.Fatal(err)
	}
	if p := findPeer(st.Peers, stranger.ID().String()); p == nil || p.Ban == nil {
		t.Errorf("the dashboard's first state does not show the ban: %+v", st.Peers)
	}
}

// TestBanReasonBounded: a long detail (an error quoting what a peer sent)
// is cut, so a ban cannot grow every GET /peers.
func TestBanReasonBounded(t *testing.T) {
	ps := newPeerSet()
	p := nodetest.NewPeerID(t)
	ps.banFor(p, time.Minute, strings.Repeat("é", maxBanReason))
	b := ps.bans()
	if len(b) != 1 || len(b[0].Ban.Reason) > maxBanReason || !strings.HasSuffix(b[0].Ban.Reason, "...") {
		t.Fatalf("reason of %d bytes: %q", len(b[0].Ban.Reason), b[0].Ban.Reason)
	}
	if !ps.isBanned(p) {
		t.Fatal("not banned")
	}
}

// TestSyncOutcome: the results of a sync sort into outcomes the dashboard
// can show apart; finding no more work than ours is not a refusal.
func TestSyncOutcome(t *testing.T) {
	for result, want := range map[string]SyncOutcome{
		"adopted":                       SyncAdopted,
		resultNoMoreWork:                SyncNoMoreWork,
		"refused: invalid block: x":     SyncRefused,
		"refused: peer claimed work 9":  SyncRefused,
		"failed: protocol: timeout":     SyncFailed,
		"local error: disk full":        SyncFailed,
		"stopped":                       SyncStopped,
		"refused: blocks do not attach": SyncRefused,
	} {
		if got := outcomeOf(result); got != want {
			t.Errorf("outcome of %q: %s, want %s", result, got, want)
		}
	}
	_, nodes := mockNodes(t, nodetest.NewStore(t, chain.TestNet()), nodetest.NewStore(t, chain.TestNet()))
	connect(t, nodes[0], nodes[1])
	nodetest.WaitFor(t, 10*time.Second, "the peer known", func() bool { _, ok := nodes[0].peers.get(nodes[1].ID()); return ok })
	nodes[0].peers.setSync(nodes[1].ID(), SyncRecord{At: time.Now(), Result: resultNoMoreWork})
	if p := findPeer(getPeers(t, nodes[0]), nodes[1].ID().String()); p == nil || p.LastSync == nil || p.LastSync.Outcome != SyncNoMoreWork {
		t.Fatalf("GET /peers: last sync %+v", p)
	}
}

// TestBanEnds: a ban that has ended is listed no more, and its record is
// dropped.
func TestBanEnds(t *testing.T) {
	ps := newPeerSet()
	gone, kept := nodetest.NewPeerID(t), nodetest.NewPeerID(t)
	ps.banFor(gone, time.Millisecond, "short")
	ps.banFor(kept, time.Hour, "long")
	time.Sleep(5 * time.Millisecond)
	if b := ps.bans(); len(b) != 1 || b[0].ID != kept || b[0].Ban.Reason != "long" {
		t.Fatalf("bans %+v, want only the one that has not ended", b)
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if _, ok := ps.banned[gone]; ok {
		t.Fatal("an ended ban is still kept")
	}
}
