package node

import (
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/jbc-project/jbc/node/discovery"
	"github.com/jbc-project/jbc/node/nat"
	"github.com/jbc-project/jbc/node/p2p"
	"github.com/jbc-project/jbc/node/peering"
)

// preferredRelays returns the peers AutoRelay asks for a reservation
// first: the bootstrap nodes, then the --peer ones, in the order given.
// Bad addresses are left for package discovery to report.
func preferredRelays(bootstrap, direct []string) func() []peer.ID {
	var ids []peer.ID
	for _, list := range [][]string{bootstrap, direct} {
		infos, err := p2p.ParsePeerAddrs(list)
		if err != nil {
			continue
		}
		for _, pi := range infos {
			ids = append(ids, pi.ID)
		}
	}
	return func() []peer.ID { return ids }
}

// publicPeers returns the IDs of the bootstrap and --peer nodes given with
// a public address.
func publicPeers(bootstrap, direct []string) map[string]bool {
	out := map[string]bool{}
	for _, list := range [][]string{bootstrap, direct} {
		infos, err := p2p.ParsePeerAddrs(list)
		if err != nil {
			continue
		}
		for _, pi := range infos {
			for _, a := range pi.Addrs {
				if manet.IsPublicAddr(a) {
					out[pi.ID.String()] = true
				}
			}
		}
	}
	return out
}

// addNATFindings adds what package nat finds to the doctor's report: the
// reachability section, and its problems and notes. public are the given
// peers with a public address (publicPeers).
func addNATFindings(r *discovery.Report, n *nat.NAT, public map[string]bool, peers *peering.Set) {
	// The doctor's own dial gives up after a few seconds, often saying
	// only that; the node's last real attempt says more.
	cause := func(id, err string) string {
		if !strings.Contains(err, "context deadline exceeded") {
			return err
		}
		if p, perr := peer.Decode(id); perr == nil {
			if pi, ok := peers.Get(p); ok && pi.DialError != "" {
				return pi.DialError
			}
		}
		return err
	}
	st := n.Status()
	r.NAT = &discovery.NATCheck{Reachability: st.Reachability, Source: st.Source, RelayService: st.RelayService,
		Relays: st.Relays, RelayAddrs: st.RelayAddrs, HolePunching: st.HolePunching}
	var boot []nat.BootstrapState
	for _, b := range r.Bootstrap {
		boot = append(boot, nat.BootstrapState{ID: b.ID, Reachable: b.Reachable, Error: cause(b.ID, b.Error), Public: public[b.ID]})
	}
	for _, b := range r.Peers {
		if b.Source == peering.SourceDirect {
			boot = append(boot, nat.BootstrapState{ID: b.ID, Reachable: b.Reachable, Error: cause(b.ID, b.Error), Public: public[b.ID]})
		}
	}
	for _, f := range n.Check(boot) {
		if f.Note {
			r.Notes = append(r.Notes, f.Problem)
			continue
		}
		r.Problems = append(r.Problems, discovery.Problem{Problem: f.Problem, Fix: f.Fix})
	}
}
