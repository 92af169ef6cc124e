package node

import (
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/jbc-project/jbc/chain"
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
)

// ErrPoolFull is returned when the pool holds MaxPoolEntries entries or
// MaxPoolBytes bytes: the entry is refused, not silently dropped, so the
// submitter can retry.
var ErrPoolFull = errors.New("node: data pool is full; retry later")

// pool is the set of pending data entries: bounded, deduplicated by entry
// ID, kept in arrival order so that the oldest are mined first. It also
// remembers when each entry was last announced to the network, for the
// gossip's re-announcements (gossip.reannounce). It is safe for concurrent
// use.
type pool struct {
	mu      sync.Mutex
	entries map[chain.Hash]*poolEntry
	order   []chain.Hash // arrival order; may hold IDs already removed
	bytes   int
	changed tipWatch // fired when an entry is added
}

type poolEntry struct {
	text  string
	added time.Time
	// announced is when the entry was last announced (gossiped on arrival
	// or re-announced); zero for an entry a reorg restored, which no peer
	// may have heard of.
	announced time.Time
}

func newPool() *pool { return &pool{entries: map[chain.Hash]*poolEntry{}} }

// add adds text, submitted to us or gossiped, which counts as announced
// now; it reports whether the entry is new.
func (p *pool) add(text string) (chain.Hash, bool, error) {
	id := chain.EntryID(text)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.entries[id]; ok {
		return id, false, nil
	}
	if len(p.entries) >= MaxPoolEntries || p.bytes+len(text) > MaxPoolBytes {
		return id, false, ErrPoolFull
	}
	now := time.Now()
	p.entries[id] = &poolEntry{text: text, added: now, announced: now}
	p.order = append(p.order, id)
	p.bytes += len(text)
	p.changed.fire()
	return id, true, nil
}

// restore puts back an entry of a block a reorg dropped and reports
// whether it was not pending already. It ignores the pool's bounds: what
// was submitted must not be lost, and a reorg's depth bounds how much comes
// back. The entry counts as never announced: the nodes that took the other
// branch may never have heard of it.
func (p *pool) restore(text string) bool {
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
	p.changed.fire()
	return true
}

// remove drops the entries with the given texts (they are in a block).
func (p *pool) remove(texts []string) {
	if len(texts) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range texts {
		id := chain.EntryID(t)
		if e, ok := p.entries[id]; ok {
			p.bytes -= len(e.text)
			delete(p.entries, id)
		}
	}
	// Compact the order list once it is mostly stale.
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

// has reports whether the entry id is pending.
func (p *pool) has(id chain.Hash) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.entries[id]
	return ok
}

// size returns the number of pending entries.
func (p *pool) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.entries)
}

// pending returns pending entries, oldest first, up to max (0: all).
func (p *pool) pending(max int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	// An entry removed and then added or restored again is listed twice
	// in order until it is compacted: list each entry once.
	seen := make(map[chain.Hash]struct{}, len(p.entries))
	for _, id := range p.order {
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		if e, ok := p.entries[id]; ok {
			out = append(out, e.text)
			if max > 0 && len(out) == max {
				break
			}
		}
	}
	return out
}

// due returns up to max pending entries last announced at or before
// notAfter (a zero notAfter: only restored entries, never announced), least
// recently announced first and then oldest first, and records them as
// announced at now. Taking the least recently announced makes repeated
// rounds go round the whole pool, however much larger than max it is,
// restored entries first.
func (p *pool) due(notAfter time.Time, max int, now time.Time) []string {
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

// blockData returns the data field for the next block: pending entries
// packed by chain.PackEntries, or fallback when none is pending.
func (p *pool) blockData(maxSize int, fallback string) string {
	// A block holds at most maxSize bytes; no more entries than that can
	// fit, each taking at least EntryOverhead-1 bytes.
	entries := p.pending(maxSize/(chain.EntryOverhead-1) + 1)
	if data, n := chain.PackEntries(entries, maxSize); n > 0 {
		return data
	}
	return fallback
}
