package discovery

import (
	"strings"
	"testing"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/jbc-project/jbc/node/p2p"
)

func TestOfflineProblems(t *testing.T) {
	lo := CheckAddrs([]ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4747")})
	lan := CheckAddrs([]ma.Multiaddr{ma.StringCast("/ip4/10.1.2.3/tcp/4747")})
	bridge := CheckAddrs([]ma.Multiaddr{ma.StringCast("/ip4/172.17.0.5/tcp/4747")})
	noMulticast := []InterfaceCheck{{Name: "lo", Up: true, Multicast: false, Loopback: true, Addrs: []string{"127.0.0.1/8"}}}
	eth := []InterfaceCheck{{Name: "eth0", Up: true, Multicast: true, Addrs: []string{"10.1.2.3/24"}}}

	problems := func(ifs []InterfaceCheck, listen, announce []AddrCheck, mdns bool, peers []AddrCheck) []Problem {
		ps, _ := OfflineProblems(ifs, listen, announce, mdns, peers)
		return ps
	}
	if ps := problems(noMulticast, lan, nil, true, nil); !HasProblem(ps, "multicast") {
		t.Errorf("mDNS without multicast not reported: %+v", ps)
	}
	if ps := problems(noMulticast, lan, nil, false, nil); HasProblem(ps, "multicast") {
		t.Errorf("multicast reported with mDNS off: %+v", ps)
	}
	if ps := problems(eth, lo, nil, true, nil); !HasProblem(ps, "loopback only") {
		t.Errorf("loopback-only listening not reported: %+v", ps)
	}
	if ps := problems(eth, lo, nil, false, lan); !HasProblem(ps, "loopback only") {
		t.Errorf("loopback-only listening with a peer on the LAN not reported: %+v", ps)
	}
	// The README's local network: loopback, no mDNS, peers on loopback.
	// Chosen, so a note and not a problem.
	for _, peers := range [][]AddrCheck{nil, lo} {
		ps, notes := OfflineProblems(eth, lo, nil, false, peers)
		if len(ps) != 0 || len(notes) != 1 || !strings.Contains(notes[0], "loopback only") {
			t.Errorf("local network (peers %v): problems %+v, notes %q", peers, ps, notes)
		}
	}
	if ps := problems(eth, lan, bridge, true, nil); !HasProblem(ps, "docker-bridge") {
		t.Errorf("docker-bridge announce not reported: %+v", ps)
	}
	if ps, notes := OfflineProblems(eth, lan, nil, true, nil); len(ps) != 0 || len(notes) != 0 {
		t.Errorf("a healthy LAN node has problems %+v or notes %q", ps, notes)
	}
	if k := p2p.AddrKind(ma.StringCast("/ip4/8.8.8.8/tcp/1")); k != "public" {
		t.Errorf("8.8.8.8 is %s", k)
	}
}
