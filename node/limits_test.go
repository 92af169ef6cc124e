package node

import (
	"testing"

	"github.com/jbc-project/jbc/node/api"
	"github.com/jbc-project/jbc/node/gossip"
	"github.com/jbc-project/jbc/node/p2p"
	"github.com/jbc-project/jbc/node/peering"
	"github.com/jbc-project/jbc/protocol"
)

// TestHonestEntryRatesFitPeerLimits pins how the entry limits relate: what
// one node may publish (submissions taken over POST /data plus its own
// re-announcements) must fit twice into what each peer accepts from it,
// because a peer relays the entries of the nodes behind it too. Otherwise
// a node taking submissions at full rate gets itself penalised for
// flooding by honest peers.
func TestHonestEntryRatesFitPeerLimits(t *testing.T) {
	if own := api.SubmitRate + gossip.ReannounceRate; 2*own > gossip.DataRate {
		t.Errorf("a node may publish %d entries/s (submit %d + re-announce %d); twice that is over a peer's allowance %d/s",
			own, api.SubmitRate, gossip.ReannounceRate, gossip.DataRate)
	}
	if own := api.SubmitBurst + gossip.ReannounceBurst; 2*own > gossip.DataBurst {
		t.Errorf("a node may publish a burst of %d entries (submit %d + re-announce %d); twice that is over a peer's burst %d",
			own, api.SubmitBurst, gossip.ReannounceBurst, gossip.DataBurst)
	}
}

// TestLimitsConsistent pins how the numbers of several concerns relate:
// admission's inbound slots to the connection manager's watermarks and to
// the resource manager's inbound connections, and admission's status
// deadline to the status exchange's timeout. (Admission's own numbers are
// pinned in package peering.)
func TestLimitsConsistent(t *testing.T) {
	if peering.InboundSlots >= p2p.ConnHighWater {
		t.Errorf("inbound slots %d leave no room under the connection manager's high watermark %d for the peers a node chooses", peering.InboundSlots, p2p.ConnHighWater)
	}
	if p2p.MaxConnsInbound-peering.InboundSlots < 2*protocol.MaxInflight/protocol.MaxInflightPerPeer {
		t.Errorf("the resource manager's %d inbound connections leave %d beyond the slots for newcomers' handshakes", p2p.MaxConnsInbound, p2p.MaxConnsInbound-peering.InboundSlots)
	}
	if peering.StatusDeadline > statusTimeout {
		t.Errorf("status deadline %v is longer than our own status request may take (%v)", peering.StatusDeadline, statusTimeout)
	}
}
