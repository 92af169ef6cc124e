package p2p

import (
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

// TestTCPFirstDialRanker: TCP addresses are dialled at once and QUIC ones
// QUICDialDelay later; without TCP, QUIC at once.
func TestTCPFirstDialRanker(t *testing.T) {
	quic4 := ma.StringCast("/ip4/10.0.0.1/udp/4747/quic-v1")
	quic6 := ma.StringCast("/ip6/fd00::1/udp/4747/quic-v1")
	tcp4 := ma.StringCast("/ip4/10.0.0.1/tcp/4747")
	tcp6 := ma.StringCast("/ip6/fd00::1/tcp/4747")
	ws := ma.StringCast("/ip4/10.0.0.1/tcp/4748/ws")
	got := map[string]int64{}
	for _, d := range TCPFirstDialRanker([]ma.Multiaddr{quic4, tcp4, quic6, tcp6, ws}) {
		got[d.Addr.String()] = int64(d.Delay)
	}
	want := map[string]int64{
		tcp4.String(): 0, tcp6.String(): 0,
		quic4.String(): int64(QUICDialDelay), quic6.String(): int64(QUICDialDelay), ws.String(): int64(QUICDialDelay),
	}
	if len(got) != len(want) {
		t.Fatalf("ranked %v, want %v", got, want)
	}
	for a, d := range want {
		if got[a] != d {
			t.Errorf("%s delayed %d ns, want %d", a, got[a], d)
		}
	}
	for _, d := range TCPFirstDialRanker([]ma.Multiaddr{quic4, quic6}) {
		if d.Delay != 0 {
			t.Errorf("%s delayed %v with no TCP address to prefer", d.Addr, d.Delay)
		}
	}
}
