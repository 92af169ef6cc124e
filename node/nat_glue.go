package node

import (
	"github.com/libp2p/go-libp2p/core/peer"

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

// addNATFindings adds what package nat finds to the doctor's report: the
// reachability section, and its problems and notes.
func addNATFindings(r *discovery.Report, n *nat.NAT) {
	st := n.Status()
	r.NAT = &discovery.NATCheck{Reachability: st.Reachability, Source: st.Source, RelayService: st.RelayService,
		Relays: st.Relays, RelayAddrs: st.RelayAddrs, HolePunching: st.HolePunching}
	var boot []nat.BootstrapState
	for _, b := range r.Bootstrap {
		boot = append(boot, nat.BootstrapState{ID: b.ID, Reachable: b.Reachable, Error: b.Error})
	}
	for _, b := range r.Peers {
		if b.Source == peering.SourceDirect {
			boot = append(boot, nat.BootstrapState{ID: b.ID, Reachable: b.Reachable, Error: b.Error})
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
