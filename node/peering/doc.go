// Package peering is what a node knows and thinks of its peers: the peer
// set (how each was found, its last status, its last sync, the cause of
// its last failed dial) and the bans, each with its reason and end
// (peers.go); misbehaviour scores, which ban a peer that sends what an
// honest peer would not (score.go); per-peer rate limits (ratelimit.go);
// and admission, the node's connection gater, which decides who gets and
// keeps an inbound connection (admission.go, slots.go).
//
// Admission and scores decide together who may connect and who is dropped
// or banned. Fresh peer IDs cost nothing, so neither rests on a peer's ID
// alone: inbound peers hold a bounded number of slots, given and taken by
// address group, so that an attacker's many identities, which share its
// few addresses, cannot shut honest peers out; peers the node chose itself
// (package discovery's dialler, --peer) are never dropped to make room, and
// inbound peers that say they chose us (the status request's keep) are
// dropped last.
//
// What it does not do: find or dial peers (package discovery), exchange
// statuses (package node) or judge what a peer sent (the syncer, package
// chainsync, and the gossip validators, package gossip, decide what is a
// Misbehaviour and call Scores.Penalise). It imports no other package of
// the node: the others import it.
//
// Error contract: nothing here returns an error. Only what a peer sent is
// a Misbehaviour; a local error (a disk failure, our own cancellation) must
// never be penalised. A ban keeps its reason (cut to a few hundred bytes)
// and its end, and is listed (Set.Bans) until it ends.
package peering
