// Package discovery finds peers and keeps the node connected to them: by
// mDNS on the LAN (mdns.go: restarted while it has found nobody, and when
// the network interfaces change), through the Kademlia DHT from bootstrap
// multiaddrs (dht.go: advertise and look up the network's rendezvous), and
// by --peer addresses, dialled and kept; it dials what it finds and
// redials peers it found once their connection drops (dial.go). It also
// holds the doctor (doctor.go), which explains why a node does or does not
// see peers: for a running node from discovery's state and fresh dials,
// and for jbc doctor, with no node running, from the flags alone
// (OfflineProblems).
//
// What it does not do: decide who may stay connected (package peering's
// admission), or talk to the peers it finds (package node exchanges
// statuses with every connected peer). It records what it finds, and the
// cause of each failed dial, in the peer set (package peering).
//
// Error contract: New returns the errors of the configuration, naming the
// flag whose address is wrong (--bootstrap, --peer); Start returns the
// DHT's bootstrap error. Once running, a failed dial is recorded with its
// cause (peering.Set.DialFailed) and logged: at info the first real
// failure of a peer the operator named, at debug the rest; dials failing
// because the node is stopping are not recorded. An mDNS service that
// cannot start (no multicast interface) is logged and started when an
// interface comes up.
package discovery
