package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jbc-project/jbc/chain"
	nodeapi "github.com/jbc-project/jbc/node/api"
	"github.com/jbc-project/jbc/storage"
)

// A running node holds its chain file's lock, so that the commands that
// only read (chain, blocks, export, verify) cannot open it. They ask the
// node instead, through its HTTP API: "jbc node" writes where its API
// listens into the data directory (apiFileName) while it runs.

// apiFileName is the file in the data directory where a running node says
// where its HTTP API listens.
const apiFileName = "api.json"

// apiInfo is the content of apiFileName.
type apiInfo struct {
	// API is the base URL of the node's HTTP API.
	API string `json:"api"`
	// PeerID tells the node apart from another that took the address
	// after it.
	PeerID string `json:"peer_id"`
}

// runningTimeout bounds the requests a node answers from memory, and the
// wait for a stream of its chain to start; the stream itself has no bound
// (a chain of millions of blocks takes a while).
const runningTimeout = 10 * time.Second

// writeAPIFile writes where the node's API listens (addr, as
// node.HTTPAddr gives it) into the data directory, and returns a function
// that removes the file if it is still this node's.
func writeAPIFile(dataDir, addr, peerID string) (func(), error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	// A node listening on every interface is reached on loopback.
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	info := apiInfo{API: "http://" + net.JoinHostPort(host, port), PeerID: peerID}
	data, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dataDir, apiFileName)
	if err := writeFileAtomic(path, append(data, '\n')); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return func() {
		if cur, err := os.ReadFile(path); err == nil && string(cur) == string(data)+"\n" {
			os.Remove(path)
		}
	}, nil
}

// nodeAPI is a running node's HTTP API, for the commands that read.
type nodeAPI struct {
	base   string
	client *http.Client
}

// runningNode is called when the chain file is in use (inUse wraps
// storage.ErrInUse): it finds the node that holds it from apiFileName and
// checks that it answers as that node. Its errors say what to run instead.
func (a *app) runningNode(inUse error) (*nodeAPI, error) {
	path := filepath.Join(a.dataDir, apiFileName)
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf(`%w. No running node's API address is in %s: if a jbc node runs on this data directory with its API off (--http ""), stop it and run this command again, or restart it with --http`, inUse, path)
	}
	var info apiInfo
	if err := json.Unmarshal(raw, &info); err != nil || info.API == "" {
		return nil, fmt.Errorf("%w, and %s is not what a node writes: %v", inUse, path, err)
	}
	c := &nodeAPI{base: info.API, client: &http.Client{Transport: &http.Transport{Proxy: nil, ResponseHeaderTimeout: runningTimeout}}}
	var st nodeapi.StatusJSON
	if err := c.getJSON("/status", &st); err != nil {
		return nil, fmt.Errorf("%w; the node that wrote %s does not answer at %s (%v): stop the process holding the chain file, or start jbc node again", inUse, path, info.API, err)
	}
	if st.PeerID != info.PeerID {
		return nil, fmt.Errorf("%w; %s names %s, but another node (%s) answers there", inUse, path, info.API, st.PeerID)
	}
	a.log.Info("the chain file is in use by a running node: reading through its API", "datadir", a.dataDir, "api", info.API)
	return c, nil
}

// getJSON GETs path and decodes the JSON answer into v.
func (c *nodeAPI) getJSON(path string, v any) error {
	req, err := http.NewRequest(http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	client := *c.client
	client.Timeout = runningTimeout
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.Unmarshal(body, v)
}

// chain returns the node's network and best chain summary.
func (c *nodeAPI) chain() (nodeapi.ChainJSON, error) {
	var cj nodeapi.ChainJSON
	if err := c.getJSON("/chain", &cj); err != nil {
		return cj, fmt.Errorf("the running node at %s: %w", c.base, err)
	}
	if cj.Params == nil {
		return cj, fmt.Errorf("the running node at %s sent no network parameters", c.base)
	}
	return cj, nil
}

// blocks streams the best chain's blocks at heights from..to (to clipped to
// the tip) from one snapshot of the node's chain, calling fn with each.
func (c *nodeAPI) blocks(from, to uint64, fn func(*chain.Block) error) error {
	q := "/blockchain.json?from=" + strconv.FormatUint(from, 10)
	if to != ^uint64(0) {
		q += "&to=" + strconv.FormatUint(to, 10)
	}
	resp, err := c.client.Get(c.base + q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", q, resp.Status)
	}
	// The node is the user's own: its chain is read whatever its size.
	err = storage.ReadPythonList(resp.Body, c.base+q, from, 1<<62, func(b chain.Block) error { return fn(&b) })
	if errors.Is(err, storage.ErrNoBlocks) {
		return nil // an empty range
	}
	return err
}

// chainReader is what the commands that only read need of a chain: a store
// they opened, or a running node's API when the node holds the store.
type chainReader interface {
	params() *chain.Params
	summary() (chainSummary, error)
	// forEach calls fn with the best chain's blocks at heights from..to
	// (clipped to the tip), in order, from one snapshot.
	forEach(from, to uint64, fn func(*chain.Block) error) error
	close()
}

type storeReader struct{ s *storage.Store }

func (r storeReader) params() *chain.Params          { return r.s.Params() }
func (r storeReader) summary() (chainSummary, error) { return summarize(r.s) }
func (r storeReader) close()                         { r.s.Close() }
func (r storeReader) forEach(from, to uint64, fn func(*chain.Block) error) error {
	return r.s.ForEach(from, to, fn)
}

type apiReader struct {
	api *nodeAPI
	cj  nodeapi.ChainJSON
}

func (r apiReader) params() *chain.Params { return r.cj.Params }
func (r apiReader) summary() (chainSummary, error) {
	return chainSummary{Network: r.cj.Params.ID().String(), Height: r.cj.Height, Tip: r.cj.Tip, TotalWork: r.cj.TotalWork, Blocks: r.cj.Blocks}, nil
}
func (r apiReader) close() {}
func (r apiReader) forEach(from, to uint64, fn func(*chain.Block) error) error {
	return r.api.blocks(from, to, fn)
}

// openReader opens the data directory's chain to read it: the store, or,
// when a running node holds it, that node's API. It never makes a chain.
func (a *app) openReader() (chainReader, error) {
	s, err := a.openStore(false)
	if err == nil {
		return storeReader{s}, nil
	}
	if !errors.Is(err, storage.ErrInUse) {
		return nil, err
	}
	api, err := a.runningNode(err)
	if err != nil {
		return nil, err
	}
	cj, err := api.chain()
	if err != nil {
		return nil, err
	}
	return apiReader{api, cj}, nil
}
