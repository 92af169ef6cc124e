package gossip

import (
	"cmp"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/internal/notify"
)

// Pool limits. A pool holds entries until a block on the best chain holds
// them; the bounds keep a flood of submissions from exhausting memory.
const (
	// MaxPoolEntries bounds the number of pending entries: a few hundred
	// blocks' worth of typical short entries.
	MaxPoolEntries = 10000
	// MaxPoolBytes bounds the pending entries' text: 256 full blocks of the
	// default 64 KiB.
	MaxPoolBytes = 16 << 20
	// PoolShares is what a peer's share of the pool never falls below: an
	// eighth of each bound (2 MiB, 1 250 entries). The pool is shared
	// among the peers that can send us entries and ourselves, so that a
	// node with one peer lets it fill half the pool, a node with seven
	// peers or more an eighth each: one peer, however fast, never holds
	// more than its part, and a node with few peers does not refuse most
	// of what its only relay passes on.
	PoolShares = 8
)

// ErrPoolFull is returned when the pool holds MaxPoolEntries entries or
// MaxPoolBytes bytes and nothing can be evicted for the new entry: the
// entry is refused, not silently dropped, so the submitter can retry.
var ErrPoolFull = errors.New("node: data pool is full; retry later")

// errOverShare refuses a gossiped entry from a peer that holds its share of
// the pool already.
var errOverShare = errors.New("node: the peer holds its share of the data pool")

// Pool is the set of pending data entries: bounded, deduplicated by entry
// ID, kept in arrival order. Entries submitted to this node (and those a
// reorg returned) are local: they are admitted ahead of gossiped ones,
// evicting them when the pool is full, and mined first. Gossiped entries
// are counted against the peer that sent them, which may hold at most its
// share of the pool; when the pool is full, a new entry evicts the newest
// entry of the largest contributor, if that peer holds more than the
// sender would. The pool also remembers when each entry was last
// announced to the network, for the gossip's re-announcements
// (Gossip's re-announcements). It is safe for concurrent use.
type Pool struct {
	mu      sync.Mutex
	entries map[chain.Hash]*poolEntry
	order   []chain.Hash // arrival order; may hold IDs already removed
	bytes   int
	peers   map[peer.ID]*contribution // what each peer's gossip holds
	changed notify.Watch              // fired when an entry is added
	// localAdded is fired when an entry is submitted here, so that the
	// miner takes it into its next block at once.
	localAdded notify.Watch
	evicted    int // gossiped entries evicted so far
}

type poolEntry struct {
	text  string
	added time.Time
	// announced is when the entry was last announced (gossiped on arrival
	// or re-announced); zero for an entry a reorg restored, which no peer
	// may have heard of.
	announced time.Time
	// from is the peer that gossiped the entry to us; "" for a local one.
	from peer.ID
}

// contribution is what one peer's gossiped entries hold of the pool.
type contribution struct {
	bytes, count int
	ids          []chain.Hash // arrival order; may hold IDs no longer its
}

// use is how much of the pool c holds, as the larger of its fractions of
// the two bounds, scaled to compare without division.
func (c *contribution) use(extraBytes, extraCount int) int64 {
	return max(int64(c.bytes+extraBytes)*MaxPoolEntries, int64(c.count+extraCount)*MaxPoolBytes)
}

// NewPool returns an empty pool.
func NewPool() *Pool {
	return &Pool{entries: map[chain.Hash]*poolEntry{}, peers: map[peer.ID]*contribution{}}
}

// Add adds text submitted to us (a local entry), which counts as announced
// now, and reports whether it is new. A full pool evicts gossiped entries
// for it, the largest contributor's first; only a pool full of local
// entries refuses it (ErrPoolFull). An entry pending from gossip becomes
// local.
func (p *Pool) Add(text string) (chain.Hash, bool, error) {
	id := chain.EntryID(text)
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.entries[id]; ok {
		if e.from != "" {
			p.uncount(e, id)
			e.from = ""
		}
		return id, false, nil
	}
	for !p.roomFor(len(text)) {
		victim := p.largest()
		if victim == nil {
			return id, false, ErrPoolFull
		}
		p.evictNewest(victim)
	}
	p.insert(id, text, "")
	p.localAdded.Fire()
	return id, true, nil
}

// AddGossip adds text gossiped to us by from, when peers peers may send us
// entries, and reports whether it is new. It refuses it with errOverShare
// when from holds its share of the pool already, and with ErrPoolFull when
// the pool is full and no peer holds more of it than from would.
func (p *Pool) AddGossip(text string, from peer.ID, peers int) (chain.Hash, bool, error) {
	id := chain.EntryID(text)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.entries[id]; ok {
		return id, false, nil
	}
	c := p.peers[from]
	if c == nil {
		c = &contribution{}
	}
	shares := min(PoolShares, max(peers, 1)+1)
	if c.bytes+len(text) > MaxPoolBytes/shares || c.count+1 > MaxPoolEntries/shares {
		return id, false, errOverShare
	}
	for !p.roomFor(len(text)) {
		victim := p.largest()
		if victim == nil || victim == c || victim.use(0, 0) <= c.use(len(text), 1) {
			return id, false, ErrPoolFull
		}
		p.evictNewest(victim)
	}
	p.insert(id, text, from)
	return id, true, nil
}

// roomFor reports whether an entry of n bytes fits. p.mu must be held.
func (p *Pool) roomFor(n int) bool {
	return len(p.entries) < MaxPoolEntries && p.bytes+n <= MaxPoolBytes
}

// insert adds a new entry, announced now. p.mu must be held.
func (p *Pool) insert(id chain.Hash, text string, from peer.ID) {
	now := time.Now()
	p.entries[id] = &poolEntry{text: text, added: now, announced: now, from: from}
	p.order = append(p.order, id)
	p.bytes += len(text)
	if from != "" {
		c := p.peers[from]
		if c == nil {
			c = &contribution{}
			p.peers[from] = c
		}
		c.bytes += len(text)
		c.count++
		c.ids = append(c.ids, id)
	}
	p.changed.Fire()
}

// largest returns the contribution that holds most of the pool, or nil if
// no gossiped entry is pending. p.mu must be held.
func (p *Pool) largest() *contribution {
	var (
		top *contribution
		use int64
	)
	for _, c := range p.peers {
		if u := c.use(0, 0); top == nil || u > use {
			top, use = c, u
		}
	}
	return top
}

// evictNewest drops c's newest pending entry. p.mu must be held.
func (p *Pool) evictNewest(c *contribution) {
	for len(c.ids) > 0 {
		id := c.ids[len(c.ids)-1]
		c.ids = c.ids[:len(c.ids)-1]
		if e, ok := p.entries[id]; ok && p.peers[e.from] == c {
			p.drop(id, e)
			p.evicted++
			p.compact()
			return
		}
	}
}

// drop removes a pending entry. p.mu must be held.
func (p *Pool) drop(id chain.Hash, e *poolEntry) {
	p.uncount(e, id)
	p.bytes -= len(e.text)
	delete(p.entries, id)
}

// uncount takes e out of its sender's contribution. p.mu must be held.
func (p *Pool) uncount(e *poolEntry, id chain.Hash) {
	c := p.peers[e.from]
	if e.from == "" || c == nil {
		return
	}
	c.bytes -= len(e.text)
	c.count--
	if c.count == 0 {
		delete(p.peers, e.from)
		return
	}
	// Forget the IDs of entries mined meanwhile once they are most.
	if len(c.ids) > 2*c.count+16 {
		live := c.ids[:0]
		for _, x := range c.ids {
			if x != id {
				if xe, ok := p.entries[x]; ok && xe.from == e.from {
					live = append(live, x)
				}
			}
		}
		c.ids = live
	}
}

// Restore puts back an entry of a block a reorg dropped and reports
// whether it was not pending already. It ignores the pool's bounds: what
// was submitted must not be lost, and a reorg's depth bounds how much comes
// back. The entry is local (whoever sent it first, it was mined) and counts
// as never announced: the nodes that took the other branch may never have
// heard of it.
func (p *Pool) Restore(text string) bool {
	id := chain.EntryID(text)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.entries[id]; ok {
		return false
	}
	p.entries[id] = &poolEntry{text: text, added: time.Now()}
	// Restored entries are the oldest pending: mine them first.
	p.order = append([]chain.Hash{id}, p.order...)
	p.bytes += len(text)
	p.changed.Fire()
	return true
}

// Remove drops the entries with the given texts (they are in a block).
func (p *Pool) Remove(texts []string) {
	if len(texts) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range texts {
		id := chain.EntryID(t)
		if e, ok := p.entries[id]; ok {
			p.drop(id, e)
		}
	}
	p.compact()
}

// compact drops stale IDs from the order list once they are most of it.
// p.mu must be held.
func (p *Pool) compact() {
	if len(p.order) > 2*len(p.entries)+64 {
		live := p.order[:0]
		kept := make(map[chain.Hash]struct{}, len(p.entries))
		for _, id := range p.order {
			if _, dup := kept[id]; dup {
				continue
			}
			if _, ok := p.entries[id]; ok {
				kept[id] = struct{}{}
				live = append(live, id)
			}
		}
		p.order = live
	}
}

// Has reports whether the entry id is pending.
func (p *Pool) Has(id chain.Hash) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.entries[id]
	return ok
}

// Size returns the number of pending entries.
func (p *Pool) Size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.entries)
}

// Pending returns pending entries up to max (0: all), in the order they
// are mined: local entries first, oldest first; then gossiped ones, those
// of the peers holding least of the pool first, each peer's oldest first.
// A flood from some peers thus delays neither what was submitted here nor
// what other peers sent.
func (p *Pool) Pending(max int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var (
		local  []string
		gossip []*poolEntry
	)
	// An entry removed and then added or restored again is listed twice
	// in order until it is compacted: list each entry once.
	seen := make(map[chain.Hash]struct{}, len(p.entries))
	for _, id := range p.order {
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		e, ok := p.entries[id]
		switch {
		case !ok:
		case e.from == "":
			local = append(local, e.text)
		default:
			gossip = append(gossip, e)
		}
		if max > 0 && len(local) == max {
			return local
		}
	}
	// Stable: each peer's entries stay oldest first.
	slices.SortStableFunc(gossip, func(a, b *poolEntry) int {
		return cmp.Compare(p.peers[a.from].use(0, 0), p.peers[b.from].use(0, 0))
	})
	out := local
	for _, e := range gossip {
		if max > 0 && len(out) == max {
			break
		}
		out = append(out, e.text)
	}
	return out
}

// Due returns up to max pending entries last announced at or before
// notAfter (a zero notAfter: only restored entries, never announced), least
// recently announced first and then oldest first, and records them as
// announced at now. Taking the least recently announced makes repeated
// rounds go round the whole pool, however much larger than max it is,
// restored entries first.
func (p *Pool) Due(notAfter time.Time, max int, now time.Time) []string {
	if max <= 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var due []*poolEntry
	seen := make(map[chain.Hash]struct{}, len(p.entries))
	for _, id := range p.order {
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		if e, ok := p.entries[id]; ok && !e.announced.After(notAfter) {
			due = append(due, e)
		}
	}
	// Stable: entries announced at the same time stay oldest first.
	slices.SortStableFunc(due, func(a, b *poolEntry) int { return a.announced.Compare(b.announced) })
	if len(due) > max {
		due = due[:max]
	}
	out := make([]string, len(due))
	for i, e := range due {
		e.announced = now
		out[i] = e.text
	}
	return out
}

// BlockData returns the data field for the next block: pending entries
// packed by chain.PackEntries, or fallback when none is pending.
func (p *Pool) BlockData(maxSize int, fallback string) string {
	// A block holds at most maxSize bytes; no more entries than that can
	// fit, each taking at least EntryOverhead-1 bytes.
	entries := p.Pending(maxSize/(chain.EntryOverhead-1) + 1)
	if data, n := chain.PackEntries(entries, maxSize); n > 0 {
		return data
	}
	return fallback
}

// Changed returns a channel closed when an entry next joins the pool.
func (p *Pool) Changed() <-chan struct{} { return p.changed.Wait() }

// LocalAdded returns a channel closed when an entry is next submitted
// here, which the miner takes into its very next block.
func (p *Pool) LocalAdded() <-chan struct{} { return p.localAdded.Wait() }

// PoolStats is what the pool holds.
type PoolStats struct {
	Entries, Bytes int
	// PeerBytes is the most that one peer's gossiped entries hold.
	PeerBytes int
	// Evicted counts the gossiped entries evicted so far.
	Evicted int
}

// Stats returns what the pool holds now.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := PoolStats{Entries: len(p.entries), Bytes: p.bytes, Evicted: p.evicted}
	for _, c := range p.peers {
		st.PeerBytes = max(st.PeerBytes, c.bytes)
	}
	return st
}
