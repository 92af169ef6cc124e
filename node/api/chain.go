package api

import (
	"net/http"

	"github.com/jbc-project/jbc/chain"
)

// ChainJSON is the body of GET /chain: the network's rules and the best
// chain's summary, what "jbc chain" and "jbc verify" need from a running
// node whose chain file they cannot open (the node holds its lock).
type ChainJSON struct {
	Params    *chain.Params `json:"params"`
	Height    uint64        `json:"height"`
	Tip       string        `json:"tip"`
	TotalWork string        `json:"total_work"`
	// Blocks is how many blocks are stored, side branches included.
	Blocks int `json:"blocks"`
}

// Chain returns what GET /chain serves.
func (a *API) Chain() (ChainJSON, error) {
	count, err := a.store.Count()
	if err != nil {
		return ChainJSON{}, err
	}
	tip := a.store.Tip()
	return ChainJSON{Params: a.store.Params(), Height: tip.Height, Tip: tip.Hash.String(), TotalWork: tip.Work.String(), Blocks: count}, nil
}

func (a *API) handleChain(w http.ResponseWriter, r *http.Request) {
	c, err := a.Chain()
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, c)
}
