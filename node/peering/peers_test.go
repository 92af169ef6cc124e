package peering

import (
	"strings"
	"testing"
	"time"

	"github.com/jbc-project/jbc/node/internal/nodetest"
)

// TestBanReasonBounded: a long detail (an error quoting what a peer sent)
// is cut, so a ban cannot grow every GET /peers.
func TestBanReasonBounded(t *testing.T) {
	ps := NewSet()
	p := nodetest.NewPeerID(t)
	ps.BanFor(p, time.Minute, strings.Repeat("é", maxBanReason))
	b := ps.Bans()
	if len(b) != 1 || len(b[0].Ban.Reason) > maxBanReason || !strings.HasSuffix(b[0].Ban.Reason, "...") {
		t.Fatalf("reason of %d bytes: %q", len(b[0].Ban.Reason), b[0].Ban.Reason)
	}
	if !ps.IsBanned(p) {
		t.Fatal("not banned")
	}
}

// TestSyncOutcome: the results of a sync sort into outcomes the dashboard
// can show apart; finding no more work than ours is not a refusal.
func TestSyncOutcome(t *testing.T) {
	for result, want := range map[string]SyncOutcome{
		"adopted":                       SyncAdopted,
		ResultNoMoreWork:                SyncNoMoreWork,
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
}

// TestBanEnds: a ban that has ended is listed no more, and its record is
// dropped.
func TestBanEnds(t *testing.T) {
	ps := NewSet()
	gone, kept := nodetest.NewPeerID(t), nodetest.NewPeerID(t)
	ps.BanFor(gone, time.Millisecond, "short")
	ps.BanFor(kept, time.Hour, "long")
	time.Sleep(5 * time.Millisecond)
	if b := ps.Bans(); len(b) != 1 || b[0].ID != kept || b[0].Ban.Reason != "long" {
		t.Fatalf("bans %+v, want only the one that has not ended", b)
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if _, ok := ps.banned[gone]; ok {
		t.Fatal("an ended ban is still kept")
	}
}
