package nat

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jbc-project/jbc/node/p2p"
)

// Relay service states, as /status shows them.
const (
	RelayOn      = "on"
	RelayOff     = "off"
	RelayRefused = "refused"
)

// Status is the NAT part of GET /status.
type Status struct {
	// Reachability is Public, Private or Unknown; Source says who
	// decided (autonat-v2, autonat-v1, interface: the node has no public
	// address of its own); Since when.
	Reachability string    `json:"reachability"`
	Source       string    `json:"reachability_source"`
	Since        time.Time `json:"reachability_since"`
	// PublicAddrs are the node's public addresses as AutoNAT v2 judged
	// them.
	PublicAddrs PublicAddrs `json:"public_addrs"`
	// RelayService is RelayOn, RelayOff or RelayRefused (--relay=false).
	RelayService string `json:"relay_service"`
	// Relays hold a reservation for us; RelayAddrs are the addresses
	// through them, which the node advertises.
	Relays     []string `json:"relays"`
	RelayAddrs []string `json:"relay_addrs"`
	// HolePunching says whether the node serves DCUtR: only once a peer
	// observed a public address of it.
	HolePunching bool `json:"hole_punching"`
}

// PublicAddrs are public addresses by AutoNAT v2's verdict.
type PublicAddrs struct {
	Reachable   []string `json:"reachable"`
	Unreachable []string `json:"unreachable"`
	Unknown     []string `json:"unknown"`
}

// Status returns the node's NAT state.
func (n *NAT) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, why := n.reachabilityLocked()
	st := Status{Reachability: r, Source: why, Since: n.reachAt,
		PublicAddrs:  PublicAddrs{Reachable: strs(n.reachable), Unreachable: strs(n.unreachable), Unknown: strs(n.undecided)},
		RelayService: RelayOff, Relays: []string{}, RelayAddrs: strs(n.relayAddrs), HolePunching: !n.ownDCUtR.IsZero()}
	switch {
	case n.svc != nil:
		st.RelayService = RelayOn
	case !n.cfg.Relay:
		st.RelayService = RelayRefused
	}
	for _, a := range n.relayAddrs {
		if id := p2p.RelayID(a); id != "" && !slices.Contains(st.Relays, id) {
			st.Relays = append(st.Relays, id)
		}
	}
	return st
}

func strs(addrs []ma.Multiaddr) []string {
	out := []string{}
	for _, a := range addrs {
		out = append(out, a.String())
	}
	return out
}

// Finding is something the doctor reports: a problem with what to do, or
// a note.
type Finding struct {
	Problem string
	Fix     string
	Note    bool
}

// BootstrapState is what the doctor found of a bootstrap or --peer node.
type BootstrapState struct {
	ID        string
	Reachable bool
	Error     string
	// Public: it was given with a public address (a node on the
	// internet, not on this LAN).
	Public bool
}

// doctorSettle: right after start, AutoNAT and AutoRelay have not had
// time (a reservation takes a few round trips; DCUtR waits for a peer to
// observe our address); findings that may be only that wait are held
// back this long.
const doctorSettle = 10 * time.Second

// Check says what keeps nodes behind NAT from reaching this one, or it
// from reaching them: no relay reservation while private (and why: the
// bootstrap nodes given are unreachable), no public address to punch
// from, peers held only through a relay and why their punch failed, and
// the relay service's state. boot are the doctor's findings about the
// bootstrap and --peer nodes.
func (n *NAT) Check(boot []BootstrapState) []Finding {
	hp := n.h.Load()
	if hp == nil {
		return nil
	}
	h := *hp
	st := n.Status()
	settled := time.Since(n.started) >= doctorSettle
	var out []Finding
	switch st.RelayService {
	case RelayRefused:
		if st.Reachability != Private {
			out = append(out, Finding{Note: true, Problem: "The relay service is refused (--relay=false): this node, reachable from outside, does not help nodes behind NAT reach each other."})
		}
	case RelayOff:
		if st.Reachability == Private && st.Source == "autonat-v2" {
			out = append(out, Finding{Note: true, Problem: "The relay service is off: AutoNAT v2 found every public address of this node unreachable (a firewall?)."})
		}
	}
	for _, p := range h.Network().Peers() {
		if h.Network().Connectedness(p) != network.Limited {
			continue
		}
		out = append(out, Finding{
			Problem: fmt.Sprintf("Peer %s is reached only through a relay: the direct connection failed: %s.", p, n.whyRelayed(p)),
			Fix:     "Status and gossip still flow through the relay within its limits; blocks are not synced over it. A NAT that maps each destination to a new port (symmetric) cannot be punched: a forwarded port and --announce on one side help.",
		})
	}
	// Relays and hole punching concern a node on the internet: one given
	// a public peer address, or that a peer saw at a public address. A
	// LAN or loopback network of private addresses needs neither.
	internet := st.HolePunching
	for _, b := range boot {
		internet = internet || b.Public
	}
	if !internet {
		return out
	}
	if st.Reachability == Private && len(st.Relays) == 0 && (settled || len(boot) > 0) {
		var down []string
		for _, b := range boot {
			if !b.Reachable {
				down = append(down, fmt.Sprintf("relay %s unreachable: %s", b.ID, b.Error))
			}
		}
		switch {
		case len(boot) > 0 && len(down) == len(boot):
			out = append(out, Finding{
				Problem: "This node is behind NAT (not reachable from outside) and holds no relay reservation: " + strings.Join(down, "; ") + ". Nodes behind other NATs cannot reach it.",
				Fix:     "Start that node again, or give --bootstrap or --peer another publicly reachable jbc node: it relays for nodes behind NAT unless it runs with --relay=false.",
			})
		case settled:
			out = append(out, Finding{
				Problem: "This node is behind NAT (not reachable from outside) and holds no relay reservation: none of its peers offers a relay.",
				Fix:     "Give --bootstrap or --peer a publicly reachable jbc node (it relays unless run with --relay=false), or forward a port to this node and pass --announce with the public address.",
			})
		}
	}
	if st.Reachability == Private && !st.HolePunching && settled {
		out = append(out, Finding{
			Problem: "No peer has observed a public address of this node, so it cannot hole-punch: its addresses as others see them are private (IPv4 behind a carrier-grade NAT, or every peer on the same private network).",
			Fix:     "Connect to a bootstrap node over a public address (IPv6 often works where IPv4 is behind two NATs); until then peers behind other NATs reach this node only through a relay.",
		})
	}
	return out
}

// whyRelayed says in words why p is still reached only through a relay.
func (n *NAT) whyRelayed(p peer.ID) string {
	hp := n.HolePunchOf(p)
	n.mu.Lock()
	own := !n.ownDCUtR.IsZero()
	rs := n.up.redials[p]
	var redials int
	if rs != nil {
		redials = rs.n
	}
	n.mu.Unlock()
	switch {
	case !own:
		return "this node has no public address to punch from"
	case hp == nil && redials > 0:
		return fmt.Sprintf("the peer never started a hole punch (%d redials through the relay); it may not serve DCUtR (an old jbc, or no public address to punch from)", redials)
	case hp == nil:
		return "no hole punch yet (the peer starts it)"
	case hp.LastError != "":
		return fmt.Sprintf("%s (%d attempts)", hp.LastError, hp.Attempts)
	}
	return fmt.Sprintf("%d attempts, none succeeded", hp.Attempts)
}
