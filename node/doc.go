// Package node runs a jbc node: it builds each part of the node, connects
// them, and starts and stops them in order. A node is a libp2p host
// (package p2p) that speaks /jbc/chain/1.0.0 (package protocol), finds
// peers by mDNS, the DHT and --peer addresses (package discovery),
// exchanges statuses with every peer on connect and periodically
// (status.go), syncs from the peer claiming the most work (package
// chainsync), spreads blocks and data entries by gossip and keeps the data
// pool (package gossip), decides who may connect and who is banned
// (package peering), optionally mines (package mining), and serves an HTTP
// API for operators (package api). It also follows legacy peers, nodes of
// the Python JackBlockChain (chainsync's FollowLegacy), and takes their
// POST /mined.
//
// What node itself holds: Node and Config; the wiring (New builds the
// parts and hands each the others it needs, as a function or a small
// interface in its Config: none of them imports node); the status
// exchange, which connects connection events and statuses to admission,
// the peer set and the syncer; the one way every block is stored, whoever
// brings it (chain.go: the store, orphans connected, the data pool kept
// in step with the best chain, everyone waiting on the tip woken); what
// the HTTP API serves of the node as a whole (api.go); and the metrics,
// which read every part at scrape time (metrics.go).
//
// Start starts, in order: gossip, the protocol server and the connection
// events, the HTTP API, the syncer, the status loop, the legacy follower,
// admission, the miner, discovery, and a status exchange with peers
// already connected. Close stops in order: everything started (by
// cancelling its context), the HTTP API, discovery, gossip, the protocol
// server and the host, then waits for every goroutine the node started.
//
// One goroutine (the syncer) owns the decision of whom to sync from;
// connection events, statuses and the miner only wake it. A peer's claimed
// work is used only to choose whom to ask: what becomes best is decided by
// the store from validated blocks.
//
// What it does not do: consensus (package chain), persistence (package
// storage) or the wire format (package protocol).
//
// Error contract: New and Start return configuration and listen errors;
// once running, the node logs failures of peers and keeps going. A peer is
// blamed (skipped, or banned for another genesis) only for what it sent:
// a rule broken, a malformed or missing response, or a lie about its work;
// local errors never count against a peer. A ban keeps its reason and its
// end, and is shown to the operator (GET /peers, Doctor, the dashboard)
// until it ends; so is the cause of the last failed dial of a peer.
// A store that fails to write (a full disk) pauses syncing and mining with
// a growing backoff and is reported in /status and by the doctor (package
// disk).
package node
