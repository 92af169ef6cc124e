package peering

import (
	"math"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestScoreDecays(t *testing.T) {
	s := NewScores(ScoresConfig{})
	p := peer.ID("p")
	t0 := time.Unix(1000, 0)
	if v := s.add(p, MisStalled, t0); v != penalties[MisStalled] {
		t.Fatalf("first penalty: %v", v)
	}
	// One half-life later the score has halved.
	if v := s.Get(p, t0.Add(scoreHalfLife)); math.Abs(v-penalties[MisStalled]/2) > 1e-9 {
		t.Fatalf("after a half-life: %v, want %v", v, penalties[MisStalled]/2)
	}
	// Penalties add on top of the decayed score.
	v := s.add(p, MisStalled, t0.Add(scoreHalfLife))
	if math.Abs(v-1.5*penalties[MisStalled]) > 1e-9 {
		t.Fatalf("second penalty: %v", v)
	}
	s.forget(p)
	if s.Get(p, t0) != 0 {
		t.Fatal("forget kept the score")
	}
}

func TestStallsBanOnlyWhenRepeated(t *testing.T) {
	s := NewScores(ScoresConfig{})
	p := peer.ID("p")
	now := time.Unix(1000, 0)
	n := 0
	for s.Get(p, now) < BanScore {
		s.add(p, MisStalled, now)
		n++
	}
	if n < 3 {
		t.Fatalf("a peer is banned after %d stalls; an honest slow peer must survive a few", n)
	}
	// Stalls spread over hours never ban.
	s2 := NewScores(ScoresConfig{})
	for i := 0; i < 50; i++ {
		if v := s2.add(p, MisStalled, now.Add(time.Duration(i)*time.Hour)); v >= BanScore {
			t.Fatalf("hourly stalls banned at stall %d (score %v)", i, v)
		}
	}
	// One invalid block bans at once.
	if v := NewScores(ScoresConfig{}).add(p, MisInvalidBlock, now); v < BanScore {
		t.Fatalf("an invalid block scores %v, below the ban", v)
	}
}
