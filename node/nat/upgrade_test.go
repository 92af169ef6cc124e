package nat

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestDualRedial: of two nodes that dialled each other through the relay,
// only the one with the lower ID redials at once, closing both
// connections; the other waits dualDefer for it and only then redials.
// Before, both redialled in the same tick, each closing the connection
// the other had just opened, and neither held one after (e2e/nat.sh
// failed 1 run in 4).
func TestDualRedial(t *testing.T) {
	low, high := peer.ID("\x00low"), peer.ID("\x01high")
	now := time.Now()

	// Only we dialled: redial, closing only ours.
	var rs redialState
	if redial, all := rs.dual(high, low, false, now); !redial || all {
		t.Errorf("one-sided: redial %v, close all %v; want true, false", redial, all)
	}

	// Both dialled: the lower ID goes at once and closes both.
	rs = redialState{}
	if redial, all := rs.dual(low, high, true, now); !redial || !all {
		t.Errorf("both, we lower: redial %v, close all %v; want true, true", redial, all)
	}

	// Both dialled, we the higher: wait, then go.
	rs = redialState{}
	for _, d := range []time.Duration{0, dualDefer / 2, dualDefer - time.Millisecond} {
		if redial, _ := rs.dual(high, low, true, now.Add(d)); redial {
			t.Fatalf("both, we higher: redial %v after the race was seen, want to wait %v", d, dualDefer)
		}
	}
	if redial, all := rs.dual(high, low, true, now.Add(dualDefer)); !redial || !all {
		t.Errorf("both, we higher, after dualDefer: redial %v, close all %v; want true, true", redial, all)
	}
	// A later race waits afresh.
	later := now.Add(time.Minute)
	if redial, _ := rs.dual(high, low, true, later); redial {
		t.Error("a second race: redialled at once, want a fresh wait")
	}
	// The peer's redial replaced the connections: ours alone again.
	if redial, all := rs.dual(high, low, false, later.Add(time.Second)); !redial || all {
		t.Errorf("one-sided after a race: redial %v, close all %v; want true, false", redial, all)
	}
}
