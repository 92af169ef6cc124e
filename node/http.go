package node

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/chainsync"
	"github.com/jbc-project/jbc/node/gossip"
	"github.com/jbc-project/jbc/node/peering"
	"github.com/jbc-project/jbc/storage"
)

// DefaultHTTPAddr is where the HTTP API listens by default: loopback only,
// since it is for the node's operator, not for the network.
const DefaultHTTPAddr = "127.0.0.1:8080"

// HTTP server limits: generous for an operator's tools, tight enough that a
// stuck client cannot hold a connection forever. Streams of the whole
// chain get no write timeout.
const (
	httpReadHeaderTimeout = 5 * time.Second
	// httpReadTimeout bounds reading one whole request, headers and body.
	// A POST /data body is at most the network's data limit plus 1 KiB (65
	// KiB by default): 8 s at 64 kbit/s, a fraction of a second on any real
	// link to an API meant for loopback. A client trickling its body is
	// answered 408 and cut when it passes, instead of holding its
	// connection and read buffer for as long as it likes. Responses are
	// not bounded: streaming the whole chain may take minutes.
	httpReadTimeout = 10 * time.Second
	// httpMaxConns bounds the API's open connections. An operator's tools
	// and a dashboard use a handful; past the bound, new connections wait
	// in the kernel's accept queue until one closes, so that slow or idle
	// clients, however many, hold at most this many connections' buffers
	// (a few tens of KiB each) and goroutines.
	httpMaxConns    = 128
	httpIdleTimeout = time.Minute
	// submitRate and submitBurst limit POST /data over all clients: far
	// above what people type, low enough that a script gone wrong cannot
	// fill the pool (gossip.MaxPoolEntries) in under a minute, and well inside
	// what each peer accepts by gossip from us (gossip.DataRate).
	submitRate  = 50
	submitBurst = 250
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

// Status returns what GET /status serves.
func (n *Node) Status() StatusJSON {
	tip := n.store.Tip()
	prog := n.sync.Progress()
	addrs := []string{}
	for _, a := range n.Addrs() {
		addrs = append(addrs, a.String())
	}
	return StatusJSON{
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
	}
}

// Peers returns what GET /peers serves: the known peers, then the banned
// ones, each sorted by ID.
func (n *Node) Peers() []PeerJSON {
	out := []PeerJSON{}
	for _, pi := range n.peers.List() {
		if n.peers.IsBanned(pi.ID) {
			continue // banned while a status was on its way: listed below
		}
		pj := peerJSON(pi)
		pj.Connected = n.host.Network().Connectedness(pi.ID) == network.Connected
		out = append(out, pj)
	}
	for _, bp := range n.peers.Bans() {
		pj := peerJSON(bp.PeerInfo)
		ban := bp.Ban
		pj.Ban = &ban
		out = append(out, pj)
	}
	return out
}

func peerJSON(pi peering.PeerInfo) PeerJSON {
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

func (n *Node) startHTTP() error {
	ln, err := net.Listen("tcp", n.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("node: http api: %w", err)
	}
	n.httpLn = ln
	n.http = &http.Server{Handler: n.Handler(), ReadHeaderTimeout: httpReadHeaderTimeout, ReadTimeout: httpReadTimeout,
		IdleTimeout: httpIdleTimeout}
	ln = netutil.LimitListener(ln, httpMaxConns)
	go func() {
		if err := n.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("http api stopped", "err", err)
		}
	}()
	n.log.Info("http api listening", "addr", ln.Addr().String())
	return nil
}

// Handler returns the HTTP API.
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, n.Status()) })
	mux.HandleFunc("GET /peers", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, n.Peers()) })
	mux.HandleFunc("GET /blocks/{id}", n.handleBlock)
	mux.HandleFunc("GET /blockchain.json", n.handleBlockchain)
	mux.HandleFunc("POST /mined", n.handleMined) // legacy.go
	mux.HandleFunc("GET /chain", n.handleChain)  // chainapi.go
	mux.HandleFunc("POST /data", n.handleSubmit)
	mux.HandleFunc("GET /data/{id}", n.handleEntry)
	mux.HandleFunc("POST /mining", n.handleMining)
	mux.HandleFunc("GET /doctor", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, n.Doctor(r.Context())) })
	// The dashboard (dashboard.go): the page, its files, and the lists
	// it polls besides /status and /peers.
	mux.HandleFunc("GET /{$}", n.handleDashboard)
	mux.HandleFunc("GET /web/{file}", handleWebFile)
	mux.HandleFunc("GET /recent", n.handleRecent)
	mux.HandleFunc("GET /pending", n.handlePending)
	mux.HandleFunc("GET /history", n.handleHistory)
	// jbc's own metrics, and go-libp2p's (resource manager, swarm,
	// identify), which it registers with the default registry.
	mux.Handle("GET /metrics", promhttp.HandlerFor(prometheus.Gatherers{n.metrics.reg, prometheus.DefaultGatherer}, promhttp.HandlerOpts{}))
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	writeJSONBody(w, v)
}

func writeJSONBody(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// handleBlock serves one block by height (decimal) or hash (64 hex digits).
func (n *Node) handleBlock(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var (
		b   *chain.Block
		err error
	)
	if len(id) == 2*chain.HashSize {
		h, perr := chain.ParseHash(id)
		if perr != nil {
			httpError(w, http.StatusBadRequest, perr.Error())
			return
		}
		b, err = n.store.Block(h)
	} else {
		height, perr := strconv.ParseUint(id, 10, 64)
		if perr != nil {
			httpError(w, http.StatusBadRequest, "want a height or a 64-digit hash")
			return
		}
		b, err = n.store.BlockAt(height)
	}
	if errors.Is(err, storage.ErrNotFound) {
		httpError(w, http.StatusNotFound, "no such block")
		return
	}
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, b)
}

// handleBlockchain streams the best chain as the Python original served it:
// a JSON list of blocks with string values. ?from=H&to=H pages it.
func (n *Node) handleBlockchain(w http.ResponseWriter, r *http.Request) {
	from, to := uint64(0), n.store.Tip().Height
	var err error
	if s := r.URL.Query().Get("from"); s != "" {
		if from, err = strconv.ParseUint(s, 10, 64); err != nil {
			httpError(w, http.StatusBadRequest, "from: not a height")
			return
		}
	}
	if s := r.URL.Query().Get("to"); s != "" {
		if to, err = strconv.ParseUint(s, 10, 64); err != nil {
			httpError(w, http.StatusBadRequest, "to: not a height")
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteByte('[')
	first := true
	err = n.store.ForEach(from, to, func(b *chain.Block) error {
		if !first {
			bw.WriteByte(',')
		}
		first = false
		js, err := b.MarshalPython()
		if err != nil {
			return err
		}
		_, err = bw.Write(js)
		return err
	})
	if err != nil {
		// Headers are gone; a truncated body is the only signal left.
		n.log.Warn("blockchain.json stream", "err", err)
		return
	}
	bw.WriteString("]\n")
	bw.Flush()
}

// Entry returns what GET /data/{id} serves.
func (n *Node) Entry(id chain.Hash) (EntryJSON, error) {
	out := EntryJSON{ID: id.String(), Status: "unknown"}
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

// handleSubmit takes a data entry: the request body, as plain text, or a
// JSON object {"data": "..."} when the content type is application/json.
func (n *Node) handleSubmit(w http.ResponseWriter, r *http.Request) {
	if !n.submitLimit.Allow() {
		httpError(w, http.StatusTooManyRequests, "too many submissions; retry later")
		return
	}
	limit := int64(n.store.Params().MaxDataSize) + 1024
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", limit))
		return
	case err != nil:
		// Most likely httpReadTimeout passed: the connection is closed
		// after this answer, if it gets through.
		httpError(w, http.StatusRequestTimeout, "reading the body: "+err.Error())
		return
	}
	text, err := submittedEntry(body, r.Header.Get("Content-Type"))
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	id, err := n.Submit(r.Context(), text)
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
	e, err := n.Entry(id)
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

func (n *Node) handleEntry(w http.ResponseWriter, r *http.Request) {
	id, err := chain.ParseHash(r.PathValue("id"))
	if err != nil || id.IsZero() {
		httpError(w, http.StatusBadRequest, "want a 64-digit entry id")
		return
	}
	e, err := n.Entry(id)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if e.Status == "unknown" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		writeJSONBody(w, e)
		return
	}
	writeJSON(w, e)
}

// handleMining turns the miner on or off: POST /mining?on=true|false.
func (n *Node) handleMining(w http.ResponseWriter, r *http.Request) {
	on, err := strconv.ParseBool(r.URL.Query().Get("on"))
	if err != nil {
		httpError(w, http.StatusBadRequest, "want ?on=true or ?on=false")
		return
	}
	n.SetMining(on)
	writeJSON(w, map[string]bool{"mining": n.Mining()})
}
