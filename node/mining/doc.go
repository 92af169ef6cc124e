// Package mining runs the node's miner: it mines on the best tip, packs
// the pending entries of the data pool into each block (those submitted to
// this node first), drops its work as soon as the tip changes or an entry
// is submitted, waits rather than run the chain's time ahead of the clock,
// and stores and announces each block it finds (Run).
//
// What it does not do: the proof of work itself (chain.Miner, on every
// core), store blocks (Config.Add, the node's way of storing blocks), or
// decide when to mine (package node starts and stops Run: Node.SetMining).
//
// Error contract: Run returns nothing; it runs until its context ends. A
// template it cannot make is logged and retried a second later; a block
// the store refuses is logged, unless the store itself failed (package
// disk logs that once, and pauses the miner while it lasts).
package mining
