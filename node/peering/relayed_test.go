package peering

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jbc-project/jbc/node/internal/nodetest"
)

// Two relays' peer IDs, as circuit addresses carry them.
const (
	relayR = "12D3KooWRXorggRP4KzDQsvDNYuw7fqpeGPdxUWiKVzFQZYJhYwL"
	relayS = "12D3KooWQ4cbuf87k6tACJw83M9YAvtwZR7AWyEGRCHw6D4WQzhj"
)

// TestRelayedAdmission checks that connections through a circuit relay
// are grouped by relay, not by the relay's public subnet: the peers behind
// one relay are many NATs, not one operator, so the subnet cap does not
// refuse the ninth; and that they still weigh as one group, so that a
// flood through one relay is refused while the slots are full.
func TestRelayedAdmission(t *testing.T) {
	via := func(relay string) string { return "/ip6/2001:2:0:3::1/tcp/4747/p2p/" + relay + "/p2p-circuit" }
	if g, public := groupOf(ma.StringCast(via(relayR))); g != "relay/"+relayR || public {
		t.Errorf("groupOf(relayed via R) = %s, %v; want relay/%s, false", g, public, relayR)
	}

	now := time.Now()
	a := NewAdmission(NewSet(), nodetest.Logger(t), nil)
	var pcs []peerConns
	add := func(addr string) {
		pcs = append(pcs, peerConns{id: peer.ID(fmt.Sprint("p", len(pcs))),
			conns: []connView{{dir: network.DirInbound, remote: ma.StringCast(addr), opened: now.Add(-time.Minute)}}})
	}
	admit := func(addr string) string {
		s := a.slotsOf(pcs, now)
		g, public := groupOf(ma.StringCast(addr))
		a.arrive(g, now)
		return a.admit(&s, g, public, now)
	}
	for i := 0; i < subnetInboundCap; i++ {
		add(via(relayR))
	}
	if got := admit(via(relayR)); got != "" {
		t.Errorf("relayed connection %d through one relay refused: %q", subnetInboundCap+1, got)
	}

	// Slots full, most through R, whose group keeps arriving: R's next is
	// refused, a peer through another relay is not.
	pcs = nil
	for i := 0; i < InboundSlots-1; i++ {
		add(via(relayR))
	}
	add(via(relayS))
	for k := 0; k < 100; k++ {
		a.arrive("relay/"+relayR, now)
	}
	if got := admit(via(relayR)); got != AdmRefusedFull {
		t.Errorf("flood through R with slots full: %q, want %q", got, AdmRefusedFull)
	}
	if got := admit(via(relayS)); got != "" {
		t.Errorf("peer through another relay with slots full: %q, want it admitted", got)
	}
}

// TestTheirPunchNotChosen checks that a hole-punched connection, outbound
// on both sides, makes the peer one we chose only if the relayed
// connection before it was ours.
func TestTheirPunchNotChosen(t *testing.T) {
	a := NewAdmission(NewSet(), nodetest.Logger(t), nil)
	out := connView{dir: network.DirOutbound, remote: ma.StringCast("/ip6/2001:2::2/tcp/4747")}
	if !a.chosen("p", []connView{out}) {
		t.Fatal("an outbound connection is not chosen")
	}
	out.theirPunch = true
	if a.chosen("p", []connView{out}) {
		t.Error("a hole punch after the peer's relayed connection to us counts as chosen by us")
	}
}
