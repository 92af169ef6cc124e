package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/jbc-project/jbc/chain"
)

// bucketEntries maps the ID of every data entry held by a best-chain block
// (chain.UnpackEntries) to that block's height and hash. It changes in the
// same transaction as the best chain, so it always describes it exactly.
var bucketEntries = []byte("entries")

// EntryBlock returns the hash and height of the best-chain block holding
// the data entry id, and whether there is one.
func (s *Store) EntryBlock(id chain.Hash) (chain.Hash, uint64, bool, error) {
	var (
		h      chain.Hash
		height uint64
		found  bool
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		if b == nil {
			return nil
		}
		v := b.Get(id[:])
		if v == nil {
			return nil
		}
		if len(v) != 8+chain.HashSize {
			return fmt.Errorf("%w: entry index value of %d bytes", ErrCorrupt, len(v))
		}
		height = binary.BigEndian.Uint64(v)
		copy(h[:], v[8:])
		found = true
		return nil
	})
	return h, height, found, err
}

// indexEntries records the entries of blocks joining the best chain, in
// height order; an entry held twice points at its first block.
func indexEntries(tx *bolt.Tx, blocks ...*chain.Block) error {
	eb := tx.Bucket(bucketEntries)
	for _, b := range blocks {
		for _, e := range chain.UnpackEntries(b.Data) {
			id := chain.EntryID(e)
			if eb.Get(id[:]) != nil {
				continue // an earlier block of the chain holds it already
			}
			v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+chain.HashSize), b.Index)
			if err := eb.Put(id[:], append(v, b.Hash[:]...)); err != nil {
				return err
			}
		}
	}
	return nil
}

// unindexEntries forgets the entries of a block leaving the best chain,
// where they point at it.
func unindexEntries(tx *bolt.Tx, b *chain.Block) error {
	eb := tx.Bucket(bucketEntries)
	for _, e := range chain.UnpackEntries(b.Data) {
		id := chain.EntryID(e)
		if v := eb.Get(id[:]); len(v) == 8+chain.HashSize && bytes.Equal(v[8:], b.Hash[:]) {
			if err := eb.Delete(id[:]); err != nil {
				return err
			}
		}
	}
	return nil
}
