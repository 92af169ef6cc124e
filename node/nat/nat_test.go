package nat

import (
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
)

// TestReachability checks how the node's reachability is derived from
// AutoNAT v1, v2 and its own addresses, and when it acts as a public node
// (relay service on, no reservation).
func TestReachability(t *testing.T) {
	pub := []ma.Multiaddr{ma.StringCast("/ip6/2001:2:0:3::1/tcp/4747")}
	for _, c := range []struct {
		name                              string
		v1                                network.Reachability
		reachable, unreachable, undecided []ma.Multiaddr
		own                               []ma.Multiaddr
		want, why                         string
		capable                           bool
	}{
		{name: "behind NAT, nothing decided", want: Private, why: "interface"},
		{name: "public interface, not checked yet", own: pub, want: Unknown, why: "interface", capable: true},
		{name: "v2 confirmed", own: pub, reachable: pub, want: Public, why: "autonat-v2", capable: true},
		{name: "port forward: v2 confirmed the observed address", reachable: pub, want: Public, why: "autonat-v2", capable: true},
		{name: "firewall: v2 found every public address unreachable", own: pub, unreachable: pub, want: Private, why: "autonat-v2"},
		{name: "v2 still deciding one", own: pub, unreachable: pub, undecided: pub, want: Unknown, why: "interface", capable: true},
		{name: "v1 private", own: pub, v1: network.ReachabilityPrivate, want: Private, why: "autonat-v1"},
		{name: "v1 public", v1: network.ReachabilityPublic, want: Public, why: "autonat-v1", capable: true},
	} {
		n := New(Config{})
		n.v1, n.reachable, n.unreachable, n.undecided, n.ownPublic = c.v1, c.reachable, c.unreachable, c.undecided, c.own
		got, why := n.reachabilityLocked()
		if got != c.want || why != c.why || n.relayCapableLocked() != c.capable {
			t.Errorf("%s: %s (%s), public node %v; want %s (%s), %v", c.name, got, why, n.relayCapableLocked(), c.want, c.why, c.capable)
		}
	}
}

// TestTracer checks that a punch under way is seen (a connection opened
// meanwhile is a hole punch) and that a failure is kept with its cause.
func TestTracer(t *testing.T) {
	tr := &tracer{}
	const p = "peer"
	ev := func(typ string, e any) {
		tr.Trace(&holepunch.Event{Timestamp: time.Now().UnixNano(), Remote: p, Type: typ, Evt: e})
	}
	if tr.punching(p) {
		t.Fatal("punching before any event")
	}
	ev(holepunch.StartHolePunchEvtT, &holepunch.StartHolePunchEvt{})
	ev(holepunch.HolePunchAttemptEvtT, &holepunch.HolePunchAttemptEvt{Attempt: 1})
	if !tr.punching(p) {
		t.Fatal("not punching after StartHolePunch")
	}
	ev(holepunch.EndHolePunchEvtT, &holepunch.EndHolePunchEvt{Error: "all retries for hole punch with peer failed"})
	ps, _ := tr.get(p)
	if tr.punching(p) || ps.attempts != 1 || ps.successes != 0 || !strings.Contains(ps.lastErr, "all retries") {
		t.Fatalf("after a failed punch: %+v", ps)
	}
}

// TestCheckRelayDown checks the doctor's finding for a node behind NAT
// whose only relay, its bootstrap node, is down.
func TestCheckRelayDown(t *testing.T) {
	n := New(Config{Relay: true})
	h := testHost(t)
	n.h.Store(&h)
	n.started = time.Now()
	if fs := n.Check([]BootstrapState{{ID: "R", Error: "connection refused"}}); len(fs) != 0 {
		t.Fatalf("findings for a bootstrap node on a private address: %+v", fs)
	}
	fs := n.Check([]BootstrapState{{ID: "R", Error: "connection refused", Public: true}})
	found := false
	for _, f := range fs {
		if !f.Note && strings.Contains(f.Problem, "no relay reservation") && strings.Contains(f.Problem, "relay R unreachable: connection refused") && f.Fix != "" {
			found = true
		}
	}
	if !found {
		t.Fatalf("findings %+v: want behind NAT, no relay reservation, relay R unreachable", fs)
	}
	// With a reservation, no such finding.
	n.relayAddrs = []ma.Multiaddr{ma.StringCast("/ip6/2001:2:0:3::1/tcp/4747/p2p/12D3KooWRXorggRP4KzDQsvDNYuw7fqpeGPdxUWiKVzFQZYJhYwL/p2p-circuit")}
	for _, f := range n.Check([]BootstrapState{{ID: "R", Error: "connection refused", Public: true}}) {
		if strings.Contains(f.Problem, "no relay reservation") {
			t.Fatalf("finding with a reservation held: %s", f.Problem)
		}
	}
	if st := n.Status(); len(st.Relays) != 1 || st.Relays[0] != "12D3KooWRXorggRP4KzDQsvDNYuw7fqpeGPdxUWiKVzFQZYJhYwL" {
		t.Errorf("relays %v, want R's ID from the relay address", st.Relays)
	}
}
