package node

import (
	"testing"

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
