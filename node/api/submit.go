package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/gossip"
)

// handleSubmit takes a data entry: the request body, as plain text, or a
// JSON object {"data": "..."} when the content type is application/json.
func (a *API) handleSubmit(w http.ResponseWriter, r *http.Request) {
	if !a.submitLimit.Allow() {
		httpError(w, http.StatusTooManyRequests, "too many submissions; retry later")
		return
	}
	limit := int64(a.store.Params().MaxDataSize) + 1024
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", limit))
		return
	case err != nil:
		// Most likely ReadTimeout passed: the connection is closed
		// after this answer, if it gets through.
		httpError(w, http.StatusRequestTimeout, "reading the body: "+err.Error())
		return
	}
	text, err := submittedEntry(body, r.Header.Get("Content-Type"))
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	id, err := a.b.Submit(r.Context(), text)
	var re *chain.RuleError
	switch {
	case errors.As(err, &re):
		httpError(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, gossip.ErrPoolFull):
		httpError(w, http.StatusServiceUnavailable, err.Error())
		return
	case err != nil:
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	e, err := a.b.Entry(id)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Location", "/data/"+e.ID)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	writeJSONBody(w, e)
}

// submittedEntry returns the entry a POST /data body carries: the body as
// plain text or, when contentType's media type is application/json (in any
// case, with any parameters), the string under "data" in a JSON object. A
// JSON body must be valid text: valid UTF-8, and no \u escape of a UTF-16
// surrogate that is not half of a pair. encoding/json would otherwise
// replace either with U+FFFD and store an entry the client never sent. It
// checks the form only, not the entry.
func submittedEntry(body []byte, contentType string) (string, error) {
	// Parameters (charset, or ones malformed) do not change the type.
	if mt, _, _ := strings.Cut(contentType, ";"); !strings.EqualFold(strings.TrimSpace(mt), "application/json") {
		return string(body), nil
	}
	if !utf8.Valid(body) {
		return "", errors.New("JSON body is not valid UTF-8")
	}
	var req struct {
		Data *string `json:"data"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Data == nil {
		return "", errors.New(`want {"data": "..."}`)
	}
	if loneSurrogate(body) {
		return "", errLoneSurrogate
	}
	return *req.Data, nil
}

// errLoneSurrogate refuses a JSON body escaping half a surrogate pair.
var errLoneSurrogate = errors.New(`JSON body is not valid text: a \u escape of half a UTF-16 surrogate pair`)

// loneSurrogate reports whether js, valid JSON, holds a \u escape of a
// UTF-16 surrogate that is not half of a pair (a high surrogate followed
// at once by an escaped low one): no character, which encoding/json decodes
// as U+FFFD. In valid JSON a backslash is always an escape inside a string,
// so no string state is needed.
func loneSurrogate(js []byte) bool {
	hex4 := func(i int) (rune, bool) { // the 4 hex digits of a \u escape at js[i]
		if i+6 > len(js) || js[i] != '\\' || js[i+1] != 'u' {
			return 0, false
		}
		v, err := strconv.ParseUint(string(js[i+2:i+6]), 16, 16)
		return rune(v), err == nil
	}
	for i := 0; i < len(js); i++ {
		if js[i] != '\\' {
			continue
		}
		r, ok := hex4(i)
		if !ok {
			i++ // another escape: skip its letter, which may be a backslash
			continue
		}
		i += 5
		switch {
		case !utf16.IsSurrogate(r):
		case r >= 0xdc00: // a low surrogate first
			return true
		default: // a high surrogate: an escaped low one must follow
			lo, ok := hex4(i + 1)
			if !ok || lo < 0xdc00 || lo > 0xdfff {
				return true
			}
			i += 6
		}
	}
	return false
}
