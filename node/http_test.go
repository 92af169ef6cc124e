package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/api"
	"github.com/jbc-project/jbc/node/internal/nodetest"
)

func TestHTTPAPI(t *testing.T) {
	p := chain.TestNet()
	s := nodetest.NewStore(t, p)
	nodetest.Extend(t, s, 0, 5, "api")
	_, nodes := mockNodes(t, s)
	srv := httptest.NewServer(nodes[0].Handler())
	defer srv.Close()

	get := func(path string, want int, into any) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("GET %s: %s, want %d", path, resp.Status, want)
		}
		if into != nil {
			if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
		}
	}

	var st api.StatusJSON
	get("/status", 200, &st)
	if st.Height != 5 || st.Tip != s.Tip().Hash.String() || st.Network != p.ID().String() || st.PeerID != nodes[0].ID().String() {
		t.Fatalf("status %+v", st)
	}

	// The Python original's form: a list of blocks with string values.
	var py []map[string]string
	get("/blockchain.json", 200, &py)
	if len(py) != 6 || py[5]["hash"] != s.Tip().Hash.String() || py[0]["prev_hash"] != "" || py[3]["index"] != "3" {
		t.Fatalf("blockchain.json: %d blocks, last %v", len(py), py[len(py)-1])
	}
	get("/blockchain.json?from=2&to=3", 200, &py)
	if len(py) != 2 || py[0]["index"] != "2" {
		t.Fatalf("paged blockchain.json: %v", py)
	}
	get("/blockchain.json?from=x", 400, nil)

	var b chain.Block
	get("/blocks/3", 200, &b)
	if b.Index != 3 {
		t.Fatalf("block 3: %+v", b)
	}
	var b2 chain.Block
	get("/blocks/"+b.Hash.String(), 200, &b2)
	if b2 != b {
		t.Fatalf("block by hash %+v, want %+v", b2, b)
	}
	get("/blocks/99", 404, nil)
	get("/blocks/nope", 400, nil)

	// Submitting data: plain text and JSON, then its status.
	post := func(body, ctype string, want int) api.EntryJSON {
		t.Helper()
		resp, err := http.Post(srv.URL+"/data", ctype, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("POST /data %q: %s, want %d", body, resp.Status, want)
		}
		var e api.EntryJSON
		json.NewDecoder(resp.Body).Decode(&e)
		return e
	}
	e := post("hello", "text/plain", 202)
	if e.Status != "pending" || e.ID != chain.EntryID("hello").String() {
		t.Fatalf("submit: %+v", e)
	}
	e2 := post(`{"data":"hello"}`, "application/json", 202)
	if e2.ID != e.ID {
		t.Fatal("the same text as JSON is another entry")
	}
	// The media type is matched ignoring case and parameters.
	if e3 := post(`{"data":"hello"}`, "Application/JSON; charset=UTF-8", 202); e3.ID != e.ID {
		t.Fatalf("JSON sent as Application/JSON with a charset: entry %s, want %s", e3.ID, e.ID)
	}
	post(`{"nodata":1}`, "application/json", 400)
	// Invalid UTF-8 in a JSON body is refused, not stored as U+FFFD.
	post("{\"data\":\"caf\xe9\"}", "application/json", 400)
	post("", "text/plain", 400)
	post(strings.Repeat("x", p.MaxDataSize+2048), "text/plain", 413)
	var got api.EntryJSON
	get("/data/"+e.ID, 200, &got)
	if got.Status != "pending" {
		t.Fatalf("entry: %+v", got)
	}
	get("/data/"+chain.EntryID("never").String(), 404, nil)
	get("/data/xyz", 400, nil)

	var peers []api.PeerJSON
	get("/peers", 200, &peers)
	if peers == nil {
		t.Fatal("peers is null, want a list")
	}
}

func TestSubmitRateLimited(t *testing.T) {
	s := nodetest.NewStore(t, chain.TestNet())
	_, nodes := mockNodes(t, s)
	// A small bucket that cannot refill during the burst, however slow
	// the machine (the race detector makes each request slow).
	nodes[0].api.SetSubmitLimit(rate.NewLimiter(rate.Every(time.Hour), 20))
	srv := httptest.NewServer(nodes[0].Handler())
	defer srv.Close()
	limited := 0
	for i := 0; i < 50; i++ {
		resp, err := http.Post(srv.URL+"/data", "text/plain", bytes.NewBufferString(fmt.Sprint("entry ", i)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 30 {
		t.Fatalf("%d of 50 submissions refused, want the 30 beyond the burst of 20", limited)
	}
}

func TestMetrics(t *testing.T) {
	p := nodetest.GossipParams(t)
	sa, sb := nodetest.NewStore(t, p), nodetest.NewStore(t, p)
	nodetest.Extend(t, sa, 0, 7, "metrics")
	_, nodes := mockNodes(t, sa, sb)
	connect(t, nodes[1], nodes[0])
	// The tip moves inside the store's commit; the sync's counters and its
	// progress are updated after it, when the sync ends and records it.
	nodetest.WaitFor(t, 15*time.Second, "the sync to end", func() bool {
		pi, ok := nodes[1].peers.Get(nodes[0].ID())
		return sb.Tip().Hash == sa.Tip().Hash && ok && pi.LastSync != nil && !nodes[1].sync.Progress().Syncing
	})
	srv := httptest.NewServer(nodes[1].Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s: %s", resp.Status, body)
	}
	for _, want := range []string{
		"jbc_height 7",
		`jbc_blocks_accepted_total{via="sync"} 7`,
		`jbc_peers{source="direct"} 1`,
		"jbc_pool_entries 0",
		"jbc_syncing 0",
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestSubmitRefusesLoneSurrogate: a JSON body escaping half a UTF-16
// surrogate pair (\ud800 alone) holds no text, like a body of invalid
// UTF-8: it is refused (400), not stored as U+FFFD, while a whole pair is
// the character it encodes.
func TestSubmitRefusesLoneSurrogate(t *testing.T) {
	s := nodetest.NewStore(t, chain.TestNet())
	_, nodes := mockNodes(t, s)
	n := nodes[0]
	srv := httptest.NewServer(n.Handler())
	defer srv.Close()
	post := func(body string) (int, string) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/data", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(msg)
	}
	for _, body := range []string{
		`{"data":"a\ud800b"}`,
		`{"data":"\udc00"}`,
		`{"data":"\ud800\u0041"}`,
		`{"data":"end\ud83d"}`,
	} {
		if code, msg := post(body); code != http.StatusBadRequest || !strings.Contains(msg, "surrogate") {
			t.Errorf("POST %s: %d %s; want 400 naming the surrogate", body, code, msg)
		}
	}
	for _, text := range []string{"a\ufffdb", "\ufffd", "\ufffdA", "end\ufffd"} {
		if n.pool.Has(chain.EntryID(text)) {
			t.Errorf("the pool holds %q, a lone surrogate read as U+FFFD", text)
		}
	}
	// A pair is one character; an escaped backslash before "ud800" is text.
	for body, want := range map[string]string{
		`{"data":"\ud83d\ude00"}`:   "\U0001F600",
		`{"data":"\\ud800"}`:        `\ud800`,
		`{"data":"\ufffd as such"}`: "\ufffd as such",
	} {
		if code, msg := post(body); code != http.StatusAccepted || !n.pool.Has(chain.EntryID(want)) {
			t.Errorf("POST %s: %d %s; want 202 and %q pending", body, code, msg, want)
		}
	}
}

// TestHTTPSlowBodies holds api.MaxConns+20 connections to a node's API,
// each sending the headers of a POST /data and 10 bytes of its 1000-byte
// body, then nothing: the API serves at most api.MaxConns of them at once
// (the rest wait to be accepted), cuts each with 408 once api.ReadTimeout
// has passed since it began its request, and an honest submission made
// while the rest wait is accepted.
func TestHTTPSlowBodies(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out ReadTimeout twice (about 20 s)")
	}
	t.Parallel()
	s := nodetest.NewStore(t, chain.TestNet())
	n := startNodeWith(t, Config{Store: s, DataDir: t.TempDir(), Listen: []string{"/ip4/127.0.0.1/tcp/0"}, HTTPAddr: "127.0.0.1:0"})
	const extra = 20
	var (
		mu     sync.Mutex
		closed []time.Duration // when each slow connection was cut, from start
		first  string          // what the first one cut was answered
	)
	start := time.Now()
	for i := 0; i < api.MaxConns+extra; i++ {
		c, err := net.Dial("tcp", n.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := fmt.Fprintf(c, "POST /data HTTP/1.1\r\nHost: jbc\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n0123456789"); err != nil {
			t.Fatal(err)
		}
		go func() {
			answer, _ := io.ReadAll(c) // until the server closes it
			mu.Lock()
			defer mu.Unlock()
			if len(closed) == 0 {
				first, _, _ = strings.Cut(string(answer), "\r\n")
			}
			closed = append(closed, time.Since(start))
		}()
	}
	cut := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(closed)
	}

	// By api.ReadTimeout and a margin, the connections the API took are
	// cut, and only they: the others are still waiting to be accepted.
	time.Sleep(api.ReadTimeout + 3*time.Second)
	if got := cut(); got == 0 || got > api.MaxConns {
		t.Fatalf("%d of %d slow connections cut %v after they began: want some (the read timeout), at most %d (the bound on open connections)",
			got, api.MaxConns+extra, api.ReadTimeout+3*time.Second, api.MaxConns)
	}
	mu.Lock()
	if first != "HTTP/1.1 408 Request Timeout" {
		t.Errorf("a slow body was answered %q, want 408", first)
	}
	mu.Unlock()

	// The API answers an honest submission meanwhile.
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Post("http://"+n.HTTPAddr()+"/data", "text/plain", strings.NewReader("an honest entry"))
	if err != nil {
		t.Fatalf("honest POST /data: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("honest POST /data: %s, want 202", resp.Status)
	}

	// Those that waited are cut in their turn.
	nodetest.WaitFor(t, api.ReadTimeout+5*time.Second, "every slow connection cut", func() bool { return cut() == api.MaxConns+extra })
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d slow connections: the first %d cut at %v-%v, the last at %v", len(closed), api.MaxConns,
		closed[0].Round(time.Millisecond), closed[api.MaxConns-1].Round(time.Millisecond), closed[len(closed)-1].Round(time.Millisecond))
}
