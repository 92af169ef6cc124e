package mining

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/disk"
	"github.com/jbc-project/jbc/storage"
)

// storePausePoll is how often a miner paused by a failing store (package
// disk) looks again: as often as the syncer does (chainsync's syncTick).
const storePausePoll = time.Second

// Pool is the data pool a miner packs its blocks from (package gossip's
// Pool).
type Pool interface {
	// BlockData returns the data field for the next block: pending entries
	// packed, or fallback when none is pending.
	BlockData(maxSize int, fallback string) string
	// Changed returns a channel closed when an entry next joins the pool.
	Changed() <-chan struct{}
	// LocalAdded returns a channel closed when an entry is next submitted
	// to this node.
	LocalAdded() <-chan struct{}
}

// Config is what Run needs. All fields are required.
type Config struct {
	// Store is the chain mined on: its templates and its clock rules.
	Store *storage.Store
	// Miner solves the proof of work, on its threads.
	Miner *chain.Miner
	// Pool gives the entries a block carries.
	Pool Pool
	// Disk pauses mining while the store cannot write.
	Disk *disk.Health
	// Tips returns a channel closed at the next change of the best chain.
	Tips func() <-chan struct{}
	// Fallback is the data of a block with nothing pending: which node
	// mined it.
	Fallback string
	// Add stores a block mined (the node's way of storing blocks).
	Add func(chain.Block) (storage.Result, error)
	// Announce announces a block mined that extended our chain.
	Announce func(chain.Block)
	// Logger is the node's logger; the miner logs as component "miner".
	Logger *slog.Logger
}

// Run mines on the best tip until ctx ends. Work on a template stops as
// soon as the tip changes (a block from a peer, a sync), and mining
// restarts on the new tip.
func Run(ctx context.Context, cfg Config) {
	log := cfg.Logger.With("component", "miner")
	log.Info("mining", "threads", cfg.Miner.Workers())
	defer log.Info("mining stopped")
	for ctx.Err() == nil {
		if cfg.Disk.Paused(time.Now()) {
			// Our store cannot take the block: wait rather than mine it
			// again and again.
			select {
			case <-ctx.Done():
			case <-time.After(storePausePoll):
			}
			continue
		}
		tipCh := cfg.Tips()
		poolCh := cfg.Pool.Changed()
		localCh := cfg.Pool.LocalAdded()
		fallback := cfg.Fallback
		data := cfg.Pool.BlockData(cfg.Store.Params().MaxDataSize, fallback)
		tmpl, bits, err := cfg.Store.Template(data)
		if err != nil {
			log.Error("template", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		// When the rules want a timestamp ahead of the clock and of the
		// chain's newest, wait for the clock rather than run the chain's
		// time ahead of it.
		d, err := cfg.Store.StampDelay(tmpl)
		if err != nil {
			log.Error("template", "err", err)
			d = time.Second
		}
		if d > 0 {
			log.Debug("chain time is ahead of the clock: waiting", "wait", d)
			select {
			case <-ctx.Done():
			case <-tipCh:
			case <-time.After(d):
			}
			continue
		}
		mctx, cancel := context.WithCancel(ctx)
		// A new tip makes the work stale; new entries do too when the
		// template carries none, and an entry submitted here always does
		// (local entries are packed first), so that submitted data is mined
		// in the next block.
		if data != fallback {
			poolCh = nil
		}
		go func() {
			select {
			case <-tipCh:
				cancel()
			case <-poolCh:
				cancel()
			case <-localCh:
				cancel()
			case <-mctx.Done():
			}
		}()
		b, err := cfg.Miner.Solve(mctx, tmpl, bits)
		cancel()
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				log.Warn("mining", "err", err)
			}
			continue
		}
		res, err := cfg.Add(b)
		if err != nil {
			if !disk.LocalError(err) { // which cfg.Disk has logged
				log.Warn("mined block refused", "height", b.Index, "err", err)
			}
			continue
		}
		if res.Extended {
			log.Info("mined block", "height", b.Index, "hash", b.Hash.Short(), "bits", bits, "entries", len(chain.UnpackEntries(b.Data)))
			cfg.Announce(b)
		}
	}
}
