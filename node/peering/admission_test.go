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

// TestPickVictim checks the eviction order on made-up slot holders.
func TestPickVictim(t *testing.T) {
	now := time.Now()
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	weights := map[string]float64{}
	weight := func(g string) float64 { return weights[g] }
	pick := func(hs []candidate) string {
		i := pickVictim(hs, weight, now)
		if i < 0 {
			return ""
		}
		return string(hs[i].id)
	}

	// A silent peer past its grace goes first, the one silent longest.
	hs := []candidate{
		{id: "honest", group: "a", since: ago(time.Hour), proven: true},
		{id: "silent-new", group: "b", since: ago(unprovenGrace / 2)},
		{id: "silent-old", group: "c", since: ago(3 * unprovenGrace)},
		{id: "silent-older", group: "c", since: ago(4 * unprovenGrace), protected: true},
		{id: "silent", group: "d", since: ago(2 * unprovenGrace)},
	}
	weights = map[string]float64{"a": 1, "b": 1, "c": 2, "d": 1}
	if got := pick(hs); got != "silent-old" {
		t.Errorf("picked %s, want silent-old", got)
	}

	// Else the heaviest group: within it, unproven, then fewer served,
	// then the newest.
	hs = []candidate{
		{id: "newcomer", group: "honest", since: ago(time.Millisecond)},
		{id: "s1", group: "sybil", since: ago(5 * time.Second), proven: true},
		{id: "s2", group: "sybil", since: ago(4 * time.Second), proven: true, served: 1},
		{id: "s3", group: "sybil", since: ago(3 * time.Second), proven: true, served: 1},
		{id: "lone", group: "other", since: ago(time.Minute), proven: true},
	}
	weights = map[string]float64{"honest": 1, "sybil": 30, "other": 1.5}
	if got := pick(hs); got != "s1" {
		t.Errorf("picked %s, want s1 (fewest blocks served in the heaviest group)", got)
	}
	hs[1].served = 2
	if got := pick(hs); got != "s3" {
		t.Errorf("picked %s, want s3 (the newest of those that served least)", got)
	}
	// A newcomer within its grace, whose status may yet say it chose us,
	// is spared while a settled peer is not kept; when none is, the
	// newcomer without a status goes first.
	hs[2].proven = false
	hs[2].since = ago(unprovenGrace / 2)
	if got := pick(hs); got != "s3" {
		t.Errorf("picked %s, want s3 (s2 is within its grace)", got)
	}
	hs[1].kept, hs[3].kept, hs[4].kept = true, true, true
	if got := pick(hs); got != "s2" {
		t.Errorf("picked %s, want s2 (no status yet, all others kept)", got)
	}
	hs[1].kept, hs[3].kept, hs[4].kept = false, false, false

	// A peer that said it chose us (kept) goes after every peer that did
	// not, whatever their groups weigh; among kept peers, the heaviest
	// group as before (an attacker may set the flag too).
	hs = []candidate{
		{id: "chose-us", group: "lan1", since: ago(time.Minute), proven: true, kept: true},
		{id: "dht-query", group: "lan2", since: ago(time.Minute), proven: true},
		{id: "sybil-kept", group: "sybil", since: ago(time.Minute), proven: true, kept: true},
	}
	weights = map[string]float64{"lan1": 5, "lan2": 1, "sybil": 30}
	if got := pick(hs); got != "dht-query" {
		t.Errorf("picked %s, want dht-query (the only one that did not choose us)", got)
	}
	hs[1].kept = true
	if got := pick(hs); got != "sybil-kept" {
		t.Errorf("picked %s, want sybil-kept (all kept: the heaviest group)", got)
	}

	// Protected peers are never picked.
	for i := range hs {
		hs[i].protected = true
	}
	if got := pick(hs); got != "" {
		t.Errorf("picked %s among protected peers", got)
	}
}

// TestGroupOf checks the address groups: public addresses by /24 and /48,
// private IPv4 and loopback by address, private IPv6 by /64.
func TestGroupOf(t *testing.T) {
	for _, c := range []struct {
		addr, group string
		public      bool
	}{
		{"/ip4/1.2.3.4/tcp/1", "1.2.3.0/24", true},
		{"/ip4/1.2.3.200/udp/1/quic-v1", "1.2.3.0/24", true},
		{"/ip4/10.77.1.5/tcp/1", "10.77.1.5/32", false},
		{"/ip4/192.168.0.7/tcp/1", "192.168.0.7/32", false},
		{"/ip4/127.0.0.1/tcp/1", "127.0.0.1/32", false},
		{"/ip6/2001:2:0:1::5/tcp/1", "2001:2::/48", true},
		{"/ip6/2a00:1450:4001:80b::200e/tcp/1", "2a00:1450:4001::/48", true},
		{"/ip6/fd77:0:0:3::9/tcp/1", "fd77:0:0:3::/64", false},
		{"/ip6/::1/tcp/1", "::1/128", false},
	} {
		g, public := groupOf(ma.StringCast(c.addr))
		if g != c.group || public != c.public {
			t.Errorf("groupOf(%s) = %s, %v; want %s, %v", c.addr, g, public, c.group, c.public)
		}
	}
}

// TestAdmit checks the decision made when a connection is accepted, on
// made-up connections: the cap on a public subnet, none on private ones,
// and, with the slots full, who may still come in.
func TestAdmit(t *testing.T) {
	now := time.Now()
	a := NewAdmission(NewSet(), nodetest.Logger(t), nil)
	in := func(addr string) connView {
		return connView{dir: network.DirInbound, remote: ma.StringCast(addr), opened: now.Add(-time.Minute)}
	}
	var pcs []peerConns
	add := func(addr string) {
		pcs = append(pcs, peerConns{id: peer.ID(fmt.Sprint("p", len(pcs))), conns: []connView{in(addr)}})
	}
	admit := func(addr string) string {
		s := a.slotsOf(pcs, now)
		g, public := groupOf(ma.StringCast(addr))
		a.arrive(g, now)
		return a.admit(&s, g, public, now)
	}

	// A public /24 is capped; another /24 is not affected.
	for i := 0; i < subnetInboundCap; i++ {
		add(fmt.Sprintf("/ip4/1.2.3.%d/tcp/4747", i+1))
	}
	if got := admit("/ip4/1.2.3.200/tcp/4747"); got != AdmRefusedSubnet {
		t.Errorf("connection %d from one public /24: %q, want %q", subnetInboundCap+1, got, AdmRefusedSubnet)
	}
	if got := admit("/ip4/1.2.4.1/tcp/4747"); got != "" {
		t.Errorf("first connection from another /24 refused: %q", got)
	}
	// A private subnet is not capped: a LAN of tens of nodes shares one.
	pcs = nil
	for i := 0; i < InboundSlots-1; i++ {
		add(fmt.Sprintf("/ip4/10.77.1.%d/tcp/4747", i+1))
	}
	if got := admit("/ip4/10.77.1.100/tcp/4747"); got != "" {
		t.Errorf("connection %d from one private /24 refused: %q", InboundSlots, got)
	}
	// Nor is public IPv6 per address: the /48 is the unit.
	pcs = nil
	for i := 0; i < subnetInboundCap; i++ {
		add(fmt.Sprintf("/ip6/2001:2:0:%x::1/tcp/4747", i+1))
	}
	if got := admit("/ip6/2001:2:0:ff::1/tcp/4747"); got != AdmRefusedSubnet {
		t.Errorf("connection %d from one public /48: %q, want %q", subnetInboundCap+1, got, AdmRefusedSubnet)
	}

	// Slots full of an attacker's identities from 16 private hosts, each
	// having tried many times: its hosts are refused, a newcomer from a
	// new address is not, nor a second node behind an address that holds
	// one slot and tried once.
	pcs = nil
	for i := 0; i < InboundSlots-1; i++ {
		add(fmt.Sprintf("/ip4/10.77.2.%d/tcp/4747", 1+i%16))
	}
	add("/ip4/10.77.0.3/tcp/4747")
	for i := 0; i < 16; i++ {
		for k := 0; k < 20; k++ {
			a.arrive(fmt.Sprintf("10.77.2.%d/32", 1+i), now)
		}
	}
	a.arrive("10.77.0.3/32", now)
	if got := admit("/ip4/10.77.2.5/tcp/4747"); got != AdmRefusedFull {
		t.Errorf("attacker host with slots full: %q, want %q", got, AdmRefusedFull)
	}
	if got := admit("/ip4/10.77.3.9/tcp/4747"); got != "" {
		t.Errorf("newcomer from a new address with slots full: %q, want it admitted", got)
	}
	if got := admit("/ip4/10.77.0.3/tcp/4747"); got != "" {
		t.Errorf("second node behind a NAT address with slots full: %q, want it admitted", got)
	}
}

// TestAdmissionLimitsConsistent pins how admission's own numbers relate;
// node's TestLimitsConsistent relates them to the connection manager's, the
// resource manager's and the status exchange's.
func TestAdmissionLimitsConsistent(t *testing.T) {
	if subnetInboundCap < 1 || subnetInboundCap*4 > InboundSlots {
		t.Errorf("a public subnet may hold %d of %d slots: one subnet must not take a quarter", subnetInboundCap, InboundSlots)
	}
	if unprovenGrace >= StatusDeadline {
		t.Errorf("unproven grace %v is not shorter than the status deadline %v", unprovenGrace, StatusDeadline)
	}
}
