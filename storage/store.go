package storage

import (
	"errors"
	"log/slog"
	"time"

	"github.com/jbc-project/jbc/chain"
)

// FileName is the name of the bbolt file inside the data directory.
const FileName = "chain.db"

// DefaultCheckDepth is how many blocks below the tip Open re-validates: deep
// enough to cover any reorg a crash could have interrupted, cheap enough
// (well under a millisecond) to do on every start.
const DefaultCheckDepth = 100

// Errors returned by the store. Rule violations are *chain.RuleError values
// (wrapped); these are the others.
var (
	// ErrNotFound: no such block, height or entry.
	ErrNotFound = errors.New("storage: not found")
	// ErrNoChain: the data directory holds no chain and no network was
	// given to create one.
	ErrNoChain = errors.New("storage: no chain in data directory")
	// ErrExists: Create found a chain already in the data directory.
	ErrExists = errors.New("storage: data directory already holds a chain")
	// ErrWrongNetwork: the data directory holds another network's chain.
	ErrWrongNetwork = errors.New("storage: data directory holds another network")
	// ErrOrphan: a block's parent is not stored.
	ErrOrphan = errors.New("storage: parent block unknown")
	// ErrNotLinked: the blocks given to AddBlocks do not form a run, each
	// the child of the one before.
	ErrNotLinked = errors.New("storage: blocks are not a linked run")
	// ErrInUse: another process has the store open (bbolt's file lock).
	ErrInUse = errors.New("storage: the chain file is in use by another process")
	// ErrCorrupt: the file's contents break an invariant of the store.
	ErrCorrupt = errors.New("storage: store is corrupt")
)

// Result says what AddBlocks did.
type Result struct {
	// Added is how many blocks were new; blocks already stored are skipped.
	Added int
	// Tip is the best chain's tip after the call.
	Tip chain.Entry
	// Reorg is true when the best chain changed other than by appending
	// to the old tip: OldTip's branch was left at the fork.
	Reorg bool
	// Extended is true when the best chain changed at all (append or reorg).
	Extended bool
	// OldTip is the tip before the call.
	OldTip chain.Entry
	// ForkHeight is the height of the last block the old and new best
	// chains share; blocks of the old chain above it are now a side branch.
	ForkHeight uint64
}

// Option configures Open and Create.
type Option func(*options) error

type options struct {
	logger     *slog.Logger
	now        func() time.Time
	checkDepth uint64
	noSync     bool
}

// WithLogger sets the logger; by default the store logs nothing.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("storage: nil logger")
		}
		o.logger = l
		return nil
	}
}

// WithClock sets the clock used for the future-timestamp rule (tests).
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("storage: nil clock")
		}
		o.now = now
		return nil
	}
}

// WithCheckDepth sets how many blocks below the tip Open re-validates.
func WithCheckDepth(n uint64) Option {
	return func(o *options) error {
		o.checkDepth = n
		return nil
	}
}

// WithNoSync turns off fsync on commit: for benchmarks and throwaway test
// stores only, since a crash may then lose or corrupt the file.
func WithNoSync() Option {
	return func(o *options) error {
		o.noSync = true
		return nil
	}
}
