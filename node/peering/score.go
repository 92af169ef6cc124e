package peering

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Misbehaviour is something a peer sent that an honest peer would not.
// Only what a peer sent counts: a local error (a disk failure, our own
// cancellation) is never a Misbehaviour.
type Misbehaviour string

// The kinds of misbehaviour, each with the penalty it costs. A peer whose
// decayed score reaches BanScore is disconnected and refused for
// BanDuration.
const (
	// MisInvalidBlock: a block that breaks a consensus rule.
	MisInvalidBlock Misbehaviour = "invalid-block"
	// MisMalformed: a frame or message that does not decode or breaks a
	// protocol limit.
	MisMalformed Misbehaviour = "malformed"
	// MisUnasked: a response or page that does not answer what we asked
	// (blocks that do not attach, more than requested).
	MisUnasked Misbehaviour = "unasked"
	// MisLiedWork: a status claiming more work than the peer's chain holds.
	MisLiedWork Misbehaviour = "lied-work"
	// MisFalseClaim: a status naming a tip whose work, validated from the
	// blocks the peer sent (or we hold), is less than the status claims.
	// Unlike MisLiedWork, no race explains it (a block's work is fixed by
	// its chain): it bans at once.
	MisFalseClaim Misbehaviour = "false-claim"
	// MisStalled: a response that did not come in time.
	MisStalled Misbehaviour = "stalled"
	// MisFlood: requests or gossip beyond the rate limits.
	MisFlood Misbehaviour = "flood"
	// MisInvalidGossip: a gossip message that fails validation.
	MisInvalidGossip Misbehaviour = "invalid-gossip"
	// MisBadRequest: a request to our server that breaks the protocol,
	// answered CODE_BAD_REQUEST. Like MisMalformed it bans at once, but
	// the connection is closed only badRequestLinger after the answer, so
	// that the answer arrives (docs/protocol.md, section 2).
	MisBadRequest Misbehaviour = "bad-request"
	// MisPoolShare: a gossiped entry from a peer that holds its share of
	// the data pool already (package gossip, Pool.AddGossip).
	MisPoolShare Misbehaviour = "pool-share"
)

// penalties are chosen so that one provable lie (an invalid block, a
// malformed frame) bans at once, while faults an honest but slow or
// unlucky peer can commit (a stall, a burst over the rate limit) take
// several within the decay half-life.
var penalties = map[Misbehaviour]float64{
	MisInvalidBlock:  100,
	MisMalformed:     100,
	MisUnasked:       50,
	MisLiedWork:      50,
	MisFalseClaim:    100,
	MisStalled:       20,
	MisFlood:         10,
	MisInvalidGossip: 100,
	MisBadRequest:    100,
	// An honest relay reaches its share only when the network's backlog
	// of entries is huge; a flooder sending on at full rate does so
	// within a second, and 100 entries more ban it.
	MisPoolShare: 1,
}

const (
	// BanScore is the score at which a peer is disconnected and banned.
	BanScore = 100
	// scoreHalfLife: a peer's score halves every 10 minutes, so old
	// faults are forgiven and only a steady stream of them bans.
	scoreHalfLife = 10 * time.Minute
	// MisbehaviourBan is how long a peer that reached BanScore is refused.
	MisbehaviourBan = 30 * time.Minute
	// badRequestLinger is how long the connection of a peer banned for a
	// bad request stays open after our CODE_BAD_REQUEST answer was written.
	// The multiplexer queues what a stream writes and drops the queue when
	// its connection closes, so closing at once cuts the answer off. The
	// answer is a few hundred bytes written at once: a second covers a
	// loaded machine and a slow link's round trip, while the banned peer is
	// refused every request meanwhile and cannot dial again.
	badRequestLinger = time.Second
)

// Scores keeps each peer's decaying misbehaviour score, and disconnects
// and bans a peer whose score reaches BanScore (Penalise). It is safe for
// concurrent use.
type Scores struct {
	cfg ScoresConfig
	mu  sync.Mutex
	m   map[peer.ID]*score
}

// ScoresConfig is what Penalise needs besides the scores.
type ScoresConfig struct {
	// Host is the node's host: its own ID is never penalised, and a banned
	// peer's connections are closed on its network.
	Host host.Host
	// Peers records the bans.
	Peers *Set
	// Count, if set, counts each penalty (the metric
	// jbc_misbehaviour_total).
	Count func(Misbehaviour)
	// Logger receives a line per penalty and per ban.
	Logger *slog.Logger
}

type score struct {
	value float64
	at    time.Time
	last  Misbehaviour
}

// NewScores returns empty scores that penalise as cfg says.
func NewScores(cfg ScoresConfig) *Scores {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Scores{cfg: cfg, m: map[peer.ID]*score{}}
}

// add records misbehaviour m by p and returns p's new score.
func (s *Scores) add(p peer.ID, m Misbehaviour, now time.Time) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.m[p]
	if !ok {
		sc = &score{at: now}
		s.m[p] = sc
	}
	sc.value = decay(sc.value, now.Sub(sc.at)) + penalties[m]
	sc.at, sc.last = now, m
	return sc.value
}

// Get returns p's current score.
func (s *Scores) Get(p peer.ID, now time.Time) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.m[p]
	if !ok {
		return 0
	}
	return decay(sc.value, now.Sub(sc.at))
}

// forget drops p's score (after a ban: the ban is the penalty).
func (s *Scores) forget(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, p)
}

func decay(v float64, d time.Duration) float64 {
	if d <= 0 {
		return v
	}
	return v * math.Exp2(-d.Seconds()/scoreHalfLife.Seconds())
}

// Penalise records misbehaviour m by p, detail saying what it was; at
// BanScore the peer is disconnected and banned.
func (s *Scores) Penalise(p peer.ID, m Misbehaviour, detail string) {
	h := s.cfg.Host
	if p == "" || p == h.ID() {
		return
	}
	v := s.add(p, m, time.Now())
	if s.cfg.Count != nil {
		s.cfg.Count(m)
	}
	log := s.cfg.Logger
	level := slog.LevelInfo
	if m == MisFlood || m == MisPoolShare {
		level = slog.LevelDebug // one line per dropped message would flood the log
	}
	log.Log(context.Background(), level, "peer misbehaved", "peer", p, "what", string(m), "score", int(v), "detail", detail)
	if v >= BanScore {
		log.Warn("banning peer", "peer", p, "score", int(v), "for", MisbehaviourBan, "last", string(m))
		s.forget(p)
		s.cfg.Peers.BanFor(p, MisbehaviourBan, fmt.Sprintf("misbehaved: %s (score %d): %s", m, int(v), detail))
		if m == MisBadRequest {
			time.AfterFunc(badRequestLinger, func() { _ = h.Network().ClosePeer(p) })
		} else {
			go h.Network().ClosePeer(p)
		}
	}
}

// Penalty returns what misbehaviour m adds to a peer's score.
func Penalty(m Misbehaviour) float64 { return penalties[m] }
