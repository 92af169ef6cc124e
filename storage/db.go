package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/jbc-project/jbc/chain"
)

// Bucket and key names. The layout is:
//
//	blocks: height (8 bytes big-endian) | hash -> encoded block (every
//	        block stored, best chain or not)
//	index:  height | hash -> encoded entry (parent, height, time, bits,
//	        cumulative work)
//	tags:   the heights of blocks by a tag of their hash (hashindex.go)
//	best:   height (8 bytes big-endian) -> hash, for the best chain only
//	meta:   "params" -> genesis file JSON, "tip" -> hash, "version" -> schema,
//	        "count" -> how many blocks are stored (u64 big-endian)
//	entries: data entry ID -> height | hash of its best-chain block
//
// Every tree but entries is keyed by height first, so appending a run of
// blocks writes the end of each tree, never a random page: a sync of a
// long chain costs the same per block at its end as at its start, and the
// pages it reads stay few. Blocks are found by hash through an in-memory
// map from hash tag to height, rebuilt from the tags bucket on Open.
var (
	bucketBlocks = []byte("blocks")
	bucketIndex  = []byte("index")
	bucketBest   = []byte("best")
	bucketMeta   = []byte("meta")

	keyParams  = []byte("params")
	keyTip     = []byte("tip")
	keyVersion = []byte("version")
	keyCount   = []byte("count")
)

// schemaVersion is the layout version written into meta; Open refuses other
// versions rather than misreading them.
const schemaVersion = 3

// openTimeout bounds the wait for the file lock: a second process opening
// the same data directory gets an error instead of hanging.
const openTimeout = time.Second

// Store is a chain kept in one bbolt file: every block ever accepted, the
// index of their entries, and the best chain by height. Every change of the
// best chain happens in one transaction, so a crash leaves the old best
// chain or the new one. Only the tip is kept in memory. A Store is safe for
// concurrent use.
type Store struct {
	db     *bolt.DB
	params *chain.Params
	opts   options
	log    *slog.Logger

	hashes *hashIndex // hash -> height of every stored block

	writeMu sync.Mutex // serialises AddBlocks so the cached tip follows commits
	mu      sync.RWMutex
	tip     chain.Entry
}

// Exists reports whether dir holds a chain.
func Exists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, FileName))
	return err == nil
}

// Create makes a new chain for network p in dir, creating dir (0700) if
// needed. It fails with ErrExists if dir already holds a chain.
func Create(dir string, p *chain.Params, opts ...Option) (*Store, error) {
	if p == nil {
		return nil, errors.New("storage: nil params")
	}
	if Exists(dir) {
		return nil, fmt.Errorf("%w: %s", ErrExists, dir)
	}
	return Open(dir, p, opts...)
}

// Open opens the chain in dir. If dir holds none, a chain of network p is
// created (ErrNoChain when p is nil). If it holds one, its own parameters
// are used, and p, when not nil, must name the same network. Open checks the
// stored tip and re-validates the blocks below it (WithCheckDepth).
func Open(dir string, p *chain.Params, opts ...Option) (*Store, error) {
	o := options{logger: slog.New(slog.DiscardHandler), now: time.Now, checkDepth: DefaultCheckDepth}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	path := filepath.Join(dir, FileName)
	fresh := !Exists(dir)
	if fresh {
		if p == nil {
			return nil, fmt.Errorf("%w: %s", ErrNoChain, dir)
		}
		if err := p.Validate(); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("storage: %w", err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout, NoSync: o.noSync})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s", ErrInUse, path)
		}
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	s := &Store{db: db, opts: o, log: o.logger.With("component", "storage"), hashes: newHashIndex()}
	if err := s.load(p); err != nil {
		db.Close()
		if fresh {
			os.Remove(path)
		}
		return nil, err
	}
	return s, nil
}

// load initialises a new file for p, or reads and checks an existing one.
func (s *Store) load(p *chain.Params) error {
	var initialised bool
	err := s.db.View(func(tx *bolt.Tx) error {
		initialised = tx.Bucket(bucketMeta) != nil
		return nil
	})
	if err != nil {
		return err
	}
	if !initialised {
		if p == nil {
			return ErrNoChain
		}
		if err := s.initialise(p); err != nil {
			return err
		}
	}
	return s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return fmt.Errorf("%w: missing bucket", ErrCorrupt)
		}
		if v := meta.Get(keyVersion); len(v) != 8 || binary.BigEndian.Uint64(v) != schemaVersion {
			if len(v) == 8 && binary.BigEndian.Uint64(v) < schemaVersion {
				return fmt.Errorf("%w: schema version %d, from a development build of jbc before the first release; this jbc reads version %d: export it with that build and import the export", ErrCorrupt, binary.BigEndian.Uint64(v), schemaVersion)
			}
			return fmt.Errorf("%w: unknown schema version %x", ErrCorrupt, v)
		}
		for _, name := range [][]byte{bucketBlocks, bucketIndex, bucketTags, bucketBest, bucketEntries} {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("%w: missing bucket %s", ErrCorrupt, name)
			}
		}
		var sp chain.Params
		if err := json.Unmarshal(meta.Get(keyParams), &sp); err != nil {
			return fmt.Errorf("%w: stored params: %v", ErrCorrupt, err)
		}
		if p != nil && p.ID() != sp.ID() {
			return fmt.Errorf("%w: it holds %s (%s), not %s (%s)", ErrWrongNetwork, sp.Name, sp.ID().Short(), p.Name, p.ID().Short())
		}
		s.params = &sp
		if err := s.hashes.load(tx); err != nil {
			return err
		}
		tip, err := s.checkTip(tx)
		if err != nil {
			return err
		}
		s.tip = tip
		return nil
	})
}

func (s *Store) initialise(p *chain.Params) error {
	pj, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		buckets := make([]*bolt.Bucket, 6)
		for i, name := range [][]byte{bucketBlocks, bucketIndex, bucketBest, bucketMeta, bucketEntries, bucketTags} {
			b, err := tx.CreateBucket(name)
			if err != nil {
				return err
			}
			buckets[i] = b
		}
		g := p.GenesisEntry()
		if err := putBlock(tx, &p.Genesis, &g); err != nil {
			return err
		}
		if err := putTags(tx, []chain.Entry{g}); err != nil {
			return err
		}
		if err := buckets[2].Put(heightKey(0), g.Hash[:]); err != nil {
			return err
		}
		meta := buckets[3]
		if err := meta.Put(keyVersion, binary.BigEndian.AppendUint64(nil, schemaVersion)); err != nil {
			return err
		}
		if err := meta.Put(keyParams, pj); err != nil {
			return err
		}
		if err := meta.Put(keyCount, binary.BigEndian.AppendUint64(nil, 1)); err != nil {
			return err
		}
		return meta.Put(keyTip, g.Hash[:])
	})
}

// checkTip checks the stored tip against the best chain and re-validates
// the last checkDepth blocks below it.
func (s *Store) checkTip(tx *bolt.Tx) (chain.Entry, error) {
	th, err := hashFrom(tx.Bucket(bucketMeta).Get(keyTip))
	if err != nil {
		return chain.Entry{}, fmt.Errorf("%w: tip: %v", ErrCorrupt, err)
	}
	best := tx.Bucket(bucketBest)
	k, v := best.Cursor().Last()
	last, err := heightFrom(k)
	if err != nil {
		return chain.Entry{}, err
	}
	if !bytes.Equal(v, th[:]) {
		if height, ok := s.hashes.height(th); ok && height < last && bytes.Equal(best.Get(heightKey(height)), th[:]) {
			return chain.Entry{}, fmt.Errorf("%w: best chain runs past the tip to %d", ErrCorrupt, last)
		}
		return chain.Entry{}, fmt.Errorf("%w: best chain at %d is not the tip", ErrCorrupt, last)
	}
	tip, err := getEntryAt(tx, last, th)
	if err != nil {
		return chain.Entry{}, fmt.Errorf("%w: tip %s: %v", ErrCorrupt, th.Short(), err)
	}
	if _, ok := s.hashes.height(th); !ok {
		return chain.Entry{}, fmt.Errorf("%w: tip %s has no tag", ErrCorrupt, th.Short())
	}
	if g := best.Get(heightKey(0)); !bytes.Equal(g, s.params.Genesis.Hash[:]) {
		return chain.Entry{}, fmt.Errorf("%w: best chain does not start at the genesis", ErrCorrupt)
	}
	from := uint64(0)
	if tip.Height > s.opts.checkDepth {
		from = tip.Height - s.opts.checkDepth
	}
	if err := s.verifyBest(tx, from, tip.Height, nil); err != nil {
		return chain.Entry{}, err
	}
	return tip, nil
}

// verifyBest re-validates best-chain blocks from+1..to against the entry at
// from, checking each stored entry matches what validation computes.
func (s *Store) verifyBest(tx *bolt.Tx, from, to uint64, progress func(uint64)) error {
	best := tx.Bucket(bucketBest)
	start, err := hashFrom(best.Get(heightKey(from)))
	if err != nil {
		return fmt.Errorf("%w: best chain at %d: %v", ErrCorrupt, from, err)
	}
	se, err := getEntryAt(tx, from, start)
	if err != nil {
		return fmt.Errorf("%w: entry of block %d: %v", ErrCorrupt, from, err)
	}
	v, err := s.validatorAt(tx, se)
	if err != nil {
		return err
	}
	// Timestamps in the future are not re-judged: a block valid when it was
	// accepted stays valid, so the clock is "the latest possible".
	now := int64(1<<62 - 1)
	c := best.Cursor()
	k, hv := c.Seek(heightKey(from + 1))
	for ; k != nil; k, hv = c.Next() {
		height, err := heightFrom(k)
		if err != nil {
			return err
		}
		if height > to {
			break
		}
		h, err := hashFrom(hv)
		if err != nil {
			return fmt.Errorf("%w: best chain at %d: %v", ErrCorrupt, height, err)
		}
		b, err := getBlock(tx, height, h)
		if err != nil {
			return fmt.Errorf("%w: block %s at %d: %v", ErrCorrupt, h.Short(), height, err)
		}
		e, err := v.Next(b, now)
		if err != nil {
			return fmt.Errorf("%w: block %d: %w", ErrCorrupt, b.Index, err)
		}
		stored, err := getEntryAt(tx, height, h)
		if err != nil {
			return fmt.Errorf("%w: entry of block %d: %v", ErrCorrupt, b.Index, err)
		}
		if stored.Parent != e.Parent || stored.Height != e.Height || stored.Bits != e.Bits || stored.Time != e.Time || stored.Work.Cmp(e.Work) != 0 {
			return fmt.Errorf("%w: entry of block %d does not match the block", ErrCorrupt, b.Index)
		}
		if at, ok := s.hashes.height(h); !ok || at != height {
			return fmt.Errorf("%w: block %d is not found by its hash (tags)", ErrCorrupt, b.Index)
		}
		if progress != nil {
			progress(e.Height)
		}
	}
	if v.Tip().Height != to {
		return fmt.Errorf("%w: best chain ends at %d, want %d", ErrCorrupt, v.Tip().Height, to)
	}
	return nil
}

// validatorAt returns a Validator whose next block is a child of the
// stored block e.
func (s *Store) validatorAt(tx *bolt.Tx, e chain.Entry) (*chain.Validator, error) {
	recent, err := recentTimes(tx, e, s.params.TimeWindow())
	if err != nil {
		return nil, err
	}
	return chain.NewValidator(s.params, e, recent)
}

// recentTimes returns the timestamps of e and up to n-1 of its ancestors,
// newest first.
func recentTimes(tx *bolt.Tx, e chain.Entry, n int) ([]int64, error) {
	out := make([]int64, 0, n)
	for {
		out = append(out, e.Time)
		if len(out) == n || e.Height == 0 {
			return out, nil
		}
		var err error
		if e, err = getEntryAt(tx, e.Height-1, e.Parent); err != nil {
			return nil, fmt.Errorf("%w: ancestor %s: %v", ErrCorrupt, e.Parent.Short(), err)
		}
	}
}

// Close closes the file. The Store must not be used afterwards.
func (s *Store) Close() error { return s.db.Close() }

// Path returns the bbolt file's path.
func (s *Store) Path() string { return s.db.Path() }

// Params returns the network the store holds. The value must not be
// modified.
func (s *Store) Params() *chain.Params { return s.params }

// Tip returns the best chain's tip.
func (s *Store) Tip() chain.Entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tip
}

// Entry returns the index entry of the stored block h.
func (s *Store) Entry(h chain.Hash) (chain.Entry, error) {
	var e chain.Entry
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		e, err = s.getEntry(tx, h)
		return err
	})
	return e, err
}

// Has reports whether block h is stored (on any branch).
func (s *Store) Has(h chain.Hash) bool {
	var ok bool
	s.db.View(func(tx *bolt.Tx) error {
		ok = s.has(tx, h)
		return nil
	})
	return ok
}

// Block returns the stored block h, on any branch.
func (s *Store) Block(h chain.Hash) (*chain.Block, error) {
	var b *chain.Block
	err := s.db.View(func(tx *bolt.Tx) error {
		e, err := s.getEntry(tx, h)
		if err != nil {
			return err
		}
		b, err = getBlock(tx, e.Height, h)
		return err
	})
	return b, err
}

// HashAt returns the hash of the best chain's block at height.
func (s *Store) HashAt(height uint64) (chain.Hash, error) {
	var h chain.Hash
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		h, err = hashFrom(tx.Bucket(bucketBest).Get(heightKey(height)))
		if err != nil {
			return fmt.Errorf("%w: height %d", ErrNotFound, height)
		}
		return nil
	})
	return h, err
}

// BlockAt returns the best chain's block at height.
func (s *Store) BlockAt(height uint64) (*chain.Block, error) {
	var b *chain.Block
	err := s.db.View(func(tx *bolt.Tx) error {
		h, err := hashFrom(tx.Bucket(bucketBest).Get(heightKey(height)))
		if err != nil {
			return fmt.Errorf("%w: height %d", ErrNotFound, height)
		}
		b, err = getBlock(tx, height, h)
		return err
	})
	return b, err
}

// OnBest reports whether block h is on the best chain.
func (s *Store) OnBest(h chain.Hash) (bool, error) {
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		e, err := s.getEntry(tx, h)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		ok = bytes.Equal(tx.Bucket(bucketBest).Get(heightKey(e.Height)), h[:])
		return nil
	})
	return ok, err
}

// ForEach calls fn with the best chain's blocks at heights from..to
// (inclusive, clipped to the tip), in order, from one consistent snapshot.
// It stops at the first error fn returns and returns that error unchanged.
// The block passed to fn is fn's to keep.
func (s *Store) ForEach(from, to uint64, fn func(*chain.Block) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketBest).Cursor()
		for k, hv := c.Seek(heightKey(from)); k != nil; k, hv = c.Next() {
			height, err := heightFrom(k)
			if err != nil {
				return err
			}
			if height > to {
				break
			}
			h, err := hashFrom(hv)
			if err != nil {
				return fmt.Errorf("%w: best chain: %v", ErrCorrupt, err)
			}
			b, err := getBlock(tx, height, h)
			if err != nil {
				return err
			}
			if err := fn(b); err != nil {
				return err
			}
		}
		return nil
	})
}

// Locator returns hashes of the best chain that let a peer find the last
// block we share, at the heights chain.LocatorHeights gives (the newest ten
// one apart, then steps doubling, the genesis last), at most max of them,
// read from one snapshot.
func (s *Store) Locator(max int) ([]chain.Hash, error) {
	var out []chain.Hash
	err := s.db.View(func(tx *bolt.Tx) error {
		best := tx.Bucket(bucketBest)
		k, _ := best.Cursor().Last()
		tip, err := heightFrom(k)
		if err != nil {
			return err
		}
		for _, h := range chain.LocatorHeights(tip, max) {
			hash, err := hashFrom(best.Get(heightKey(h)))
			if err != nil {
				return fmt.Errorf("%w: best chain at %d", ErrCorrupt, h)
			}
			out = append(out, hash)
		}
		return nil
	})
	return out, err
}

// FindFork returns the entry of the first hash in locator that is on the
// best chain, and false if none is.
func (s *Store) FindFork(locator []chain.Hash) (chain.Entry, bool, error) {
	var (
		e     chain.Entry
		found bool
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		best := tx.Bucket(bucketBest)
		for _, h := range locator {
			ce, err := s.getEntry(tx, h)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if bytes.Equal(best.Get(heightKey(ce.Height)), h[:]) {
				e, found = ce, true
				return nil
			}
		}
		return nil
	})
	return e, found, err
}

// Validator returns a Validator whose next block is a child of the stored
// block h: for miners (Validator.Template) and for checking blocks before
// handing them to AddBlocks.
func (s *Store) Validator(h chain.Hash) (*chain.Validator, error) {
	var v *chain.Validator
	err := s.db.View(func(tx *bolt.Tx) error {
		e, err := s.getEntry(tx, h)
		if err != nil {
			return err
		}
		v, err = s.validatorAt(tx, e)
		return err
	})
	return v, err
}

// Now returns the time by the store's clock (WithClock), against which it
// judges block timestamps.
func (s *Store) Now() time.Time { return s.opts.now() }

// Template returns a block to mine on the current tip with the given data,
// and the difficulty it must meet.
func (s *Store) Template(data string) (chain.Block, uint8, error) {
	v, err := s.Validator(s.Tip().Hash)
	if err != nil {
		return chain.Block{}, 0, err
	}
	b, bits := v.Template(data, s.opts.now().Unix())
	return b, bits, nil
}

// StampDelay returns how long a miner must wait, by the store's clock,
// before mining b, a block from Template (chain.Validator.StampDelay): a
// miner does not run the chain's time ahead of its clock.
func (s *Store) StampDelay(b chain.Block) (time.Duration, error) {
	v, err := s.Validator(b.PrevHash)
	if err != nil {
		return 0, err
	}
	return v.StampDelay(b.Timestamp, s.opts.now()), nil
}

// IndexBytes returns about how much memory the store holds to find blocks
// by hash: the only memory that grows with the chain (about 9 bytes a
// block).
func (s *Store) IndexBytes() int { return s.hashes.Bytes() }

// Count returns how many blocks are stored, on all branches.
func (s *Store) Count() (int, error) {
	var n uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = storedCount(tx)
		return err
	})
	return int(n), err
}

// minBlockBytes is less than any stored block takes in the file: its key
// (40 bytes) and value (at least 56) in the blocks bucket alone exceed it.
const minBlockBytes = 64

// storedCount reads the stored block count from meta. A count more blocks
// than the file could hold is corruption: callers size memory by it.
func storedCount(tx *bolt.Tx) (uint64, error) {
	v := tx.Bucket(bucketMeta).Get(keyCount)
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: block count %x", ErrCorrupt, v)
	}
	n := binary.BigEndian.Uint64(v)
	if limit := uint64(tx.Size()) / minBlockBytes; n > limit {
		return 0, fmt.Errorf("%w: block count %d, more than a file of %d bytes holds", ErrCorrupt, n, tx.Size())
	}
	return n, nil
}

// addCount adds n to the stored block count.
func addCount(tx *bolt.Tx, n int) error {
	c, err := storedCount(tx)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(keyCount, binary.BigEndian.AppendUint64(nil, c+uint64(n)))
}

// Verify re-validates the whole best chain from the genesis and checks the
// index against it. progress, if not nil, is called with each height.
func (s *Store) Verify(progress func(height uint64)) error {
	return s.db.View(func(tx *bolt.Tx) error {
		tip, err := s.checkTip(tx)
		if err != nil {
			return err
		}
		if g, err := getBlock(tx, 0, s.params.Genesis.Hash); err != nil || *g != s.params.Genesis {
			return fmt.Errorf("%w: stored genesis differs from the network's", ErrCorrupt)
		}
		if err := s.verifyBest(tx, 0, tip.Height, progress); err != nil {
			return err
		}
		// Every stored block, side branches too, is found by its hash,
		// and counted.
		n := uint64(0)
		c := tx.Bucket(bucketIndex).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			n++
			if len(k) != 8+chain.HashSize {
				return fmt.Errorf("%w: index key %x", ErrCorrupt, k)
			}
			var h chain.Hash
			copy(h[:], k[8:])
			if at, ok := s.hashes.height(h); !ok || at != binary.BigEndian.Uint64(k) {
				return fmt.Errorf("%w: block %s is not found by its hash (tags)", ErrCorrupt, h.Short())
			}
		}
		if count, err := storedCount(tx); err != nil || count != n {
			return fmt.Errorf("%w: %d blocks stored, %d counted (%v)", ErrCorrupt, n, count, err)
		}
		return nil
	})
}

// AddBlocks validates and stores a run of blocks, each the child of the one
// before, the first a child of a stored block (else ErrOrphan). Blocks
// already stored are skipped. If the run's last block has more work than
// the best chain's tip, the best chain moves to it, reorganising from the
// common ancestor; all of it in one transaction.
//
// Blocks are validated in order; at the first invalid one the valid blocks
// before it are still stored (and may become best) and the rule error is
// returned with the Result, wrapped to name the block. A run that is not
// linked is refused whole with ErrNotLinked.
func (s *Store) AddBlocks(blocks []chain.Block) (Result, error) {
	for i := 1; i < len(blocks); i++ {
		if blocks[i].PrevHash != blocks[i-1].Hash {
			return Result{Tip: s.Tip(), OldTip: s.Tip()}, fmt.Errorf("%w: block %d (%s) does not follow %s", ErrNotLinked, blocks[i].Index, blocks[i].Hash.Short(), blocks[i-1].Hash.Short())
		}
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	old := s.Tip()
	res := Result{Tip: old, OldTip: old}
	var (
		ruleErr error
		added   []chain.Entry
	)
	err := s.db.Update(func(tx *bolt.Tx) error {
		i := 0
		for i < len(blocks) && s.has(tx, blocks[i].Hash) {
			i++
		}
		if i == len(blocks) {
			return nil
		}
		first := &blocks[i]
		if first.Index == 0 {
			ruleErr = s.params.CheckGenesis(first)
			return nil
		}
		pe, err := s.getEntry(tx, first.PrevHash)
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%w: block %d (%s) has parent %s", ErrOrphan, first.Index, first.Hash.Short(), first.PrevHash.Short())
		}
		if err != nil {
			return err
		}
		v, err := s.validatorAt(tx, pe)
		if err != nil {
			return err
		}
		parent := v.Tip()
		now := s.opts.now().Unix()
		var last chain.Entry
		start := i
		blocksB, idx := tx.Bucket(bucketBlocks), tx.Bucket(bucketIndex)
		// Runs are appended at the end of these trees: fill their pages.
		blocksB.FillPercent, idx.FillPercent = 1, 1
		added = make([]chain.Entry, 0, len(blocks)-i)
		for ; i < len(blocks); i++ {
			b := &blocks[i]
			e, err := v.Next(b, now)
			if err != nil {
				ruleErr = fmt.Errorf("block %d (%s): %w", b.Index, b.Hash.Short(), err)
				break
			}
			key := blockKey(e.Height, b.Hash)
			if err := blocksB.Put(key, encodeBlock(b)); err != nil {
				return err
			}
			if err := idx.Put(key, encodeEntry(&e)); err != nil {
				return err
			}
			added = append(added, e)
			last = e
		}
		if err := putTags(tx, added); err != nil {
			return err
		}
		if err := addCount(tx, len(added)); err != nil {
			return err
		}
		res.Added = len(added)
		if res.Added == 0 || !chain.MoreWork(&last, &old) {
			return nil
		}
		fork, err := s.setBest(tx, parent, blocks[start:i], old)
		if err != nil {
			return err
		}
		res.Tip, res.Extended, res.ForkHeight = last, true, fork
		res.Reorg = fork != old.Height
		return nil
	})
	if err != nil {
		return Result{Tip: old, OldTip: old}, err
	}
	// Found by hash from now on; before the tip moves, so that a reader
	// who sees the new tip finds its block.
	s.hashes.add(added)
	if res.Extended {
		s.mu.Lock()
		s.tip = res.Tip
		s.mu.Unlock()
		if res.Reorg {
			s.log.Info("reorg", "depth", old.Height-res.ForkHeight, "old_tip", old.Hash.Short(), "new_tip", res.Tip.Hash.Short(), "height", res.Tip.Height)
		}
	}
	return res, ruleErr
}

// AddBlock is AddBlocks for one block.
func (s *Store) AddBlock(b chain.Block) (Result, error) {
	return s.AddBlocks([]chain.Block{b})
}

// setBest makes the branch ending in run the best chain. run holds blocks
// just stored, each the child of the one before, the first a child of
// parent; none of them is on the best chain yet. setBest walks back from
// parent to the first block already on the best chain (the fork), drops the
// old best chain above the fork and writes the new branch. It returns the
// fork's height.
func (s *Store) setBest(tx *bolt.Tx, parent chain.Entry, run []chain.Block, oldTip chain.Entry) (uint64, error) {
	best := tx.Bucket(bucketBest)
	// Heights are appended at the end of the bucket: fill its pages.
	best.FillPercent = 1
	var side []chain.Hash // stored blocks between the fork and run, newest first
	e := parent
	for !bytes.Equal(best.Get(heightKey(e.Height)), e.Hash[:]) {
		side = append(side, e.Hash)
		var err error
		if e, err = getEntryAt(tx, e.Height-1, e.Parent); err != nil {
			return 0, fmt.Errorf("%w: walking back from %s: %v", ErrCorrupt, parent.Hash.Short(), err)
		}
	}
	fork := e.Height
	for h := oldTip.Height; h > fork; h-- {
		k := heightKey(h)
		old, err := hashFrom(best.Get(k))
		if err != nil {
			return 0, fmt.Errorf("%w: best chain at %d: %v", ErrCorrupt, h, err)
		}
		ob, err := getBlock(tx, h, old)
		if err != nil {
			return 0, err
		}
		if err := unindexEntries(tx, ob); err != nil {
			return 0, err
		}
		if err := best.Delete(k); err != nil {
			return 0, err
		}
	}
	for i := len(side) - 1; i >= 0; i-- {
		sb, err := getBlock(tx, parent.Height-uint64(i), side[i])
		if err != nil {
			return 0, err
		}
		if err := indexEntries(tx, sb); err != nil {
			return 0, err
		}
		if err := best.Put(heightKey(parent.Height-uint64(i)), side[i][:]); err != nil {
			return 0, err
		}
	}
	for i := range run {
		if err := indexEntries(tx, &run[i]); err != nil {
			return 0, err
		}
		if err := best.Put(heightKey(run[i].Index), run[i].Hash[:]); err != nil {
			return 0, err
		}
	}
	return fork, tx.Bucket(bucketMeta).Put(keyTip, run[len(run)-1].Hash[:])
}

// heightKey encodes a height as a big-endian key, so keys sort by height.
func heightKey(h uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), h) }

// heightFrom decodes a best-chain key; a key of another length is
// corruption, not a reason to panic.
func heightFrom(k []byte) (uint64, error) {
	if len(k) != 8 {
		return 0, fmt.Errorf("%w: best chain key %x is not a height", ErrCorrupt, k)
	}
	return binary.BigEndian.Uint64(k), nil
}

func hashFrom(b []byte) (chain.Hash, error) {
	var h chain.Hash
	if len(b) != chain.HashSize {
		if b == nil {
			return h, ErrNotFound
		}
		return h, fmt.Errorf("hash of %d bytes", len(b))
	}
	copy(h[:], b)
	return h, nil
}

// Block encoding: index u64 | timestamp i64 | nonce u64 | prev_hash 32 | data.
const blockFixed = 8 + 8 + 8 + chain.HashSize

func encodeBlock(b *chain.Block) []byte {
	out := make([]byte, blockFixed, blockFixed+len(b.Data))
	binary.BigEndian.PutUint64(out[0:], b.Index)
	binary.BigEndian.PutUint64(out[8:], uint64(b.Timestamp))
	binary.BigEndian.PutUint64(out[16:], b.Nonce)
	copy(out[24:], b.PrevHash[:])
	return append(out, b.Data...)
}

func decodeBlock(h chain.Hash, v []byte) (*chain.Block, error) {
	if len(v) < blockFixed {
		return nil, fmt.Errorf("%w: block %s is %d bytes", ErrCorrupt, h.Short(), len(v))
	}
	b := &chain.Block{
		Index:     binary.BigEndian.Uint64(v[0:]),
		Timestamp: int64(binary.BigEndian.Uint64(v[8:])),
		Nonce:     binary.BigEndian.Uint64(v[16:]),
		Data:      string(v[blockFixed:]),
		Hash:      h,
	}
	copy(b.PrevHash[:], v[24:])
	return b, nil
}

// Entry encoding: parent 32 | height u64 | time i64 | bits u8 | work bytes.
const entryFixed = chain.HashSize + 8 + 8 + 1

func encodeEntry(e *chain.Entry) []byte {
	out := make([]byte, entryFixed, entryFixed+(e.Work.BitLen()+7)/8)
	copy(out, e.Parent[:])
	binary.BigEndian.PutUint64(out[32:], e.Height)
	binary.BigEndian.PutUint64(out[40:], uint64(e.Time))
	out[48] = e.Bits
	return append(out, e.Work.Bytes()...)
}

func decodeEntry(h chain.Hash, v []byte) (chain.Entry, error) {
	if len(v) < entryFixed {
		return chain.Entry{}, fmt.Errorf("%w: entry %s is %d bytes", ErrCorrupt, h.Short(), len(v))
	}
	e := chain.Entry{
		Hash:   h,
		Height: binary.BigEndian.Uint64(v[32:]),
		Time:   int64(binary.BigEndian.Uint64(v[40:])),
		Bits:   v[48],
		Work:   new(big.Int).SetBytes(v[entryFixed:]),
	}
	copy(e.Parent[:], v)
	return e, nil
}

// getEntry returns the index entry of the stored block h, found by hash.
func (s *Store) getEntry(tx *bolt.Tx, h chain.Hash) (chain.Entry, error) {
	if height, ok := s.hashes.height(h); ok {
		if v := tx.Bucket(bucketIndex).Get(blockKey(height, h)); v != nil {
			return decodeEntry(h, v)
		}
	}
	return chain.Entry{}, fmt.Errorf("%w: entry %s", ErrNotFound, h.Short())
}

// has reports whether block h is stored.
func (s *Store) has(tx *bolt.Tx, h chain.Hash) bool {
	height, ok := s.hashes.height(h)
	return ok && tx.Bucket(bucketIndex).Get(blockKey(height, h)) != nil
}

// getEntryAt returns the index entry of the stored block h at height.
func getEntryAt(tx *bolt.Tx, height uint64, h chain.Hash) (chain.Entry, error) {
	v := tx.Bucket(bucketIndex).Get(blockKey(height, h))
	if v == nil {
		return chain.Entry{}, fmt.Errorf("%w: entry %s at %d", ErrNotFound, h.Short(), height)
	}
	e, err := decodeEntry(h, v)
	if err == nil && e.Height != height {
		err = fmt.Errorf("%w: entry %s under height %d says %d", ErrCorrupt, h.Short(), height, e.Height)
	}
	return e, err
}

// blockKey is the key of block h at height in the blocks bucket.
func blockKey(height uint64, h chain.Hash) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+chain.HashSize), height), h[:]...)
}

func getBlock(tx *bolt.Tx, height uint64, h chain.Hash) (*chain.Block, error) {
	v := tx.Bucket(bucketBlocks).Get(blockKey(height, h))
	if v == nil {
		return nil, fmt.Errorf("%w: block %s", ErrNotFound, h.Short())
	}
	return decodeBlock(h, v)
}

// putBlock stores a block and its index entry.
func putBlock(tx *bolt.Tx, b *chain.Block, e *chain.Entry) error {
	if err := tx.Bucket(bucketBlocks).Put(blockKey(e.Height, b.Hash), encodeBlock(b)); err != nil {
		return err
	}
	return tx.Bucket(bucketIndex).Put(blockKey(e.Height, b.Hash), encodeEntry(e))
}
