package chainsync

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestSyncPauseEndsOnReconnect: a peer paused for slowness (a timeout, or
// load) is asked again once it reconnects, as after a partition heals; one
// paused for a fault stays paused until the pause ends.
func TestSyncPauseEndsOnReconnect(t *testing.T) {
	s := New(Config{})
	slow, faulty := peer.ID("slow"), peer.ID("faulty")
	now := time.Now()
	s.skip(slow, failedPeerPause, true)
	s.skip(faulty, failedPeerPause, false)
	if !s.skipped(slow, now) || !s.skipped(faulty, now) {
		t.Fatal("peers not paused")
	}
	s.Reconnected(slow)
	s.Reconnected(faulty)
	if s.skipped(slow, now) {
		t.Error("a peer paused for a timeout is still paused after reconnecting")
	}
	if !s.skipped(faulty, now) {
		t.Error("a peer paused for a fault was forgiven by reconnecting")
	}
	if s.skipped(faulty, now.Add(failedPeerPause+time.Second)) {
		t.Error("a pause outlived failedPeerPause")
	}
}
