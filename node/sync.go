package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/disk"
	"github.com/jbc-project/jbc/node/peering"
	"github.com/jbc-project/jbc/protocol"
	"github.com/jbc-project/jbc/storage"
)

// Sync timing.
const (
	// syncTick is how often the syncer looks for a better peer without
	// being woken: a safety net for a missed kick.
	syncTick = time.Second
	// failedPeerPause is how long a peer that failed or stalled mid-sync
	// is skipped by the syncer; others are tried meanwhile.
	failedPeerPause = time.Minute
	// busyPeerPause is the pause after a peer answered RATE_LIMITED or
	// UNAVAILABLE: long enough for its load to pass, short enough that a
	// node with one peer does not sit idle.
	busyPeerPause = 2 * time.Second
	// progressEvery is the interval of progress lines in long syncs.
	progressEvery = 5 * time.Second
)

// syncer owns the sync state: one goroutine decides whom to sync from and
// fetches their blocks; others only wake it.
type syncer struct {
	n         *Node
	wake      chan struct{}
	holdBytes int // syncHoldBytes; tests lower it
	// heldPeak is the most any sync has held of a forked branch, in bytes
	// as branchHold counts them; for tests.
	heldPeak atomic.Int64

	failMu sync.Mutex
	failed map[peer.ID]pause // peers skipped until a time

	mu   sync.Mutex // guards prog
	prog SyncProgress
}

// SyncProgress describes the sync under way, if any.
type SyncProgress struct {
	Syncing bool    `json:"syncing"`
	Peer    string  `json:"peer,omitempty"`
	Height  uint64  `json:"height"`
	Target  uint64  `json:"target"`
	Rate    float64 `json:"blocks_per_second"`
}

func newSyncer(n *Node) *syncer {
	return &syncer{n: n, wake: make(chan struct{}, 1), failed: map[peer.ID]pause{}, holdBytes: syncHoldBytes}
}

// kick wakes the syncer; it never blocks.
func (s *syncer) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// progress returns the current sync progress.
func (s *syncer) progress() SyncProgress {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.prog
}

func (s *syncer) setProgress(p SyncProgress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prog = p
}

func (s *syncer) run(ctx context.Context) {
	t := time.NewTicker(syncTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-t.C:
		}
		for ctx.Err() == nil {
			// A store that failed to write is given time (or space) before
			// the next try, rather than a page refetched every time.
			if s.n.disk.Paused(time.Now()) {
				break
			}
			p, st, ok := s.pick()
			if !ok {
				break
			}
			s.syncFrom(ctx, p, st)
		}
	}
}

// pause is why and until when the syncer skips a peer.
type pause struct {
	until time.Time
	// slow says the peer only timed out or was busy, which a partition
	// or a restart explains: a new connection to it ends the pause.
	slow bool
}

// skip makes pick pass over p for d.
func (s *syncer) skip(p peer.ID, d time.Duration, slow bool) {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	s.failed[p] = pause{until: time.Now().Add(d), slow: slow}
}

// skipped reports whether p is being passed over at now.
func (s *syncer) skipped(p peer.ID, now time.Time) bool {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	ps, ok := s.failed[p]
	return ok && !now.After(ps.until)
}

// sweep forgets the pauses ended by now, of peers gone since too.
func (s *syncer) sweep(now time.Time) {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	for p, ps := range s.failed {
		if now.After(ps.until) {
			delete(s.failed, p)
		}
	}
}

// reconnected ends p's pause if it was for slowness: a peer that timed out
// across a partition (its connection dying unnoticed) is asked again as
// soon as it is back, not a minute later. A peer paused for a fault stays
// paused.
func (s *syncer) reconnected(p peer.ID) {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	if ps, ok := s.failed[p]; ok && ps.slow {
		delete(s.failed, p)
	}
}

// pick returns the connected peer claiming the most work above ours, skipping
// peers that failed recently.
func (s *syncer) pick() (peer.ID, protocol.Status, bool) {
	now := time.Now()
	s.sweep(now)
	var (
		best   peer.ID
		bestSt protocol.Status
		work   = s.n.store.Tip().Work
	)
	for _, pi := range s.n.peers.List() {
		if pi.Status == nil || pi.Status.Work == nil || !pi.Connected {
			continue
		}
		if s.skipped(pi.ID, now) {
			continue
		}
		if pi.Status.Work.Cmp(work) > 0 {
			best, bestSt, work = pi.ID, *pi.Status, pi.Status.Work
		}
	}
	return best, bestSt, best != ""
}

// Sync pipelining. One goroutine fetches pages while the syncer stores the
// ones already fetched, so that neither the round trip nor the commit (an
// fsync) waits for the other, and pages that arrive while a commit runs are
// stored together in the next one.
const (
	// syncAhead is how many fetched pages may wait to be stored. It bounds
	// the memory a sync holds to a few frames (syncAhead+1 pages of at most
	// protocol.MaxFrameSize) while letting a slow commit be followed by one
	// covering several pages.
	syncAhead = 8
	// syncBatchBlocks bounds the blocks stored by one AddBlocks call, one
	// transaction: eight full pages. A commit then costs two fsyncs per
	// 4096 blocks instead of per 512, while one transaction, which holds
	// the store's write lock, stays well under a second.
	syncBatchBlocks = 8 * protocol.MaxBlocksPerPage
	// syncPageRate bounds the GetBlocks requests per second a sync sends
	// to one peer: three quarters of what a jbc peer's request limiter
	// allows (peering.RequestRate), leaving the rest for status requests, so that a
	// fast sync never runs into the peer's flood penalty. With full pages
	// it caps a sync at 150 x 512 = 76 800 blocks/s.
	syncPageRate = peering.RequestRate * 3 / 4
	// syncHoldBytes bounds the blocks of a fetched side branch kept in
	// memory, validated but not stored, until the branch outweighs our
	// chain (see branchHold), counting each block as its data plus 128
	// bytes: 32 MiB, about 140 000 blocks of 100-byte entries, 511 of the
	// largest (64 KiB). Past it the blocks' data is dropped and only their
	// hashes are kept, while validation goes on; a branch that comes to
	// outweigh ours is fetched again to be stored. It also bounds what a
	// refetch holds before it stores.
	syncHoldBytes = 8 * protocol.MaxFrameSize
	// syncHoldHashes bounds the hashes of a held branch whose data was
	// dropped: 32 MiB of hashes, 2^20 blocks. A branch that forks from ours
	// and still does not outweigh it after that many blocks is given up:
	// no honest reorg is that deep at the difficulty our chain was mined
	// at, while a liar could keep us fetching for ever.
	syncHoldHashes = 1 << 20
)

// heldBlockOverhead is what a held block costs beyond its data: the block's
// fixed fields and hashes, and its slice slot.
const heldBlockOverhead = 128

// errBranchTooDeep gives up a branch held past syncHoldHashes blocks.
var errBranchTooDeep = fmt.Errorf("node: a branch of more than %d blocks that does not outweigh ours", syncHoldHashes)

// branchHold keeps a fetched branch that forks from our best chain,
// validated in memory, until its work exceeds our tip's: only then is it
// stored, so that a peer claiming more work than its branch has leaves
// nothing on disk however many valid blocks it sends. While the branch's
// blocks take at most syncHoldBytes they are kept; past that their data is
// dropped and only their hashes are (at most syncHoldHashes), with the
// validator's state, so that what a liar costs stays bounded; such a
// branch, once it outweighs ours, is fetched again, block for block
// (refetch), to be stored.
type branchHold struct {
	v      *chain.Validator // at the last held block
	fork   chain.Hash       // the stored parent of the first held block
	blocks []chain.Block    // the held blocks, until their data is dropped
	bytes  int              // what blocks costs: data plus heldBlockOverhead a block
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
func (s *syncer) store(h *branchHold, batch []chain.Block, seen func(held)) (res storage.Result, refetch bool, err error) {
	if h.n() > 0 && batch[0].PrevHash != h.last() {
		h.reset() // the peer reorganised: its new branch starts afresh
	}
	if h.n() == 0 {
		if batch[0].PrevHash == s.n.store.Tip().Hash {
			res, err = s.n.addBlocks(batch)
			return res, false, err
		}
		v, err := s.n.store.Validator(batch[0].PrevHash)
		if errors.Is(err, storage.ErrNotFound) {
			res, err = s.n.addBlocks(batch) // stores nothing: the store's ErrOrphan
			return res, false, err
		}
		if err != nil {
			return storage.Result{}, false, err
		}
		h.v, h.fork = v, batch[0].PrevHash
	}
	now := s.n.store.Now().Unix()
	for i := range batch {
		b := &batch[i]
		e, err := h.v.Next(b, now)
		if err != nil {
			h.reset()
			return storage.Result{}, false, err
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
		if size := len(b.Data) + heldBlockOverhead; h.bytes+size <= s.holdBytes {
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
	if h.v.Tip().Work.Cmp(s.n.store.Tip().Work) <= 0 {
		return storage.Result{}, false, nil
	}
	if h.dropped {
		return storage.Result{}, true, nil
	}
	blocks := h.blocks
	h.reset()
	res, err = s.n.addBlocks(blocks)
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
func (s *syncer) refetch(ctx context.Context, p peer.ID, h *branchHold, tail []chain.Block, pace *rate.Limiter) (added, bytes int, err error) {
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
		res, err := s.n.addBlocks(run)
		added += res.Added
		run, runSize = nil, 0
		return err
	}
	for len(want) > 0 {
		if err := pace.Wait(ctx); err != nil {
			return added, bytes, err
		}
		page, err := s.n.client.GetBlocks(ctx, p, []chain.Hash{prev}, protocol.MaxBlocksPerPage)
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
			runSize += len(b.Data) + heldBlockOverhead
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

// fetched is one answer to a GetBlocks request, handed from the fetcher
// to the syncer.
type fetched struct {
	page protocol.Page
	err  error
}

// fetch asks p for pages of its best chain, the first after the last block
// of ours that locator names, each next one after the last block of the
// page before, and sends each answer (or the error ending the fetch) on
// out. It closes out when p has sent its tip, sent an empty page or failed,
// or when ctx is done. pace spaces the requests (syncPageRate), shared
// with a refetch.
func (s *syncer) fetch(ctx context.Context, p peer.ID, base []chain.Hash, pace *rate.Limiter, out chan<- fetched) {
	defer close(out)
	locator := base
	for {
		if pace.Wait(ctx) != nil {
			return
		}
		page, err := s.n.client.GetBlocks(ctx, p, locator, protocol.MaxBlocksPerPage)
		select {
		case out <- fetched{page, err}:
		case <-ctx.Done():
			return
		}
		if err != nil || len(page.Blocks) == 0 {
			return
		}
		last := page.Blocks[len(page.Blocks)-1]
		if last.Index >= page.ServerHeight {
			return
		}
		// Continue from the last block received: it is on the peer's best
		// chain even while it is only a side branch of ours. Our own
		// locator follows in case the peer reorganised meanwhile.
		locator = append([]chain.Hash{last.Hash}, base...)
		if len(locator) > protocol.MaxLocatorLen {
			locator = locator[:protocol.MaxLocatorLen]
		}
	}
}

// syncFrom fetches from p, page by page, the blocks after the last one we
// share, storing them once validated; pages are fetched ahead while earlier
// ones are stored (see fetch). The store makes the branch best only when its
// validated work exceeds ours: p's claimed work decides only whom we ask.
// Blocks of a branch that forks from ours are held in memory until they
// outweigh our chain (branchHold), so a branch with less work than claimed
// is not stored. A peer that fails, stalls, sends an invalid block or turns
// out to have less work than it claimed is skipped for failedPeerPause;
// valid blocks it sent that extended our chain, or outweighed it, are kept.
func (s *syncer) syncFrom(ctx context.Context, p peer.ID, claimed protocol.Status) {
	log := s.n.log.With("peer", p)
	start := time.Now()
	tipBefore := s.n.store.Tip()
	rec := peering.SyncRecord{At: start}
	pauseFor, slow := failedPeerPause, false
	level := slog.LevelInfo
	finish := func(result string, fail bool) {
		rec.Duration = time.Since(start)
		rec.Result = result
		s.n.peers.SetSync(p, rec)
		s.setProgress(SyncProgress{})
		if fail {
			s.skip(p, pauseFor, slow)
		}
		log.Log(context.Background(), level, "sync", "blocks", rec.Blocks, "bytes", rec.Bytes, "time", rec.Duration.Round(time.Millisecond), "result", result,
			"height", s.n.store.Tip().Height)
	}

	base, err := s.n.store.Locator(protocol.MaxLocatorLen)
	if err != nil {
		s.n.disk.Failed(err)
		level = slog.LevelDebug // the store's failure is logged once, at ERROR
		finish("local error: "+err.Error(), false)
		return
	}
	fctx, cancel := context.WithCancel(ctx)
	pages := make(chan fetched, syncAhead)
	pace := rate.NewLimiter(syncPageRate, 1)
	go s.fetch(fctx, p, base, pace, pages)
	defer func() {
		cancel()
		for range pages { // wait for the fetcher to end
		}
	}()

	lastLog := start
	target := claimed.Height
	var (
		batch   []chain.Block
		carry   *fetched // a page that did not link to the batch before it
		fetchOK = true   // whether pages is still open
		hold    branchHold
		// claimSeen is the entry of the tip p claimed, once validated.
		claimSeen *chain.Entry
	)
	see := func(b held) {
		if b.hash == claimed.Tip {
			claimSeen = &b.entry
		}
	}
	defer func() { s.heldPeak.Store(max(s.heldPeak.Load(), int64(hold.peak))) }()
	for {
		s.setProgress(SyncProgress{Syncing: true, Peer: p.String(), Height: s.n.store.Tip().Height, Target: target,
			Rate: float64(rec.Blocks) / time.Since(start).Seconds()})

		// Gather a batch: the next page (waiting for it), then every page
		// already fetched that continues it, up to syncBatchBlocks.
		batch = batch[:0]
		var fetchErr error
		for fetchErr == nil && len(batch) < syncBatchBlocks {
			var f fetched
			switch {
			case carry != nil:
				f, carry = *carry, nil
			case !fetchOK:
			case len(batch) == 0:
				f, fetchOK = <-pages
			default:
				select {
				case f, fetchOK = <-pages:
				default:
				}
			}
			if f.err == nil && len(f.page.Blocks) == 0 {
				rec.Bytes += f.page.Bytes
				break // nothing more now: store what we have
			}
			if f.err == nil && len(batch) > 0 && f.page.Blocks[0].PrevHash != batch[len(batch)-1].Hash {
				carry = &f // the peer reorganised: a batch of its own
				break
			}
			rec.Bytes += f.page.Bytes
			fetchErr = f.err
			if f.page.ServerHeight > target {
				target = f.page.ServerHeight
			}
			batch = append(batch, f.page.Blocks...)
		}

		if len(batch) > 0 {
			res, refetch, err := s.store(&hold, batch, see)
			rec.Blocks += res.Added
			if err == nil && refetch {
				// The held branch outweighs ours, but its data was
				// dropped: fetch it again, checked against its hashes.
				var added, n int
				added, n, err = s.refetch(ctx, p, &hold, batch, pace)
				rec.Blocks += added
				rec.Bytes += n
				if !isStoreError(err) && !errors.Is(err, errRefetchDiffers) {
					fetchErr, err = err, nil // judged as the fetcher's errors are
				}
			}
			if err != nil {
				var re *chain.RuleError
				switch {
				case errors.As(err, &re):
					s.n.scores.Penalise(p, peering.MisInvalidBlock, err.Error())
					finish("refused: invalid block: "+err.Error(), true)
				case errors.Is(err, storage.ErrOrphan):
					s.n.scores.Penalise(p, peering.MisUnasked, err.Error())
					finish("refused: blocks do not attach to the fork it named: "+err.Error(), true)
				case errors.Is(err, errBranchTooDeep):
					// Not a proven lie: the branch may outweigh ours further
					// on, but no honest reorg is that deep.
					finish(fmt.Sprintf("refused: %v; none of it stored", err), true)
				case errors.Is(err, errRefetchDiffers):
					// The peer may have reorganised since: ask it again soon.
					pauseFor = busyPeerPause
					finish(fmt.Sprintf("refused: %v; %d blocks of the branch stored before", err, rec.Blocks), true)
				default:
					// Stop fetching: the store pauses the syncer (package disk).
					s.n.disk.Failed(err)
					level = slog.LevelDebug // the store's failure is logged once, at ERROR
					finish("local error: "+err.Error(), false)
				}
				return
			}
			last := batch[len(batch)-1]
			if time.Since(lastLog) >= progressEvery {
				lastLog = time.Now()
				rate := float64(rec.Blocks) / time.Since(start).Seconds()
				var eta time.Duration
				if rate > 0 && target > last.Index {
					eta = time.Duration(float64(target-last.Index) / rate * float64(time.Second))
				}
				log.Info("sync progress", "height", last.Index, "target", target, "blocks_per_s", int(rate), "eta", eta.Round(time.Second))
			}
		}

		if fetchErr != nil {
			if ctx.Err() != nil {
				finish("stopped", false)
				return
			}
			switch {
			case errors.Is(fetchErr, protocol.ErrMalformed):
				s.n.scores.Penalise(p, peering.MisMalformed, fetchErr.Error())
			case errors.Is(fetchErr, protocol.ErrTimeout):
				s.n.scores.Penalise(p, peering.MisStalled, fetchErr.Error())
				slow = true
			case errors.Is(fetchErr, protocol.ErrNoCommonAncestor):
				// Every locator ends in the genesis, which a peer of our
				// network has on its best chain: it cannot honestly say this.
				s.n.scores.Penalise(p, peering.MisUnasked, fetchErr.Error())
			case errors.Is(fetchErr, protocol.ErrRateLimited), errors.Is(fetchErr, protocol.ErrUnavailable):
				// Load, not fault: try this peer again soon.
				pauseFor, slow = busyPeerPause, true
			}
			finish("failed: "+fetchErr.Error(), true)
			return
		}
		if len(batch) == 0 && carry == nil && !fetchOK {
			if ctx.Err() != nil {
				finish("stopped", false)
				return
			}
			break
		}
	}

	// Read the tip once no block is being stored: a block committing
	// concurrently (from gossip) is in the database our locator came from
	// before it is in the cached tip.
	s.n.chainMu.Lock()
	tip := s.n.store.Tip()
	s.n.chainMu.Unlock()
	switch {
	case tip.Hash != tipBefore.Hash && tip.Work.Cmp(tipBefore.Work) > 0 && rec.Blocks > 0:
		s.n.adm.Served(p, rec.Blocks)
		finish("adopted", false)
	case claimed.Work != nil && tip.Work.Cmp(claimed.Work) < 0 && !s.claimHolds(claimed):
		gave := tip.Work
		if hold.n() > 0 {
			gave = hold.v.Tip().Work
		}
		result := fmt.Sprintf("refused: peer claimed work %s but its chain gave %s; %d valid blocks of less work not stored",
			claimed.Work, workOr(gave), hold.n())
		if e, ok := s.claimedTip(claimed, claimSeen); ok && e.Work.Cmp(claimed.Work) < 0 {
			// Whatever happened since, the tip it named has the work its
			// blocks give it, which we validated: the claim was false.
			s.n.scores.Penalise(p, peering.MisFalseClaim, fmt.Sprintf("tip %s claimed with work %s, has %s", claimed.Tip.Short(), claimed.Work, e.Work))
			result += fmt.Sprintf("; the tip it named (%s) has work %s: a provable lie", claimed.Tip.Short(), e.Work)
		} else {
			s.n.scores.Penalise(p, peering.MisLiedWork, "claimed "+claimed.Work.String())
		}
		finish(result, true)
	default:
		finish(peering.ResultNoMoreWork, false)
	}
}

// claimHolds reports whether a peer's status was true after all: we hold
// the tip it claimed, with the work it claimed. Such a peer sent nothing
// because we had its blocks already (from gossip, or another peer); only a
// peer whose claimed tip we still lack, or whose tip has less work than it
// said, lied.
func (s *syncer) claimHolds(claimed protocol.Status) bool {
	e, err := s.n.store.Entry(claimed.Tip)
	return err == nil && e.Work.Cmp(claimed.Work) >= 0
}

// claimedTip returns the entry of the tip p's status named, if we know it:
// validated during the sync (seen) or stored.
func (s *syncer) claimedTip(claimed protocol.Status, seen *chain.Entry) (chain.Entry, bool) {
	if seen != nil {
		return *seen, true
	}
	e, err := s.n.store.Entry(claimed.Tip)
	return e, err == nil
}

// isStoreError reports whether err came from storing blocks (a verdict on
// them, or the store's failure) rather than from fetching them.
func isStoreError(err error) bool {
	var re *chain.RuleError
	return errors.As(err, &re) || errors.Is(err, storage.ErrOrphan) || errors.Is(err, storage.ErrNotLinked) || disk.LocalError(err) && !isFetchError(err)
}

// isFetchError reports whether err came from the protocol client.
func isFetchError(err error) bool {
	var ce *protocol.CodeError
	return errors.As(err, &ce) || errors.Is(err, protocol.ErrMalformed) || errors.Is(err, protocol.ErrTimeout) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func workOr(w *big.Int) string {
	if w == nil {
		return "0"
	}
	return w.String()
}
