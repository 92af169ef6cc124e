package node

import (
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
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

// banDuration is how long a peer on another network is refused: long
// enough that it does not keep costing a handshake, short enough that a
// peer that rejoins our network is not shut out for good.
const banDuration = time.Hour

// SyncRecord is the outcome of the last sync with a peer.
type SyncRecord struct {
	At       time.Time     `json:"at"`
	Blocks   int           `json:"blocks"`
	Bytes    int           `json:"bytes"`
	Duration time.Duration `json:"duration_ns"`
	// Result is "adopted" when the peer's chain became our best, or a
	// sentence saying why it was refused or why the sync failed.
	Result string `json:"result"`
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
}

// peerSet tracks known peers and banned ones. It is safe for concurrent use.
type peerSet struct {
	mu     sync.Mutex
	peers  map[peer.ID]*PeerInfo
	banned map[peer.ID]time.Time
}

func newPeerSet() *peerSet {
	return &peerSet{peers: map[peer.ID]*PeerInfo{}, banned: map[peer.ID]time.Time{}}
}

// found records that p was found by src. The first source sticks: a peer
// found by mDNS and then connecting to us stays "mdns".
func (ps *peerSet) found(p peer.ID, addrs []ma.Multiaddr, src Source) {
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

func (ps *peerSet) setConnected(p peer.ID, c bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if pi, ok := ps.peers[p]; ok {
		pi.Connected = c
	}
}

func (ps *peerSet) setStatus(p peer.ID, st protocol.Status) {
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

func (ps *peerSet) setSync(p peer.ID, r SyncRecord) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if pi, ok := ps.peers[p]; ok {
		pi.LastSync = &r
	}
}

// forget drops a peer that no longer answers; it is added again if found.
func (ps *peerSet) forget(p peer.ID) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	delete(ps.peers, p)
}

func (ps *peerSet) get(p peer.ID) (PeerInfo, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	pi, ok := ps.peers[p]
	if !ok {
		return PeerInfo{}, false
	}
	return *pi, true
}

// list returns a copy of every known peer, sorted by ID.
func (ps *peerSet) list() []PeerInfo {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make([]PeerInfo, 0, len(ps.peers))
	for _, pi := range ps.peers {
		out = append(out, *pi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// ban refuses p for banDuration: a peer on another network.
func (ps *peerSet) ban(p peer.ID) { ps.banFor(p, banDuration) }

// banFor refuses p for d and forgets what we knew of it.
func (ps *peerSet) banFor(p peer.ID, d time.Duration) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.banned[p] = time.Now().Add(d)
	delete(ps.peers, p)
}

func (ps *peerSet) isBanned(p peer.ID) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	until, ok := ps.banned[p]
	if !ok {
		return false
	}
	if time.Now().After(until) {
		delete(ps.banned, p)
		return false
	}
	return true
}

// bannedCount returns how many peers are refused now.
func (ps *peerSet) bannedCount() int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	n := 0
	now := time.Now()
	for _, until := range ps.banned {
		if now.Before(until) {
			n++
		}
	}
	return n
}
