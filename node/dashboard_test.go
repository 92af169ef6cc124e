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

	"github.com/jbc-project/jbc/chain"
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
	s := newStore(t, chain.TestNet())
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
	s := newStore(t, chain.TestNet())
	blocks := extend(t, s, 0, maxRecent+5, "recent")
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
	checkNewest(recent(""), defaultRecent)
	checkNewest(recent(fmt.Sprint("?n=", 10*maxRecent)), maxRecent)
	if got := recent("?n=1"); got[0].Hash != s.Tip().Hash {
		t.Fatalf("newest block %s, want the tip %s", got[0].Hash.Short(), s.Tip().Hash.Short())
	}
	for _, bad := range []string{"?n=0", "?n=-1", "?n=x", "?n=1.5"} {
		dashGet(t, srv, "/recent"+bad, http.StatusBadRequest)
	}

	// Near genesis there are fewer blocks than asked for, genesis last.
	s2 := newStore(t, chain.TestNet())
	extend(t, s2, 0, 2, "short")
	_, nodes2 := mockNodes(t, s2)
	got, err := nodes2[0].Recent(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Index != 2 || got[2].Index != 0 || got[2].Hash != s2.Params().ID() {
		t.Fatalf("recent of a 3-block chain: %d blocks, %+v", len(got), got)
	}
}

func TestDashboardPending(t *testing.T) {
	s := newStore(t, chain.TestNet())
	_, nodes := mockNodes(t, s)
	n := nodes[0]
	srv := httptest.NewServer(n.Handler())
	defer srv.Close()

	pending := func(query string) []PendingJSON {
		t.Helper()
		_, body := dashGet(t, srv, "/pending"+query, http.StatusOK)
		// An empty pool is an empty list, not null.
		if strings.TrimSpace(string(body)) == "null" {
			t.Fatalf("GET /pending%s: null, want a list", query)
		}
		var out []PendingJSON
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
	for i := 0; i < maxPending+10; i++ {
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
	if got := pending(""); len(got) != defaultPending {
		t.Fatalf("default: %d entries, want %d", len(got), defaultPending)
	}
	if got := pending("?n=100000"); len(got) != maxPending {
		t.Fatalf("capped: %d entries, want %d", len(got), maxPending)
	}
	dashGet(t, srv, "/pending?n=0", http.StatusBadRequest)
	dashGet(t, srv, "/pending?n=many", http.StatusBadRequest)
}
