package node

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/storage"
)

// pythonList encodes blocks as a Python node's GET /blockchain.json:
// json.dumps of the list of block dicts, every value a string.
func pythonList(t testing.TB, blocks []chain.Block) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i := range blocks {
		if i > 0 {
			buf.WriteString(", ")
		}
		js, err := storage.EncodePythonFile(&blocks[i])
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(js)
	}
	buf.WriteByte(']')
	return buf.Bytes()
}

// bestChain returns a store's best chain.
func bestChain(t testing.TB, s *storage.Store) []chain.Block {
	t.Helper()
	var out []chain.Block
	if err := s.ForEach(0, s.Tip().Height, func(b *chain.Block) error { out = append(out, *b); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// legacyServer is a Python node serving whatever chain serve holds.
type legacyServer struct {
	*httptest.Server
	chain atomic.Pointer[[]byte]
	gets  atomic.Int32
}

func newLegacyServer(t testing.TB, blocks []chain.Block) *legacyServer {
	t.Helper()
	ls := &legacyServer{}
	ls.set(t, blocks)
	ls.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/blockchain.json" {
			http.NotFound(w, r)
			return
		}
		ls.gets.Add(1)
		w.Write(*ls.chain.Load())
	}))
	t.Cleanup(ls.Close)
	return ls
}

func (ls *legacyServer) set(t testing.TB, blocks []chain.Block) {
	b := pythonList(t, blocks)
	ls.chain.Store(&b)
}

// legacyNode starts a node on s following the legacy peers, polling every
// 20 ms.
func legacyNode(t testing.TB, s *storage.Store, peers ...string) *Node {
	t.Helper()
	h, err := mocknet.New().GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	return startNodeWith(t, Config{Store: s, Host: h, LegacyPeers: peers, LegacyPollInterval: 20 * time.Millisecond})
}

// TestLegacyPeerAdoptsHeavierChain: a node following a Python node adopts
// its chain when it has more work, block by block as it grows, and not
// when it has less.
func TestLegacyPeerAdoptsHeavierChain(t *testing.T) {
	py := nodetest.NewStore(t, chain.TestNet())
	nodetest.Extend(t, py, 0, 10, "python")
	ls := newLegacyServer(t, bestChain(t, py))

	s := nodetest.NewStore(t, chain.TestNet())
	legacyNode(t, s, ls.URL) // http://HOST:PORT: /blockchain.json is added
	nodetest.WaitFor(t, 10*time.Second, "the Python chain adopted", func() bool { return s.Tip().Hash == py.Tip().Hash })

	// The Python chain grows: the new blocks follow.
	nodetest.Extend(t, py, 10, 3, "python")
	ls.set(t, bestChain(t, py))
	nodetest.WaitFor(t, 10*time.Second, "the new Python blocks adopted", func() bool { return s.Tip().Hash == py.Tip().Hash })

	// Our chain outgrows theirs on another branch: theirs is no longer
	// taken, and its new blocks are not even stored.
	ours := nodetest.Extend(t, s, 5, 20, "jbc")
	rival := nodetest.Extend(t, py, 13, 2, "python")
	ls.set(t, bestChain(t, py))
	before := ls.gets.Load()
	nodetest.WaitFor(t, 10*time.Second, "two more polls", func() bool { return ls.gets.Load() >= before+2 })
	if s.Tip().Hash != ours[len(ours)-1].Hash {
		t.Fatalf("tip %s, want ours %s", s.Tip().Hash.Short(), ours[len(ours)-1].Hash.Short())
	}
	for _, b := range rival {
		if s.Has(b.Hash) {
			t.Fatalf("the lighter Python branch's block %d was stored", b.Index)
		}
	}
}

// TestLegacyPeerInvalidChain: an invalid block ends what is taken from a
// Python node at the block before it; a chain of another network, or a
// redirect, is refused whole and nothing is stored.
func TestLegacyPeerInvalidChain(t *testing.T) {
	py := nodetest.NewStore(t, chain.TestNet())
	blocks := nodetest.Extend(t, py, 0, 8, "python")
	all := bestChain(t, py)
	forged := append([]chain.Block(nil), all...)
	forged[5].Data = "forged" // block 5's hash no longer matches
	ls := newLegacyServer(t, forged)

	s := nodetest.NewStore(t, chain.TestNet())
	legacyNode(t, s, ls.URL+"/blockchain.json")
	nodetest.WaitFor(t, 10*time.Second, "the valid prefix adopted", func() bool { return s.Tip().Height == 4 })
	before := ls.gets.Load()
	nodetest.WaitFor(t, 10*time.Second, "two more polls", func() bool { return ls.gets.Load() >= before+2 })
	if s.Tip().Hash != blocks[3].Hash || s.Has(blocks[5].Hash) || s.Has(forged[5].Hash) {
		t.Fatalf("tip %d %s after a forged block 5", s.Tip().Height, s.Tip().Hash.Short())
	}

	// Another network.
	other, err := chain.NewParams("other", "another genesis", 1500000000, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	op := nodetest.NewStore(t, other)
	nodetest.Extend(t, op, 0, 5, "other")
	lo := newLegacyServer(t, bestChain(t, op))
	s2 := nodetest.NewStore(t, chain.TestNet())
	legacyNode(t, s2, lo.URL)
	nodetest.WaitFor(t, 10*time.Second, "two polls", func() bool { return lo.gets.Load() >= 2 })
	if n, _ := s2.Count(); n != 1 {
		t.Fatalf("a chain of another network left %d blocks", n)
	}

	// A redirect is not followed: the node dials only what it was given.
	var elsewhere atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer target.Close()
	var redirects atomic.Int32
	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirects.Add(1)
		http.Redirect(w, r, target.URL+"/blockchain.json", http.StatusFound)
	}))
	defer redir.Close()
	s3 := nodetest.NewStore(t, chain.TestNet())
	legacyNode(t, s3, redir.URL)
	nodetest.WaitFor(t, 10*time.Second, "two polls", func() bool { return redirects.Load() >= 2 })
	if elsewhere.Load() != 0 {
		t.Fatal("the node followed a legacy peer's redirect")
	}
}

// TestMinedFromPython: POST /mined takes a block a Python miner found, as
// the original's nodes do, and refuses bad ones with the reason.
func TestMinedFromPython(t *testing.T) {
	s := nodetest.NewStore(t, chain.TestNet())
	n := legacyNode(t, s)
	srv := httptest.NewServer(n.Handler())
	defer srv.Close()
	post := func(body []byte) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/mined", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	next := nodetest.Mine(t, s, s.Tip().Hash, 2, "python")
	js, _ := storage.EncodePythonFile(&next[0])
	if code, m := post(js); code != http.StatusOK || m["received"] != true || s.Tip().Hash != next[0].Hash {
		t.Fatalf("a valid block: %d %v, tip %d", code, m, s.Tip().Height)
	}
	if code, m := post(js); code != http.StatusOK || m["received"] != true {
		t.Fatalf("the same block again: %d %v", code, m)
	}
	bad := next[1]
	bad.Data = "forged"
	js, _ = storage.EncodePythonFile(&bad)
	if code, m := post(js); code != http.StatusBadRequest || m["received"] != false || !strings.Contains(m["error"].(string), "hash") {
		t.Fatalf("a forged block: %d %v", code, m)
	}
	orphan := nodetest.Mine(t, s, next[0].Hash, 3, "python")[2]
	js, _ = storage.EncodePythonFile(&orphan)
	if code, m := post(js); code != http.StatusConflict || m["received"] != false {
		t.Fatalf("an orphan: %d %v", code, m)
	}
	if code, m := post([]byte(`{"index": "1"`)); code != http.StatusBadRequest || m["received"] != false {
		t.Fatalf("bad JSON: %d %v", code, m)
	}
	if s.Tip().Hash != next[0].Hash {
		t.Fatal("a refused block moved the tip")
	}
}

// TestNewRefusesBadLegacyPeer: New refuses a --legacy-peer that is not an
// http:// URL (chainsync.LegacyChainURL), naming the flag.
func TestNewRefusesBadLegacyPeer(t *testing.T) {
	if _, err := New(Config{Store: nodetest.NewStore(t, chain.TestNet()), DataDir: t.TempDir(), LegacyPeers: []string{"ftp://x"}}); err == nil || !strings.Contains(err.Error(), "--legacy-peer") {
		t.Errorf("New with a bad legacy peer: %v", err)
	}
}
