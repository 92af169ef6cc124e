package gossip

import "testing"

func TestReannounceWithinPeerLimits(t *testing.T) {
	// An honest node must never be penalised for re-announcing, nor lose
	// re-announcements to full queues: its bursts and its sustained rate
	// stay well inside what each peer allows it (DataRate, DataBurst),
	// leaving room for new entries and relays, and its bursts well below
	// GossipSub's per-peer queues (go-libp2p-pubsub's defaults: 32
	// messages out, 32 waiting for validation), which drop what overflows.
	const gossipSubQueue = 32
	if ReannounceBurst > DataBurst/4 || ReannounceBurst > gossipSubQueue/2 {
		t.Errorf("ReannounceBurst %d is over a quarter of a peer's burst allowance %d or half of GossipSub's queues %d", ReannounceBurst, DataBurst, gossipSubQueue)
	}
	if ReannounceRate > DataRate/2 {
		t.Errorf("ReannounceRate %d/s is over half of a peer's rate allowance %d/s", ReannounceRate, DataRate)
	}
	if MaxReannounce <= 0 || ReannounceRate <= 0 || ReannounceBurst <= 0 || DefaultReannounceInterval <= 0 {
		t.Error("re-announcement is off")
	}
}
