// Package nat gets nodes behind NAT connected: it learns whether the node
// is publicly reachable (AutoNAT v1 and v2, and its own addresses), runs a
// circuit relay v2 service with tight limits while the node is public
// (unless --relay=false), hands AutoRelay the relays the node knows
// (bootstrap and --peer nodes first) while it is not, and records how each
// connection was made: dialled, accepted, through a relay, or by DCUtR hole
// punching, with why a punch failed.
//
// It also works around go-libp2p's DCUtR trap: a host serves /libp2p/dcutr
// only once identify gave it a public observed address, and the peer
// behind a relayed connection starts the punch once, when the connection
// opens. A connection dialled through a relay before both sides served the
// protocol would stay relayed for good; the node that dialled it redials
// it through the relay (see upgrade.go), so that the peer punches again.
//
// It does not map ports (no UPnP or NAT-PMP) and dials nothing but the
// relays the node was given or met. docs/nat-design.md describes the
// design and the figures behind its constants.
//
// Errors are returned only by New's options and Start (event bus
// subscriptions); what fails later (a relay service that cannot start, a
// redial) is logged and shown in Status and Check.
package nat
