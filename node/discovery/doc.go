// Package discovery finds peers and picks the ones the node connects to.
// mDNS on the LAN (mdns.go: a server that always answers with our
// addresses, loopback never among them, and a resolver that queries only
// while the node is short of peers), the Kademlia DHT from bootstrap
// multiaddrs (dht.go: advertise the network's rendezvous, and look it up
// only while the node has no candidate left to dial) and bootstrap peers
// (dialled as seeds while the node has no peer, never kept) fill an
// address book of candidates. One dialler (dial.go) keeps the node at
// OutboundPeers (8) peers it chose: it reserves a slot before each dial,
// picks candidates at random, two of them outside the node's own subnets
// when the book has such, breaks the tie of two nodes that found each
// other at once by peer ID, backs off candidates that fail and replaces a
// chosen peer that drops. Connections nobody chose (the DHT's queries) are
// closed after transientGrace. --peer addresses are dialled and kept. It
// also holds the doctor (doctor.go), which explains why a node does or
// does not see peers: for a running node from discovery's state and fresh
// dials, and for jbc doctor, with no node running, from the flags alone
// (OfflineProblems). docs/lan-design.md explains how many peers and why.
//
// What it does not do: decide who may stay connected inbound (package
// peering's admission, which protects the peers Chosen reports), or talk
// to the peers it finds (package node exchanges statuses with every
// connected peer, and tells the peers we chose that we keep them). It
// records what it finds, and the cause of each failed dial, in the peer
// set (package peering).
//
// Error contract: New returns the errors of the configuration, naming the
// flag whose address is wrong (--bootstrap, --peer); Start returns nil.
// Once running, a failed dial is recorded with its cause
// (peering.Set.DialFailed) and logged: at info the first real failure of
// a peer the operator named (--bootstrap, --peer), at debug the rest;
// dials failing because the node is stopping are not recorded. An mDNS
// server that cannot start (no multicast interface, or no address beyond
// loopback) is logged and started when an interface comes up.
package discovery
