package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
	"golang.org/x/time/rate"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/discovery"
	"github.com/jbc-project/jbc/storage"
)

// DefaultHTTPAddr is where the HTTP API listens by default: loopback only,
// since it is for the node's operator, not for the network.
const DefaultHTTPAddr = "127.0.0.1:8080"

// HTTP server limits: generous for an operator's tools, tight enough that a
// stuck client cannot hold a connection forever. Streams of the whole
// chain get no write timeout.
const (
	readHeaderTimeout = 5 * time.Second
	// ReadTimeout bounds reading one whole request, headers and body.
	// A POST /data body is at most the network's data limit plus 1 KiB (65
	// KiB by default): 8 s at 64 kbit/s, a fraction of a second on any real
	// link to an API meant for loopback. A client trickling its body is
	// answered 408 and cut when it passes, instead of holding its
	// connection and read buffer for as long as it likes. Responses are
	// not bounded: streaming the whole chain may take minutes.
	ReadTimeout = 10 * time.Second
	// MaxConns bounds the API's open connections. An operator's tools
	// and a dashboard use a handful; past the bound, new connections wait
	// in the kernel's accept queue until one closes, so that slow or idle
	// clients, however many, hold at most this many connections' buffers
	// (a few tens of KiB each) and goroutines.
	MaxConns    = 128
	idleTimeout = time.Minute
	// SubmitRate and SubmitBurst limit POST /data over all clients: far
	// above what people type, low enough that a script gone wrong cannot
	// fill the pool (gossip.MaxPoolEntries) in under a minute, and well
	// inside what each peer accepts by gossip from us (gossip.DataRate).
	SubmitRate  = 50
	SubmitBurst = 250
)

// Backend is what the API serves: the running node. Its methods are
// called concurrently.
type Backend interface {
	// Status is GET /status.
	Status() StatusJSON
	// Peers is GET /peers.
	Peers() []PeerJSON
	// Pending returns up to max pending entries, in the order they are
	// mined (0: all).
	Pending(max int) []string
	// Submit hands an entry to the node (POST /data).
	Submit(ctx context.Context, text string) (chain.Hash, error)
	// Entry is GET /data/{id}.
	Entry(id chain.Hash) (EntryJSON, error)
	// SetMining and Mining turn the miner on or off and tell whether it
	// runs (POST /mining).
	SetMining(on bool)
	Mining() bool
	// Doctor is GET /doctor.
	Doctor(ctx context.Context) discovery.Report
	// AddMined stores a block a Python miner sent (POST /mined).
	AddMined(b chain.Block) error
}

// Config is what the API needs. All fields but Logger are required.
type Config struct {
	Backend Backend
	// Store is the node's chain: blocks and the chain's summary are read
	// from it directly.
	Store *storage.Store
	// Metrics are the node's own metrics, served at GET /metrics with
	// go-libp2p's.
	Metrics prometheus.Gatherer
	// Logger receives the API's logs.
	Logger *slog.Logger
}

// API is the node's HTTP API: it holds the rate limits of POST /data and
// POST /mined, which every Handler shares. It is safe for concurrent use.
type API struct {
	b       Backend
	store   *storage.Store
	metrics prometheus.Gatherer
	log     *slog.Logger
	// submitLimit rate-limits POST /data.
	submitLimit *rate.Limiter
	// minedLimit rate-limits POST /mined (mined.go).
	minedLimit *rate.Limiter
}

// New returns the API of a node.
func New(cfg Config) *API {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &API{b: cfg.Backend, store: cfg.Store, metrics: cfg.Metrics, log: cfg.Logger,
		submitLimit: rate.NewLimiter(SubmitRate, SubmitBurst),
		minedLimit:  rate.NewLimiter(minedRate, minedBurst)}
}

// SetSubmitLimit replaces the rate limit of POST /data (SubmitRate,
// SubmitBurst): tests use a small one. Set it before serving.
func (a *API) SetSubmitLimit(l *rate.Limiter) { a.submitLimit = l }

// Handler returns the HTTP API.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, a.b.Status()) })
	mux.HandleFunc("GET /peers", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, a.b.Peers()) })
	mux.HandleFunc("GET /blocks/{id}", a.handleBlock)
	mux.HandleFunc("GET /blockchain.json", a.handleBlockchain)
	mux.HandleFunc("POST /mined", a.handleMined) // mined.go
	mux.HandleFunc("GET /chain", a.handleChain)  // chain.go
	mux.HandleFunc("POST /data", a.handleSubmit) // submit.go
	mux.HandleFunc("GET /data/{id}", a.handleEntry)
	mux.HandleFunc("POST /mining", a.handleMining)
	mux.HandleFunc("GET /doctor", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, a.b.Doctor(r.Context())) })
	// The dashboard (dashboard.go): the page, its files, and the lists
	// it polls besides /status and /peers.
	mux.HandleFunc("GET /{$}", a.handleDashboard)
	mux.HandleFunc("GET /web/{file}", handleWebFile)
	mux.HandleFunc("GET /recent", a.handleRecent)
	mux.HandleFunc("GET /pending", a.handlePending)
	mux.HandleFunc("GET /history", a.handleHistory)
	// jbc's own metrics, and go-libp2p's (resource manager, swarm,
	// identify), which it registers with the default registry.
	mux.Handle("GET /metrics", promhttp.HandlerFor(prometheus.Gatherers{a.metrics, prometheus.DefaultGatherer}, promhttp.HandlerOpts{}))
	return mux
}

// Server is the API's HTTP server.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Listen listens on addr and serves h there, in the background, under the
// server limits above, until Shutdown. A failure to serve later is logged.
func Listen(addr string, h http.Handler, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("node: http api: %w", err)
	}
	s := &Server{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: ReadTimeout,
		IdleTimeout: idleTimeout}}
	ln = netutil.LimitListener(ln, MaxConns)
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http api stopped", "err", err)
		}
	}()
	log.Info("http api listening", "addr", ln.Addr().String())
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops the server, waiting for the requests under way until ctx
// is done.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

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
func (a *API) handleBlock(w http.ResponseWriter, r *http.Request) {
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
		b, err = a.store.Block(h)
	} else {
		height, perr := strconv.ParseUint(id, 10, 64)
		if perr != nil {
			httpError(w, http.StatusBadRequest, "want a height or a 64-digit hash")
			return
		}
		b, err = a.store.BlockAt(height)
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
func (a *API) handleBlockchain(w http.ResponseWriter, r *http.Request) {
	from, to := uint64(0), a.store.Tip().Height
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
	err = a.store.ForEach(from, to, func(b *chain.Block) error {
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
		a.log.Warn("blockchain.json stream", "err", err)
		return
	}
	bw.WriteString("]\n")
	bw.Flush()
}

func (a *API) handleEntry(w http.ResponseWriter, r *http.Request) {
	id, err := chain.ParseHash(r.PathValue("id"))
	if err != nil || id.IsZero() {
		httpError(w, http.StatusBadRequest, "want a 64-digit entry id")
		return
	}
	e, err := a.b.Entry(id)
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
func (a *API) handleMining(w http.ResponseWriter, r *http.Request) {
	on, err := strconv.ParseBool(r.URL.Query().Get("on"))
	if err != nil {
		httpError(w, http.StatusBadRequest, "want ?on=true or ?on=false")
		return
	}
	a.b.SetMining(on)
	writeJSON(w, map[string]bool{"mining": a.b.Mining()})
}
