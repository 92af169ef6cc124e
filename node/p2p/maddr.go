package p2p

import (
	"errors"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// The forms a multiaddr error points to: a listen address, and a peer's
// full address as "jbc id" and "jbc node" print it.
const (
	listenAddrForm = "/ip4/127.0.0.1/tcp/4747"
	peerAddrForm   = "/ip4/192.0.2.7/tcp/4747/p2p/12D3KooW..."
)

// ParseAddr parses one multiaddr. A bad one is explained in plain words
// (which part is wrong and what form is wanted) rather than in the
// multiaddr library's terms.
func ParseAddr(s string) (ma.Multiaddr, error) {
	a, err := ma.NewMultiaddr(s)
	if err == nil {
		return a, nil
	}
	return nil, fmt.Errorf("%q is not a multiaddr: %s (want the form %s, or %s for a peer)", s, explainAddr(s, err), listenAddrForm, peerAddrForm)
}

// explainAddr says what is wrong with s, which go-multiaddr refused with
// err, in words a person who has not read the multiaddr spec follows.
func explainAddr(s string, err error) string {
	switch {
	case strings.TrimSpace(s) == "":
		return "it is empty"
	case !strings.HasPrefix(s, "/"):
		if host, port, ok := strings.Cut(s, ":"); ok && !strings.Contains(port, ":") {
			return fmt.Sprintf("it looks like host:port; a multiaddr spells that /ip4/%s/tcp/%s", host, port)
		}
		return "a multiaddr starts with / (as in /ip4/ADDR/tcp/PORT)"
	}
	parts := strings.Split(strings.TrimSuffix(s[1:], "/"), "/")
	for i := 0; i < len(parts); i++ {
		name := parts[i]
		p := ma.ProtocolWithName(name)
		if p.Code == 0 {
			if name == "" {
				return "it has an empty part (//)"
			}
			return fmt.Sprintf("%q is not a protocol jbc knows (use ip4, ip6, dns, dns4, dns6, tcp, udp, quic-v1 and p2p)", name)
		}
		if p.Size == 0 {
			continue
		}
		if i+1 >= len(parts) {
			return fmt.Sprintf("/%s needs a value after it (%s)", name, valueForm(name))
		}
		value := parts[i+1]
		if p.Path {
			value = strings.Join(parts[i+1:], "/")
		}
		if _, cerr := ma.NewComponent(name, value); cerr != nil {
			return fmt.Sprintf("%q is not %s", value, valueForm(name))
		}
		if p.Path {
			break
		}
		i++
	}
	return err.Error()
}

// valueForm describes the value a multiaddr protocol takes.
func valueForm(proto string) string {
	switch proto {
	case "ip4":
		return "an IPv4 address, like 127.0.0.1"
	case "ip6":
		return "an IPv6 address, like ::1"
	case "tcp", "udp":
		return "a port number, 0 to 65535"
	case "p2p", "ipfs":
		return `a peer ID, like 12D3KooW... (as "jbc id" prints it)`
	case "dns", "dns4", "dns6", "dnsaddr":
		return "a host name"
	}
	return "a valid value for /" + proto
}

// errNoPeerID: a peer's multiaddr lacks its /p2p/<peer ID> part.
var errNoPeerID = errors.New("it has no peer ID: a peer's multiaddr ends in /p2p/<peer ID>, as \"jbc id\" and \"jbc node\" print it")

// ParsePeerAddr parses a peer's full multiaddr, which must end in
// /p2p/<peer ID>, explaining a bad one in plain words.
func ParsePeerAddr(s string) (ma.Multiaddr, error) {
	a, err := ParseAddr(s)
	if err != nil {
		return nil, err
	}
	if _, id := peer.SplitAddr(a); id == "" {
		return nil, fmt.Errorf("%q: %w (want the form %s)", s, errNoPeerID, peerAddrForm)
	}
	return a, nil
}
