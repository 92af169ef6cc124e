package protocol

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/protocol/pb"
)

// Deadlines are tested on real hosts over loopback TCP, because mocknet
// streams ignore deadlines. The hosts listen on 127.0.0.1 only, with no
// relay, NAT port mapping, AutoNAT or hole punching.

func loopbackHost(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(),
		libp2p.ForceReachabilityPrivate(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// loopbackPair returns two connected loopback hosts.
func loopbackPair(t testing.TB) (host.Host, host.Host) {
	t.Helper()
	a, b := loopbackHost(t), loopbackHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return a, b
}

func TestClientFirstByteTimeout(t *testing.T) {
	ch, sh := loopbackPair(t)
	// A server that reads the request and never answers.
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	rawHandler(sh, func(network.Stream, *pb.Request) { <-done })

	const first = 300 * time.Millisecond
	cl := newTestClient(t, ch, newMemSource(chain.NewChain(chain.TestNet())),
		WithFirstByteTimeout(first), WithResponseTimeout(10*time.Second))
	start := time.Now()
	_, err := cl.Status(ctxT(t), sh.ID())
	took := time.Since(start)
	if !errors.Is(err, ErrTimeout) || errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if took < first || took > 3*time.Second {
		t.Fatalf("gave up after %v, want about %v", took, first)
	}
}

func TestClientResponseTimeout(t *testing.T) {
	ch, sh := loopbackPair(t)
	// A server that sends a valid response one byte every 50 ms: its first
	// byte comes in time, its last far too late.
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	p := chain.TestNet()
	rawHandler(sh, func(s network.Stream, _ *pb.Request) {
		st := StatusToPB(LocalStatus(newMemSource(chain.NewChain(p)), "trickle"))
		frame, _ := EncodeFrame(&pb.Response{Code: CodeOK, Body: &pb.Response_Status{Status: st}})
		for _, b := range frame {
			if _, err := s.Write([]byte{b}); err != nil {
				return
			}
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})

	const first, whole = 300 * time.Millisecond, 1500 * time.Millisecond
	cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)),
		WithFirstByteTimeout(first), WithResponseTimeout(whole))
	start := time.Now()
	_, err := cl.Status(ctxT(t), sh.ID())
	took := time.Since(start)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	// Not at the first-byte deadline (the first byte came), but at the
	// whole-response one.
	if took < whole || took > whole+2*time.Second {
		t.Fatalf("gave up after %v, want about %v", took, whole)
	}
}

// TestClientContextDeadline: a context shorter than the timeouts wins.
func TestClientContextDeadline(t *testing.T) {
	ch, sh := loopbackPair(t)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	rawHandler(sh, func(network.Stream, *pb.Request) { <-done })

	cl := newTestClient(t, ch, newMemSource(chain.NewChain(chain.TestNet())))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := cl.Status(ctx, sh.ID())
	if err == nil || errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("gave up after %v, want about 300ms", took)
	}
}

// TestServerReadDeadline: a client that opens a stream and never finishes
// its request has the stream reset at the server's read deadline.
func TestServerReadDeadline(t *testing.T) {
	ch, sh := loopbackPair(t)
	const readTimeout = 300 * time.Millisecond
	srv, _ := startServer(t, sh, newMemSource(chain.NewChain(chain.TestNet())), WithRequestReadTimeout(readTimeout))

	for _, partial := range [][]byte{nil, {0x58, 0x0a}} { // nothing; a frame's first 2 bytes
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := ch.NewStream(ctx, sh.ID(), ID)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		// The server's deadline runs from when its handler starts, which
		// the first byte written can trigger: time from before it, so
		// that a pause of ours after the write cannot shorten what we see.
		start := time.Now()
		if len(partial) > 0 {
			if _, err := s.Write(partial); err != nil {
				t.Fatal(err)
			}
		}
		_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadAll(s)
		took := time.Since(start)
		if !errors.Is(err, network.ErrReset) {
			t.Fatalf("partial %x: read err = %v, want a reset", partial, err)
		}
		if took < readTimeout/2 || took > 5*time.Second {
			t.Fatalf("partial %x: reset after %v, want about %v", partial, took, readTimeout)
		}
		_ = s.Reset()
	}
	if st := srv.Stats(); st.Failed != 2 || st.Served != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestLoopbackRoundTrip: the real transport carries a full exchange.
func TestLoopbackRoundTrip(t *testing.T) {
	p := chain.TestNet()
	c := buildChain(t, p, 30, plainData)
	ch, sh := loopbackPair(t)
	startServer(t, sh, newMemSource(c))
	cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))
	st, err := cl.Status(ctxT(t), sh.ID())
	if err != nil || st.Height != 30 {
		t.Fatalf("status %+v, %v", st, err)
	}
	page, err := cl.GetBlocks(ctxT(t), sh.ID(), []chain.Hash{p.ID()}, 100)
	if err != nil || len(page.Blocks) != 30 {
		t.Fatalf("page of %d blocks, %v", len(page.Blocks), err)
	}
}
