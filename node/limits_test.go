package node

import "testing"

// TestHonestEntryRatesFitPeerLimits pins how the entry limits relate: what
// one node may publish (submissions taken over POST /data plus its own
// re-announcements) must fit twice into what each peer accepts from it,
// because a peer relays the entries of the nodes behind it too. Otherwise
// a node taking submissions at full rate gets itself penalised for
// flooding by honest peers.
func TestHonestEntryRatesFitPeerLimits(t *testing.T) {
	if own := submitRate + reannounceRate; 2*own > gossipDataRate {
		t.Errorf("a node may publish %d entries/s (submit %d + re-announce %d); twice that is over a peer's allowance %d/s",
			own, submitRate, reannounceRate, gossipDataRate)
	}
	if own := submitBurst + reannounceBurst; 2*own > gossipDataBurst {
		t.Errorf("a node may publish a burst of %d entries (submit %d + re-announce %d); twice that is over a peer's burst %d",
			own, submitBurst, reannounceBurst, gossipDataBurst)
	}
}
