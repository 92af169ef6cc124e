package p2p

import (
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

// TestWithoutLoopback: the addresses a node announces drop loopback when
// it has others, and keep it when it has nothing else (a node on loopback
// only, as in tests).
func TestWithoutLoopback(t *testing.T) {
	lo4, lo6 := ma.StringCast("/ip4/127.0.0.1/tcp/4747"), ma.StringCast("/ip6/::1/udp/4747/quic-v1")
	lan := ma.StringCast("/ip4/10.77.1.3/tcp/4747")
	if got := withoutLoopback([]ma.Multiaddr{lo4, lan, lo6}); len(got) != 1 || !got[0].Equal(lan) {
		t.Errorf("with a LAN address: %v, want only %v", got, lan)
	}
	if got := withoutLoopback([]ma.Multiaddr{lo4, lo6}); len(got) != 2 {
		t.Errorf("loopback only: %v, want both kept", got)
	}
}
