package node

import (
	"testing"
	"time"

	"github.com/jbc-project/jbc/storage"
)

// TestPushesStatus: a new tip that came by gossip or that we mined is not
// pushed to the peers (gossip announced it); one from a sync is, and so is
// a reorg however it came.
func TestPushesStatus(t *testing.T) {
	for _, c := range []struct {
		via  string
		res  storage.Result
		want bool
	}{
		{viaGossip, storage.Result{Extended: true}, false},
		{viaMiner, storage.Result{Extended: true}, false},
		{viaSync, storage.Result{Extended: true}, true},
		{viaLegacy, storage.Result{Extended: true}, true},
		{viaGossip, storage.Result{Extended: true, Reorg: true}, true},
		{viaSync, storage.Result{}, false},
	} {
		if got := pushesStatus(c.via, c.res); got != c.want {
			t.Errorf("via %s, %+v: push %v, want %v", c.via, c.res, got, c.want)
		}
	}
}

// TestFreshStatusHalvesRefreshes: of two peers refreshing each other every
// StatusInterval, the one that just answered (or asked) skips its turn,
// and no status gets older than StatusInterval.
func TestFreshStatusHalvesRefreshes(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		name string
		at   time.Time
		want bool
	}{
		{"never", time.Time{}, false},
		{"just exchanged", now.Add(-time.Second), true},
		{"a third of the interval ago", now.Add(-StatusInterval / 3), true},
		{"half the interval ago", now.Add(-StatusInterval / 2), false},
		{"a whole interval ago", now.Add(-StatusInterval), false},
	} {
		if got := freshStatus(c.at, now); got != c.want {
			t.Errorf("%s: freshStatus = %v, want %v", c.name, got, c.want)
		}
	}
	// Two peers whose refresh ticks are d apart: count the exchanges over
	// ten intervals, each exchange refreshing both sides.
	for _, d := range []time.Duration{0, time.Second, StatusInterval / 3, StatusInterval/2 + 100*time.Millisecond, StatusInterval * 9 / 10} {
		var at time.Time
		exchanges := 0
		start := now
		for i := 0; i < 10; i++ {
			for _, tick := range []time.Time{start.Add(time.Duration(i) * StatusInterval), start.Add(time.Duration(i)*StatusInterval + d)} {
				if !freshStatus(at, tick) {
					if !at.IsZero() && tick.Sub(at) > StatusInterval {
						t.Errorf("offset %v: status %v old at a refresh", d, tick.Sub(at))
					}
					at = tick
					exchanges++
				}
			}
		}
		if exchanges > 11 {
			t.Errorf("offset %v: %d exchanges in 10 intervals, want about 10 (both asking: 20)", d, exchanges)
		}
	}
}
