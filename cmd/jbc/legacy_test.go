package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// pyList is a chaindata directory as a Python node serves it at GET
// /blockchain.json: json.dumps of the list of its block dicts.
func pyList(t *testing.T, dir string) []byte {
	t.Helper()
	blocks, err := storage.ReadPython(dir)
	if err != nil {
		t.Fatal(err)
	}
	return pyListOf(t, blocks)
}

func pyListOf(t *testing.T, blocks []chain.Block) []byte {
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

// serveBytes serves body at /blockchain.json.
func serveBytes(t *testing.T, body []byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/blockchain.json" {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestImportFromURL: jbc import --from takes a running Python node's
// /blockchain.json, with the same guarantees as a directory: the same
// chain, and bad input named by block and rule with the data directory
// left exactly as it was.
func TestImportFromURL(t *testing.T) {
	srv := serveBytes(t, pyList(t, pyFixture))
	fromDir := t.TempDir()
	mustJBC(t, "--datadir", fromDir, "import", "--from", pyFixture)
	for _, u := range []string{srv.URL, srv.URL + "/", srv.URL + "/blockchain.json"} {
		d := filepath.Join(t.TempDir(), "d")
		out := mustJBC(t, "--datadir", d, "import", "--from", u)
		if !strings.Contains(out, "validated 20 blocks") {
			t.Errorf("import --from %s: %s", u, out)
		}
		if a, b := chainJSON(t, fromDir), chainJSON(t, d); fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("import --from %s: %v, the directory gives %v", u, b, a)
		}
	}

	fixture, err := storage.ReadPython(pyFixture)
	if err != nil {
		t.Fatal(err)
	}
	forged := append([]chain.Block(nil), fixture...)
	forged[11].Data = "forged"
	full := pyList(t, pyFixture)
	var elsewhere atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.Write(full)
	}))
	defer target.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/blockchain.json", http.StatusFound)
	}))
	defer redirect.Close()
	cases := []struct {
		name, url string
		want      []string
		code      int
	}{
		{"forged block", serveBytes(t, pyListOf(t, forged)).URL, []string{"block 11", "bad-hash"}, exitError},
		{"cut short", serveBytes(t, full[:len(full)/2]).URL, []string{"bad block JSON"}, exitError},
		{"not a list", serveBytes(t, []byte(`<html>hello</html>`)).URL, []string{"not a JSON list of blocks"}, exitError},
		{"not found", srv.URL + "/chain", []string{"404"}, exitError},
		{"redirect", redirect.URL, []string{"redirects elsewhere"}, exitError},
		{"nobody there", "http://127.0.0.1:1", []string{"127.0.0.1:1"}, exitError},
		{"https", "https://127.0.0.1:1", []string{"http://"}, exitUsage},
		{"other scheme", "ftp://127.0.0.1:1/chain", []string{"http://"}, exitUsage},
	}
	for _, c := range cases {
		for _, target := range []string{"missing", "same network"} {
			d := filepath.Join(t.TempDir(), "d")
			if target == "same network" {
				mustJBC(t, "--datadir", d, "import", "--from", pyFixture)
			}
			before := treeHash(t, d)
			r := jbc(t, "--datadir", d, "import", "--from", c.url)
			if r.code != c.code {
				t.Errorf("%s into %s: exit %d, want %d\nstderr: %s", c.name, target, r.code, c.code, r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("%s into %s: stderr %q lacks %q", c.name, target, r.stderr, w)
				}
			}
			if treeHash(t, d) != before {
				t.Errorf("%s into %s: the data directory changed", c.name, target)
			}
		}
	}
	if elsewhere.Load() != 0 {
		t.Error("import followed a redirect")
	}
}

// pyNode is the minimal Python node (storage/testdata/pychain/serve.py)
// serving a chaindata directory on 127.0.0.1.
type pyNode struct {
	url string
	cmd *exec.Cmd
}

// python3 returns a working python3, or skips the test.
func python3(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil || exec.Command(py, "-c", "pass").Run() != nil {
		t.Skip("no working python3: the Python node cannot run")
	}
	return py
}

var serveScript = filepath.Join("..", "..", "storage", "testdata", "pychain", "serve.py")

func startPyNode(t *testing.T, py, chaindata string) *pyNode {
	t.Helper()
	cmd := exec.Command(py, serveScript, chaindata)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		io.Copy(io.Discard, out)
	}()
	select {
	case u := <-line:
		if !strings.HasPrefix(u, "http://127.0.0.1:") {
			t.Fatalf("serve.py printed %q", u)
		}
		return &pyNode{url: u, cmd: cmd}
	case <-time.After(20 * time.Second):
		t.Fatalf("serve.py did not start: %s", stderr.String())
	}
	return nil
}

// pyMine mines the next block after parent at the Python fixture's
// difficulty (2 hex zeros), as a Python miner would.
func pyMine(t *testing.T, parent chain.Block, data string) chain.Block {
	t.Helper()
	tmpl := chain.Block{Index: parent.Index + 1, Timestamp: max(time.Now().Unix(), parent.Timestamp), Data: data, PrevHash: parent.Hash}
	b, err := (&chain.Miner{Threads: 1}).Solve(context.Background(), tmpl, 8)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func postJSON(t *testing.T, url string, body []byte) map[string]any {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("POST %s: %s, %v", url, resp.Status, err)
	}
	return m
}

// TestPythonNetworkMovesToJBC runs a Python node (serve.py, serving and
// syncing as the original does) beside a real jbc node process: jbc imports
// the Python chain from its URL, follows the Python node as it grows, takes
// a block a Python miner announces by POST /mined, and the Python node
// syncs jbc's chain from jbc's /blockchain.json.
func TestPythonNetworkMovesToJBC(t *testing.T) {
	py := python3(t)
	bin := buildJBC(t)
	pyDir := copyFixture(t)
	pn := startPyNode(t, py, pyDir)

	d := filepath.Join(t.TempDir(), "jbc")
	mustJBC(t, "--datadir", d, "import", "--from", pn.url)
	api := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	jn := startNode(t, bin, "--datadir", d, "node", "--no-mdns", "--no-dht", "--listen", "/ip4/127.0.0.1/tcp/0",
		"--http", api, "--legacy-peer", pn.url, "--legacy-poll", "500ms")
	jn.firstLines(t, 2, 30*time.Second)

	height := func() float64 {
		t.Helper()
		var st map[string]any
		if err := json.Unmarshal([]byte(mustJBC(t, "status", "--api", "http://"+api, "--json")), &st); err != nil {
			t.Fatal(err)
		}
		return st["height"].(float64)
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\nnode stderr: %s", what, jn.stderrText())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// A Python miner finds block 20 and tells its Python peer: jbc follows.
	blocks, err := storage.ReadPython(pyDir)
	if err != nil {
		t.Fatal(err)
	}
	b20 := pyMine(t, blocks[19], "Mined by node on port 5001")
	js, _ := storage.EncodePythonFile(&b20)
	if m := postJSON(t, pn.url+"/mined", js); m["received"] != true {
		t.Fatalf("the Python node refused block 20: %v", m)
	}
	waitUntil("jbc to follow the Python node to height 20", func() bool { return height() == 20 })

	// A Python miner announces block 21 to the jbc node itself.
	b21 := pyMine(t, b20, "Mined by node on port 5002")
	js, _ = storage.EncodePythonFile(&b21)
	if m := postJSON(t, "http://"+api+"/mined", js); m["received"] != true {
		t.Fatalf("jbc refused block 21: %v", m)
	}
	if h := height(); h != 21 {
		t.Fatalf("jbc at height %v after POST /mined, want 21", h)
	}

	// A Python node syncs from jbc as the original does: it takes the
	// longest valid chain its peers serve.
	out, err := exec.Command(py, serveScript, pyDir, "--sync-from", "http://"+api).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "22" {
		t.Fatalf("Python sync from jbc: %s, %v", out, err)
	}
	got, err := storage.ReadPython(pyDir)
	if err != nil || len(got) != 22 || got[21] != b21 {
		t.Fatalf("the Python node's chain after syncing from jbc: %d blocks, %v", len(got), err)
	}
	if _, err := os.Stat(filepath.Join(pyDir, "000021.json")); err != nil {
		t.Fatal(err)
	}
}
