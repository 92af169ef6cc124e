package chainsync

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

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

// Config is what a Syncer needs. All fields but Logger are required.
type Config struct {
	// Store is the node's chain, which the syncer reads (its tip, its
	// locator, validators) and syncs.
	Store *storage.Store
	// Client asks peers for blocks.
	Client *protocol.Client
	// Peers lists the peers to sync from, with their last status, and
	// records the outcome of each sync.
	Peers *peering.Set
	// Disk pauses syncing while the store cannot write.
	Disk *disk.Health
	// Add stores fetched blocks (the node's way of storing blocks, which
	// keeps the data pool and everything waiting on the tip in step).
	Add func([]chain.Block) (storage.Result, error)
	// SettledTip returns the best chain's tip once no block is being
	// stored (a block committing concurrently, from gossip, is in the
	// database a locator came from before it is in the cached tip).
	SettledTip func() chain.Entry
	// Penalise charges a peer for what it sent.
	Penalise func(peer.ID, peering.Misbehaviour, string)
	// Served records that a peer's blocks extended or outweighed our
	// chain (admission protects it).
	Served func(peer.ID, int)
	// Direct, if set, reports whether the node holds a direct connection
	// to a peer: peers reached only through a relay (package nat) are
	// not synced from, since a relay carries at most 128 KiB each way,
	// less than one full page. nil: every connected peer is.
	Direct func(peer.ID) bool
	// Logger receives the syncer's logs.
	Logger *slog.Logger
}

// Syncer owns the sync state: one goroutine (Run) decides whom to sync
// from and fetches their blocks; others only wake it (Kick). Its methods
// are safe for concurrent use.
type Syncer struct {
	cfg       Config
	log       *slog.Logger
	wake      chan struct{}
	holdBytes int // SyncHoldBytes; tests lower it
	// heldPeak is the most any sync has held of a forked branch, in bytes
	// as branchHold counts them; for tests.
	heldPeak atomic.Int64
	// stored is the height of the last block of the last batch the sync
	// stored or held: the range fetch hands out spans only so far above it
	// (aheadBytes).
	stored atomic.Uint64
	// storedWake wakes the range fetch when stored moves, so that it hands
	// out the spans the budget now allows at once.
	storedWake chan struct{}

	failMu sync.Mutex
	failed map[peer.ID]pause // peers skipped until a time

	mu   sync.Mutex // guards prog
	prog Progress
}

// Progress describes the sync under way, if any.
type Progress struct {
	Syncing bool    `json:"syncing"`
	Peer    string  `json:"peer,omitempty"`
	Height  uint64  `json:"height"`
	Target  uint64  `json:"target"`
	Rate    float64 `json:"blocks_per_second"`
}

// New returns a syncer; Run runs it.
func New(cfg Config) *Syncer {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Syncer{cfg: cfg, log: cfg.Logger, wake: make(chan struct{}, 1), failed: map[peer.ID]pause{}, holdBytes: SyncHoldBytes,
		storedWake: make(chan struct{}, 1)}
}

// HeldPeak returns the most any sync has held of a forked branch, in bytes
// as the hold counts them (see SyncHoldBytes).
func (s *Syncer) HeldPeak() int64 { return s.heldPeak.Load() }

// SetHoldBytes sets the bound on a held branch (SyncHoldBytes by default):
// tests lower it to reach it with small chains. Set it before syncing.
func (s *Syncer) SetHoldBytes(n int) { s.holdBytes = n }

// Kick wakes the syncer; it never blocks.
func (s *Syncer) Kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Progress returns the current sync progress.
func (s *Syncer) Progress() Progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.prog
}

func (s *Syncer) setProgress(p Progress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prog = p
}

// Run syncs from the best peer whenever woken (Kick), and every syncTick,
// until ctx is done.
func (s *Syncer) Run(ctx context.Context) {
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
			if s.cfg.Disk.Paused(time.Now()) {
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
func (s *Syncer) skip(p peer.ID, d time.Duration, slow bool) {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	until := time.Now().Add(d)
	if ps, ok := s.failed[p]; ok && ps.until.After(until) {
		return // a longer pause, for a fault, stands
	}
	s.failed[p] = pause{until: until, slow: slow}
}

// skipped reports whether p is being passed over at now.
func (s *Syncer) skipped(p peer.ID, now time.Time) bool {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	ps, ok := s.failed[p]
	return ok && !now.After(ps.until)
}

// sweep forgets the pauses ended by now, of peers gone since too.
func (s *Syncer) sweep(now time.Time) {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	for p, ps := range s.failed {
		if now.After(ps.until) {
			delete(s.failed, p)
		}
	}
}

// Reconnected ends p's pause if it was for slowness: a peer that timed out
// across a partition (its connection dying unnoticed) is asked again as
// soon as it is back, not a minute later. A peer paused for a fault stays
// paused.
func (s *Syncer) Reconnected(p peer.ID) {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	if ps, ok := s.failed[p]; ok && ps.slow {
		delete(s.failed, p)
	}
}

// pick returns the connected peer claiming the most work above ours, skipping
// peers that failed recently.
func (s *Syncer) pick() (peer.ID, protocol.Status, bool) {
	now := time.Now()
	s.sweep(now)
	var (
		best   peer.ID
		bestSt protocol.Status
		work   = s.cfg.Store.Tip().Work
	)
	for _, pi := range s.cfg.Peers.List() {
		if pi.Status == nil || pi.Status.Work == nil || !pi.Connected {
			continue
		}
		if s.skipped(pi.ID, now) {
			continue
		}
		if s.cfg.Direct != nil && !s.cfg.Direct(pi.ID) {
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
	// SyncAhead is how many fetched pages may wait to be stored. It bounds
	// the memory a sync holds to a few frames (SyncAhead+1 pages of at most
	// protocol.MaxFrameSize) while letting a slow commit be followed by one
	// covering several pages.
	SyncAhead = 8
	// syncBatchBlocks bounds the blocks stored by one AddBlocks call, one
	// transaction: eight full pages. A commit then costs two fsyncs per
	// 4096 blocks instead of per 512, while one transaction, which holds
	// the store's write lock, stays well under a second.
	syncBatchBlocks = 8 * protocol.MaxBlocksPerPage
	// getBlocksRate bounds the GetBlocks requests per second a sync sends
	// to one peer (GetRange is not paced: its pages are bounded by bytes,
	// and a sync by GetRange sends at most a few dozen requests a second
	// at any speed). A 1.0.0 peer answers requests over its limiter
	// (peering.RequestRate) RATE_LIMITED and scores them as a flood, and
	// pages of 512 blocks can outrun it on a fast link; three quarters of
	// it leaves the rest for status requests.
	getBlocksRate = peering.RequestRate * 3 / 4
	// SyncHoldBytes bounds the blocks of a fetched side branch kept in
	// memory, validated but not stored, until the branch outweighs our
	// chain (see branchHold), counting each block as its data plus 128
	// bytes: 32 MiB, about 140 000 blocks of 100-byte entries, 511 of the
	// largest (64 KiB). Past it the blocks' data is dropped and only their
	// hashes are kept, while validation goes on; a branch that comes to
	// outweigh ours is fetched again to be stored. It also bounds what a
	// refetch holds before it stores.
	SyncHoldBytes = 8 * protocol.MaxFrameSize
	// syncHoldHashes bounds the hashes of a held branch whose data was
	// dropped: 32 MiB of hashes, 2^20 blocks. A branch that forks from ours
	// and still does not outweigh it after that many blocks is given up:
	// no honest reorg is that deep at the difficulty our chain was mined
	// at, while a liar could keep us fetching for ever.
	syncHoldHashes = 1 << 20
)
