package storage

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/jbc-project/jbc/chain"
)

// Finding a block by hash.
//
// Blocks and index entries are keyed by height|hash, so a run of new blocks
// is appended at the end of both trees. What a hash alone does not give is
// the height; a tree keyed by hash would give it, at the price of one
// random page written per block and the whole tree paged into memory as
// the chain grows. Instead the store keeps a compact map in memory, from a
// 4-byte tag of each stored block's hash to its height, and persists the
// tags in the tags bucket, grouped by height so that they too are only ever
// appended:
//
//	tags: height>>8 (8 bytes big-endian) -> records of 5 bytes:
//	      height&0xff (1) | tag (4), one per stored block of those heights
//
// The map is a hint: a lookup reads the index at the height it names, and a
// hash whose tag is shared with a block at another height is kept under
// its full hash in a second, small map. About 9 bytes a block in memory,
// 5 on disk, read back whole when the store is opened.

var bucketTags = []byte("tags")

// tagRecord is the size of one record in the tags bucket.
const tagRecord = 5

// tagOf is the tag of a block hash: its last four bytes (the first ones
// are the proof of work's zeros).
func tagOf(h chain.Hash) uint32 {
	return binary.BigEndian.Uint32(h[chain.HashSize-4:])
}

func tagChunkKey(height uint64) []byte { return heightKey(height >> 8) }

// hashIndex maps the hashes of stored blocks to their heights.
//
// Most entries are in sorted, a packed array of tag<<32 | height ordered by
// tag, one entry per tag: 8 bytes a block. Blocks stored since the last
// merge are in recent, a map, merged into sorted once it holds an eighth as
// many: over a long sync each entry is copied about nine times, and the map
// stays small.
type hashIndex struct {
	mu     sync.RWMutex
	sorted []uint64
	recent map[uint32]uint32
	// exact holds the blocks the tags do not lead to: those sharing a tag
	// with a block at another height, and those above MaxUint32.
	exact map[chain.Hash]uint64
}

// minMerge is the least number of recent entries merged into sorted.
const minMerge = 4096

func newHashIndex() *hashIndex {
	return &hashIndex{recent: make(map[uint32]uint32), exact: make(map[chain.Hash]uint64)}
}

// Bytes returns about how much memory x holds.
func (x *hashIndex) Bytes() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	// A Go map costs about 20 bytes an entry of 8 (swiss table groups at
	// 7/8 load), 100 of a hash and a height.
	return 8*cap(x.sorted) + 20*len(x.recent) + 100*len(x.exact)
}

// height returns the height block h is at if it is stored; a block that is
// not stored may still get a height, which the caller checks against the
// index.
func (x *hashIndex) height(h chain.Hash) (uint64, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if height, ok := x.exact[h]; ok {
		return height, true
	}
	height, ok := x.tagHeight(tagOf(h))
	return uint64(height), ok
}

// tagHeight returns the height recorded for tag. x.mu is held.
func (x *hashIndex) tagHeight(tag uint32) (uint32, bool) {
	if height, ok := x.recent[tag]; ok {
		return height, true
	}
	i, ok := slices.BinarySearchFunc(x.sorted, tag, func(e uint64, tag uint32) int { return cmp.Compare(uint32(e>>32), tag) })
	if !ok {
		return 0, false
	}
	return uint32(x.sorted[i]), true
}

// add records blocks just stored (never ones stored before).
func (x *hashIndex) add(entries []chain.Entry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for i := range entries {
		h, height := entries[i].Hash, entries[i].Height
		if height > math.MaxUint32 {
			x.exact[h] = height
			continue
		}
		tag := tagOf(h)
		if at, ok := x.tagHeight(tag); !ok {
			x.recent[tag] = uint32(height)
		} else if uint64(at) != height {
			x.exact[h] = height
		}
		// A tag shared at the same height needs nothing: the index is
		// read at that height, under the full hash.
	}
	if len(x.recent) >= max(minMerge, len(x.sorted)/8) {
		x.merge()
	}
}

// merge moves the recent entries into sorted. x.mu is held.
func (x *hashIndex) merge() {
	add := make([]uint64, 0, len(x.recent))
	for tag, height := range x.recent {
		add = append(add, uint64(tag)<<32|uint64(height))
	}
	slices.Sort(add)
	out := make([]uint64, len(x.sorted)+len(add))
	i, j, k := 0, 0, 0
	for i < len(x.sorted) && j < len(add) {
		if x.sorted[i] < add[j] {
			out[k] = x.sorted[i]
			i++
		} else {
			out[k] = add[j]
			j++
		}
		k++
	}
	k += copy(out[k:], x.sorted[i:])
	copy(out[k:], add[j:])
	x.sorted = out
	clear(x.recent)
}

// load fills x from the tags bucket, checking each tag against the index:
// all tags read into sorted, sorted, and each tag shared by blocks at
// several heights resolved to full hashes through the index.
func (x *hashIndex) load(tx *bolt.Tx) error {
	index := tx.Bucket(bucketIndex)
	want, err := storedCount(tx)
	if err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	all := make([]uint64, 0, want)
	c := tx.Bucket(bucketTags).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		chunk, err := heightFrom(k)
		if err != nil {
			return err
		}
		if len(v) == 0 || len(v)%tagRecord != 0 {
			return fmt.Errorf("%w: tags of heights %d.. are %d bytes", ErrCorrupt, chunk<<8, len(v))
		}
		for ; len(v) > 0; v = v[tagRecord:] {
			height := chunk<<8 | uint64(v[0])
			tag := binary.BigEndian.Uint32(v[1:])
			if height > math.MaxUint32 {
				if err := x.exactAt(index, height, tag); err != nil {
					return err
				}
				continue
			}
			all = append(all, uint64(tag)<<32|height)
		}
	}
	if n := uint64(len(all) + len(x.exact)); n != want {
		return fmt.Errorf("%w: %d block tags for %d blocks stored", ErrCorrupt, n, want)
	}
	slices.Sort(all)
	// Keep each tag's lowest height; blocks of the tag at other heights go
	// to exact, by their full hashes.
	out := all[:0]
	for i, e := range all {
		if i > 0 && e>>32 == all[i-1]>>32 {
			if uint32(e) != uint32(out[len(out)-1]) {
				if err := x.exactAt(index, uint64(uint32(e)), uint32(e>>32)); err != nil {
					return err
				}
			}
			continue
		}
		out = append(out, e)
	}
	x.sorted = slices.Clip(out)
	return nil
}

// exactAt records under their full hashes the blocks at height whose hash
// has tag.
func (x *hashIndex) exactAt(index *bolt.Bucket, height uint64, tag uint32) error {
	prefix := heightKey(height)
	found := false
	c := index.Cursor()
	for k, _ := c.Seek(prefix); k != nil && len(k) == len(prefix)+chain.HashSize && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		var h chain.Hash
		copy(h[:], k[len(prefix):])
		if tagOf(h) == tag {
			x.exact[h] = height
			found = true
		}
	}
	if !found {
		return fmt.Errorf("%w: tag %08x at height %d names no stored block", ErrCorrupt, tag, height)
	}
	return nil
}

// putTags appends the tags of entries (blocks just stored) to the tags
// bucket: one write per group of 256 heights.
func putTags(tx *bolt.Tx, entries []chain.Entry) error {
	b := tx.Bucket(bucketTags)
	b.FillPercent = 1
	for i := 0; i < len(entries); {
		key := tagChunkKey(entries[i].Height)
		old := b.Get(key)
		v := make([]byte, len(old), len(old)+tagRecord*min(len(entries)-i, 256))
		copy(v, old)
		for ; i < len(entries) && entries[i].Height>>8 == binary.BigEndian.Uint64(key); i++ {
			v = append(v, byte(entries[i].Height))
			v = binary.BigEndian.AppendUint32(v, tagOf(entries[i].Hash))
		}
		if err := b.Put(key, v); err != nil {
			return err
		}
	}
	return nil
}
