package api

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"slices"
	"strconv"

	"github.com/jbc-project/jbc/chain"
)

// The dashboard is a single page, plain HTML, CSS and JavaScript embedded
// in the binary, served at / of the HTTP API. It has no build step and
// loads nothing from elsewhere: the page comes with the node's state
// embedded (FirstState), which the script renders before the first frame,
// and then polls the API's own JSON endpoints (/status, /peers, /recent,
// /pending, /history) and renders them; its plots are inline SVG.
//
//go:embed web/index.html web/style.css web/app.js
var webFiles embed.FS

// dashboardPage is web/index.html, a template of one value: the
// FirstState, which html/template writes as JSON escaped for the page.
var dashboardPage = template.Must(template.ParseFS(webFiles, "web/index.html"))

// FirstState is the node's state as the dashboard page carries it: what
// GET /status, /peers, /recent, /pending and /history answer, with their
// default counts.
type FirstState struct {
	Status  StatusJSON    `json:"status"`
	Peers   []PeerJSON    `json:"peers"`
	Recent  []chain.Block `json:"recent"`
	Pending []PendingJSON `json:"pending"`
	History HistoryJSON   `json:"history"`
}

// FirstState returns the state GET / embeds in the dashboard page.
func (a *API) FirstState() (FirstState, error) {
	st := FirstState{Status: a.b.Status(), Peers: a.b.Peers(), Pending: a.Pending(DefaultPending)}
	var err error
	if st.Recent, err = a.Recent(DefaultRecent); err != nil {
		return st, err
	}
	if st.History, err = a.History(DefaultHistory); err != nil {
		return st, err
	}
	return st, nil
}

// Limits of the dashboard's JSON endpoints: the page shows a screenful,
// and it polls every second or two, so every answer stays small.
const (
	// DefaultRecent and MaxRecent: blocks GET /recent returns by default
	// and at most. Blocks carry up to MaxDataSize bytes of data each, so
	// the cap bounds an answer to a few MiB.
	DefaultRecent = 10
	MaxRecent     = 100
	// DefaultPending and MaxPending: entries GET /pending returns by
	// default and at most; the pool holds up to gossip.MaxPoolEntries and its
	// size is in GET /status.
	DefaultPending = 20
	MaxPending     = 100
	// DefaultHistory and MaxHistory: blocks GET /history returns by
	// default and at most. An element is a few dozen bytes read from
	// the block index alone, never block data; a hundred blocks make a
	// plot readable at a glance.
	DefaultHistory = 100
	MaxHistory     = 1000
	// hashRateBlocks is how many blocks the history's hash rate is
	// estimated over: one block's time is a random draw (exponential,
	// and timestamps are whole seconds), ten smooth it while a change of
	// miners still shows within ten blocks.
	hashRateBlocks = 10
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
func (a *API) Recent(count int) ([]chain.Block, error) {
	out := []chain.Block{}
	if count <= 0 {
		return out, nil
	}
	tip := a.store.Tip().Height
	from := uint64(0)
	if tip >= uint64(count) {
		from = tip - uint64(count) + 1
	}
	err := a.store.ForEach(from, tip, func(b *chain.Block) error {
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

// HistoryJSON is the body of GET /history: the recent best chain, as the
// dashboard plots it.
type HistoryJSON struct {
	// Spacing is the network's target time between blocks in seconds; 0
	// when its difficulty is fixed.
	Spacing float64 `json:"spacing_s"`
	// Blocks are the newest blocks after the genesis, oldest first.
	Blocks []HistoryBlock `json:"blocks"`
}

// HistoryBlock is one block of GET /history.
type HistoryBlock struct {
	Height uint64 `json:"height"`
	// Time is the block's timestamp (Unix seconds).
	Time int64 `json:"time"`
	// Bits is the difficulty the block met: leading zero bits, so it
	// took 2^Bits hashes on average.
	Bits uint8 `json:"bits"`
	// Interval is the seconds since the parent's timestamp. It can be 0
	// or negative: a timestamp need only pass the median of the blocks
	// before it.
	Interval int64 `json:"interval_s"`
	// HashRate estimates the hashes per second of all the network's
	// miners from the chain alone: the expected hashes of the last
	// hashRateBlocks blocks up to this one over the time since the block
	// before them (fewer blocks near the genesis, whose timestamp is when
	// the network was made, not when mining began). Null when that time
	// is not positive, as for block 1.
	HashRate *float64 `json:"hash_rate"`
}

// History returns the newest count blocks of the best chain after the
// genesis, oldest first, as GET /history serves them. It reads the block
// index only, walking back from the tip by parent hash, so a reorg
// meanwhile cannot mix two branches.
func (a *API) History(count int) (HistoryJSON, error) {
	p := a.store.Params()
	out := HistoryJSON{Spacing: p.Spacing.Seconds(), Blocks: []HistoryBlock{}}
	if count <= 0 {
		return out, nil
	}
	// Entries newest first: the count wanted and the hashRateBlocks
	// before them (parents for the intervals, windows for the rates).
	e := a.store.Tip()
	entries := []chain.Entry{e}
	for len(entries) < count+hashRateBlocks && e.Height > 0 {
		var err error
		if e, err = a.store.Entry(e.Parent); err != nil {
			return out, err
		}
		entries = append(entries, e)
	}
	slices.Reverse(entries)
	for i := 1; i < len(entries); i++ {
		if len(entries)-i > count {
			continue
		}
		b := HistoryBlock{Height: entries[i].Height, Time: entries[i].Time, Bits: entries[i].Bits,
			Interval: entries[i].Time - entries[i-1].Time}
		// The genesis's timestamp is when the network was made, not when
		// mining began: no window starts there.
		first := max(0, i-hashRateBlocks)
		if entries[first].Height == 0 {
			first++
		}
		if took := entries[i].Time - entries[first].Time; took > 0 {
			hashes := 0.0
			for _, w := range entries[first+1 : i+1] {
				hashes += math.Ldexp(1, int(w.Bits))
			}
			rate := hashes / float64(took)
			b.HashRate = &rate
		}
		out.Blocks = append(out.Blocks, b)
	}
	return out, nil
}

// Pending returns up to max entries of the data pool, oldest first, as
// GET /pending serves them.
func (a *API) Pending(max int) []PendingJSON {
	out := []PendingJSON{}
	if max <= 0 {
		return out
	}
	for _, text := range a.b.Pending(max) {
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
// newest first, in jbc's JSON form (N defaults to DefaultRecent and is
// capped at MaxRecent).
func (a *API) handleRecent(w http.ResponseWriter, r *http.Request) {
	count, ok := countParam(w, r, DefaultRecent, MaxRecent)
	if !ok {
		return
	}
	blocks, err := a.Recent(count)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, blocks)
}

// handleHistory serves GET /history?n=N: the newest N blocks after the
// genesis, oldest first, with their difficulty, interval and the hash
// rate they show (N defaults to DefaultHistory and is capped at
// MaxHistory).
func (a *API) handleHistory(w http.ResponseWriter, r *http.Request) {
	count, ok := countParam(w, r, DefaultHistory, MaxHistory)
	if !ok {
		return
	}
	h, err := a.History(count)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, h)
}

// handlePending serves GET /pending?n=N: the oldest N pending entries,
// oldest first (N defaults to DefaultPending and is capped at MaxPending).
func (a *API) handlePending(w http.ResponseWriter, r *http.Request) {
	count, ok := countParam(w, r, DefaultPending, MaxPending)
	if !ok {
		return
	}
	writeJSON(w, a.Pending(count))
}

// handleDashboard serves the dashboard page at GET /, with the node's
// state in it.
func (a *API) handleDashboard(w http.ResponseWriter, r *http.Request) {
	st, err := a.FirstState()
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	var page bytes.Buffer
	if err := dashboardPage.Execute(&page, st); err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	setWebHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(page.Bytes())
}

// handleWebFile serves the page's script and style at GET /web/{file}.
func handleWebFile(w http.ResponseWriter, r *http.Request) {
	serveWebFile(w, r, r.PathValue("file"))
}

// serveWebFile serves the page's script or style, with its content type
// from its extension, the page's content security policy, and no caching
// (the files change with the binary, and an embedded file has no date).
func serveWebFile(w http.ResponseWriter, r *http.Request, name string) {
	// The page is a template: it is served at / only, filled in.
	if !fs.ValidPath(name) || name == "index.html" {
		http.NotFound(w, r)
		return
	}
	if fi, err := fs.Stat(webFiles, "web/"+name); err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	setWebHeaders(w.Header())
	http.ServeFileFS(w, r, webFiles, "web/"+name)
}

// setWebHeaders sets the headers of the dashboard's page and files.
func setWebHeaders(h http.Header) {
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}
