package chainsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/disk"
	"github.com/jbc-project/jbc/node/peering"
	"github.com/jbc-project/jbc/protocol"
	"github.com/jbc-project/jbc/storage"
)

// fetched is one page of blocks, handed from the fetcher to the syncer.
type fetched struct {
	page protocol.Page
	err  error
	// from is the peer that sent the page.
	from peer.ID
}

// fetch sends on out, in height order, the blocks of p's chain after the
// last block of ours that base (our locator) names, and closes out when
// it has sent them all, failed, or ctx is done. It asks p first by
// GetBlocks, which finds the fork; the heights above that first page, up
// to the tip p's status named (claimed), are then fetched by GetRange from
// every peer carrying that tip (fetchRange), several requests in flight to
// each; what p has above that tip, or all of its chain when no carrier
// speaks /jbc/chain/1.1.0, is fetched by GetBlocks from p, page after page.
// pace spaces the GetBlocks requests (see getBlocksRate), shared with a
// refetch.
func (s *Syncer) fetch(ctx context.Context, p peer.ID, claimed protocol.Status, base []chain.Hash, pace *rate.Limiter, out chan<- fetched) {
	defer close(out)
	send := func(f fetched) bool {
		select {
		case out <- f:
			return true
		case <-ctx.Done():
			return false
		}
	}
	locator := base
	ranged := false
	for {
		if pace.Wait(ctx) != nil {
			return
		}
		page, err := s.cfg.Client.GetBlocks(ctx, p, locator, protocol.MaxBlocksPerPage)
		if !send(fetched{page: page, err: err, from: p}) || err != nil || len(page.Blocks) == 0 {
			return
		}
		last := page.Blocks[len(page.Blocks)-1]
		if last.Index >= page.ServerHeight {
			return
		}
		if !ranged && last.Index < claimed.Height {
			ranged = true
			carriers := func() []peer.ID { return s.carriers(p, claimed) }
			if len(carriers()) > 0 {
				t := rangeTarget{tip: claimed.Tip, tipHeight: claimed.Height, from: last.Index + 1, prev: last.Hash,
					blockBytes: page.Bytes / len(page.Blocks)}
				if err := s.fetchRange(ctx, t, carriers, out); err != nil {
					send(fetched{err: err, from: p})
					return
				}
				last = chain.Block{Index: claimed.Height, Hash: claimed.Tip}
				if last.Index >= page.ServerHeight {
					return
				}
			}
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

// carriers returns the peers to fetch the chain claimed by p's status from
// by GetRange: p and every connected peer whose status names the same tip,
// among those known to speak /jbc/chain/1.1.0 and not being skipped.
func (s *Syncer) carriers(p peer.ID, claimed protocol.Status) []peer.ID {
	now := time.Now()
	var ids []peer.ID
	if s.cfg.Client.SupportsRange(p) {
		ids = append(ids, p)
	}
	for _, pi := range s.cfg.Peers.List() {
		if pi.ID == p || !pi.Connected || pi.Status == nil || pi.Status.Tip != claimed.Tip || s.skipped(pi.ID, now) {
			continue
		}
		if s.cfg.Client.SupportsRange(pi.ID) {
			ids = append(ids, pi.ID)
		}
	}
	return ids
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
func (s *Syncer) syncFrom(ctx context.Context, p peer.ID, claimed protocol.Status) {
	log := s.log.With("peer", p)
	start := time.Now()
	tipBefore := s.cfg.Store.Tip()
	rec := peering.SyncRecord{At: start}
	pauseFor, slow := failedPeerPause, false
	level := slog.LevelInfo
	// sources counts the blocks each peer sent that were stored or held.
	sources := map[peer.ID]int{}
	finish := func(result string, fail bool) {
		rec.Duration = time.Since(start)
		rec.Result = result
		if len(sources) > 0 {
			rec.Sources = make(map[string]int, len(sources))
			for id, n := range sources {
				rec.Sources[id.String()] = n
			}
		}
		s.cfg.Peers.SetSync(p, rec)
		s.setProgress(Progress{})
		if fail {
			s.skip(p, pauseFor, slow)
		}
		log.Log(context.Background(), level, "sync", "blocks", rec.Blocks, "bytes", rec.Bytes, "time", rec.Duration.Round(time.Millisecond), "result", result,
			"height", s.cfg.Store.Tip().Height)
	}

	base, err := s.cfg.Store.Locator(protocol.MaxLocatorLen)
	if err != nil {
		s.cfg.Disk.Failed(err)
		level = slog.LevelDebug // the store's failure is logged once, at ERROR
		finish("local error: "+err.Error(), false)
		return
	}
	fctx, cancel := context.WithCancel(ctx)
	pages := make(chan fetched, SyncAhead)
	s.stored.Store(0) // nothing of this sync stored yet
	pace := rate.NewLimiter(getBlocksRate, 1)
	go s.fetch(fctx, p, claimed, base, pace, pages)
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
		// senders says who sent the blocks of batch: batch[i] came from
		// the first sender whose end is above i.
		senders []sender
	)
	see := func(b held) {
		if b.hash == claimed.Tip {
			claimSeen = &b.entry
		}
	}
	defer func() { s.heldPeak.Store(max(s.heldPeak.Load(), int64(hold.peak))) }()
	for {
		s.setProgress(Progress{Syncing: true, Peer: p.String(), Height: s.cfg.Store.Tip().Height, Target: target,
			Rate: float64(rec.Blocks) / time.Since(start).Seconds()})

		// Gather a batch: the next page (waiting for it), then every page
		// already fetched that continues it, up to syncBatchBlocks.
		batch, senders = batch[:0], senders[:0]
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
			if n := len(f.page.Blocks); n > 0 {
				senders = append(senders, sender{end: len(batch), from: f.from})
			}
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
				bad := p
				if errors.As(err, &re) {
					bad = s.sentBy(batch, senders, err)
				}
				switch {
				case errors.As(err, &re) && bad != p:
					// Another peer sent it, from the same chain: it alone
					// pays, and the sync starts again from what was stored.
					s.cfg.Penalise(bad, peering.MisInvalidBlock, err.Error())
					s.skip(bad, failedPeerPause, false)
					finish(fmt.Sprintf("failed: invalid block from %s: %v; trying again without it", bad, err), false)
				case errors.As(err, &re):
					s.cfg.Penalise(p, peering.MisInvalidBlock, err.Error())
					finish("refused: invalid block: "+err.Error(), true)
				case errors.Is(err, storage.ErrOrphan):
					s.cfg.Penalise(p, peering.MisUnasked, err.Error())
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
					s.cfg.Disk.Failed(err)
					level = slog.LevelDebug // the store's failure is logged once, at ERROR
					finish("local error: "+err.Error(), false)
				}
				return
			}
			for i, sd := range senders {
				from := 0
				if i > 0 {
					from = senders[i-1].end
				}
				sources[sd.from] += sd.end - from
			}
			last := batch[len(batch)-1]
			s.stored.Store(last.Index)
			select {
			case s.storedWake <- struct{}{}:
			default:
			}
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
			case errors.Is(fetchErr, errNoCarriers), errors.Is(fetchErr, errRangesDisagree):
				// Each peer was judged by the range fetch; p is asked
				// again soon, unless it was paused for a fault there.
				pauseFor, slow = busyPeerPause, true
			case errors.Is(fetchErr, protocol.ErrMalformed):
				s.cfg.Penalise(p, peering.MisMalformed, fetchErr.Error())
			case errors.Is(fetchErr, protocol.ErrTimeout):
				s.cfg.Penalise(p, peering.MisStalled, fetchErr.Error())
				slow = true
			case errors.Is(fetchErr, protocol.ErrNoCommonAncestor):
				// Every locator ends in the genesis, which a peer of our
				// network has on its best chain: it cannot honestly say this.
				s.cfg.Penalise(p, peering.MisUnasked, fetchErr.Error())
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
	tip := s.cfg.SettledTip()
	switch {
	case tip.Hash != tipBefore.Hash && tip.Work.Cmp(tipBefore.Work) > 0 && rec.Blocks > 0:
		for id, n := range sources {
			s.cfg.Served(id, n)
		}
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
			s.cfg.Penalise(p, peering.MisFalseClaim, fmt.Sprintf("tip %s claimed with work %s, has %s", claimed.Tip.Short(), claimed.Work, e.Work))
			result += fmt.Sprintf("; the tip it named (%s) has work %s: a provable lie", claimed.Tip.Short(), e.Work)
		} else {
			s.cfg.Penalise(p, peering.MisLiedWork, "claimed "+claimed.Work.String())
		}
		finish(result, true)
	default:
		finish(peering.ResultNoMoreWork, false)
	}
}

// sender is who sent a run of a batch's blocks.
type sender struct {
	end  int // the run ends before batch[end]
	from peer.ID
}

// heightError is a block's rule error, with the block's height.
type heightError struct {
	height uint64
	err    error
}

func (e *heightError) Error() string { return e.err.Error() }
func (e *heightError) Unwrap() error { return e.err }

// sentBy returns the peer that sent the block of batch that err, from
// storing it, is about: the one at the height a heightError names, or
// else the first the store does not hold (AddBlocks stores the valid
// blocks before an invalid one).
func (s *Syncer) sentBy(batch []chain.Block, senders []sender, err error) peer.ID {
	i := -1
	var he *heightError
	if errors.As(err, &he) && len(batch) > 0 && he.height >= batch[0].Index {
		i = int(he.height - batch[0].Index)
	} else {
		for j := range batch {
			if !s.cfg.Store.Has(batch[j].Hash) {
				i = j
				break
			}
		}
	}
	for _, sd := range senders {
		if i >= 0 && i < sd.end {
			return sd.from
		}
	}
	if len(senders) > 0 {
		return senders[len(senders)-1].from
	}
	return ""
}

// claimHolds reports whether a peer's status was true after all: we hold
// the tip it claimed, with the work it claimed. Such a peer sent nothing
// because we had its blocks already (from gossip, or another peer); only a
// peer whose claimed tip we still lack, or whose tip has less work than it
// said, lied.
func (s *Syncer) claimHolds(claimed protocol.Status) bool {
	e, err := s.cfg.Store.Entry(claimed.Tip)
	return err == nil && e.Work.Cmp(claimed.Work) >= 0
}

// claimedTip returns the entry of the tip p's status named, if we know it:
// validated during the sync (seen) or stored.
func (s *Syncer) claimedTip(claimed protocol.Status, seen *chain.Entry) (chain.Entry, bool) {
	if seen != nil {
		return *seen, true
	}
	e, err := s.cfg.Store.Entry(claimed.Tip)
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
