package disk

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/protocol"
	"github.com/jbc-project/jbc/storage"
)

// Backing off a failing store. A write that fails for a local reason (a
// full disk, an I/O error) fails again if retried at once; the syncer
// retrying at its own pace refetched a page from its peer for every try.
const (
	// storageRetryMin is the first pause after a local storage error.
	storageRetryMin = time.Second
	// storageRetryMax caps the pause, which doubles with every retry that
	// fails: an operator who frees space waits at most this long, however
	// long the disk was full (less: see storageResumeFree).
	storageRetryMax = time.Minute
	// storageResumeFree ends a pause early: once the filesystem holding the
	// store has this much more space free than when the write failed
	// (looked at whenever a writer asks whether to wait: the syncer every
	// second), space has returned and the retry is
	// worth its page. Two full pages; the next commit is at most a few.
	storageResumeFree = 2 * protocol.MaxPageBytes
)

// Health records failures of the node's own store, so that work that
// writes to it (sync, the miner) pauses instead of retrying at once, and
// so that /status and the doctor can say why the node is stuck. It is
// safe for concurrent use.
type Health struct {
	dir string
	log *slog.Logger
	// free reads the space available to the store's filesystem; ok is
	// false where it cannot be known.
	free func(dir string) (bytes uint64, ok bool)

	mu        sync.Mutex
	err       error // the last failure; nil once a write succeeded since
	full      bool  // err says the disk is full (ENOSPC, EDQUOT)
	since     time.Time
	lastFail  time.Time
	pause     time.Duration
	until     time.Time // no retry before this
	freeAt    uint64    // space free at the last failure
	freeKnown bool
	failures  int // failed writes this episode
}

// New returns the health of store s, logging to log.
func New(s *storage.Store, log *slog.Logger) *Health {
	return &Health{dir: filepath.Dir(s.Path()), log: log, free: freeSpace}
}

// LocalError reports whether err, returned by storing blocks, is a
// failure of our own store (the disk, the file) rather than a verdict on
// the blocks, which is a *chain.RuleError, ErrOrphan or ErrNotLinked.
func LocalError(err error) bool {
	var re *chain.RuleError
	return err != nil && !errors.As(err, &re) && !errors.Is(err, storage.ErrOrphan) && !errors.Is(err, storage.ErrNotLinked)
}

// diskFull reports whether err says the filesystem has no room left.
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// Failed records a local storage error and pauses writes. An episode of
// failures begins with a pause of storageRetryMin and one record at ERROR;
// each failure after a pause ended doubles the pause, up to
// storageRetryMax, and is logged at DEBUG. A failure during a pause (some
// other writer's) leaves the pause as it is. A small write succeeding in
// between (a nearly full disk takes a gossiped block but not a page) does
// not start a new episode: only a failure storageRetryMax after the last
// one does.
func (h *Health) Failed(err error) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.err, h.full = err, diskFull(err)
	if now.Before(h.until) {
		return
	}
	h.failures++
	fresh := h.lastFail.IsZero() || now.Sub(h.lastFail) > storageRetryMax
	if fresh {
		h.since, h.pause, h.failures = now, storageRetryMin, 1
	} else {
		h.pause = min(2*h.pause, storageRetryMax)
	}
	h.lastFail, h.until = now, now.Add(h.pause)
	h.freeAt, h.freeKnown = h.free(h.dir)
	if fresh {
		h.log.Error("cannot write the chain: "+h.problemLocked()+"; syncing and mining paused, retried with a growing pause (up to "+storageRetryMax.String()+")",
			"dir", h.dir, "err", err)
		return
	}
	h.log.Debug("store still failing", "dir", h.dir, "retry_in", h.pause, "failures", h.failures, "err", err)
}

// OK records that a write succeeded.
func (h *Health) OK() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err == nil {
		return
	}
	h.log.Info("the chain is writable again; syncing and mining resume", "dir", h.dir, "after", time.Since(h.since).Round(time.Second), "failures", h.failures)
	h.err, h.until = nil, time.Time{}
}

// Paused reports whether writes should wait at now: a pause is under way
// and space has not visibly returned.
func (h *Health) Paused(now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err == nil || !now.Before(h.until) {
		return false
	}
	if h.full && h.freeKnown {
		if free, ok := h.free(h.dir); ok && free >= h.freeAt+storageResumeFree {
			h.log.Debug("space returned; retrying", "dir", h.dir, "free", free, "free_at_failure", h.freeAt)
			h.until = now
			return false
		}
	}
	return true
}

// Problem describes the store's failure for /status and the doctor, or
// returns "" while it works.
func (h *Health) Problem() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err == nil {
		return ""
	}
	return h.problemLocked()
}

func (h *Health) problemLocked() string {
	if h.full {
		return "disk full at " + h.dir
	}
	return fmt.Sprintf("storage error at %s: %v", h.dir, h.err)
}
