// Package disk keeps the health of the node's own store: when a write
// fails for a local reason (a full disk, an I/O error), the writers (the
// syncer, the miner) pause with a growing backoff instead of retrying at
// once, the first failure of an episode is logged at ERROR, and /status and
// the doctor say why the node is stuck ("disk full at DIR"), until a write
// succeeds again. On Linux a pause ends early once space returns to the
// store's filesystem.
//
// What it does not do: write anything, or decide what a write is. The
// writers report each outcome (Failed, OK) and ask whether to wait
// (Paused); LocalError tells a failure of the store from a verdict on the
// blocks.
//
// Error contract: nothing here returns an error. LocalError counts as
// local every error of storing blocks but a *chain.RuleError,
// storage.ErrOrphan and storage.ErrNotLinked, which are verdicts on what
// a peer sent; a local error is never held against a peer.
package disk
