package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/api"
	"github.com/jbc-project/jbc/node/internal/nodetest"
)

// dashGet fetches path from srv and checks the status code; it returns the
// response (body read) and the body.
func dashGet(t *testing.T, srv *httptest.Server, path string, want int) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %s, want %d: %s", path, resp.Status, want, body)
	}
	return resp, body
}

func TestDashboardPage(t *testing.T) {
	s := nodetest.NewStore(t, chain.TestNet())
	_, nodes := mockNodes(t, s)
	srv := httptest.NewServer(nodes[0].Handler())
	defer srv.Close()

	resp, body := dashGet(t, srv, "/", http.StatusOK)
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("GET /: Content-Type %q, want text/html; charset=utf-8", ct)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("GET /: Content-Security-Policy %q does not confine scripts", csp)
	}
	page := string(body)
	for _, want := range []string{"<!doctype html>", `src="web/app.js"`, `href="web/style.css"`, `id="dash"`, `id="peers"`, `id="blocks"`, `id="pending"`} {
		if !strings.Contains(page, want) {
			t.Errorf("GET /: page lacks %q", want)
		}
	}
	// Nothing is loaded from elsewhere: no build step, no CDN.
	for _, bad := range []string{"http://", "https://", "//cdn"} {
		if strings.Contains(page, bad) {
			t.Errorf("GET /: page refers to %q", bad)
		}
	}

	for path, ctype := range map[string]string{
		"/web/app.js":    "text/javascript; charset=utf-8",
		"/web/style.css": "text/css; charset=utf-8",
	} {
		resp, body := dashGet(t, srv, path, http.StatusOK)
		if ct := resp.Header.Get("Content-Type"); ct != ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", path, ct, ctype)
		}
		if len(body) == 0 {
			t.Errorf("GET %s: empty", path)
		}
		if strings.Contains(string(body), "innerHTML") {
			t.Errorf("GET %s: uses innerHTML; the page must render node data as text", path)
		}
	}

	dashGet(t, srv, "/web/nope.js", http.StatusNotFound)
	dashGet(t, srv, "/web/", http.StatusNotFound)
	dashGet(t, srv, "/nope", http.StatusNotFound)
	// The API's other routes are unchanged by the page at /.
	dashGet(t, srv, "/status", http.StatusOK)
	resp, err := http.Post(srv.URL+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %s, want 405", resp.Status)
	}
}

func TestDashboardRecent(t *testing.T) {
	s := nodetest.NewStore(t, chain.TestNet())
	blocks := nodetest.Extend(t, s, 0, api.MaxRecent+5, "recent")
	_, nodes := mockNodes(t, s)
	srv := httptest.NewServer(nodes[0].Handler())
	defer srv.Close()

	recent := func(query string) []chain.Block {
		t.Helper()
		resp, body := dashGet(t, srv, "/recent"+query, http.StatusOK)
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("GET /recent%s: Content-Type %q", query, ct)
		}
		var out []chain.Block
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("GET /recent%s: %v", query, err)
		}
		return out
	}
	// checkNewest checks got is the newest len(got) blocks, newest first.
	checkNewest := func(got []chain.Block, want int) {
		t.Helper()
		if len(got) != want {
			t.Fatalf("%d blocks, want %d", len(got), want)
		}
		for i, b := range got {
			w := blocks[len(blocks)-1-i]
			if b != w {
				t.Fatalf("block %d: height %d hash %s, want height %d hash %s", i, b.Index, b.Hash.Short(), w.Index, w.Hash.Short())
			}
		}
	}

	checkNewest(recent("?n=3"), 3)
	checkNewest(recent(""), api.DefaultRecent)
	checkNewest(recent(fmt.Sprint("?n=", 10*api.MaxRecent)), api.MaxRecent)
	if got := recent("?n=1"); got[0].Hash != s.Tip().Hash {
		t.Fatalf("newest block %s, want the tip %s", got[0].Hash.Short(), s.Tip().Hash.Short())
	}
	for _, bad := range []string{"?n=0", "?n=-1", "?n=x", "?n=1.5"} {
		dashGet(t, srv, "/recent"+bad, http.StatusBadRequest)
	}

	// Near genesis there are fewer blocks than asked for, genesis last.
	s2 := nodetest.NewStore(t, chain.TestNet())
	nodetest.Extend(t, s2, 0, 2, "short")
	_, nodes2 := mockNodes(t, s2)
	got, err := nodes2[0].api.Recent(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Index != 2 || got[2].Index != 0 || got[2].Hash != s2.Params().ID() {
		t.Fatalf("recent of a 3-block chain: %d blocks, %+v", len(got), got)
	}
}

func TestDashboardPending(t *testing.T) {
	s := nodetest.NewStore(t, chain.TestNet())
	_, nodes := mockNodes(t, s)
	n := nodes[0]
	srv := httptest.NewServer(n.Handler())
	defer srv.Close()

	pending := func(query string) []api.PendingJSON {
		t.Helper()
		_, body := dashGet(t, srv, "/pending"+query, http.StatusOK)
		// An empty pool is an empty list, not null.
		if strings.TrimSpace(string(body)) == "null" {
			t.Fatalf("GET /pending%s: null, want a list", query)
		}
		var out []api.PendingJSON
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("GET /pending%s: %v", query, err)
		}
		return out
	}
	if got := pending(""); len(got) != 0 {
		t.Fatalf("empty pool: %v", got)
	}

	// Entries come back oldest first, verbatim (markup included: escaping
	// is the page's job), with their IDs.
	texts := []string{"first", `<img src=x onerror="alert(1)">`, "third"}
	for i := 0; i < api.MaxPending+10; i++ {
		if i >= len(texts) {
			texts = append(texts, fmt.Sprint("entry ", i))
		}
		if _, err := n.Submit(context.Background(), texts[i]); err != nil {
			t.Fatal(err)
		}
	}
	got := pending("?n=3")
	if len(got) != 3 {
		t.Fatalf("?n=3: %d entries", len(got))
	}
	for i, e := range got {
		if e.Text != texts[i] || e.ID != chain.EntryID(texts[i]).String() {
			t.Fatalf("entry %d: %+v, want text %q id %s", i, e, texts[i], chain.EntryID(texts[i]))
		}
	}
	if got := pending(""); len(got) != api.DefaultPending {
		t.Fatalf("default: %d entries, want %d", len(got), api.DefaultPending)
	}
	if got := pending("?n=100000"); len(got) != api.MaxPending {
		t.Fatalf("capped: %d entries, want %d", len(got), api.MaxPending)
	}
	dashGet(t, srv, "/pending?n=0", http.StatusBadRequest)
	dashGet(t, srv, "/pending?n=many", http.StatusBadRequest)
}

// firstStateOf returns the state a dashboard page carries, checking that
// it is embedded so that no markup in it can end its script element.
func firstStateOf(t *testing.T, page string) api.FirstState {
	t.Helper()
	const open = `<script type="application/json" id="first-state">`
	i := strings.Index(page, open)
	if i < 0 {
		t.Fatalf("the page carries no first state (%s)", open)
	}
	js := page[i+len(open):]
	j := strings.Index(js, "</script>")
	if j < 0 {
		t.Fatal("the first state's script element does not end")
	}
	js = js[:j]
	if strings.ContainsAny(js, "<>") {
		t.Fatalf("the first state holds raw markup characters: %.200s", js)
	}
	var st api.FirstState
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatalf("first state: %v: %.200s", err, js)
	}
	return st
}

// TestDashboardFirstState: GET / carries the node's state, so that the
// page's first frame shows it instead of placeholders while it fetches.
func TestDashboardFirstState(t *testing.T) {
	s := nodetest.NewStore(t, chain.TestNet())
	nodetest.Extend(t, s, 0, 12, "first")
	_, nodes := mockNodes(t, s, nodetest.NewStore(t, chain.TestNet()))
	n := nodes[0]
	connect(t, n, nodes[1])
	nodetest.WaitFor(t, 10*time.Second, "the peer's status", func() bool {
		pi, ok := n.peers.Get(nodes[1].ID())
		return ok && pi.Status != nil
	})
	entry := `</script><script>alert(1)</script> & <!--`
	if _, err := n.Submit(context.Background(), entry); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(n.Handler())
	defer srv.Close()

	_, body := dashGet(t, srv, "/", http.StatusOK)
	st := firstStateOf(t, string(body))
	tip := n.store.Tip()
	if st.Status.Tip != tip.Hash.String() || st.Status.Height != tip.Height || st.Status.PeerID != n.ID().String() {
		t.Errorf("first state's status %+v, want tip %s at %d", st.Status, tip.Hash, tip.Height)
	}
	if len(st.Recent) != api.DefaultRecent || st.Recent[0].Hash != tip.Hash {
		t.Errorf("first state's recent blocks: %d, newest %v", len(st.Recent), st.Recent)
	}
	if p := findPeer(st.Peers, nodes[1].ID().String()); p == nil || !p.Connected || p.Status == nil {
		t.Errorf("first state's peers %+v lack the connected peer", st.Peers)
	}
	if len(st.Pending) != 1 || st.Pending[0].Text != entry {
		t.Errorf("first state's pending entries %+v, want the entry verbatim", st.Pending)
	}
	if len(st.History.Blocks) != 12 || st.History.Blocks[11].Height != 12 {
		t.Errorf("first state's history: %+v", st.History)
	}
	// The page is filled in at /, never served raw.
	dashGet(t, srv, "/web/index.html", http.StatusNotFound)
}

// TestHistory: GET /history gives the newest blocks after the genesis,
// oldest first, with their difficulty, the time since their parent, and
// the hash rate their work over their time shows.
func TestHistory(t *testing.T) {
	p, err := chain.NewParams("history-test", "history test network", 1577836800, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := nodetest.NewStore(t, p)
	blocks := nodetest.Extend(t, s, 0, 25, "history") // timestamps one second apart
	_, nodes := mockNodes(t, s)
	srv := httptest.NewServer(nodes[0].Handler())
	defer srv.Close()

	get := func(query string) api.HistoryJSON {
		t.Helper()
		_, body := dashGet(t, srv, "/history"+query, http.StatusOK)
		var h api.HistoryJSON
		if err := json.Unmarshal(body, &h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	h := get("")
	if len(h.Blocks) != 25 || h.Spacing != 0 {
		t.Fatalf("%d blocks, spacing %v", len(h.Blocks), h.Spacing)
	}
	for i, b := range h.Blocks {
		want := blocks[i]
		if b.Height != want.Index || b.Time != want.Timestamp || b.Bits != 4 || b.Interval != 1 {
			t.Fatalf("block %d: %+v, want height %d time %d, 4 bits, 1 s after its parent", i, b, want.Index, want.Timestamp)
		}
		// Each block took 2^4 hashes on average, one a second: 16 H/s,
		// except block 1, which has no window not starting at the
		// genesis.
		switch {
		case b.Height == 1 && b.HashRate != nil:
			t.Errorf("block 1: hash rate %v from the genesis's timestamp", *b.HashRate)
		case b.Height > 1 && (b.HashRate == nil || *b.HashRate != 16):
			t.Errorf("block %d: hash rate %v, want 16", b.Height, b.HashRate)
		}
	}
	// A window of 3: the newest three, the oldest still with a rate over
	// the blocks before it.
	h = get("?n=3")
	if len(h.Blocks) != 3 || h.Blocks[0].Height != 23 || h.Blocks[2].Height != 25 || h.Blocks[0].HashRate == nil {
		t.Fatalf("?n=3: %+v", h.Blocks)
	}
	if got := get(fmt.Sprint("?n=", 10*api.MaxHistory)); len(got.Blocks) != 25 {
		t.Fatalf("capped: %d", len(got.Blocks))
	}
	dashGet(t, srv, "/history?n=0", http.StatusBadRequest)

	// A retargeting network reports its spacing; a chain of the genesis
	// alone has no blocks to plot.
	_, fresh := mockNodes(t, nodetest.NewStore(t, chain.MainNet()))
	if h, err := fresh[0].api.History(api.DefaultHistory); err != nil || h.Spacing != 30 || len(h.Blocks) != 0 {
		t.Fatalf("fresh main network: %+v, %v", h, err)
	}
}

// TestHashRateOnlyWhileMining: once the miner stops, GET /status and the
// metrics report no hash rate, not the last one measured.
func TestHashRateOnlyWhileMining(t *testing.T) {
	s := nodetest.NewStore(t, chain.MainNet())
	_, nodes := mockNodes(t, s)
	n := nodes[0]
	n.cfg.MineThreads = 1
	n.miner.Threads = 1
	n.SetMining(true)
	nodetest.WaitFor(t, 4*hashRateWindow, "a hash rate", func() bool { return n.Status().HashRate > 0 })
	n.SetMining(false)
	if st := n.Status(); st.Mining || st.HashRate != 0 {
		t.Fatalf("miner off: mining %v, hash rate %v", st.Mining, st.HashRate)
	}
}
