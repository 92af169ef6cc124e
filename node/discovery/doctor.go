package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jbc-project/jbc/node/p2p"
	"github.com/jbc-project/jbc/node/peering"
)

// doctorDialTimeout bounds each reachability check of a bootstrap or
// known peer: a LAN or internet peer answers well within it.
const doctorDialTimeout = 3 * time.Second

// Report is what jbc doctor and GET /doctor say about why a node does or
// does not see peers.
type Report struct {
	Interfaces []InterfaceCheck `json:"interfaces"`
	Listen     []AddrCheck      `json:"listen"`
	Announce   []AddrCheck      `json:"announce"`
	MDNS       bool             `json:"mdns"`
	DHT        *DHTCheck        `json:"dht,omitempty"`
	NAT        *NATCheck        `json:"nat,omitempty"`
	Bootstrap  []PeerCheck      `json:"bootstrap"`
	// Peers are the other known peers: bootstrap peers are only under
	// Bootstrap, banned ones only under Banned.
	Peers []PeerCheck `json:"peers"`
	// Banned are the peers refused now, with why and until when.
	Banned []BanCheck `json:"banned"`
	// Problems are what looks wrong, each with what to do about it.
	Problems []Problem `json:"problems"`
	// Notes are what is worth knowing but was evidently chosen (a node
	// kept to loopback for a local test network).
	Notes []string `json:"notes"`
	// Offline is set when no node answered and the report says what a
	// node with the given flags would use (jbc doctor); OfflineDHT then
	// says whether that node would run the DHT.
	Offline    bool `json:"offline,omitempty"`
	OfflineDHT bool `json:"offline_dht,omitempty"`
}

// InterfaceCheck describes one network interface.
type InterfaceCheck struct {
	Name      string   `json:"name"`
	Up        bool     `json:"up"`
	Multicast bool     `json:"multicast"`
	Loopback  bool     `json:"loopback"`
	Addrs     []string `json:"addrs"`
}

// AddrCheck classifies one address (see p2p.AddrKind).
type AddrCheck struct {
	Addr string `json:"addr"`
	Kind string `json:"kind"`
}

// DHTCheck describes the DHT's state.
type DHTCheck struct {
	Mode           string    `json:"mode"`
	Prefix         string    `json:"prefix"`
	RoutingTable   int       `json:"routing_table"`
	LastAdvertise  time.Time `json:"last_advertise"`
	AdvertiseError string    `json:"advertise_error,omitempty"`
	LastFind       time.Time `json:"last_find"`
	LastFound      int       `json:"last_found"`
	FindError      string    `json:"find_error,omitempty"`
}

// PeerCheck says whether a peer is connected or can be dialled. Error is
// the cause of the last real failure to dial it: when the doctor's own
// dial is refused by the swarm's backoff ("dial backoff", which follows
// every failure for a while), the error of the node's last real attempt,
// made at ErrorAt.
type PeerCheck struct {
	ID        string         `json:"id"`
	Source    peering.Source `json:"source,omitempty"`
	Connected bool           `json:"connected"`
	Reachable bool           `json:"reachable"`
	Error     string         `json:"error,omitempty"`
	ErrorAt   time.Time      `json:"error_at,omitzero"`
}

// BanCheck is a peer refused now: how it was found, why it is refused
// and until when.
type BanCheck struct {
	ID     string         `json:"id"`
	Source peering.Source `json:"source,omitempty"`
	Reason string         `json:"reason"`
	Until  time.Time      `json:"until"`
}

// Problem is something that keeps a node from finding or reaching peers.
type Problem struct {
	Problem string `json:"problem"`
	Fix     string `json:"fix"`
}

// HasProblem reports whether ps holds a problem whose text contains substr
// and that says what to do about it.
func HasProblem(ps []Problem, substr string) bool {
	for _, p := range ps {
		if strings.Contains(p.Problem, substr) && p.Fix != "" {
			return true
		}
	}
	return false
}

// CheckInterfaces lists this machine's interfaces, for doctor.
func CheckInterfaces() []InterfaceCheck {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	out := make([]InterfaceCheck, 0, len(ifs))
	for _, it := range ifs {
		ic := InterfaceCheck{Name: it.Name, Up: it.Flags&net.FlagUp != 0, Multicast: it.Flags&net.FlagMulticast != 0,
			Loopback: it.Flags&net.FlagLoopback != 0, Addrs: []string{}}
		if addrs, err := it.Addrs(); err == nil {
			for _, a := range addrs {
				ic.Addrs = append(ic.Addrs, a.String())
			}
		}
		out = append(out, ic)
	}
	return out
}

// CheckAddrs classifies addresses.
func CheckAddrs(addrs []ma.Multiaddr) []AddrCheck {
	out := make([]AddrCheck, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, AddrCheck{Addr: a.String(), Kind: p2p.AddrKind(a)})
	}
	return out
}

// OfflineProblems judges what can be judged without a running node: the
// interfaces, the addresses a node would listen on and announce, and the
// peers it is given (--bootstrap and --peer addresses). Listening on
// loopback only is a note, not a problem, when mDNS is off and every peer
// given is on loopback too: a local test network, as the README's
// several-nodes-on-one-machine example runs.
func OfflineProblems(ifs []InterfaceCheck, listen, announce []AddrCheck, mdns bool, peers []AddrCheck) (problems []Problem, notes []string) {
	var out []Problem
	if mdns {
		ok := false
		for _, it := range ifs {
			if it.Up && it.Multicast && !it.Loopback && len(it.Addrs) > 0 {
				ok = true
			}
		}
		if !ok {
			out = append(out, Problem{
				Problem: "mDNS is on but no interface that is up has multicast, so no peer on the LAN can be found this way.",
				Fix:     "If the network is still coming up, wait: a running node starts mDNS within 2 s of an interface coming up. Otherwise give peers explicitly with --bootstrap or --peer (docker overlay networks and Docker Desktop's VM have no multicast between hosts).",
			})
		}
	}
	kinds := map[string]int{}
	for _, a := range listen {
		kinds[a.Kind]++
	}
	localPeers := true
	for _, a := range peers {
		if a.Kind != "loopback" {
			localPeers = false
		}
	}
	switch {
	case len(listen) == 0 || kinds["loopback"] != len(listen):
	case !mdns && localPeers:
		notes = append(notes, "The node listens on loopback only: only nodes on this machine can connect to it, as suits a local test network (mDNS is off and every peer given is on loopback). To reach other machines, listen on all interfaces (drop --listen).")
	default:
		out = append(out, Problem{
			Problem: "The node listens on loopback only, so no other machine can connect to it.",
			Fix:     "Listen on all interfaces (drop --listen, or use --listen /ip4/0.0.0.0/tcp/4747).",
		})
	}
	adv := announce
	if len(adv) == 0 {
		adv = listen
	}
	kinds = map[string]int{}
	for _, a := range adv {
		kinds[a.Kind]++
	}
	if len(adv) > 0 && kinds["public"] == 0 && kinds["docker-bridge"] > 0 && kinds["private"] == 0 {
		out = append(out, Problem{
			Problem: "The addresses the node gives out are docker-bridge addresses, which only containers on the same docker host can dial.",
			Fix:     "Publish the port and pass --announce /ip4/<host address>/tcp/<published port> so nodes elsewhere can dial it.",
		})
	}
	return out, notes
}

// Doctor checks the running node: interfaces, addresses, discovery state,
// and whether bootstrap and known peers can be reached (dialling those not
// connected); storeProblem says what keeps the node from writing its chain
// ("" when nothing does: package disk's Health.Problem). It takes up to
// doctorDialTimeout.
func (d *Discovery) Doctor(ctx context.Context, storeProblem func() string) Report {
	r := Report{
		Interfaces: CheckInterfaces(),
		Listen:     CheckAddrs(p2p.WithoutRelayed(d.host.Network().ListenAddresses())),
		Announce:   CheckAddrs(d.host.Addrs()),
		MDNS:       d.cfg.MDNS,
		Bootstrap:  []PeerCheck{},
		Peers:      []PeerCheck{},
		Banned:     []BanCheck{},
	}
	if d.dht != nil {
		r.DHT = d.state()
	}
	// Dial what is not connected, all at once.
	var wg sync.WaitGroup
	check := func(pi peer.AddrInfo, src peering.Source) *PeerCheck {
		pc := &PeerCheck{ID: pi.ID.String(), Source: src}
		if d.host.Network().Connectedness(pi.ID) == network.Connected {
			pc.Connected, pc.Reachable = true, true
			return pc
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			dctx, cancel := context.WithTimeout(ctx, doctorDialTimeout)
			defer cancel()
			err := d.host.Connect(dctx, pi)
			if err == nil {
				pc.Reachable = true
				return
			}
			d.peers.DialFailed(pi.ID, err)
			pc.Error = peering.DialCause(err)
			// The swarm refuses to dial a peer for a while after a failed
			// dial, saying only "dial backoff": show the real cause.
			if known, ok := d.peers.Get(pi.ID); ok && known.DialError != "" && errors.Is(err, swarm.ErrDialBackoff) {
				pc.Error, pc.ErrorAt = known.DialError, known.DialErrorAt
			}
		}()
		return pc
	}
	var boot, known []*PeerCheck
	isBoot := map[peer.ID]bool{}
	for _, pi := range d.boot {
		isBoot[pi.ID] = true
		if d.peers.IsBanned(pi.ID) {
			continue // under Banned
		}
		boot = append(boot, check(pi, peering.SourceBootstrap))
	}
	for _, pi := range d.peers.List() {
		if isBoot[pi.ID] || d.peers.IsBanned(pi.ID) {
			continue
		}
		addrs := d.host.Peerstore().Addrs(pi.ID)
		if len(addrs) == 0 {
			addrs = pi.Addrs
		}
		known = append(known, check(peer.AddrInfo{ID: pi.ID, Addrs: addrs}, pi.Source))
	}
	wg.Wait()
	for _, pc := range boot {
		r.Bootstrap = append(r.Bootstrap, *pc)
	}
	for _, pc := range known {
		r.Peers = append(r.Peers, *pc)
	}
	for _, bp := range d.peers.Bans() {
		src := bp.Source
		if isBoot[bp.ID] {
			src = peering.SourceBootstrap
		}
		r.Banned = append(r.Banned, BanCheck{ID: bp.ID.String(), Source: src, Reason: bp.Ban.Reason, Until: bp.Ban.Until})
	}
	var given []ma.Multiaddr
	for _, pi := range append(append([]peer.AddrInfo{}, d.boot...), d.direct...) {
		given = append(given, pi.Addrs...)
	}
	r.Problems, r.Notes = OfflineProblems(r.Interfaces, r.Listen, r.Announce, r.MDNS, CheckAddrs(given))
	r.Problems = append(r.Problems, d.runtimeProblems(r, storeProblem)...)
	if r.Problems == nil {
		r.Problems = []Problem{}
	}
	if r.Notes == nil {
		r.Notes = []string{}
	}
	return r
}

// runtimeProblems judges the running node's discovery.
func (d *Discovery) runtimeProblems(r Report, storeProblem func() string) []Problem {
	var out []Problem
	if p := storeProblem(); p != "" {
		out = append(out, Problem{
			Problem: "The node cannot write its chain: " + p + ". Syncing and mining are paused and retried with a growing pause (up to a minute).",
			Fix:     "Free space on that filesystem (or give the data directory more room); the node resumes by itself once a write succeeds. The chain stored so far is intact.",
		})
	}
	for _, b := range r.Bootstrap {
		if !b.Reachable {
			out = append(out, Problem{
				Problem: fmt.Sprintf("Bootstrap peer %s cannot be reached: %s", b.ID, b.Error),
				Fix:     "Check that the node at that multiaddr runs, that the address and peer ID are the ones it prints at start (jbc id), and that no firewall blocks the port.",
			})
		}
	}
	if d := r.DHT; d != nil {
		switch {
		case d.Mode != "server":
			out = append(out, Problem{
				Problem: "The DHT runs in client mode: this node can look peers up but others cannot use it to find each other.",
				Fix:     "Run the DHT in server mode (jbc's default) on nodes others can reach.",
			})
		case d.RoutingTable == 0 && len(r.Bootstrap) == 0:
			out = append(out, Problem{
				Problem: "The DHT has no peers and no bootstrap peer was given, so it can find nobody.",
				Fix:     "Pass --bootstrap with the multiaddr of a running node (it prints it at start).",
			})
		case d.RoutingTable == 0:
			out = append(out, Problem{
				Problem: "The DHT's routing table is empty: the bootstrap peers did not join it.",
				Fix:     "Check that the bootstrap peers run jbc with the same --dht-prefix and can be reached.",
			})
		}
		if d.AdvertiseError != "" {
			out = append(out, Problem{
				Problem: "The last DHT advertisement failed: " + d.AdvertiseError,
				Fix:     "Usually the routing table is empty; see above. It is retried every few seconds.",
			})
		}
	}
	for _, b := range r.Banned {
		if b.Source != peering.SourceBootstrap && b.Source != peering.SourceDirect {
			continue
		}
		out = append(out, Problem{
			Problem: fmt.Sprintf("The %s peer %s is banned until %s: %s", b.Source, b.ID, b.Until.Format(time.TimeOnly), b.Reason),
			Fix:     "A peer on another network stays banned: give the address of a node of this network, or join that network (jbc init --genesis with its genesis file, in a new data directory). A peer banned for misbehaving is let in again when the ban ends.",
		})
	}
	connected := 0
	for _, p := range r.Peers {
		if p.Connected {
			connected++
		}
		if !p.Reachable && p.Source != peering.SourceInbound {
			out = append(out, Problem{
				Problem: fmt.Sprintf("Known peer %s (found by %s) cannot be dialled: %s", p.ID, p.Source, p.Error),
				Fix:     "If it announced a docker-bridge, private or loopback address, that node needs --announce with an address this one can reach.",
			})
		}
	}
	if connected == 0 && !r.MDNS && r.DHT == nil && len(d.direct) == 0 {
		out = append(out, Problem{
			Problem: "All discovery is off (no mDNS, no DHT, no --peer): this node only waits for others to dial it.",
			Fix:     "Turn on mDNS (drop --no-mdns) on a LAN, or give --bootstrap or --peer.",
		})
	}
	return out
}

// state returns the DHT's discovery state.
func (d *Discovery) state() *DHTCheck {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := &DHTCheck{
		Mode:          "server",
		Prefix:        d.prefix,
		RoutingTable:  d.dht.RoutingTable().Size(),
		LastAdvertise: d.lastAdv,
		LastFind:      d.lastFind,
		LastFound:     d.lastFound,
	}
	if d.dht.Mode() == dht.ModeClient {
		c.Mode = "client"
	}
	if d.advErr != nil {
		c.AdvertiseError = d.advErr.Error()
	}
	if d.findErr != nil {
		c.FindError = d.findErr.Error()
	}
	return c
}
