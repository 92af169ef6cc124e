package peering

import (
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jbc-project/jbc/protocol"
)

// Source says how a peer was found.
type Source string

// The ways a node finds peers.
const (
	SourceMDNS      Source = "mdns"
	SourceDHT       Source = "dht"
	SourceBootstrap Source = "bootstrap"
	SourceDirect    Source = "direct"
	SourceInbound   Source = "inbound"
)

// BanDuration is how long a peer on another network is refused: long
// enough that it does not keep costing a handshake, short enough that a
// peer that rejoins our network is not shut out for good.
const BanDuration = time.Hour

// maxBanReason bounds the reason kept with a ban: a sentence and the
// error that caused it, enough to act on, while a long error (or text a
// peer chose) cannot grow every GET /peers.
const maxBanReason = 300

// SyncRecord is the outcome of the last sync with a peer.
type SyncRecord struct {
	At       time.Time     `json:"at"`
	Blocks   int           `json:"blocks"`
	Bytes    int           `json:"bytes"`
	Duration time.Duration `json:"duration_ns"`
	// Result is "adopted" when the peer's chain became our best, or a
	// sentence saying why it was refused or why the sync failed.
	Result string `json:"result"`
	// Outcome sorts Result for display (see SyncOutcome).
	Outcome SyncOutcome `json:"outcome"`
	// Sources counts the blocks each peer (by ID) sent that were stored
	// or held: the synced peer, and the others carrying its chain that
	// served ranges of it.
	Sources map[string]int `json:"sources,omitempty"`
}

// SyncOutcome sorts the results of a sync: what the dashboard shows as
// success, as nothing to do, or as a fault.
type SyncOutcome string

// The outcomes of a sync.
const (
	// SyncAdopted: the peer's chain became our best.
	SyncAdopted SyncOutcome = "adopted"
	// SyncNoMoreWork: the peer's chain had no more work than ours, so
	// there was nothing to take; the normal answer of a peer in step
	// with us, not a fault.
	SyncNoMoreWork SyncOutcome = "no-more-work"
	// SyncRefused: the peer sent something we would not take (an invalid
	// block, blocks that do not attach, less work than it claimed).
	SyncRefused SyncOutcome = "refused"
	// SyncFailed: the sync broke off (a timeout, a malformed response, a
	// local error).
	SyncFailed SyncOutcome = "failed"
	// SyncStopped: the node was shutting down.
	SyncStopped SyncOutcome = "stopped"
)

// ResultNoMoreWork is the Result of a sync that found nothing to take.
const ResultNoMoreWork = "refused: no more work than ours"

// outcomeOf sorts a sync's Result (as the syncer words it, package
// chainsync).
func outcomeOf(result string) SyncOutcome {
	switch {
	case result == string(SyncAdopted):
		return SyncAdopted
	case result == ResultNoMoreWork:
		return SyncNoMoreWork
	case result == string(SyncStopped):
		return SyncStopped
	case strings.HasPrefix(result, "refused:"):
		return SyncRefused
	}
	return SyncFailed
}

// Ban says why a peer is refused and until when.
type Ban struct {
	Reason string    `json:"reason"`
	Until  time.Time `json:"until"`
}

// BannedPeer is a peer refused now: what the node knew of it when it was
// banned, and the ban.
type BannedPeer struct {
	PeerInfo
	Ban Ban
}

// PeerInfo is what the node knows about one peer.
type PeerInfo struct {
	ID        peer.ID
	Addrs     []ma.Multiaddr
	Source    Source
	Connected bool
	FoundAt   time.Time
	Status    *protocol.Status
	StatusAt  time.Time
	LastSync  *SyncRecord
	// DialError is the last error of a real attempt to dial the peer
	// since it was last connected, and DialErrorAt when it came; a dial
	// the swarm refused for its own backoff is not a real attempt and
	// does not replace it. DialFailures counts those attempts.
	DialError    string
	DialErrorAt  time.Time
	DialFailures int
}

// Set tracks known peers and banned ones. It is safe for concurrent use.
type Set struct {
	mu     sync.Mutex
	peers  map[peer.ID]*PeerInfo
	banned map[peer.ID]*BannedPeer
}

// NewSet returns an empty peer set.
func NewSet() *Set {
	return &Set{peers: map[peer.ID]*PeerInfo{}, banned: map[peer.ID]*BannedPeer{}}
}

// Found records that p was found by src. The first source sticks: a peer
// found by mDNS and then connecting to us stays "mdns".
func (ps *Set) Found(p peer.ID, addrs []ma.Multiaddr, src Source) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	pi, ok := ps.peers[p]
	if !ok {
		pi = &PeerInfo{ID: p, Source: src, FoundAt: time.Now()}
		ps.peers[p] = pi
	}
	if len(addrs) > 0 {
		pi.Addrs = addrs
	}
}

// SetConnected records whether p is connected; a connection clears the
// error of its last failed dial.
func (ps *Set) SetConnected(p peer.ID, c bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if pi, ok := ps.peers[p]; ok {
		pi.Connected = c
		if c {
			pi.DialError, pi.DialErrorAt, pi.DialFailures = "", time.Time{}, 0
		}
	}
}

// DialFailed records a failed dial of p. A dial refused by the swarm's
// backoff (which follows every failure for a while, and says only "dial
// backoff") keeps the error of the real attempt before it. It reports
// whether this is the first real failure since p was last connected (or
// found): the one worth telling the operator about.
func (ps *Set) DialFailed(p peer.ID, err error) (first bool) {
	if err == nil || errors.Is(err, swarm.ErrDialBackoff) {
		return false
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	pi, ok := ps.peers[p]
	if !ok {
		return false
	}
	pi.DialFailures++
	pi.DialError, pi.DialErrorAt = DialCause(err), time.Now()
	return pi.DialFailures == 1
}

// DialCause says on one line why a dial failed: for each address tried,
// the transport's error ("/ip4/127.0.0.1/tcp/4801: dial tcp4
// 127.0.0.1:4801: connect: connection refused"), rather than the swarm's
// several lines that repeat the peer ID.
func DialCause(err error) string {
	var de *swarm.DialError
	if errors.As(err, &de) && len(de.DialErrors) > 0 {
		parts := make([]string, 0, len(de.DialErrors))
		for _, te := range de.DialErrors {
			parts = append(parts, te.Address.String()+": "+te.Cause.Error())
		}
		return strings.Join(parts, "; ")
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

// SetStatus records the last status p sent; a peer not known yet is
// recorded as inbound.
func (ps *Set) SetStatus(p peer.ID, st protocol.Status) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	pi, ok := ps.peers[p]
	if !ok {
		pi = &PeerInfo{ID: p, Source: SourceInbound, FoundAt: time.Now()}
		ps.peers[p] = pi
	}
	pi.Status = &st
	pi.StatusAt = time.Now()
}

// SetSync records the outcome of the last sync with p, sorting its
// Result into an Outcome.
func (ps *Set) SetSync(p peer.ID, r SyncRecord) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if pi, ok := ps.peers[p]; ok {
		r.Outcome = outcomeOf(r.Result)
		pi.LastSync = &r
	}
}

// Forget drops a peer that no longer answers; it is added again if found.
func (ps *Set) Forget(p peer.ID) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	delete(ps.peers, p)
}

// Get returns what is known of p, and whether it is known.
func (ps *Set) Get(p peer.ID) (PeerInfo, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	pi, ok := ps.peers[p]
	if !ok {
		return PeerInfo{}, false
	}
	return *pi, true
}

// List returns a copy of every known peer, sorted by ID.
func (ps *Set) List() []PeerInfo {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make([]PeerInfo, 0, len(ps.peers))
	for _, pi := range ps.peers {
		out = append(out, *pi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Ban refuses p for BanDuration: a peer on another network. reason says
// why, for the operator (GET /peers, doctor, the dashboard).
func (ps *Set) Ban(p peer.ID, reason string) { ps.BanFor(p, BanDuration, reason) }

// BanFor refuses p for d, for the given reason, and moves what we knew of
// it from the known peers to the banned ones, where it stays until the
// ban ends.
func (ps *Set) BanFor(p peer.ID, d time.Duration, reason string) {
	if len(reason) > maxBanReason {
		reason = strings.ToValidUTF8(reason[:maxBanReason-3], "") + "..."
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	bp, ok := ps.banned[p]
	if !ok {
		bp = &BannedPeer{PeerInfo: PeerInfo{ID: p, Source: SourceInbound, FoundAt: time.Now()}}
		ps.banned[p] = bp
	}
	if pi, ok := ps.peers[p]; ok {
		bp.PeerInfo = *pi
		delete(ps.peers, p)
	}
	bp.Connected = false
	bp.Ban = Ban{Reason: reason, Until: time.Now().Add(d)}
}

// IsBanned reports whether p is refused now; a ban that has ended is
// dropped.
func (ps *Set) IsBanned(p peer.ID) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	bp, ok := ps.banned[p]
	if !ok {
		return false
	}
	if time.Now().After(bp.Ban.Until) {
		delete(ps.banned, p)
		return false
	}
	return true
}

// Bans returns a copy of every peer refused now, sorted by ID, and drops
// the bans that have ended.
func (ps *Set) Bans() []BannedPeer {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	now := time.Now()
	out := []BannedPeer{}
	for p, bp := range ps.banned {
		if !now.Before(bp.Ban.Until) {
			delete(ps.banned, p)
			continue
		}
		out = append(out, *bp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// BannedCount returns how many peers are refused now.
func (ps *Set) BannedCount() int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	n := 0
	now := time.Now()
	for _, bp := range ps.banned {
		if now.Before(bp.Ban.Until) {
			n++
		}
	}
	return n
}
