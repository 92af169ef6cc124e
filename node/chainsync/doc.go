// Package chainsync brings the node's chain up to the best chain its peers
// have. One goroutine, the Syncer, decides whom to sync from (the
// connected peer claiming the most work above ours) and syncs to the tip
// that peer's status names: one GetBlocks over /jbc/chain/1.0.0 finds the
// fork, and the heights above it are fetched by GetRange
// (/jbc/chain/1.1.0) from every peer carrying that tip, several requests
// in flight to each, one goroutine owning the schedule of ranges and
// relieving a peer that stalls, is slow against the others or lies
// (rangefetch.go); the blocks are validated and stored in height order
// while later ones are fetched (syncer.go, fetch.go). A peer that speaks
// only 1.0.0 is synced from by GetBlocks, page after page. A branch
// that forks from our chain is validated and held in memory until it
// outweighs our chain, so that a peer claiming more work than its branch
// has leaves nothing on disk; past a bound only its hashes are held, and
// a branch that then outweighs ours is fetched again, checked against
// them (hold.go). It also follows legacy peers, nodes of the Python
// JackBlockChain, by polling their /blockchain.json (legacy.go).
//
// A peer's claimed work is used only to choose whom to ask: what becomes
// best is decided by the store (package storage) from validated blocks.
//
// What it does not do: store blocks itself (Config.Add, the node's way of
// storing blocks, keeps the data pool and everyone waiting on the tip in
// step), exchange statuses (package node, which wakes the syncer with
// Kick), or ban (package peering; the syncer reports what a peer sent
// through Config.Penalise).
//
// Error contract: nothing here returns an error to the node once running;
// each sync's outcome is recorded with the peer (peering.SyncRecord: its
// Result says why a chain was taken or refused) and logged. A peer is
// penalised only for what it sent: an invalid block, blocks that do not
// attach, a malformed or stalled response, a lie about its work. A peer
// that fails or stalls is skipped for a while; one that was only slow or
// busy is asked again as soon as it reconnects. A failure of our own store
// is not the peer's fault: it pauses syncing (package disk) and is logged
// once. FetchLegacyChain and LegacyChainURL return errors naming the URL.
package chainsync
