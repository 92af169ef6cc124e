// Package gossip spreads blocks and data entries by GossipSub, on two
// topics per network (BlockTopic, DataTopic), and keeps the data pool:
// the entries submitted or gossiped that no block on the best chain holds
// yet (pool.go).
//
// The topic validators do the work (validate.go): a gossiped block is
// judged cheapest check first; one that could outweigh our chain is
// validated against its stored parent, relayed, and stored right after (a
// hop costs no fsync), any other is stored before it is relayed; an
// invalid one is rejected, never relayed, and costs its sender; a block whose
// parent we lack is kept a while as an orphan (orphans.go) and its sender
// asked for its status, which brings the branch by sync. A block that
// extends our chain is never rate limited; blocks that add nothing and
// entries are, per peer (BlockRate, DataRate). Blocks the node mines are
// announced at most every MinedAnnounceGap; entries still pending are
// announced again every Config.Interval and after a reorg returned them
// (reannounce.go). The pool is bounded (MaxPoolEntries, MaxPoolBytes):
// each peer may hold its share of it, and an entry submitted here evicts
// gossiped ones.
//
// What it does not do: store blocks or keep the pool in step with the best
// chain (package node does both, through Config.Add and the pool's Remove
// and Restore), fetch branches (package chainsync), or decide bans
// (package peering; it reports what a peer sent through Config.Penalise).
//
// Error contract: New returns GossipSub's errors. Once running nothing is
// returned: a validator's verdict is GossipSub's (accept, reject, ignore),
// a peer is penalised only for what it sent (an invalid block or entry, a
// flood over its rate limit or its share of the pool), and a failure of
// our own store ignores the block without blaming its sender. The pool
// refuses an entry with ErrPoolFull (submitted here: the submitter can
// retry) or errOverShare (gossiped by a peer that holds its share).
package gossip
