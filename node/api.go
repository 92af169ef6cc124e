package node

import (
	"net/http"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/api"
)

// What the HTTP API (package api) serves of the node.

// Status returns what GET /status serves.
func (n *Node) Status() api.StatusJSON {
	tip := n.store.Tip()
	prog := n.sync.Progress()
	addrs := []string{}
	for _, a := range n.Addrs() {
		addrs = append(addrs, a.String())
	}
	return api.StatusJSON{
		PeerID:    n.ID().String(),
		Addrs:     addrs,
		Network:   n.store.Params().ID().String(),
		Height:    tip.Height,
		Tip:       tip.Hash.String(),
		TotalWork: tip.Work.String(),
		Peers:     len(n.host.Network().Peers()),
		Syncing:   prog.Syncing,
		Sync:      prog,
		Mining:    n.Mining(),
		Hashes:    n.miner.Attempts(),
		HashRate:  n.metrics.hashRate(n.miner.Attempts(), n.Mining()),
		Pending:   n.pool.Size(),

		StorageError: n.disk.Problem(),
		Status:       n.nat.Status(),
	}
}

// Peers returns what GET /peers serves: the known peers, then the banned
// ones, each sorted by ID.
func (n *Node) Peers() []api.PeerJSON {
	out := []api.PeerJSON{}
	for _, pi := range n.peers.List() {
		if n.peers.IsBanned(pi.ID) {
			continue // banned while a status was on its way: listed below
		}
		pj := api.PeerJSONOf(pi)
		pj.Connected = len(n.host.Network().ConnsToPeer(pi.ID)) > 0
		pj.Connections = n.nat.Conns(pi.ID)
		pj.HolePunch = n.nat.HolePunchOf(pi.ID)
		out = append(out, pj)
	}
	for _, bp := range n.peers.Bans() {
		pj := api.PeerJSONOf(bp.PeerInfo)
		ban := bp.Ban
		pj.Ban = &ban
		out = append(out, pj)
	}
	return out
}

// Entry returns what GET /data/{id} serves.
func (n *Node) Entry(id chain.Hash) (api.EntryJSON, error) {
	out := api.EntryJSON{ID: id.String(), Status: "unknown"}
	h, height, found, err := n.store.EntryBlock(id)
	switch {
	case err != nil:
		return out, err
	case found:
		out.Status, out.Block, out.Height = "mined", h.String(), height
	case n.pool.Has(id):
		out.Status = "pending"
	}
	return out, nil
}

// Handler returns the HTTP API.
func (n *Node) Handler() http.Handler { return n.api.Handler() }

// backend is what the HTTP API serves from: the node, and its pool and
// block storing for the two requests that need them.
type backend struct{ *Node }

// Pending returns up to max pending entries (api.Backend).
func (b backend) Pending(max int) []string { return b.pool.Pending(max) }

// AddMined stores a block a Python miner sent (api.Backend).
func (b backend) AddMined(blk chain.Block) error {
	_, err := b.addBlocksVia(viaLegacy, []chain.Block{blk})
	return err
}
