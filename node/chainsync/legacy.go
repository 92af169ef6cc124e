package chainsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// Legacy peers are nodes of the Python JackBlockChain. They speak HTTP, not
// libp2p: each serves its whole chain at GET /blockchain.json (a JSON list of
// blocks with string values; it has no way to ask for part of it) and takes
// blocks its peers mined at POST /mined. A jbc node follows the legacy peers
// it is given (node's Config.LegacyPeers, "jbc node --legacy-peer URL") by
// polling their /blockchain.json and adopting a valid chain with more work
// than its own (FollowLegacy), under the same rules and limits as any
// chain; Python nodes read jbc's own /blockchain.json in turn. So a Python
// network can move to jbc one node at a time.
//
// POST /mined is accepted too (the HTTP API serves it): a Python miner
// announces each block it finds there, and taking it saves a poll's wait.
// It costs nothing that gossip does not already cost: the block is
// validated like any other (its proof of work first), the body is bounded
// and the rate limited, and it never makes the node dial anything. It
// needs the HTTP API reachable by the Python nodes, which on the default
// loopback address means the same host.

// Limits of legacy peers.
const (
	// MaxLegacyChainBytes bounds one /blockchain.json. A block of the
	// original takes about 300 bytes of JSON, so this holds over three
	// million blocks: more than a Python node can serve (it reads every
	// block file on every request), while a peer that streams without end
	// is cut off.
	MaxLegacyChainBytes = 1 << 30
	// LegacyFetchTimeout bounds a whole fetch of a legacy peer's chain:
	// the limit above at a few MB/s, for a node that must read every block
	// file before it answers.
	LegacyFetchTimeout = 10 * time.Minute
	// legacyHeaderTimeout bounds the wait for the answer to start: the
	// original builds the whole list before it writes a byte.
	legacyHeaderTimeout = time.Minute
	// DefaultLegacyPollInterval is how often a node polls each legacy
	// peer. Each poll costs the Python node a read of its whole chain, so
	// it is not often; blocks a Python miner finds come sooner by POST
	// /mined.
	DefaultLegacyPollInterval = 30 * time.Second
	// legacyHoldBytes bounds the blocks of a legacy peer's branch held in
	// memory, validated, until it outweighs our chain; past it they are
	// stored as a side branch (as sync does, SyncHoldBytes).
	legacyHoldBytes = 64 << 20
)

// ErrLegacyRedirect: a legacy peer answered with a redirect. It is not
// followed: the node dials only the addresses it was given.
var ErrLegacyRedirect = errors.New("the legacy peer redirects elsewhere; jbc dials only the address it was given")

// LegacyChainURL returns the URL of a legacy peer's chain from what a user
// gave: an http:// URL of the node (http://HOST:PORT, to which
// /blockchain.json is added) or of its chain (any other path, kept as is).
// Other schemes (the original serves plain HTTP) and URLs with a user or
// fragment are errors.
func LegacyChainURL(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("%q is not a legacy peer's URL: want http://HOST:PORT (the Python node; /blockchain.json is added) or http://HOST:PORT/blockchain.json", s)
	}
	if u.Scheme != "http" {
		return "", fmt.Errorf("%q: want an http:// URL (the Python node serves plain HTTP), not %s://", s, u.Scheme)
	}
	if u.User != nil || u.Fragment != "" {
		return "", fmt.Errorf("%q: want http://HOST:PORT or http://HOST:PORT/blockchain.json, without a user or #fragment", s)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/blockchain.json"
	}
	return u.String(), nil
}

// legacyClient is the HTTP client for legacy peers: no proxy and no
// redirects, so that it connects to the address given and nothing else.
func legacyClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil,
			ResponseHeaderTimeout: legacyHeaderTimeout,
			IdleConnTimeout:       time.Minute,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return ErrLegacyRedirect },
	}
}

// FetchLegacyChain GETs the chain at chainURL (see LegacyChainURL) and calls
// fn with each block, genesis first, as it arrives (storage.ReadPythonList):
// at most MaxLegacyChainBytes are read, within ctx. It dials chainURL's host
// only, following no redirect and using no proxy.
func FetchLegacyChain(ctx context.Context, chainURL string, fn func(chain.Block) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, chainURL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := legacyClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", chainURL, resp.Status)
	}
	return storage.ReadPythonList(resp.Body, chainURL, 0, MaxLegacyChainBytes, fn)
}

// LegacyConfig is what FollowLegacy needs. All fields but Logger are
// required.
type LegacyConfig struct {
	// Store is the node's chain.
	Store *storage.Store
	// URLs are the legacy peers' chains (see LegacyChainURL).
	URLs []string
	// Interval is how often each is polled (DefaultLegacyPollInterval).
	Interval time.Duration
	// Add stores the blocks of a legacy peer's chain (the node's way of
	// storing blocks).
	Add func([]chain.Block) (storage.Result, error)
	// Logger receives the follower's logs.
	Logger *slog.Logger
}

// legacyFollower polls the legacy peers. It is used by one goroutine.
type legacyFollower struct {
	cfg  LegacyConfig
	urls []string
	// last is each peer's last outcome, logged only when it changes.
	last map[string]string
}

// FollowLegacy polls every legacy peer now and then every interval until
// ctx ends, adopting a valid chain with more work than ours.
func FollowLegacy(ctx context.Context, cfg LegacyConfig) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	f := &legacyFollower{cfg: cfg, urls: cfg.URLs, last: map[string]string{}}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		for _, u := range f.urls {
			if ctx.Err() != nil {
				return
			}
			f.report(u, f.poll(ctx, u))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// legacyOutcome is what one poll of a legacy peer did.
type legacyOutcome struct {
	added  int
	tip    chain.Entry
	theirs uint64 // their height
	best   bool   // their chain is (now) our best chain
	err    error
}

func (f *legacyFollower) report(u string, o legacyOutcome) {
	log := f.cfg.Logger.With("legacy_peer", u)
	if o.added > 0 {
		log.Info("legacy peer: adopted its chain", "added", o.added, "height", o.tip.Height, "tip", o.tip.Hash.Short())
	}
	// The outcome of each poll is logged when it changes; repeats go to
	// debug, so that a peer polled every half minute does not fill the log.
	var msg string
	switch {
	case o.err != nil:
		msg = o.err.Error()
	case o.added > 0:
		msg = "adopted"
	case o.best:
		msg = "legacy peer: in step with ours"
	default:
		msg = "legacy peer: its chain has no more work than ours"
	}
	changed := f.last[u] != msg
	f.last[u] = msg
	switch {
	case !changed || (o.err == nil && o.added > 0):
		log.Debug("legacy peer polled", "outcome", msg, "their_height", o.theirs)
	case o.err != nil:
		log.Warn("legacy peer", "err", o.err)
	default:
		log.Info(msg, "their_height", o.theirs)
	}
}

// poll fetches a legacy peer's chain and adopts it if it is valid and has
// more work than ours. Blocks we already store are skipped as they stream
// by; from the first we lack, each is validated against its parent and
// held until the branch outweighs our tip (then stored, and adopted, in one
// call) or passes legacyHoldBytes (then stored as a side branch, as sync
// does). An invalid block, a chain of another network or one that does not
// link ends the poll; what was stored stays (it was valid).
func (f *legacyFollower) poll(ctx context.Context, u string) (o legacyOutcome) {
	ctx, cancel := context.WithTimeout(ctx, LegacyFetchTimeout)
	defer cancel()
	st := f.cfg.Store
	var (
		v         *chain.Validator
		held      []chain.Block
		heldBytes int
	)
	store := func(force bool) error {
		if len(held) == 0 || (!force && v.Tip().Work.Cmp(st.Tip().Work) <= 0 && heldBytes <= legacyHoldBytes) {
			return nil
		}
		res, err := f.cfg.Add(held)
		o.added += res.Added
		held, heldBytes = nil, 0
		return err
	}
	err := FetchLegacyChain(ctx, u, func(b chain.Block) error {
		o.theirs = b.Index
		if b.Index == 0 && b.Hash != st.Params().Genesis.Hash {
			return fmt.Errorf("its chain is of another network: genesis %s, ours %s", b.Hash.Short(), st.Params().ID().Short())
		}
		if v == nil {
			if st.Has(b.Hash) {
				return nil
			}
			var err error
			if v, err = st.Validator(b.PrevHash); err != nil {
				return fmt.Errorf("block %d: parent %s: %w", b.Index, b.PrevHash.Short(), err)
			}
		}
		if _, err := v.Next(&b, st.Now().Unix()); err != nil {
			return fmt.Errorf("block %d (%s): %w", b.Index, b.Hash.Short(), err)
		}
		held = append(held, b)
		heldBytes += len(b.Data) + HeldBlockOverhead
		if heldBytes > legacyHoldBytes {
			return store(true)
		}
		return nil
	})
	// A valid prefix with more work is adopted even if what follows it
	// was bad.
	if serr := store(false); err == nil {
		err = serr
	}
	o.err = err
	o.tip = st.Tip()
	if err == nil && o.added == 0 {
		// Nothing new: in step if their tip is ours.
		o.best = o.theirs == o.tip.Height && (v == nil)
	}
	return o
}
