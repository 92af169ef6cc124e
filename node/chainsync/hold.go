package chainsync

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/protocol"
	"github.com/jbc-project/jbc/storage"
)

// HeldBlockOverhead is what a held block costs beyond its data: the block's
// fixed fields and hashes, and its slice slot.
const HeldBlockOverhead = 128

// errBranchTooDeep gives up a branch held past syncHoldHashes blocks.
var errBranchTooDeep = fmt.Errorf("node: a branch of more than %d blocks that does not outweigh ours", syncHoldHashes)

// branchHold keeps a fetched branch that forks from our best chain,
// validated in memory, until its work exceeds our tip's: only then is it
// stored, so that a peer claiming more work than its branch has leaves
// nothing on disk however many valid blocks it sends. While the branch's
// blocks take at most SyncHoldBytes they are kept; past that their data is
// dropped and only their hashes are (at most syncHoldHashes), with the
// validator's state, so that what a liar costs stays bounded; such a
// branch, once it outweighs ours, is fetched again, block for block
// (refetch), to be stored.
type branchHold struct {
	v      *chain.Validator // at the last held block
	fork   chain.Hash       // the stored parent of the first held block
	blocks []chain.Block    // the held blocks, until their data is dropped
	bytes  int              // what blocks costs: data plus HeldBlockOverhead a block
	// hashes are the held blocks' hashes, oldest first, once their data
	// has been dropped (dropped is then true and blocks nil).
	hashes  []chain.Hash
	dropped bool
	// peak is the most bytes held (data, or 32 a hash once dropped).
	peak int
}

// n returns how many blocks are held.
func (h *branchHold) n() int {
	if h.dropped {
		return len(h.hashes)
	}
	return len(h.blocks)
}

// last returns the hash of the last held block.
func (h *branchHold) last() chain.Hash {
	if h.dropped {
		return h.hashes[len(h.hashes)-1]
	}
	return h.blocks[len(h.blocks)-1].Hash
}

// reset drops the held branch.
func (h *branchHold) reset() { *h = branchHold{peak: h.peak} }

// held is a block of the syncing peer's branch we validated: its entry,
// for judging the peer's claim about it.
type held struct {
	hash  chain.Hash
	entry chain.Entry
}

// store stores batch, a run of blocks from the peer, or holds it. A batch
// that extends our tip is stored at once. One that forks (or continues a
// held branch) is validated against its parent and held, until the held
// branch has more work than our tip: then the whole branch is stored in
// one call, or, if its data was dropped (see branchHold), refetch is true
// and the caller must fetch it again from the peer (s.refetch). seen, if
// not nil, is called with every block of the batch that was validated.
// store returns what the store reported, with Added 0 while blocks are
// held, and the errors: a *chain.RuleError for an invalid block,
// ErrOrphan for a branch whose parent we lack, errBranchTooDeep for a
// branch held too long, and the store's own.
func (s *Syncer) store(h *branchHold, batch []chain.Block, seen func(held)) (res storage.Result, refetch bool, err error) {
	if h.n() > 0 && batch[0].PrevHash != h.last() {
		h.reset() // the peer reorganised: its new branch starts afresh
	}
	if h.n() == 0 {
		if batch[0].PrevHash == s.cfg.Store.Tip().Hash {
			res, err = s.cfg.Add(batch)
			return res, false, err
		}
		v, err := s.cfg.Store.Validator(batch[0].PrevHash)
		if errors.Is(err, storage.ErrNotFound) {
			res, err = s.cfg.Add(batch) // stores nothing: the store's ErrOrphan
			return res, false, err
		}
		if err != nil {
			return storage.Result{}, false, err
		}
		h.v, h.fork = v, batch[0].PrevHash
	}
	now := s.cfg.Store.Now().Unix()
	for i := range batch {
		b := &batch[i]
		e, err := h.v.Next(b, now)
		if err != nil {
			h.reset()
			return storage.Result{}, false, &heightError{b.Index, err}
		}
		if seen != nil {
			seen(held{b.Hash, e})
		}
		if h.dropped {
			if len(h.hashes) >= syncHoldHashes {
				h.reset()
				return storage.Result{}, false, errBranchTooDeep
			}
			h.hashes = append(h.hashes, b.Hash)
			h.peak = max(h.peak, len(h.hashes)*chain.HashSize)
			continue
		}
		if size := len(b.Data) + HeldBlockOverhead; h.bytes+size <= s.holdBytes {
			h.blocks = append(h.blocks, *b)
			h.bytes += size
			h.peak = max(h.peak, h.bytes)
			continue
		}
		// The data would pass the bound: keep validating, but keep only
		// what validation needs (v) and the hashes.
		h.hashes = make([]chain.Hash, len(h.blocks), 2*len(h.blocks)+1)
		for j := range h.blocks {
			h.hashes[j] = h.blocks[j].Hash
		}
		h.hashes = append(h.hashes, b.Hash)
		h.blocks, h.bytes, h.dropped = nil, 0, true
		h.peak = max(h.peak, len(h.hashes)*chain.HashSize)
	}
	if h.v.Tip().Work.Cmp(s.cfg.Store.Tip().Work) <= 0 {
		return storage.Result{}, false, nil
	}
	if h.dropped {
		return storage.Result{}, true, nil
	}
	blocks := h.blocks
	h.reset()
	res, err = s.cfg.Add(blocks)
	return res, false, err
}

// errRefetchDiffers ends a refetch whose pages are not the branch that was
// validated: the peer has moved to another branch since, or lies.
var errRefetchDiffers = errors.New("node: the peer no longer serves the branch it sent")

// refetch fetches again from p the held branch h, whose data was dropped
// and which now outweighs our chain, and stores it. tail, the last blocks
// of the branch, is still in memory and is not fetched again. Each block
// must be the one validated (its hash the held hash at its place; the
// store validates it again, and a block whose fields do not hash to it
// breaks a rule). The branch is stored in runs of at most holdBytes, the
// last making it best; every block stored belongs to a branch already
// validated to outweigh ours. It returns the blocks added and the first
// error: a fetch error, errRefetchDiffers, or the store's.
func (s *Syncer) refetch(ctx context.Context, p peer.ID, h *branchHold, tail []chain.Block, pace *rate.Limiter) (added, bytes int, err error) {
	defer h.reset()
	want := h.hashes[:len(h.hashes)-len(tail)]
	var (
		run     []chain.Block
		runSize int
		prev    = h.fork
	)
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		res, err := s.cfg.Add(run)
		added += res.Added
		run, runSize = nil, 0
		return err
	}
	for len(want) > 0 {
		if err := pace.Wait(ctx); err != nil {
			return added, bytes, err
		}
		page, err := s.cfg.Client.GetBlocks(ctx, p, []chain.Hash{prev}, protocol.MaxBlocksPerPage)
		bytes += page.Bytes
		if errors.Is(err, protocol.ErrNoCommonAncestor) {
			// The locator holds one hash, which is no longer on the
			// peer's best chain: not the lie it would be with the genesis.
			return added, bytes, fmt.Errorf("%w: %s is not on its best chain", errRefetchDiffers, prev.Short())
		}
		if err != nil {
			return added, bytes, err
		}
		if len(page.Blocks) == 0 {
			return added, bytes, fmt.Errorf("%w: an empty page after %s", errRefetchDiffers, prev.Short())
		}
		for i := range page.Blocks {
			b := page.Blocks[i]
			if len(want) == 0 {
				break
			}
			if b.Hash != want[0] {
				return added, bytes, fmt.Errorf("%w: block %d is %s, was %s", errRefetchDiffers, b.Index, b.Hash.Short(), want[0].Short())
			}
			want = want[1:]
			run = append(run, b)
			runSize += len(b.Data) + HeldBlockOverhead
			prev = b.Hash
			if runSize > s.holdBytes {
				if err := flush(); err != nil {
					return added, bytes, err
				}
			}
		}
	}
	run = append(run, tail...)
	return added, bytes, flush()
}
