package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	nodeapi "github.com/jbc-project/jbc/node/api"
	"github.com/jbc-project/jbc/node/discovery"
)

// The tests in this file follow a newcomer's first hour (issue 13): the
// commands' arguments, messages and exit statuses.

// fakeAPI is a node's HTTP API as far as status, submit and doctor use it.
func fakeAPI(t *testing.T, st nodeapi.StatusJSON) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("POST /data", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(nodeapi.EntryJSON{ID: strings.Repeat("ab", 32), Status: "pending"})
	})
	mux.HandleFunc("GET /doctor", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		json.NewEncoder(w).Encode(discovery.Report{})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &hits
}

// TestAPIFlagTakesURLs: --api takes HOST:PORT and http:// URLs alike, on
// every command that has it; other forms are usage errors.
func TestAPIFlagTakesURLs(t *testing.T) {
	srv, hits := fakeAPI(t, nodeapi.StatusJSON{Network: "n", Tip: "t", TotalWork: "1"})
	hostport := strings.TrimPrefix(srv.URL, "http://")
	for _, api := range []string{hostport, srv.URL, srv.URL + "/", "  " + srv.URL + " "} {
		for _, args := range [][]string{{"status"}, {"submit", "hello"}, {"doctor"}} {
			before := hits.Load()
			r := jbc(t, append(args, "--api", api)...)
			if r.code != exitOK || hits.Load() != before+1 {
				t.Errorf("jbc %s --api %q: exit %d, %d requests reached the node\nstderr: %s", args[0], api, r.code, hits.Load()-before, r.stderr)
			}
		}
	}
	for _, api := range []string{"ftp://" + hostport, srv.URL + "/status", "localhost", "http://"} {
		if r := jbc(t, "status", "--api", api); r.code != exitUsage || !strings.Contains(r.stderr, "--api") {
			t.Errorf("status --api %q: want a usage error naming --api, got %+v", api, r)
		}
	}
}

// TestStatusTextShowsMining: the text status has the fields the README
// lists: mining, hash rate and pending entries.
func TestStatusTextShowsMining(t *testing.T) {
	srv, _ := fakeAPI(t, nodeapi.StatusJSON{Network: "n", Tip: "t", TotalWork: "1", Mining: true, HashRate: 2.5e6, Pending: 7})
	out := mustJBC(t, "status", "--api", strings.TrimPrefix(srv.URL, "http://"))
	for _, want := range []string{"mining      on\n", "hash rate   2.50 MH/s\n", "pending     7\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("status text lacks %q:\n%s", want, out)
		}
	}
}

// TestUsageErrorsExit2: every usage error exits 2, as documented.
func TestUsageErrorsExit2(t *testing.T) {
	d := filepath.Join(t.TempDir(), "d")
	for _, args := range [][]string{
		{"frobnicate"},
		{"submit"},
		{"submit", "a", "b"},
		{"--datadir", d, "node", "--no-mdns", "--http", "", "--listen", "/ip4/127.0.0.1/tcp/0", "--peer", "/ip4/127.0.0.1/tcp/1/p2p/xyz"},
		{"--datadir", d, "node", "--no-mdns", "--http", "", "--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", "/ip4/127.0.0.1/tcp/1"},
		{"--datadir", d, "node", "--no-mdns", "--http", "", "--listen", "ip4/127.0.0.1"},
		{"--datadir", d, "node", "--no-mdns", "--http", "nonsense", "--listen", "/ip4/127.0.0.1/tcp/0"},
		{"--datadir", d, "init", "--difficulty", "0"},
	} {
		if r := jbc(t, args...); r.code != exitUsage || !strings.Contains(r.stderr, "Run 'jbc --help'") {
			t.Errorf("jbc %s: exit %d, want %d\nstderr: %s", strings.Join(args, " "), r.code, exitUsage, r.stderr)
		}
		if treeHash(t, d) != "absent" {
			t.Fatalf("jbc %s wrote into the data directory", strings.Join(args, " "))
		}
	}
}

// TestMultiaddrErrorsInPlainWords: a bad multiaddr is explained without
// the multiaddr library's jargon, and a bad JBC_BOOTSTRAP is named as such.
func TestMultiaddrErrorsInPlainWords(t *testing.T) {
	d := filepath.Join(t.TempDir(), "d")
	base := []string{"--datadir", d, "node", "--no-mdns", "--http", "", "--listen", "/ip4/127.0.0.1/tcp/0"}
	for _, c := range []struct{ flag, addr, want string }{
		{"--peer", "/ip4/127.0.0.1/tcp/4747/p2p/xyz", `"xyz" is not a peer ID`},
		{"--peer", "/ip4/127.0.0.1/tcp/4747", "has no peer ID"},
		{"--peer", "127.0.0.1:4747", "/ip4/127.0.0.1/tcp/4747"},
		{"--bootstrap", "/ip4/127.0.0.1/tcp/70000/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN", `"70000" is not a port number`},
		{"--listen", "/ip4/127.0.0.256/tcp/1", `"127.0.0.256" is not an IPv4 address`},
		{"--peer", "/ip4/127.0.0.1/tpc/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN", `"tpc" is not a protocol`},
	} {
		r := jbc(t, append(base, c.flag, c.addr)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.flag+": ") || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s %s: exit %d, stderr %q; want it to name %s and say %q", c.flag, c.addr, r.code, r.stderr, c.flag, c.want)
		}
		for _, jargon := range []string{"cid", "multihash", "failed to parse"} {
			if strings.Contains(r.stderr, jargon) {
				t.Errorf("%s %s: stderr speaks of %q: %s", c.flag, c.addr, jargon, r.stderr)
			}
		}
	}
	t.Setenv(bootstrapEnv, "/ip4/127.0.0.1/tcp/4747/p2p/nope")
	r := jbc(t, base...)
	if r.code != exitUsage || !strings.Contains(r.stderr, bootstrapEnv) || strings.Contains(r.stderr, "--bootstrap") {
		t.Errorf("bad %s: exit %d, stderr %q; want it named, not --bootstrap", bootstrapEnv, r.code, r.stderr)
	}
	if treeHash(t, d) != "absent" {
		t.Fatal("a node with bad arguments wrote into its data directory")
	}
}

// TestReadOnlyCommandsMakeNoChain: chain, blocks, verify and export never
// make a chain: a mistyped --datadir is an error saying how to make one.
func TestReadOnlyCommandsMakeNoChain(t *testing.T) {
	typo := filepath.Join(t.TempDir(), "typo")
	for _, args := range [][]string{{"chain"}, {"blocks"}, {"verify"}, {"export", "--out", filepath.Join(t.TempDir(), "x")}} {
		r := jbc(t, append([]string{"--datadir", typo}, args...)...)
		if r.code != exitError || !strings.Contains(r.stderr, "no chain in "+typo) || !strings.Contains(r.stderr, "jbc init") {
			t.Errorf("%s on a missing data directory: %+v", args[0], r)
		}
		if treeHash(t, typo) != "absent" {
			t.Fatalf("%s made the data directory", args[0])
		}
	}
}

// TestNoHomeNoDataDir: without $HOME and $JBC_DATADIR there is no default
// data directory (not ".jbc" in the current one); commands that need none
// still run.
func TestNoHomeNoDataDir(t *testing.T) {
	cwd := t.TempDir()
	t.Chdir(cwd)
	t.Setenv("HOME", "")
	t.Setenv(dataDirEnv, "")
	if r := jbc(t, "chain"); r.code == exitOK || !strings.Contains(r.stderr, "--datadir") {
		t.Errorf("chain without HOME: %+v", r)
	}
	if r := jbc(t, "mine", "--blocks", "1"); r.code == exitOK || !strings.Contains(r.stderr, "--datadir") {
		t.Errorf("mine without HOME: %+v", r)
	}
	if ents, _ := os.ReadDir(cwd); len(ents) != 0 {
		t.Errorf("without HOME, jbc wrote %v into the current directory", ents)
	}
	mustJBC(t, "version")
}

// TestUnreadableDataDir: a data directory that cannot be read is that
// error, said once with its path, not "starting the built-in network".
// (The test runs as root, whom permissions do not stop: a file in place of
// the directory makes it unreadable.)
func TestUnreadableDataDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("x"), 0o644)
	for _, args := range [][]string{{"chain"}, {"mine", "--blocks", "1"}, {"node", "--no-mdns", "--no-dht", "--http", "", "--listen", "/ip4/127.0.0.1/tcp/0"}} {
		r := jbc(t, append([]string{"--datadir", file}, args...)...)
		if r.code != exitError || !strings.Contains(r.stderr, "cannot read the data directory "+file) || strings.Contains(r.stderr, "starting the built-in network") || strings.Count(r.stderr, file) != 1 {
			t.Errorf("%s on an unreadable data directory: %+v", args[0], r)
		}
	}
}

// TestInitImportOverChainSayWhy: init and import into a data directory
// that holds a chain say why they cannot.
func TestInitImportOverChainSayWhy(t *testing.T) {
	d := t.TempDir()
	mustJBC(t, "--datadir", d, "init", "--difficulty", "4")
	if r := jbc(t, "--datadir", d, "init"); r.code != exitError || !strings.Contains(r.stderr, "only makes a new one") {
		t.Errorf("init over a chain: %+v", r)
	}
	if r := jbc(t, "--datadir", d, "import", "--from", pyFixture); r.code != exitError || !strings.Contains(r.stderr, "already holds a chain of network private") || !strings.Contains(r.stderr, "another --datadir") {
		t.Errorf("import of another network: %+v", r)
	}
}

// TestInitMessages: joining says joined; a chain without proof of work is
// refused.
func TestInitMessages(t *testing.T) {
	a := t.TempDir()
	mustJBC(t, "--datadir", a, "init", "--difficulty", "4")
	b := filepath.Join(t.TempDir(), "b")
	out := mustJBC(t, "--datadir", b, "init", "--genesis", filepath.Join(a, genesisFileName))
	if !strings.HasPrefix(out, `joined network "private"`) {
		t.Errorf("init --genesis said %q", out)
	}
	if out := mustJBC(t, "--datadir", filepath.Join(t.TempDir(), "c"), "init", "--difficulty", "4"); !strings.HasPrefix(out, "created network") {
		t.Errorf("init said %q", out)
	}
	c := filepath.Join(t.TempDir(), "c")
	if r := jbc(t, "--datadir", c, "init", "--difficulty", "0"); r.code != exitUsage || !strings.Contains(r.stderr, "proof of work") {
		t.Errorf("init --difficulty 0: %+v", r)
	}
	if treeHash(t, c) != "absent" {
		t.Error("init --difficulty 0 made a chain")
	}
}

// TestImportEqualWork: importing a branch with exactly as much work as the
// data directory's chain says so, not that the chain has more work.
func TestImportEqualWork(t *testing.T) {
	a := t.TempDir()
	mustJBC(t, "--datadir", a, "init", "--difficulty", "4")
	b := t.TempDir()
	mustJBC(t, "--datadir", b, "init", "--genesis", filepath.Join(a, genesisFileName))
	mustJBC(t, "--datadir", a, "mine", "--blocks", "3", "--threads", "1", "--data", "a")
	mustJBC(t, "--datadir", b, "mine", "--blocks", "3", "--threads", "1", "--data", "b")
	x := t.TempDir()
	mustJBC(t, "--datadir", a, "export", "--out", x)
	out := mustJBC(t, "--datadir", b, "import", "--from", x)
	if !strings.Contains(out, "as much work") || strings.Contains(out, "has more work") {
		t.Errorf("import of an equal-work branch said:\n%s", out)
	}
	// One block more in b: now it has more work.
	mustJBC(t, "--datadir", b, "mine", "--blocks", "1", "--threads", "1", "--data", "b")
	if out := mustJBC(t, "--datadir", b, "import", "--from", x); !strings.Contains(out, "has more work") {
		t.Errorf("import of a lighter branch said:\n%s", out)
	}
}

// nodeProc is a jbc node run as a real process.
type nodeProc struct {
	cmd    *exec.Cmd
	lines  chan string // stdout
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

type lockedWriter struct{ p *nodeProc }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.stderr.Write(b)
}

// startNode starts bin with args; it is stopped (SIGTERM, then SIGKILL)
// when the test ends.
func startNode(t *testing.T, bin string, args ...string) *nodeProc {
	t.Helper()
	p := &nodeProc{cmd: exec.Command(bin, args...), lines: make(chan string, 1024), done: make(chan struct{})}
	p.cmd.Stderr = lockedWriter{p}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *nodeProc) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// waitStderr waits until stderr contains s.
func (p *nodeProc) waitStderr(t *testing.T, s string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(p.stderrText(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q on the node's stderr within %s:\n%s", s, within, p.stderrText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// firstLines waits for n lines of stdout.
func (p *nodeProc) firstLines(t *testing.T, n int, within time.Duration) []string {
	t.Helper()
	var got []string
	timer := time.NewTimer(within)
	defer timer.Stop()
	for len(got) < n {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("node exited after %d lines: %v\nstderr: %s", len(got), p.err, p.stderrText())
			}
			got = append(got, l)
		case <-timer.C:
			t.Fatalf("node printed %d lines within %s, want %d\nstderr: %s", len(got), within, n, p.stderrText())
		}
	}
	return got
}

func (p *nodeProc) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestMiningLogThreads: the mining log gives the real number of mining
// goroutines, not the flag's 0 ("one per CPU").
func TestMiningLogThreads(t *testing.T) {
	bin := buildJBC(t)
	a := t.TempDir()
	// Hard enough that the miner finds no block while the test runs.
	mustJBC(t, "--datadir", a, "init", "--difficulty", "40")
	n := startNode(t, bin, "--datadir", a, "node", "--no-mdns", "--no-dht", "--http", "", "--listen", "/ip4/127.0.0.1/tcp/0", "--mine", "--threads", "0")
	n.firstLines(t, 2, 30*time.Second)
	n.waitStderr(t, "msg=mining component=miner threads=", 30*time.Second)
	if want := fmt.Sprintf("msg=mining component=miner threads=%d\n", runtime.NumCPU()); !strings.Contains(n.stderrText(), want) {
		t.Fatalf("mining log without %q:\n%s", want, n.stderrText())
	}
}

// TestListenPortTaken: a second node told to listen where another process
// already listens refuses to start, with a clear error, and writes
// nothing; go-libp2p's SO_REUSEPORT would otherwise let both listen.
func TestListenPortTaken(t *testing.T) {
	bin := buildJBC(t)
	a := t.TempDir()
	mustJBC(t, "--datadir", a, "init", "--difficulty", "4")
	listen := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", freePort(t))
	first := startNode(t, bin, "--datadir", a, "node", "--no-mdns", "--no-dht", "--http", "", "--listen", listen)
	first.firstLines(t, 2, 30*time.Second)

	b := filepath.Join(t.TempDir(), "b")
	second := startNode(t, bin, "--datadir", b, "node", "--no-mdns", "--no-dht", "--http", "", "--listen", listen)
	select {
	case <-second.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("a second node listening on %s is running\nstderr: %s", listen, second.stderrText())
	}
	var ee *exec.ExitError
	if !errors.As(second.err, &ee) || ee.ExitCode() != exitError || !strings.Contains(second.stderrText(), "another process already listens") || !strings.Contains(second.stderrText(), listen) {
		t.Fatalf("second node: %v\nstderr: %s", second.err, second.stderrText())
	}
	if treeHash(t, b) != "absent" {
		t.Error("the node that could not listen wrote its data directory")
	}
}

// TestReadCommandsWhileNodeRuns: chain, blocks, export and verify work on
// the data directory of a running node (a real process, which holds the
// chain file's lock) by asking the node through its API, and give the
// same answers as on the stopped node's files.
func TestReadCommandsWhileNodeRuns(t *testing.T) {
	bin := buildJBC(t)
	d := t.TempDir()
	mustJBC(t, "--datadir", d, "init", "--difficulty", "4")
	mustJBC(t, "--datadir", d, "mine", "--blocks", "6", "--threads", "1")
	wantChain := mustJBC(t, "--datadir", d, "chain")
	wantChainJSON := chainJSON(t, d)
	wantBlocks := mustJBC(t, "--datadir", d, "blocks", "--from", "2")
	x := t.TempDir()
	mustJBC(t, "--datadir", d, "export", "--out", x)

	api := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	n := startNode(t, bin, "--datadir", d, "node", "--no-mdns", "--no-dht", "--listen", "/ip4/127.0.0.1/tcp/0", "--http", api)
	n.firstLines(t, 2, 30*time.Second)

	if got := mustJBC(t, "--datadir", d, "chain"); got != wantChain {
		t.Errorf("chain while the node runs:\n%s\nwant\n%s", got, wantChain)
	}
	if got := chainJSON(t, d); fmt.Sprint(got) != fmt.Sprint(wantChainJSON) {
		t.Errorf("chain --json while the node runs: %v, want %v", got, wantChainJSON)
	}
	if got := mustJBC(t, "--datadir", d, "blocks", "--from", "2"); got != wantBlocks {
		t.Errorf("blocks while the node runs:\n%s\nwant\n%s", got, wantBlocks)
	}
	if got := mustJBC(t, "--datadir", d, "blocks", "--from", "50"); strings.TrimSpace(got) != "[]" {
		t.Errorf("blocks past the tip while the node runs: %q", got)
	}
	x2 := t.TempDir()
	mustJBC(t, "--datadir", d, "export", "--out", x2)
	if treeHash(t, x2) != treeHash(t, x) {
		t.Error("export while the node runs differs from the export of its files")
	}
	if out := mustJBC(t, "--datadir", d, "verify"); !strings.HasPrefix(out, "ok: the best chain of 7 blocks") || !strings.Contains(out, "running node at http://"+api) {
		t.Errorf("verify while the node runs: %q", out)
	}
	// Commands that write still refuse, saying why.
	if r := jbc(t, "--datadir", d, "mine", "--blocks", "1"); r.code != exitError || !strings.Contains(r.stderr, "in use by another process") {
		t.Errorf("mine while the node runs: %+v", r)
	}
	n.stop(t)
	if _, err := os.Stat(filepath.Join(d, apiFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stopped node left %s: %v", apiFileName, err)
	}

	// A node without its API: the message says what to do.
	n2 := startNode(t, bin, "--datadir", d, "node", "--no-mdns", "--no-dht", "--listen", "/ip4/127.0.0.1/tcp/0", "--http", "")
	n2.firstLines(t, 2, 30*time.Second)
	if r := jbc(t, "--datadir", d, "chain"); r.code != exitError || !strings.Contains(r.stderr, "in use") || !strings.Contains(r.stderr, "--http") {
		t.Errorf("chain while a node without API runs: %+v", r)
	}
}

// TestHTTPAddrTaken: a node whose API address is taken says so before it
// writes a chain or a key.
func TestHTTPAddrTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d := filepath.Join(t.TempDir(), "d")
	r := jbc(t, "--datadir", d, "node", "--no-mdns", "--no-dht", "--listen", "/ip4/127.0.0.1/tcp/0", "--http", l.Addr().String())
	if r.code != exitError || !strings.Contains(r.stderr, "--http "+l.Addr().String()) {
		t.Errorf("node with its API address taken: %+v", r)
	}
	if treeHash(t, d) != "absent" {
		t.Error("a node that could not serve its API wrote its data directory")
	}
}
