package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// minedRate and minedBurst limit POST /mined over all clients: a Python
// network finds a block every few seconds at most; the burst covers
// several miners finding one at once.
const (
	minedRate  = 10
	minedBurst = 50
)

// handleMined takes a block a Python miner announces: POST /mined with the
// block as JSON (values strings, as the original sends them, or numbers).
// It answers as the original does, {"received": true}, once the block is
// stored (or was already); a block that breaks a rule or whose parent is
// unknown gets {"received": false} with the reason.
func (a *API) handleMined(w http.ResponseWriter, r *http.Request) {
	if !a.minedLimit.Allow() {
		httpError(w, http.StatusTooManyRequests, "too many blocks; retry later")
		return
	}
	// The data field at its limit with every byte escaped (\u00XX), plus
	// the other fields.
	limit := 6*int64(a.store.Params().MaxDataSize) + 4096
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", limit))
		return
	}
	var b chain.Block
	if err := b.UnmarshalJSON(body); err != nil {
		minedAnswer(w, http.StatusBadRequest, false, "bad block JSON: "+err.Error())
		return
	}
	err = a.b.AddMined(b)
	var re *chain.RuleError
	switch {
	case err == nil:
		minedAnswer(w, http.StatusOK, true, "")
	case errors.As(err, &re):
		minedAnswer(w, http.StatusBadRequest, false, err.Error())
	case errors.Is(err, storage.ErrOrphan):
		minedAnswer(w, http.StatusConflict, false, "its parent is not in this node's chain: "+err.Error())
	default:
		httpError(w, http.StatusInternalServerError, err.Error())
	}
}

func minedAnswer(w http.ResponseWriter, code int, received bool, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	body := map[string]any{"received": received}
	if reason != "" {
		body["error"] = reason
	}
	writeJSONBody(w, body)
}
