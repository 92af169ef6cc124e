package node

import (
	"embed"
	"io/fs"
	"net/http"
	"strconv"

	"github.com/jbc-project/jbc/chain"
)

// The dashboard is a single page, plain HTML, CSS and JavaScript embedded
// in the binary, served at / of the HTTP API. It has no build step and
// loads nothing from elsewhere: it polls the API's own JSON endpoints
// (/status, /peers, /recent, /pending) and renders them.
//
//go:embed web/index.html web/style.css web/app.js
var webFiles embed.FS

// Limits of the dashboard's JSON endpoints: the page shows a screenful,
// and it polls every second or two, so every answer stays small.
const (
	// defaultRecent and maxRecent: blocks GET /recent returns by default
	// and at most. Blocks carry up to MaxDataSize bytes of data each, so
	// the cap bounds an answer to a few MiB.
	defaultRecent = 10
	maxRecent     = 100
	// defaultPending and maxPending: entries GET /pending returns by
	// default and at most; the pool holds up to MaxPoolEntries and its
	// size is in GET /status.
	defaultPending = 20
	maxPending     = 100
)

// dashboardCSP lets the page load only its own script, style and API:
// whatever a data entry holds, no other code can run or be fetched.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// PendingJSON is one element of GET /pending: a data entry waiting in the
// pool for a block.
type PendingJSON struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// Recent returns the newest n blocks of the best chain, newest first
// (fewer near genesis), as GET /recent serves them.
func (n *Node) Recent(count int) ([]chain.Block, error) {
	out := []chain.Block{}
	if count <= 0 {
		return out, nil
	}
	tip := n.store.Tip().Height
	from := uint64(0)
	if tip >= uint64(count) {
		from = tip - uint64(count) + 1
	}
	err := n.store.ForEach(from, tip, func(b *chain.Block) error {
		out = append(out, *b)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// Pending returns up to max entries of the data pool, oldest first, as
// GET /pending serves them.
func (n *Node) Pending(max int) []PendingJSON {
	out := []PendingJSON{}
	if max <= 0 {
		return out
	}
	for _, text := range n.pool.pending(max) {
		out = append(out, PendingJSON{ID: chain.EntryID(text).String(), Text: text})
	}
	return out
}

// countParam reads the query parameter n: def when absent, capped at max;
// ok is false (and a 400 written) when it is not a positive integer.
func countParam(w http.ResponseWriter, r *http.Request, def, max int) (int, bool) {
	s := r.URL.Query().Get("n")
	if s == "" {
		return def, true
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		httpError(w, http.StatusBadRequest, "n: want a positive number")
		return 0, false
	}
	return min(v, max), true
}

// handleRecent serves GET /recent?n=N: the newest N best-chain blocks,
// newest first, in jbc's JSON form (N defaults to defaultRecent and is
// capped at maxRecent).
func (n *Node) handleRecent(w http.ResponseWriter, r *http.Request) {
	count, ok := countParam(w, r, defaultRecent, maxRecent)
	if !ok {
		return
	}
	blocks, err := n.Recent(count)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, blocks)
}

// handlePending serves GET /pending?n=N: the oldest N pending entries,
// oldest first (N defaults to defaultPending and is capped at maxPending).
func (n *Node) handlePending(w http.ResponseWriter, r *http.Request) {
	count, ok := countParam(w, r, defaultPending, maxPending)
	if !ok {
		return
	}
	writeJSON(w, n.Pending(count))
}

// handleDashboard serves the dashboard page at GET /.
func handleDashboard(w http.ResponseWriter, r *http.Request) {
	serveWebFile(w, r, "index.html")
}

// handleWebFile serves the page's script and style at GET /web/{file}.
func handleWebFile(w http.ResponseWriter, r *http.Request) {
	serveWebFile(w, r, r.PathValue("file"))
}

// serveWebFile serves one embedded file, with its content type from its
// extension, the page's content security policy, and no caching (the
// files change with the binary, and an embedded file has no date).
func serveWebFile(w http.ResponseWriter, r *http.Request, name string) {
	if !fs.ValidPath(name) {
		http.NotFound(w, r)
		return
	}
	if fi, err := fs.Stat(webFiles, "web/"+name); err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	http.ServeFileFS(w, r, webFiles, "web/"+name)
}
