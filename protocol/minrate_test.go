package protocol

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/protocol/pb"
)

// The minimum receive rate. The rateReader's deadline arithmetic is checked
// on a simulated link with a simulated clock; its effect on real streams on
// loopback hosts (deadlines cannot be tested on mocknet), with the default
// rate and grace where the test can afford them.

// cutBound is how long after MinReceiveGrace a trickled message may take to
// be cut off: generous for a loaded 2-CPU machine, and still far below the
// whole-message deadlines the minimum rate is meant to anticipate.
const cutBound = 3 * time.Second

// simLink is a stream whose bytes arrive at a fixed rate on a simulated
// clock, after a slow start: the first slowFor of the transfer at a quarter
// of the rate. It honours read deadlines as a stream does: a read whose next
// chunk would arrive after the deadline fails at the deadline with a
// timeout.
type simLink struct {
	data     []byte
	rate     float64 // bytes per second
	slowFor  time.Duration
	chunk    int
	start    time.Time
	clock    time.Time
	deadline time.Time
	sets     []time.Time // every deadline set
}

func newSimLink(data []byte, rate float64, slowFor time.Duration) *simLink {
	t0 := time.Unix(1_700_000_000, 0)
	// Bytes arrive a TCP segment (1460 bytes) at a time.
	return &simLink{data: data, rate: rate, slowFor: slowFor, chunk: 1460, start: t0, clock: t0}
}

func (l *simLink) now() time.Time { return l.clock }

func (l *simLink) SetReadDeadline(t time.Time) error {
	l.deadline = t
	l.sets = append(l.sets, t)
	return nil
}

func (l *simLink) Read(p []byte) (int, error) {
	if len(l.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), l.chunk, len(l.data))
	rate := l.rate
	if l.clock.Sub(l.start) < l.slowFor {
		rate /= 4
	}
	arrive := l.clock.Add(time.Duration(float64(n) / rate * float64(time.Second)))
	if !l.deadline.IsZero() && arrive.After(l.deadline) {
		l.clock = l.deadline
		return 0, os.ErrDeadlineExceeded
	}
	l.clock = arrive
	copy(p, l.data[:n])
	l.data = l.data[n:]
	return n, nil
}

// simRead reads over l one frame holding size bytes of block data, with the
// default rate and grace, the first byte due within FirstByteTimeout and the
// whole within hard.
func simRead(t *testing.T, l *simLink, size int, hard time.Duration) ([]byte, *rateReader, error) {
	t.Helper()
	frame := mustFrame(t, &pb.Response{Code: CodeOK, Body: &pb.Response_Blocks{Blocks: &pb.Blocks{
		Fork: fill(1, 32), Blocks: []*pb.Block{{Index: 1, PrevHash: fill(1, 32), Hash: fill(2, 32), Data: strings.Repeat("x", size)}},
	}}})
	l.data = frame
	r := newRateReader(l, l.start.Add(FirstByteTimeout), l.start.Add(hard), MinReceiveRate, MinReceiveGrace)
	r.now = l.now
	buf, err := ReadFrame(r, MaxFrameSize)
	return buf, r, err
}

// TestMinRateHonestPages: a full page (MaxPageBytes) over a link that
// delivers it within ResponseTimeout never trips the minimum rate, even
// after a slow start; nor does one a tenth above the rate (with no
// whole-response deadline, which would cut it first). A page sent below the
// rate is cut when the grace ends, as ErrTooSlow.
func TestMinRateHonestPages(t *testing.T) {
	const (
		kbit  = 1000.0 / 8 // bytes per second
		never = time.Hour  // a whole-response deadline that does not bind
	)
	for _, c := range []struct {
		name    string
		rate    float64
		slowFor time.Duration
		hard    time.Duration
		ok      bool
	}{
		{"1.1 Mbit/s, what ResponseTimeout assumes", 1100 * kbit, 0, ResponseTimeout, true},
		{"1.1 Mbit/s, the first 2 s at a quarter", 1100 * kbit, 2 * time.Second, ResponseTimeout, true},
		{"700 kbit/s, the first 2 s at a quarter: just within ResponseTimeout", 700 * kbit, 2 * time.Second, ResponseTimeout, true},
		{"a tenth over the minimum rate", 1.1 * MinReceiveRate, 0, never, true},
		{"a tenth under the minimum rate", 0.9 * MinReceiveRate, 0, never, false},
		{"64 kbit/s", 64 * kbit, 0, ResponseTimeout, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := newSimLink(nil, c.rate, c.slowFor)
			buf, r, err := simRead(t, l, MaxPageBytes, c.hard)
			took := l.clock.Sub(l.start)
			if c.ok {
				if err != nil {
					t.Fatalf("cut after %v: %v", took, err)
				}
				if len(buf) < MaxPageBytes {
					t.Fatalf("read %d bytes", len(buf))
				}
				t.Logf("%d bytes in %v (simulated), %d deadlines set", r.n, took.Round(time.Millisecond), len(l.sets))
				return
			}
			var se *slowError
			if !errors.Is(err, ErrTooSlow) || !errors.Is(err, ErrTimeout) || errors.Is(err, ErrMalformed) || !errors.As(err, &se) {
				t.Fatalf("err = %v, want ErrTooSlow", err)
			}
			// Cut as soon as the rate is checked: the sender was behind
			// from the start.
			if took < MinReceiveGrace || took > MinReceiveGrace+time.Second {
				t.Fatalf("cut after %v (simulated), want about %v", took, MinReceiveGrace)
			}
			if float64(se.n) >= MinReceiveRate*se.elapsed.Seconds() {
				t.Fatalf("cut with %d bytes in %v, which is not below the rate", se.n, se.elapsed)
			}
			t.Logf("cut after %v (simulated): %v", took.Round(time.Millisecond), err)
		})
	}
}

// TestRateReaderDeadlines checks the deadlines a rateReader sets: the
// first-byte one, then the end of the grace, then one that moves with the
// bytes read; never past the hard deadline; and which timeouts it reports
// as too slow.
func TestRateReaderDeadlines(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	clock := t0
	s := &scriptStream{}
	r := newRateReader(s, t0.Add(time.Second), t0.Add(10*time.Second), 1000, 2*time.Second)
	r.now = func() time.Time { return clock }
	want := func(d time.Time, byRate bool) {
		t.Helper()
		if !s.deadline.Equal(d) || r.byRate != byRate {
			t.Fatalf("deadline %v (by rate %v), want %v (%v)", s.deadline.Sub(t0), r.byRate, d.Sub(t0), byRate)
		}
	}
	want(t0.Add(time.Second), false) // the first byte's

	// A timeout before the first byte is the stream's own.
	s.next = []scriptRead{{0, os.ErrDeadlineExceeded}}
	if _, err := r.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, ErrTooSlow) {
		t.Fatalf("err = %v, want the stream's timeout", err)
	}

	// The first byte at 0.5 s: the grace runs to 2.5 s.
	clock = t0.Add(500 * time.Millisecond)
	s.next = []scriptRead{{1, nil}}
	_, _ = r.Read(make([]byte, 10))
	want(t0.Add(2500*time.Millisecond), true)

	// 2999 bytes more (3000 in all) buy 3 s from the first byte: 3.5 s.
	s.next = []scriptRead{{2999, nil}}
	_, _ = r.Read(make([]byte, 3000))
	want(t0.Add(3500*time.Millisecond), true)

	// A timeout now is the rate's.
	clock = t0.Add(3500 * time.Millisecond)
	s.next = []scriptRead{{0, os.ErrDeadlineExceeded}}
	_, err := r.Read(make([]byte, 10))
	var se *slowError
	if !errors.As(err, &se) || !errors.Is(err, ErrTooSlow) || !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want a slowError", err)
	}
	if se.n != 3000 || se.elapsed != 3*time.Second || se.rate != 1000 {
		t.Fatalf("slowError %+v", *se)
	}
	if msg := err.Error(); !strings.Contains(msg, "3000 bytes in 3s") || !strings.Contains(msg, "1000 bytes/s") {
		t.Fatalf("message %q does not say what was too slow", msg)
	}

	// Enough bytes to pass the hard deadline: it is the hard one, and a
	// timeout then is not the rate's.
	s.next = []scriptRead{{20000, nil}, {0, os.ErrDeadlineExceeded}}
	_, _ = r.Read(make([]byte, 20000))
	want(t0.Add(10*time.Second), false)
	if _, err := r.Read(make([]byte, 10)); errors.Is(err, ErrTooSlow) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err = %v, want the stream's timeout", err)
	}
	if r.n != 23000 {
		t.Fatalf("counted %d bytes, want 23000", r.n)
	}
}

// scriptStream returns scripted reads and records the read deadline.
type scriptStream struct {
	next     []scriptRead
	deadline time.Time
}

type scriptRead struct {
	n   int
	err error
}

func (s *scriptStream) Read(p []byte) (int, error) {
	if len(s.next) == 0 {
		return 0, io.EOF
	}
	r := s.next[0]
	s.next = s.next[1:]
	return r.n, r.err
}

func (s *scriptStream) SetReadDeadline(t time.Time) error {
	s.deadline = t
	return nil
}

func TestMinRateOptions(t *testing.T) {
	ch, _ := mockPair(t)
	src := newMemSource(chain.NewChain(chain.TestNet()))
	for _, o := range []ClientOption{WithMinResponseRate(0, time.Second), WithMinResponseRate(-1, time.Second), WithMinResponseRate(1, -time.Second)} {
		if _, err := NewClient(ch, src, "a", nil, o); err == nil {
			t.Error("a bad minimum response rate was accepted")
		}
	}
	for _, o := range []ServerOption{WithMinRequestRate(0, time.Second), WithMinRequestRate(1, -time.Second)} {
		if _, err := NewServer(ServerConfig{Host: ch, Source: src}, o); err == nil {
			t.Error("a bad minimum request rate was accepted")
		}
	}
}

// trickle writes data to w in chunks of chunk bytes, one every every, on a
// fixed schedule from the first (a late write does not delay the ones
// after it), until done is closed or a write fails.
func trickle(w io.Writer, data []byte, chunk int, every time.Duration, done <-chan struct{}) {
	start := time.Now()
	for i := 0; len(data) > 0; i++ {
		n := min(chunk, len(data))
		if _, err := w.Write(data[:n]); err != nil {
			return
		}
		data = data[n:]
		select {
		case <-done:
			return
		case <-time.After(time.Until(start.Add(time.Duration(i+1) * every))):
		}
	}
}

// trickleServer installs on h a server that answers any request with the
// frame of resp(req), trickled as trickle does.
func trickleServer(t *testing.T, h host.Host, chunk int, every time.Duration, resp func(*pb.Request) *pb.Response) {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	rawHandler(h, func(s network.Stream, req *pb.Request) {
		frame, err := EncodeFrame(resp(req))
		if err != nil {
			t.Error(err)
			return
		}
		trickle(s, frame, chunk, every, done)
	})
}

// bigPage answers a GetBlocks request with blocks blocks of dataSize bytes
// after the first locator hash: a valid page (the client checks shape only).
func bigPage(blocks, dataSize int) func(*pb.Request) *pb.Response {
	return func(req *pb.Request) *pb.Response {
		fork := req.GetGetBlocks().GetLocator()[0]
		page := &pb.Blocks{Fork: fork, ServerHeight: uint64(blocks)}
		prev := fork
		for i := 1; i <= blocks; i++ {
			h := fill(byte(100+i), chain.HashSize)
			page.Blocks = append(page.Blocks, &pb.Block{Index: uint64(i), Timestamp: int64(i), PrevHash: prev, Hash: h, Data: strings.Repeat("x", dataSize)})
			prev = h
		}
		return &pb.Response{Code: CodeOK, Body: &pb.Response_Blocks{Blocks: page}}
	}
}

// longCtx returns a context that outlasts every deadline of the protocol,
// so that what cuts a request off is never the context.
func longCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*ResponseTimeout)
	t.Cleanup(cancel)
	return ctx
}

// TestClientMinRateCutsTrickle: a response trickled below MinReceiveRate,
// a byte at a time or at half the rate, is cut off as ErrTooSlow when
// MinReceiveGrace ends, long before ResponseTimeout.
func TestClientMinRateCutsTrickle(t *testing.T) {
	t.Parallel()
	p := chain.TestNet()
	for _, c := range []struct {
		name  string
		chunk int
		every time.Duration
	}{
		{"a byte every 50ms", 1, 50 * time.Millisecond},
		{"half the rate", MinReceiveRate / 2 / 20, 50 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ch, sh := loopbackPair(t)
			// 64 KiB: 4 s at half the rate, and many minutes a byte at a time.
			trickleServer(t, sh, c.chunk, c.every, bigPage(8, 8<<10))
			cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))
			start := time.Now()
			_, err := cl.GetBlocks(longCtx(t), sh.ID(), []chain.Hash{p.ID()}, MaxBlocksPerPage)
			took := time.Since(start)
			if !errors.Is(err, ErrTooSlow) || !errors.Is(err, ErrTimeout) || errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrTooSlow", err)
			}
			if took < MinReceiveGrace || took > MinReceiveGrace+cutBound {
				t.Fatalf("cut after %v, want about %v (ResponseTimeout is %v)", took, MinReceiveGrace, ResponseTimeout)
			}
			t.Logf("cut after %v: %v", took.Round(time.Millisecond), err)
		})
	}
}

// TestClientMinRateAllowsJustAbove: a response trickled half again as fast
// as MinReceiveRate, for well past the grace, arrives whole.
//
// A sender m times as fast as the rate is ahead of the deadline by
// (1-1/m) times the time since its first byte: by 2/3 s when the grace
// ends, at m = 1.5, more after. Nearer the rate, a loaded machine's pauses
// (of the trickler, or of the reader) would make the test flaky.
func TestClientMinRateAllowsJustAbove(t *testing.T) {
	t.Parallel()
	p := chain.TestNet()
	ch, sh := loopbackPair(t)
	// 1228 bytes every 50 ms is 24 560 bytes/s, 1.5 x MinReceiveRate; the
	// page of about 96 KiB takes 4 s.
	const chunk, every = MinReceiveRate * 3 / 2 / 20, 50 * time.Millisecond
	trickleServer(t, sh, chunk, every, bigPage(12, 8<<10))
	cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))
	start := time.Now()
	page, err := cl.GetBlocks(longCtx(t), sh.ID(), []chain.Hash{p.ID()}, MaxBlocksPerPage)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("after %v: %v", took, err)
	}
	if len(page.Blocks) != 12 || page.Bytes < 96<<10 {
		t.Fatalf("page of %d blocks, %d bytes", len(page.Blocks), page.Bytes)
	}
	// It ran long past the grace: the rate was checked, and held.
	if took < MinReceiveGrace+time.Second {
		t.Fatalf("took only %v: the test does not reach past the grace", took)
	}
	t.Logf("%d bytes in %v at %d bytes/s", page.Bytes, took.Round(time.Millisecond), chunk*int(time.Second/every))
}

// TestClientFullPageLoopback: an honest server's full page (MaxPageBytes of
// 64 KiB blocks) arrives whole over loopback. It is not parallel: mining
// and moving 2 MiB take CPU the trickle tests, which are, need on time.
func TestClientFullPageLoopback(t *testing.T) {
	p := chain.TestNet()
	big := strings.Repeat("x", p.MaxDataSize-8)
	c := buildChain(t, p, MaxPageBytes/len(big)+2, func(i uint64) string { return big })
	ch, sh := loopbackPair(t)
	startServer(t, sh, newMemSource(c))
	cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))
	start := time.Now()
	page, err := cl.GetBlocks(longCtx(t), sh.ID(), []chain.Hash{p.ID()}, MaxBlocksPerPage)
	if err != nil {
		t.Fatal(err)
	}
	if page.Bytes < MaxPageBytes-len(big) {
		t.Fatalf("page of %d bytes, want about %d", page.Bytes, MaxPageBytes)
	}
	t.Logf("%d blocks, %d bytes in %v", len(page.Blocks), page.Bytes, time.Since(start).Round(time.Millisecond))
}

// trickleRequest opens a stream from ch to sh and trickles frame on it,
// then waits for the server to answer or reset the stream. It returns the
// response, if one came, the read error, if not, and how long it took.
func trickleRequest(t *testing.T, ch host.Host, p peer.ID, frame []byte, chunk int, every time.Duration) (*pb.Response, time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	s, err := ch.NewStream(ctx, p, ID)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	done := make(chan struct{})
	defer close(done)
	start := time.Now()
	go func() {
		trickle(s, frame, chunk, every, done)
		_ = s.CloseWrite()
	}()
	_ = s.SetReadDeadline(time.Now().Add(2 * RequestReadTimeout))
	buf, err := ReadFrame(s, MaxFrameSize)
	took := time.Since(start)
	if err != nil {
		return nil, took, err
	}
	resp := new(pb.Response)
	if err := proto.Unmarshal(buf, resp); err != nil {
		t.Fatal(err)
	}
	return resp, took, nil
}

// slowServer starts a server on h that counts the requests it reports as
// malformed.
func slowServer(t *testing.T, h host.Host, malformed *atomic.Int32, opts ...ServerOption) *Server {
	t.Helper()
	srv, err := NewServer(ServerConfig{
		Host:        h,
		Source:      newMemSource(buildChain(t, chain.TestNet(), 5, plainData)),
		Agent:       "jbc-test/server",
		OnMalformed: func(peer.ID, error) { malformed.Add(1) },
		Logger:      testLogger(t),
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// TestServerMinRateCutsTrickle: with the defaults, a request trickled a
// byte every 100 ms is reset when MinReceiveGrace ends, long before
// RequestReadTimeout, and is not reported as malformed.
func TestServerMinRateCutsTrickle(t *testing.T) {
	t.Parallel()
	ch, sh := loopbackPair(t)
	var malformed atomic.Int32
	srv := slowServer(t, sh, &malformed)
	frame := mustFrame(t, newStatusRequest(LocalStatus(newMemSource(chain.NewChain(chain.TestNet())), "trickler")))
	if time.Duration(len(frame))*100*time.Millisecond < MinReceiveGrace+cutBound {
		t.Fatalf("a %d-byte request arrives too soon for the test to fail", len(frame))
	}
	resp, took, err := trickleRequest(t, ch, sh.ID(), frame, 1, 100*time.Millisecond)
	if resp != nil || !errors.Is(err, network.ErrReset) {
		t.Fatalf("response %v, err %v; want a reset", resp, err)
	}
	if took < MinReceiveGrace || took > MinReceiveGrace+cutBound {
		t.Fatalf("reset after %v, want about %v (RequestReadTimeout is %v)", took, MinReceiveGrace, RequestReadTimeout)
	}
	waitStats(t, srv, func(st ServerStats) bool { return st.Failed == 1 })
	if st := srv.Stats(); st.Served != 0 || st.Refused != 0 {
		t.Fatalf("stats %+v", st)
	}
	if n := malformed.Load(); n != 0 {
		t.Fatalf("a slow request was reported malformed %d times", n)
	}
	t.Logf("%d-byte request a byte every 100ms: reset after %v", len(frame), took.Round(time.Millisecond))
}

// TestServerMinRate: a request trickled half again as fast as the minimum
// rate, past the grace, is served; one at half the rate is reset when the
// grace ends. Requests are too small to outlast the default grace at any
// rate near the default, so the test scales the rate down.
func TestServerMinRate(t *testing.T) {
	t.Parallel()
	const rate, grace, every = 384, MinReceiveGrace, 100 * time.Millisecond
	// A GetBlocks request with a full locator: about 2.3 KiB.
	loc := make([]chain.Hash, MaxLocatorLen)
	loc[len(loc)-1] = chain.TestNet().ID()
	for i := range loc[:len(loc)-1] {
		loc[i] = hashOf(byte(1 + i))
	}
	frame := mustFrame(t, newGetBlocksRequest(loc, 10))

	for _, c := range []struct {
		name   string
		chunk  int
		served bool
	}{
		{"half again the rate", rate * 3 / 2 / 10, true},
		{"half the rate", rate / 2 / 10, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ch, sh := loopbackPair(t)
			var malformed atomic.Int32
			srv := slowServer(t, sh, &malformed, WithMinRequestRate(rate, grace))
			resp, took, err := trickleRequest(t, ch, sh.ID(), frame, c.chunk, every)
			if c.served {
				if err != nil || resp.GetCode() != CodeOK || len(resp.GetBlocks().GetBlocks()) != 5 {
					t.Fatalf("after %v: response %v, err %v; want a page of 5 blocks", took, resp, err)
				}
				if took < grace+time.Second {
					t.Fatalf("took only %v: the test does not reach past the grace", took)
				}
				t.Logf("%d-byte request at %d bytes/s served after %v", len(frame), c.chunk*10, took.Round(time.Millisecond))
				return
			}
			if resp != nil || !errors.Is(err, network.ErrReset) {
				t.Fatalf("response %v, err %v; want a reset", resp, err)
			}
			if took < grace || took > grace+cutBound {
				t.Fatalf("reset after %v, want about %v", took, grace)
			}
			waitStats(t, srv, func(st ServerStats) bool { return st.Failed == 1 })
			if n := malformed.Load(); n != 0 {
				t.Fatalf("a slow request was reported malformed %d times", n)
			}
			t.Logf("%d-byte request at %d bytes/s reset after %v", len(frame), c.chunk*10, took.Round(time.Millisecond))
		})
	}
}

// waitStats waits up to 5 s for srv's stats to satisfy ok.
func waitStats(t *testing.T, srv *Server, ok func(ServerStats) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok(srv.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", srv.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
