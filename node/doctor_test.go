package node

import (
	"context"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jbc-project/jbc/chain"
)

func hasProblem(ps []Problem, substr string) bool {
	for _, p := range ps {
		if strings.Contains(p.Problem, substr) && p.Fix != "" {
			return true
		}
	}
	return false
}

func TestOfflineProblems(t *testing.T) {
	lo := CheckAddrs([]ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4747")})
	lan := CheckAddrs([]ma.Multiaddr{ma.StringCast("/ip4/10.1.2.3/tcp/4747")})
	bridge := CheckAddrs([]ma.Multiaddr{ma.StringCast("/ip4/172.17.0.5/tcp/4747")})
	noMulticast := []InterfaceCheck{{Name: "lo", Up: true, Multicast: false, Loopback: true, Addrs: []string{"127.0.0.1/8"}}}
	eth := []InterfaceCheck{{Name: "eth0", Up: true, Multicast: true, Addrs: []string{"10.1.2.3/24"}}}

	if ps := OfflineProblems(noMulticast, lan, nil, true); !hasProblem(ps, "multicast") {
		t.Errorf("mDNS without multicast not reported: %+v", ps)
	}
	if ps := OfflineProblems(noMulticast, lan, nil, false); hasProblem(ps, "multicast") {
		t.Errorf("multicast reported with mDNS off: %+v", ps)
	}
	if ps := OfflineProblems(eth, lo, nil, true); !hasProblem(ps, "loopback only") {
		t.Errorf("loopback-only listening not reported: %+v", ps)
	}
	if ps := OfflineProblems(eth, lan, bridge, true); !hasProblem(ps, "docker-bridge") {
		t.Errorf("docker-bridge announce not reported: %+v", ps)
	}
	if ps := OfflineProblems(eth, lan, nil, true); len(ps) != 0 {
		t.Errorf("a healthy LAN node has problems: %+v", ps)
	}
	if k := AddrKind(ma.StringCast("/ip4/8.8.8.8/tcp/1")); k != "public" {
		t.Errorf("8.8.8.8 is %s", k)
	}
}

func TestDoctorReportsUnreachableBootstrap(t *testing.T) {
	s := newStore(t, chain.TestNet())
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	h, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	_, pub, _ := crypto.GenerateEd25519Key(nil)
	ghost, _ := peer.IDFromPublicKey(pub)
	// A mocknet host can dial only linked mocknet peers: this one is never
	// reachable, and nothing leaves the process.
	boot := "/ip4/127.0.0.1/tcp/9/p2p/" + ghost.String()
	n, err := New(Config{Store: s, Host: h, Bootstrap: []string{boot}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	r := n.Doctor(context.Background())
	if len(r.Bootstrap) != 1 || r.Bootstrap[0].Reachable || r.Bootstrap[0].ID != ghost.String() {
		t.Fatalf("bootstrap check %+v", r.Bootstrap)
	}
	if !hasProblem(r.Problems, "cannot be reached") {
		t.Fatalf("unreachable bootstrap not a problem: %+v", r.Problems)
	}
}
