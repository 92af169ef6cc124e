// Package node runs a jbc node: a libp2p host that speaks /jbc/chain/1.0.0
// (package protocol), finds peers by mDNS on the LAN, through the Kademlia
// DHT from bootstrap multiaddrs, and by direct --peer addresses; exchanges
// statuses with every peer on connect and periodically; syncs from the peer
// claiming the most work, fetching only the blocks it lacks and letting
// package storage validate and adopt them; optionally mines; and serves an
// HTTP API for operators. It also follows legacy peers, nodes of the Python
// JackBlockChain, over HTTP (legacy.go): it polls their /blockchain.json and
// adopts a heavier valid chain, and takes their POST /mined.
//
// One goroutine (the syncer) owns the decision of whom to sync from;
// connection events, statuses and the miner only wake it. A peer's claimed
// work is used only to choose whom to ask: what becomes best is decided by
// the store from validated blocks.
//
// Admission (admission.go) and scores (score.go) decide together who may
// connect and who is dropped or banned: inbound peers hold a bounded number
// of slots, given and taken by address group so that fresh identities
// cannot shut honest peers out, and peers that send what an honest peer
// would not are scored and banned. Peers the node chose itself (dialled,
// found, --peer, bootstrap) are never dropped to make room.
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
// a growing backoff and is reported in /status and by the doctor (disk.go).
package node
