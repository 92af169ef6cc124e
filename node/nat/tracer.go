package nat

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
)

// tracer is the hole-punch service's EventTracer: it keeps, per peer,
// whether a punch is under way (a connection opened meanwhile was made by
// it), the attempts and the last error. It is safe for concurrent use.
type tracer struct {
	mu    sync.Mutex
	peers map[peer.ID]*punchState
}

// punchState is what the tracer knows of the punches with one peer.
type punchState struct {
	// active: a StartHolePunch (or HolePunchAttempt) came and its
	// EndHolePunch not yet.
	active bool
	// last is when the last event of this peer came.
	last      time.Time
	attempts  int
	successes int
	lastErr   string
	lastErrAt time.Time
	// directDialErr is the last failed DirectDial: the initiator's try to
	// reach the peer's public addresses before punching.
	directDialErr string
}

// Trace records one event (holepunch.EventTracer).
func (t *tracer) Trace(e *holepunch.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.peers == nil {
		t.peers = map[peer.ID]*punchState{}
	}
	ps := t.peers[e.Remote]
	if ps == nil {
		t.trim()
		ps = &punchState{}
		t.peers[e.Remote] = ps
	}
	at := time.Unix(0, e.Timestamp)
	ps.last = at
	switch ev := e.Evt.(type) {
	case *holepunch.StartHolePunchEvt:
		ps.active = true
		ps.attempts++
	case *holepunch.HolePunchAttemptEvt:
		ps.active = true
	case *holepunch.EndHolePunchEvt:
		ps.active = false
		if ev.Success {
			ps.successes++
		} else {
			ps.lastErr, ps.lastErrAt = "hole punch failed: "+ev.Error, at
		}
	case *holepunch.DirectDialEvt:
		if !ev.Success {
			ps.directDialErr = ev.Error
		}
	case *holepunch.ProtocolErrorEvt:
		ps.lastErr, ps.lastErrAt = "DCUtR protocol error: "+ev.Error, at
	}
}

// punching reports whether a punch with p is under way.
func (t *tracer) punching(p peer.ID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.peers[p]
	return ps != nil && ps.active
}

// get returns a copy of what is known of the punches with p.
func (t *tracer) get(p peer.ID) (punchState, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.peers[p]
	if ps == nil {
		return punchState{}, false
	}
	return *ps, true
}

// maxTracedPeers bounds the peers the tracer remembers: every peer that
// punches with us, far more than the connections the node holds; past it
// the ones not punching now are forgotten.
const maxTracedPeers = 1024

// trim forgets idle peers once there are more than maxTracedPeers. The
// caller holds t.mu.
func (t *tracer) trim() {
	if len(t.peers) <= maxTracedPeers {
		return
	}
	for p, ps := range t.peers {
		if !ps.active {
			delete(t.peers, p)
		}
	}
}
