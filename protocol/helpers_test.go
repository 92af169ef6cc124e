package protocol

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"google.golang.org/protobuf/proto"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/protocol/pb"
)

// testLogger routes logs to t.Log, so that they show with the failing test.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// buildChain returns a validated chain on p: its genesis and n blocks, block
// i carrying data(i), one second apart.
func buildChain(t testing.TB, p *chain.Params, n int, data func(i uint64) string) *chain.Chain {
	t.Helper()
	c := chain.NewChain(p)
	extend(t, c, n, data)
	return c
}

// extend mines n more blocks onto c. The test networks have a fixed
// difficulty of one bit, so each block takes a few hashes; one miner thread
// makes the chains deterministic.
func extend(t testing.TB, c *chain.Chain, n int, data func(i uint64) string) {
	t.Helper()
	m := &chain.Miner{Threads: 1}
	for range n {
		tip := c.Tip()
		tmpl := chain.Block{Index: tip.Index + 1, Timestamp: tip.Timestamp + 1, Data: data(tip.Index + 1), PrevHash: tip.Hash}
		b, err := m.Solve(context.Background(), tmpl, c.Params.Bits)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Append(b, time.Now()); err != nil {
			t.Fatalf("append block %d: %v", b.Index, err)
		}
	}
}

// branch returns a chain holding c's blocks up to height h, then n blocks of
// its own (data tagged so that they differ from c's).
func branch(t testing.TB, c *chain.Chain, h uint64, n int, tag string) *chain.Chain {
	t.Helper()
	b := chain.NewChain(c.Params)
	for i := uint64(1); i <= h; i++ {
		if err := b.Append(c.Blocks[i], time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	extend(t, b, n, func(i uint64) string { return fmt.Sprintf("%s block %d", tag, i) })
	return b
}

func plainData(i uint64) string { return fmt.Sprintf("block %d", i) }

// memSource is an in-memory ChainSource over a chain.Chain. Hooks let a test
// make FindFork block, fail or panic.
type memSource struct {
	mu sync.Mutex
	c  *chain.Chain

	findFork func() error // called first by FindFork when set
}

func newMemSource(c *chain.Chain) *memSource { return &memSource{c: c} }

func (m *memSource) Params() *chain.Params { return m.c.Params }

func (m *memSource) Tip() chain.Entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.c.TipEntry()
}

func (m *memSource) FindFork(locator []chain.Hash) (chain.Entry, bool, error) {
	if m.findFork != nil {
		if err := m.findFork(); err != nil {
			return chain.Entry{}, false, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, h := range locator {
		if b := m.c.BlockByHash(h); b != nil {
			return chain.Entry{Hash: b.Hash, Parent: b.PrevHash, Height: b.Index, Time: b.Timestamp, Bits: m.c.Params.Bits}, true, nil
		}
	}
	return chain.Entry{}, false, nil
}

func (m *memSource) ForEach(from, to uint64, fn func(*chain.Block) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for h := from; h <= to && h <= m.c.Height(); h++ {
		b := m.c.Blocks[h]
		if err := fn(&b); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// hashAt returns a lookup of c's hashes by height, for BuildLocator.
func hashAt(c *chain.Chain) func(uint64) (chain.Hash, error) {
	return func(h uint64) (chain.Hash, error) {
		b := c.BlockAt(h)
		if b == nil {
			return chain.Hash{}, fmt.Errorf("no block at %d", h)
		}
		return b.Hash, nil
	}
}

func locatorOf(t testing.TB, c *chain.Chain) []chain.Hash {
	t.Helper()
	loc, err := BuildLocator(c.Height(), hashAt(c))
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// mockPair returns two connected hosts on a mocknet.
func mockPair(t testing.TB) (host.Host, host.Host) {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { _ = mn.Close() })
	a, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	b, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if err := mn.ConnectAllButSelf(); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// statusLog records the statuses a server reports through OnStatus.
type statusLog struct {
	mu   sync.Mutex
	from []peer.ID
	got  []Status
}

func (l *statusLog) add(p peer.ID, s Status) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.from = append(l.from, p)
	l.got = append(l.got, s)
}

func (l *statusLog) all() ([]peer.ID, []Status) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]peer.ID(nil), l.from...), append([]Status(nil), l.got...)
}

// startServer starts a Server for src on h, closed at the end of the test.
func startServer(t testing.TB, h host.Host, src ChainSource, opts ...ServerOption) (*Server, *statusLog) {
	t.Helper()
	log := &statusLog{}
	s, err := NewServer(ServerConfig{
		Host:     h,
		Source:   src,
		Agent:    "jbc-test/server",
		OnStatus: log.add,
		Logger:   testLogger(t),
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { _ = s.Close() })
	return s, log
}

func newTestClient(t testing.TB, h host.Host, src ChainSource, opts ...ClientOption) *Client {
	t.Helper()
	c, err := NewClient(h, src, "jbc-test/client", testLogger(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rawHandler installs a misbehaving server on h: it reads the request frame
// and hands it to fn, which writes whatever it likes; the stream is then
// closed.
func rawHandler(h host.Host, fn func(s network.Stream, req *pb.Request)) {
	h.SetStreamHandler(ID, func(s network.Stream) {
		defer s.Close()
		buf, err := ReadFrame(s, MaxFrameSize)
		if err != nil {
			_ = s.Reset()
			return
		}
		req := new(pb.Request)
		if err := proto.Unmarshal(buf, req); err != nil {
			_ = s.Reset()
			return
		}
		fn(s, req)
	})
}

// rawRequest sends req from h to p on a stream of its own and returns the
// response frame decoded, bypassing the Client's checks.
func rawRequest(t testing.TB, h host.Host, p peer.ID, frame []byte) *pb.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, p, ID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A server may answer a frame it refuses from its length alone and stop
	// reading, so a write that fails is not yet a failure: the answer is.
	_, werr := s.Write(frame)
	if werr == nil {
		werr = s.CloseWrite()
	}
	buf, err := ReadFrame(s, MaxFrameSize)
	if err != nil {
		t.Fatalf("read response: %v (write: %v)", err, werr)
	}
	resp := new(pb.Response)
	if err := proto.Unmarshal(buf, resp); err != nil {
		t.Fatal(err)
	}
	// Nothing follows the response.
	if n, err := s.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after the response: read %d bytes, err %v; want EOF", n, err)
	}
	return resp
}

func mustFrame(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := EncodeFrame(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fill returns n bytes of value v, for readable fixed hashes.
func fill(v byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = v
	}
	return b
}

func hashOf(v byte) chain.Hash { return chain.Hash(fill(v, chain.HashSize)) }
