// Package p2p builds the node's libp2p host: its identity key (key.go),
// the addresses it listens on and announces (parsed and explained in
// plain words, maddr.go; a port another process holds is refused,
// listen.go), the connection manager's watermarks, and the resource
// manager's limits for each protocol the node speaks: /jbc/chain/1.0.0,
// GossipSub (messages up to MaxGossipBlock) and the Kademlia DHT (under
// DefaultDHTPrefix) (limits.go). NAT port mapping and relays stay off.
//
// What it does not do: decide on connections (package peering's admission
// is the host's connection gater), find peers (package discovery) or speak
// any protocol; the host is handed to package node, which starts what
// runs on it.
//
// Error contract: NewHost, LoadOrCreateKey and the parsers return errors,
// wrapped with %w, that name what is wrong in words an operator follows:
// a malformed multiaddr says which part is wrong and what form is wanted,
// a listen port in use says so (ErrAddrInUse) and what to do, a key file
// readable by others is refused. Nothing here logs.
package p2p
