package p2p

import (
	"fmt"
	"net"
	"runtime/debug"
	"strconv"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
	p2pconnmgr "github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/jbc-project/jbc/protocol"
)

// DefaultPort is the TCP and UDP (QUIC) port a node listens on unless told
// otherwise: fixed, so that a multiaddr written down once keeps working and
// firewall or docker port rules can name it.
const DefaultPort = 4747

// Connection manager watermarks: a chain node needs a handful of peers to
// sync from and to spread blocks through; beyond HighWater the least useful
// connections are trimmed back to LowWater. A node holds at most 8 chosen
// peers and 24 inbound ones (package discovery's OutboundPeers, package
// peering's InboundSlots), one connection each: 32, the low watermark, so
// that trimming only ever removes what is beyond them (the DHT's query
// connections, duplicates), and only once there are 16 of those.
const (
	connLowWater  = 32
	ConnHighWater = 48
)

// DefaultDHTPrefix keeps jbc's DHT apart from the IPFS one: jbc nodes only
// meet jbc nodes unless told otherwise (--dht-prefix /ipfs). Package
// discovery runs the DHT; the host grants it resources under the protocol
// ID the prefix makes (see dhtProtocolID).
const DefaultDHTPrefix = "/jbc"

// MaxGossipBlock bounds a gossiped block message: one block of the largest
// data the wire allows, plus the envelope. Package gossip refuses larger
// messages; the host grants GossipSub memory for a few of them.
const MaxGossipBlock = protocol.MaxDataBytes + 1024

// Agent is the agent version sent in statuses and identify.
func Agent() string {
	v := "devel"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	return "jbc/" + v
}

// DefaultListenAddrs returns the listen multiaddrs used when none are given:
// TCP and QUIC on DefaultPort on every IPv4 and IPv6 interface.
func DefaultListenAddrs() []string {
	p := strconv.Itoa(DefaultPort)
	return []string{
		"/ip4/0.0.0.0/tcp/" + p,
		"/ip4/0.0.0.0/udp/" + p + "/quic-v1",
		"/ip6/::/tcp/" + p,
		"/ip6/::/udp/" + p + "/quic-v1",
	}
}

// ParseAddrs parses multiaddr strings, naming the bad one in the error and
// saying in plain words what is wrong with it (ParseAddr).
func ParseAddrs(ss []string) ([]ma.Multiaddr, error) {
	out := make([]ma.Multiaddr, 0, len(ss))
	for _, s := range ss {
		a, err := ParseAddr(s)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// ParsePeerAddrs parses multiaddrs that end in /p2p/<id>, grouping them by
// peer.
func ParsePeerAddrs(ss []string) ([]peer.AddrInfo, error) {
	addrs := make([]ma.Multiaddr, 0, len(ss))
	for _, s := range ss {
		a, err := ParsePeerAddr(s)
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, a)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil {
		return nil, fmt.Errorf("peer multiaddrs must end in /p2p/<peer id>: %w", err)
	}
	return infos, nil
}

// NewHost builds the node's libp2p host; dhtPrefix is the DHT's protocol
// prefix, for the resource limits; gater decides on connections (package
// peering's admission) and bw counts the bytes of each protocol; extra are
// further options (package nat's: relay, hole punching, AutoNAT). NAT port
// mapping stays off: a node must not reconfigure the network it runs on. A
// node with --announce advertises those addresses, and the relay addresses
// it holds a reservation for (package nat). Peers are dialled TCP first
// (TCPFirstDialRanker).
func NewHost(key crypto.PrivKey, listen, announce []ma.Multiaddr, dhtPrefix string, gater connmgr.ConnectionGater, bw metrics.Reporter, extra ...libp2p.Option) (host.Host, error) {
	cm, err := p2pconnmgr.NewConnManager(connLowWater, ConnHighWater)
	if err != nil {
		return nil, err
	}
	rm, err := newResourceManager(dhtPrefix)
	if err != nil {
		return nil, err
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrs(listen...),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionGater(gater),
		libp2p.UserAgent(Agent()),
		libp2p.BandwidthReporter(bw),
		// TCP first: under loss it syncs several times faster than QUIC
		// (see TCPFirstDialRanker).
		libp2p.SwarmOpts(swarm.WithDialRanker(TCPFirstDialRanker)),
	}
	if len(extra) == 0 {
		opts = append(opts, libp2p.DisableRelay())
	}
	opts = append(opts, extra...)
	if len(announce) > 0 {
		opts = append(opts, libp2p.AddrsFactory(func(addrs []ma.Multiaddr) []ma.Multiaddr {
			out := append([]ma.Multiaddr{}, announce...)
			for _, a := range addrs {
				if IsRelayed(a) {
					out = append(out, a)
				}
			}
			return out
		}))
	} else {
		opts = append(opts, libp2p.AddrsFactory(withoutLoopback))
	}
	return libp2p.New(opts...)
}

// WithoutRelayed returns addrs without the circuit relay ones: the relay
// transport "listens" on /p2p-circuit, which is no address of this
// machine.
func WithoutRelayed(addrs []ma.Multiaddr) []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		if !IsRelayed(a) {
			out = append(out, a)
		}
	}
	return out
}

// IsRelayed reports whether a is a circuit relay address (it holds
// /p2p-circuit): a connection through a relay.
func IsRelayed(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// RelayID returns the relay's peer ID in a circuit address
// (/.../p2p/RELAY/p2p-circuit/...), or "" if a is not relayed.
func RelayID(a ma.Multiaddr) string {
	var last string
	for _, c := range a {
		switch c.Protocol().Code {
		case ma.P_P2P:
			last = c.Value()
		case ma.P_CIRCUIT:
			return last
		}
	}
	return ""
}

// withoutLoopback returns addrs without loopback addresses, unless that
// leaves none (a node on loopback only, as in tests): the addresses a node
// announces (identify, DHT provider records, GET /status) are for peers on
// other machines, to whom 127.0.0.1 is themselves.
func withoutLoopback(addrs []ma.Multiaddr) []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		if !manet.IsIPLoopback(a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return addrs
	}
	return out
}

// FullAddrs returns addrs each with /p2p/<id> appended: what another node
// passes to --bootstrap or --peer.
func FullAddrs(id peer.ID, addrs []ma.Multiaddr) []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		full, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{a}})
		if err == nil {
			out = append(out, full...)
		}
	}
	return out
}

// DialableAddrs returns the addresses a node with these listen and announce
// addresses can be reached on, without starting it: the announce addresses
// if any, else the listen addresses with unspecified IPs (0.0.0.0, ::)
// expanded to this machine's interface addresses.
func DialableAddrs(listen, announce []ma.Multiaddr) ([]ma.Multiaddr, error) {
	if len(announce) > 0 {
		return announce, nil
	}
	ifaces, err := manet.InterfaceMultiaddrs()
	if err != nil {
		return nil, err
	}
	var out []ma.Multiaddr
	for _, a := range listen {
		ip, err := manet.ToIP(a)
		if err != nil || !ip.IsUnspecified() {
			out = append(out, a)
			continue
		}
		resolved, err := manet.ResolveUnspecifiedAddress(a, ifaces)
		if err != nil {
			continue
		}
		for _, r := range resolved {
			if rip, err := manet.ToIP(r); err == nil && rip.IsLinkLocalUnicast() {
				continue // link-local needs a zone; not worth printing
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// AddrKind classifies an address for people reading logs and /doctor:
// loopback, private, docker-bridge (172.17.0.0/16, docker's default) or
// public.
func AddrKind(a ma.Multiaddr) string {
	ip, err := manet.ToIP(a)
	if err != nil {
		return "other"
	}
	switch {
	case ip.IsLoopback():
		return "loopback"
	case dockerBridge.Contains(ip):
		return "docker-bridge"
	case ip.IsPrivate() || ip.IsLinkLocalUnicast():
		return "private"
	case ip.IsUnspecified():
		return "unspecified"
	}
	return "public"
}

var dockerBridge = &net.IPNet{IP: net.IPv4(172, 17, 0, 0), Mask: net.CIDRMask(16, 32)}
