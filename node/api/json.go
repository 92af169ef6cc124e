package api

import (
	"time"

	"github.com/jbc-project/jbc/node/chainsync"
	"github.com/jbc-project/jbc/node/nat"
	"github.com/jbc-project/jbc/node/peering"
)

// StatusJSON is the body of GET /status.
type StatusJSON struct {
	PeerID    string             `json:"peer_id"`
	Addrs     []string           `json:"addrs"`
	Network   string             `json:"network"`
	Height    uint64             `json:"height"`
	Tip       string             `json:"tip"`
	TotalWork string             `json:"total_work"`
	Peers     int                `json:"peers"`
	Syncing   bool               `json:"syncing"`
	Sync      chainsync.Progress `json:"sync"`
	Mining    bool               `json:"mining"`
	Hashes    uint64             `json:"hashes"`
	HashRate  float64            `json:"hash_rate"`
	Pending   int                `json:"pending"`
	// StorageError says why the node cannot write its chain ("disk full
	// at DIR"); empty while it can.
	StorageError string `json:"storage_error,omitempty"`
	// NAT says whether the node is reachable from outside, its relay
	// service and its relay reservations (package nat).
	nat.Status
}

// EntryJSON is the body of POST /data and GET /data/{id}.
type EntryJSON struct {
	ID string `json:"id"`
	// Status is "pending", "mined" (in a best-chain block) or "unknown".
	Status string `json:"status"`
	Block  string `json:"block,omitempty"`
	Height uint64 `json:"height,omitempty"`
}

// PeerJSON is one element of GET /peers. A banned peer is listed too,
// never connected, with Ban set and what was known of it when banned.
type PeerJSON struct {
	ID        string              `json:"id"`
	Addrs     []string            `json:"addrs"`
	Source    peering.Source      `json:"source"`
	Connected bool                `json:"connected"`
	Status    *PeerStatus         `json:"status,omitempty"`
	LastSync  *peering.SyncRecord `json:"last_sync,omitempty"`
	// DialError is the cause of the last failed dial since the peer was
	// last connected (see peering.PeerInfo.DialError), at DialErrorAt.
	DialError   string       `json:"dial_error,omitempty"`
	DialErrorAt time.Time    `json:"dial_error_at,omitzero"`
	Ban         *peering.Ban `json:"ban,omitempty"`
	// Connections are the open connections to the peer: direct or
	// relayed, and how each was made (dial, inbound, relay, hole-punch).
	Connections []nat.ConnInfo `json:"connections,omitempty"`
	// HolePunch sums up the DCUtR hole punches with the peer, and why
	// the last failed.
	HolePunch *nat.HolePunch `json:"hole_punch,omitempty"`
}

// PeerStatus is a peer's last status as GET /peers shows it.
type PeerStatus struct {
	Network   string    `json:"network"`
	Tip       string    `json:"tip"`
	Height    uint64    `json:"height"`
	TotalWork string    `json:"total_work"`
	Agent     string    `json:"agent"`
	At        time.Time `json:"at"`
}

// PeerJSONOf returns what GET /peers says of a peer, from what the node
// knows of it; the caller sets Connected, and Ban for a banned peer.
func PeerJSONOf(pi peering.PeerInfo) PeerJSON {
	pj := PeerJSON{ID: pi.ID.String(), Addrs: []string{}, Source: pi.Source, LastSync: pi.LastSync,
		DialError: pi.DialError, DialErrorAt: pi.DialErrorAt}
	for _, a := range pi.Addrs {
		pj.Addrs = append(pj.Addrs, a.String())
	}
	if st := pi.Status; st != nil {
		work := "0"
		if st.Work != nil {
			work = st.Work.String()
		}
		pj.Status = &PeerStatus{Network: st.Genesis.String(), Tip: st.Tip.String(), Height: st.Height,
			TotalWork: work, Agent: st.Agent, At: pi.StatusAt}
	}
	return pj
}
