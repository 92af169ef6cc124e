package protocol

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/protocol/pb"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestStatusKeep: a client whose keep judge says it chose the server sets
// keep in its request, and the server reports it with the status; the
// server's answer never carries it, and without the judge it is unset.
func TestStatusKeep(t *testing.T) {
	p := chain.TestNet()
	c := buildChain(t, p, 2, plainData)
	ch, sh := mockPair(t)
	_, log := startServer(t, sh, newMemSource(c))
	keeper := newTestClient(t, ch, newMemSource(c), WithKeep(func(q peer.ID) bool { return q == sh.ID() }))
	plain := newTestClient(t, ch, newMemSource(c))
	for _, cl := range []*Client{keeper, plain} {
		got, err := cl.Status(ctxT(t), sh.ID())
		if err != nil {
			t.Fatal(err)
		}
		if got.Keep {
			t.Errorf("the server's answer carries keep")
		}
	}
	_, sts := log.all()
	if len(sts) != 2 || !sts[0].Keep || sts[1].Keep {
		t.Fatalf("server saw keep %v, want [true false]", func() (k []bool) {
			for _, s := range sts {
				k = append(k, s.Keep)
			}
			return
		}())
	}
}

func TestStatusRoundTrip(t *testing.T) {
	p := chain.TestNet()
	serverChain := buildChain(t, p, 5, plainData)
	clientChain := buildChain(t, p, 2, plainData)
	ch, sh := mockPair(t)
	srv, log := startServer(t, sh, newMemSource(serverChain))
	cl := newTestClient(t, ch, newMemSource(clientChain))

	got, err := cl.Status(ctxT(t), sh.ID())
	if err != nil {
		t.Fatal(err)
	}
	tip := serverChain.TipEntry()
	if got.Genesis != p.ID() || got.Tip != tip.Hash || got.Height != 5 || got.Work.Cmp(tip.Work) != 0 || got.Agent != "jbc-test/server" {
		t.Fatalf("status %+v, want tip %s at 5, work %v", got, tip.Hash.Short(), tip.Work)
	}

	// The server learnt the client's status.
	from, sts := log.all()
	if len(sts) != 1 || from[0] != ch.ID() {
		t.Fatalf("OnStatus calls: %v %v", from, sts)
	}
	ctip := clientChain.TipEntry()
	if s := sts[0]; s.Tip != ctip.Hash || s.Height != 2 || s.Work.Cmp(ctip.Work) != 0 || s.Agent != "jbc-test/client" || s.Genesis != p.ID() {
		t.Fatalf("server saw %+v", s)
	}
	if st := srv.Stats(); st.Served != 1 || st.Refused != 0 || st.Failed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStatusWrongNetwork(t *testing.T) {
	serverChain := buildChain(t, chain.TestNet(), 3, plainData)
	other, err := chain.NewParams("other", "another genesis", 1577836800, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	clientChain := buildChain(t, other, 1, plainData)
	ch, sh := mockPair(t)
	srv, log := startServer(t, sh, newMemSource(serverChain))
	cl := newTestClient(t, ch, newMemSource(clientChain))

	got, err := cl.Status(ctxT(t), sh.ID())
	if !errors.Is(err, ErrWrongNetwork) || errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrWrongNetwork", err)
	}
	var ce *CodeError
	if !errors.As(err, &ce) || ce.Code != CodeWrongNetwork {
		t.Fatalf("err = %#v, want a *CodeError", err)
	}
	// Their status comes back with the error.
	if got.Genesis != chain.TestNet().ID() || got.Height != 3 {
		t.Fatalf("status %+v", got)
	}
	// And the server still reported ours, so the node can disconnect us.
	_, sts := log.all()
	if len(sts) != 1 || sts[0].Genesis != other.ID() {
		t.Fatalf("OnStatus calls: %+v", sts)
	}
	if st := srv.Stats(); st.Refused != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestGetBlocksFromGenesis(t *testing.T) {
	p := chain.TestNet()
	serverChain := buildChain(t, p, 20, plainData)
	ch, sh := mockPair(t)
	startServer(t, sh, newMemSource(serverChain))
	cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))

	page, err := cl.GetBlocks(ctxT(t), sh.ID(), []chain.Hash{p.ID()}, MaxBlocksPerPage)
	if err != nil {
		t.Fatal(err)
	}
	if page.Fork != p.ID() || page.ServerHeight != 20 || len(page.Blocks) != 20 {
		t.Fatalf("page: fork %s, server height %d, %d blocks", page.Fork.Short(), page.ServerHeight, len(page.Blocks))
	}
	for i, b := range page.Blocks {
		if b != serverChain.Blocks[i+1] {
			t.Fatalf("block %d: %+v, want %+v", i+1, b, serverChain.Blocks[i+1])
		}
	}
	// Bytes is the whole frame read.
	want := &pb.Blocks{Fork: hb(p.ID()), ServerHeight: 20}
	for i := 1; i <= 20; i++ {
		want.Blocks = append(want.Blocks, BlockToPB(&serverChain.Blocks[i]))
	}
	if n := len(mustFrame(t, &pb.Response{Code: CodeOK, Body: &pb.Response_Blocks{Blocks: want}})); page.Bytes != n {
		t.Fatalf("page.Bytes = %d, want %d", page.Bytes, n)
	}

	// The blocks are a valid continuation of the genesis.
	c := chain.NewChain(p)
	for _, b := range page.Blocks {
		if err := c.Append(b, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGetBlocksFromFork(t *testing.T) {
	p := chain.TestNet()
	serverChain := buildChain(t, p, 25, plainData)
	forked := branch(t, serverChain, 10, 5, "client") // shares blocks 0..10
	behind := branch(t, serverChain, 7, 0, "")        // a prefix at height 7
	if forked.Blocks[11] == serverChain.Blocks[11] {
		t.Fatal("branch did not fork")
	}
	ch, sh := mockPair(t)
	startServer(t, sh, newMemSource(serverChain))
	cl := newTestClient(t, ch, newMemSource(forked))

	tests := []struct {
		name      string
		locator   []chain.Hash
		max       int
		fork      uint64 // height on the server chain
		from, to  uint64 // heights of the blocks expected
		noCommons bool
	}{
		{name: "forked client", locator: locatorOf(t, forked), max: 100, fork: 10, from: 11, to: 25},
		{name: "forked client, small page", locator: locatorOf(t, forked), max: 4, fork: 10, from: 11, to: 14},
		{name: "client behind", locator: locatorOf(t, behind), max: 100, fork: 7, from: 8, to: 25},
		{name: "client up to date", locator: locatorOf(t, serverChain), max: 100, fork: 25, from: 26, to: 25},
		{name: "first known hash wins", locator: []chain.Hash{hashOf(9), serverChain.Blocks[20].Hash, serverChain.Blocks[3].Hash}, max: 2, fork: 20, from: 21, to: 22},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := cl.GetBlocks(ctxT(t), sh.ID(), tt.locator, tt.max)
			if err != nil {
				t.Fatal(err)
			}
			if page.Fork != serverChain.Blocks[tt.fork].Hash || page.ServerHeight != 25 {
				t.Fatalf("fork %s, server height %d; want block %d", page.Fork.Short(), page.ServerHeight, tt.fork)
			}
			want := serverChain.Blocks[tt.from : tt.to+1]
			if len(page.Blocks) != len(want) {
				t.Fatalf("%d blocks, want %d", len(page.Blocks), len(want))
			}
			for i := range want {
				if page.Blocks[i] != want[i] {
					t.Fatalf("block %d differs", want[i].Index)
				}
			}
		})
	}
}

func TestNoCommonAncestor(t *testing.T) {
	p := chain.TestNet()
	ch, sh := mockPair(t)
	srv, _ := startServer(t, sh, newMemSource(buildChain(t, p, 3, plainData)))
	cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))

	_, err := cl.GetBlocks(ctxT(t), sh.ID(), []chain.Hash{hashOf(1), hashOf(2)}, 10)
	if !errors.Is(err, ErrNoCommonAncestor) || errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrNoCommonAncestor", err)
	}
	if st := srv.Stats(); st.Refused != 1 || st.Failed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPageBlockCap(t *testing.T) {
	p := chain.TestNet()
	serverChain := buildChain(t, p, MaxBlocksPerPage+40, plainData)
	ch, sh := mockPair(t)
	startServer(t, sh, newMemSource(serverChain))
	cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))

	page, err := cl.GetBlocks(ctxT(t), sh.ID(), []chain.Hash{p.ID()}, MaxBlocksPerPage)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Blocks) != MaxBlocksPerPage || page.ServerHeight != MaxBlocksPerPage+40 {
		t.Fatalf("%d blocks (server height %d), want %d", len(page.Blocks), page.ServerHeight, MaxBlocksPerPage)
	}

	// The client will not ask for more than a page...
	if _, err := cl.GetBlocks(ctxT(t), sh.ID(), []chain.Hash{p.ID()}, MaxBlocksPerPage+1); err == nil || errors.Is(err, ErrMalformed) {
		t.Fatalf("asking for %d blocks: err = %v", MaxBlocksPerPage+1, err)
	}
	// ...and a server asked for more sends a page.
	req := newGetBlocksRequest([]chain.Hash{p.ID()}, 1)
	req.GetGetBlocks().MaxBlocks = 100000
	resp := rawRequest(t, ch, sh.ID(), mustFrame(t, req))
	if resp.GetCode() != CodeOK || len(resp.GetBlocks().GetBlocks()) != MaxBlocksPerPage {
		t.Fatalf("server sent %s with %d blocks, want %d", resp.GetCode(), len(resp.GetBlocks().GetBlocks()), MaxBlocksPerPage)
	}
}

func TestPageByteCap(t *testing.T) {
	p := chain.TestNet()
	big := strings.Repeat("x", p.MaxDataSize)
	serverChain := buildChain(t, p, 40, func(i uint64) string { return big[:p.MaxDataSize-int(i)] })
	ch, sh := mockPair(t)
	startServer(t, sh, newMemSource(serverChain))
	cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))

	// Expected: as many blocks as fit in MaxPageBytes.
	want, size := 0, 0
	for i := 1; i <= 40; i++ {
		n := proto.Size(BlockToPB(&serverChain.Blocks[i]))
		if size+n > MaxPageBytes {
			break
		}
		size += n
		want++
	}
	if want == 0 || want >= 40 {
		t.Fatalf("test chain does not exercise the cap: %d blocks fit", want)
	}

	loc := []chain.Hash{p.ID()}
	got := 0
	for pages := 0; got < 40; pages++ {
		page, err := cl.GetBlocks(ctxT(t), sh.ID(), loc, MaxBlocksPerPage)
		if err != nil {
			t.Fatal(err)
		}
		if pages == 0 && len(page.Blocks) != want {
			t.Fatalf("first page has %d blocks, want %d", len(page.Blocks), want)
		}
		if len(page.Blocks) == 0 || pages > 2 {
			t.Fatalf("page %d: %d blocks after %d", pages, len(page.Blocks), got)
		}
		got += len(page.Blocks)
		loc = []chain.Hash{page.Blocks[len(page.Blocks)-1].Hash}
	}
	if got != 40 {
		t.Fatalf("got %d blocks, want 40", got)
	}
}

// TestPageOneHugeBlock: a block larger than MaxPageBytes is still sent, alone.
func TestPageOneHugeBlock(t *testing.T) {
	p := chain.TestNet()
	p.MaxDataSize = MaxDataBytes
	huge := strings.Repeat("h", MaxDataBytes)
	serverChain := buildChain(t, p, 3, func(uint64) string { return huge })
	ch, sh := mockPair(t)
	startServer(t, sh, newMemSource(serverChain))
	cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))

	page, err := cl.GetBlocks(ctxT(t), sh.ID(), []chain.Hash{p.ID()}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Blocks) != 1 || page.Blocks[0] != serverChain.Blocks[1] {
		t.Fatalf("%d blocks, want block 1 alone", len(page.Blocks))
	}
	if page.Bytes <= MaxPageBytes {
		t.Fatalf("page of %d bytes: the block was not over the cap", page.Bytes)
	}

	// A network whose blocks may not fit a frame cannot be served.
	p2 := chain.TestNet()
	p2.MaxDataSize = MaxDataBytes + 1
	if _, err := NewServer(ServerConfig{Host: sh, Source: newMemSource(chain.NewChain(p2))}); err == nil {
		t.Fatal("NewServer accepted a network with data over MaxDataBytes")
	}
}

// TestMisbehavingServer: a server that breaks the protocol is caught by the
// client as ErrMalformed, whatever the way.
func TestMisbehavingServer(t *testing.T) {
	p := chain.TestNet()
	good := buildChain(t, p, 12, plainData)
	blocks := func(from, to int) []*pb.Block {
		var bs []*pb.Block
		for i := from; i <= to; i++ {
			bs = append(bs, BlockToPB(&good.Blocks[i]))
		}
		return bs
	}
	ok := func(b *pb.Blocks) *pb.Response {
		return &pb.Response{Code: CodeOK, Body: &pb.Response_Blocks{Blocks: b}}
	}
	hugeBlock := func(i uint64, prev []byte) *pb.Block {
		h := fill(byte(i), 32)
		return &pb.Block{Index: i, Data: strings.Repeat("z", MaxPageBytes/2+1), PrevHash: prev, Hash: h}
	}
	genesis := hb(p.ID())

	tests := []struct {
		name   string
		status bool // send a status request rather than GetBlocks(genesis, 3)
		write  func(s network.Stream)
	}{
		{"too many blocks", false, func(s network.Stream) {
			_, _ = WriteFrame(s, ok(&pb.Blocks{Fork: genesis, Blocks: blocks(1, 4), ServerHeight: 12}))
		}},
		{"too many bytes", false, func(s network.Stream) {
			b1 := hugeBlock(1, genesis)
			b2 := hugeBlock(2, b1.Hash)
			_, _ = WriteFrame(s, ok(&pb.Blocks{Fork: genesis, Blocks: []*pb.Block{b1, b2}, ServerHeight: 12}))
		}},
		{"blocks not linked", false, func(s network.Stream) {
			bs := append(blocks(1, 1), blocks(3, 3)...)
			_, _ = WriteFrame(s, ok(&pb.Blocks{Fork: genesis, Blocks: bs, ServerHeight: 12}))
		}},
		{"fork not in locator", false, func(s network.Stream) {
			_, _ = WriteFrame(s, ok(&pb.Blocks{Fork: hb(good.Blocks[1].Hash), Blocks: blocks(2, 3), ServerHeight: 12}))
		}},
		{"frame over the limit", false, func(s network.Stream) {
			_, _ = s.Write([]byte{0x81, 0x80, 0x80, 0x02}) // 4 MiB + 1
		}},
		{"garbage", false, func(s network.Stream) {
			_, _ = s.Write([]byte{0x03, 0xff, 0xff, 0xff})
		}},
		{"closed without answering", false, func(network.Stream) {}},
		{"code unspecified", false, func(s network.Stream) {
			_, _ = WriteFrame(s, &pb.Response{Message: "?"})
		}},
		{"cut short", false, func(s network.Stream) {
			f, _ := EncodeFrame(ok(&pb.Blocks{Fork: genesis, Blocks: blocks(1, 3), ServerHeight: 12}))
			_, _ = s.Write(f[:len(f)-1])
		}},
		{"status OK from another network", true, func(s network.Stream) {
			st := StatusToPB(Status{Genesis: hashOf(7), Tip: hashOf(7), Work: chain.BlockWork(1)})
			_, _ = WriteFrame(s, &pb.Response{Code: CodeOK, Body: &pb.Response_Status{Status: st}})
		}},
		{"status answered with blocks", true, func(s network.Stream) {
			_, _ = WriteFrame(s, ok(&pb.Blocks{Fork: genesis}))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, sh := mockPair(t)
			rawHandler(sh, func(s network.Stream, _ *pb.Request) { tt.write(s) })
			cl := newTestClient(t, ch, newMemSource(good))
			var err error
			if tt.status {
				_, err = cl.Status(ctxT(t), sh.ID())
			} else {
				_, err = cl.GetBlocks(ctxT(t), sh.ID(), []chain.Hash{p.ID()}, 3)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

// TestServerRefusesBadRequests: malformed requests are answered
// BAD_REQUEST, and the server goes on serving.
func TestServerRefusesBadRequests(t *testing.T) {
	p := chain.TestNet()
	ch, sh := mockPair(t)
	srv, log := startServer(t, sh, newMemSource(buildChain(t, p, 3, plainData)))

	long := make([]chain.Hash, MaxLocatorLen+1)
	for i := range long {
		long[i] = hashOf(byte(i + 1))
	}
	statusFrame := mustFrame(t, newStatusRequest(goldenStatus()))
	garbageInside := append([]byte{statusFrame[0] + 1}, append(statusFrame[1:], 0xff)...)
	frames := map[string][]byte{
		"locator too long":            mustFrame(t, newGetBlocksRequest(long, 1)),
		"max_blocks 0":                mustFrame(t, newGetBlocksRequest([]chain.Hash{p.ID()}, 0)),
		"no body":                     {0x02, 0x78, 0x01}, // an unknown field only
		"undecodable":                 {0x02, 0xff, 0xff},
		"trailing garbage in a frame": garbageInside,
		"zero-length frame":           {0x00},
		"status without work":         mustFrame(t, newStatusRequest(Status{Genesis: hashOf(1), Tip: hashOf(2), Height: 1})),
	}
	for name, f := range frames {
		t.Run(name, func(t *testing.T) {
			resp := rawRequest(t, ch, sh.ID(), f)
			if resp.GetCode() != CodeBadRequest || resp.GetMessage() == "" {
				t.Fatalf("response %v, want BAD_REQUEST with a message", resp)
			}
		})
	}
	if st := srv.Stats(); st.Refused != uint64(len(frames)) || st.Served != 0 {
		t.Fatalf("stats %+v", st)
	}
	if _, sts := log.all(); len(sts) != 0 {
		t.Fatalf("OnStatus called for invalid statuses: %+v", sts)
	}
	cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))
	if _, err := cl.Status(ctxT(t), sh.ID()); err != nil {
		t.Fatalf("server stopped serving: %v", err)
	}
}

// blockingSource makes FindFork wait until released, counting waiters.
func blockingSource(src *memSource) (entered chan struct{}, release func()) {
	entered = make(chan struct{}, 100)
	gate := make(chan struct{})
	src.findFork = func() error {
		entered <- struct{}{}
		<-gate
		return nil
	}
	var once sync.Once
	return entered, func() { once.Do(func() { close(gate) }) }
}

func TestRateLimited(t *testing.T) {
	p := chain.TestNet()
	src := newMemSource(buildChain(t, p, 3, plainData))
	entered, release := blockingSource(src)
	ch, sh := mockPair(t)
	_, log := startServer(t, sh, src)
	t.Cleanup(release) // before the server's Close, which waits for handlers
	cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))

	// Fill the peer's slots with requests stuck in FindFork.
	ctx := ctxT(t)
	errs := make(chan error, MaxInflightPerPeer)
	for range MaxInflightPerPeer {
		go func() {
			_, err := cl.GetBlocks(ctx, sh.ID(), []chain.Hash{p.ID()}, 5)
			errs <- err
		}()
	}
	for range MaxInflightPerPeer {
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("requests did not reach FindFork")
		}
	}

	// One more is refused at once, with the status still reported.
	_, err := cl.Status(ctx, sh.ID())
	if !errors.Is(err, ErrRateLimited) {
		t.Fatalf("err = %v, want ErrRateLimited", err)
	}
	if _, sts := log.all(); len(sts) != 1 || sts[0].Genesis != p.ID() {
		t.Fatalf("OnStatus calls %+v, want the refused request's status", sts)
	}

	release()
	for range MaxInflightPerPeer {
		if err := <-errs; err != nil {
			t.Fatalf("stuck request: %v", err)
		}
	}
	// Slots are freed.
	if _, err := cl.Status(ctxT(t), sh.ID()); err != nil {
		t.Fatal(err)
	}
}

type failingSource struct {
	*memSource
	err error
}

func (f failingSource) ForEach(uint64, uint64, func(*chain.Block) error) error { return f.err }

func TestSourceErrors(t *testing.T) {
	p := chain.TestNet()
	c := buildChain(t, p, 3, plainData)
	ch, sh := mockPair(t)
	srv, _ := startServer(t, sh, failingSource{newMemSource(c), fmt.Errorf("disk on fire")})
	cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))

	_, err := cl.GetBlocks(ctxT(t), sh.ID(), []chain.Hash{p.ID()}, 5)
	if !errors.Is(err, ErrInternal) || errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrInternal", err)
	}
	if strings.Contains(err.Error(), "fire") {
		t.Fatalf("local error text leaked to the peer: %v", err)
	}
	if st := srv.Stats(); st.Refused != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestHandlerPanicRecovered(t *testing.T) {
	p := chain.TestNet()
	src := newMemSource(buildChain(t, p, 3, plainData))
	src.findFork = func() error { panic("boom") }
	ch, sh := mockPair(t)
	srv, _ := startServer(t, sh, src)
	cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))

	_, err := cl.GetBlocks(ctxT(t), sh.ID(), []chain.Hash{p.ID()}, 5)
	if err == nil || errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want a stream error that does not blame the server's peer", err)
	}
	if !errors.Is(err, network.ErrReset) {
		t.Fatalf("err = %v, want a reset", err)
	}
	if st := srv.Stats(); st.Panics != 1 || st.Failed != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The server survives.
	if _, err := cl.Status(ctxT(t), sh.ID()); err != nil {
		t.Fatal(err)
	}
}

// TestReorgDuringServe: blocks that no longer link to the fork are not sent.
func TestReorgDuringServe(t *testing.T) {
	p := chain.TestNet()
	main := buildChain(t, p, 10, plainData)
	side := branch(t, main, 4, 8, "side")
	ch, sh := mockPair(t)
	// FindFork sees main; by the time ForEach runs the best chain is side.
	startServer(t, sh, reorgSource{newMemSource(side), main})
	cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))

	_, err := cl.GetBlocks(ctxT(t), sh.ID(), []chain.Hash{main.Blocks[7].Hash}, 5)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

// reorgSource answers FindFork from a fixed chain, the rest from the
// memSource's current one.
type reorgSource struct {
	*memSource
	old *chain.Chain
}

func (r reorgSource) FindFork(loc []chain.Hash) (chain.Entry, bool, error) {
	for _, h := range loc {
		if b := r.old.BlockByHash(h); b != nil {
			return chain.Entry{Hash: b.Hash, Height: b.Index}, true, nil
		}
	}
	return chain.Entry{}, false, nil
}

func TestServerClose(t *testing.T) {
	p := chain.TestNet()
	src := newMemSource(buildChain(t, p, 3, plainData))
	entered, release := blockingSource(src)
	ch, sh := mockPair(t)
	srv, _ := startServer(t, sh, src)
	t.Cleanup(release) // before the server's Close, which waits for handlers
	cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))

	ctx := ctxT(t)
	errc := make(chan error, 1)
	go func() {
		_, err := cl.GetBlocks(ctx, sh.ID(), []chain.Hash{p.ID()}, 5)
		errc <- err
	}()
	<-entered

	closed := make(chan struct{})
	go func() { _ = srv.Close(); close(closed) }()
	// The stuck request's stream is reset at once...
	select {
	case err := <-errc:
		if err == nil || errors.Is(err, ErrMalformed) {
			t.Fatalf("err = %v, want a reset", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("in-flight request not reset by Close")
	}
	// ...but Close waits for its handler to leave the source.
	select {
	case <-closed:
		t.Fatal("Close returned while a handler was in the source")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if _, err := cl.Status(ctxT(t), sh.ID()); err == nil {
		t.Fatal("closed server answered")
	}
}

func hb(h chain.Hash) []byte { return h[:] }

func TestClientRefusesBadArguments(t *testing.T) {
	p := chain.TestNet()
	ch, sh := mockPair(t)
	srv, _ := startServer(t, sh, newMemSource(chain.NewChain(p)))
	cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))
	long := make([]chain.Hash, MaxLocatorLen+1)
	for i := range long {
		long[i] = p.ID()
	}
	for name, call := range map[string]func() error{
		"no locator":   func() error { _, err := cl.GetBlocks(ctxT(t), sh.ID(), nil, 1); return err },
		"long locator": func() error { _, err := cl.GetBlocks(ctxT(t), sh.ID(), long, 1); return err },
		"zero hash":    func() error { _, err := cl.GetBlocks(ctxT(t), sh.ID(), []chain.Hash{{}}, 1); return err },
		"zero max":     func() error { _, err := cl.GetBlocks(ctxT(t), sh.ID(), []chain.Hash{p.ID()}, 0); return err },
		"max over a page": func() error {
			_, err := cl.GetBlocks(ctxT(t), sh.ID(), []chain.Hash{p.ID()}, MaxBlocksPerPage+1)
			return err
		},
	} {
		// Our own mistakes are errors, but never blamed on the peer.
		if err := call(); err == nil || errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if st := srv.Stats(); st != (ServerStats{}) {
		t.Fatalf("bad requests reached the server: %+v", st)
	}
	if _, err := NewClient(ch, newMemSource(chain.NewChain(p)), strings.Repeat("a", MaxAgentLen+1), nil); err == nil {
		t.Fatal("NewClient accepted an agent over MaxAgentLen")
	}
	if _, err := NewClient(ch, newMemSource(chain.NewChain(p)), "", nil, WithFirstByteTimeout(0)); err == nil {
		t.Fatal("NewClient accepted a zero timeout")
	}
}

// padRequest returns a frame of req's encoding followed by an unknown
// length-delimited field (number 15) that brings the payload to exactly size
// bytes. Unknown fields parse and are ignored, so the request stays valid;
// only its size changes.
func padRequest(t *testing.T, req *pb.Request, size int) []byte {
	t.Helper()
	payload, err := marshal.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	// A tag byte and a 2-byte length for padding of 128 to 16383 bytes.
	n := size - len(payload) - 3
	if n < 128 || n >= 1<<14 {
		t.Fatalf("padding of %d bytes does not take a 2-byte length", n)
	}
	payload = append(payload, 15<<3|2)
	payload = protowire.AppendVarint(payload, uint64(n))
	payload = append(payload, make([]byte, n)...)
	if len(payload) != size {
		t.Fatalf("padded to %d bytes, want %d", len(payload), size)
	}
	return append(protowire.AppendVarint(nil, uint64(size)), payload...)
}

// TestRequestSizeLimit: the largest requests the limits allow fit in
// MaxRequestSize; a valid request padded to MaxRequestSize is served, and
// one byte more is answered BAD_REQUEST and reported malformed.
func TestRequestSizeLimit(t *testing.T) {
	loc := make([]chain.Hash, MaxLocatorLen)
	for i := range loc {
		loc[i] = hashOf(byte(i + 1))
	}
	gb := newGetBlocksRequest(loc, 1)
	gb.GetGetBlocks().MaxBlocks = math.MaxUint32
	work := new(big.Int).Lsh(big.NewInt(1), 8*MaxWorkLen)
	work.Sub(work, big.NewInt(1))
	st := newStatusRequest(Status{Genesis: hashOf(1), Tip: hashOf(2), Height: math.MaxUint64 - 1, Work: work, Agent: strings.Repeat("a", MaxAgentLen)})
	for name, req := range map[string]*pb.Request{"largest get_blocks": gb, "largest status": st} {
		if err := ValidateRequest(req); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n := marshal.Size(req); n > MaxRequestSize {
			t.Errorf("%s is %d bytes, over MaxRequestSize %d", name, n, MaxRequestSize)
		} else {
			t.Logf("%s: %d bytes of %d", name, n, MaxRequestSize)
		}
	}

	p := chain.TestNet()
	ch, sh := mockPair(t)
	var malformed atomic.Int32
	srv, err := NewServer(ServerConfig{
		Host:        sh,
		Source:      newMemSource(buildChain(t, p, 3, plainData)),
		OnMalformed: func(peer.ID, error) { malformed.Add(1) },
		Logger:      testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { _ = srv.Close() })
	req := newGetBlocksRequest([]chain.Hash{p.ID()}, 2)
	if resp := rawRequest(t, ch, sh.ID(), padRequest(t, req, MaxRequestSize)); resp.GetCode() != CodeOK || len(resp.GetBlocks().GetBlocks()) != 2 {
		t.Fatalf("a request of MaxRequestSize bytes: %v, want OK with 2 blocks", resp)
	}
	resp := rawRequest(t, ch, sh.ID(), padRequest(t, req, MaxRequestSize+1))
	if resp.GetCode() != CodeBadRequest || !strings.Contains(resp.GetMessage(), "limit") {
		t.Fatalf("a request one byte over MaxRequestSize: %v, want BAD_REQUEST naming the limit", resp)
	}
	waitStats(t, srv, func(st ServerStats) bool { return st.Served == 1 && st.Refused == 1 })
	// OnMalformed follows the answer (the peer may read it first).
	deadline := time.Now().Add(5 * time.Second)
	for malformed.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := malformed.Load(); n != 1 {
		t.Fatalf("an oversized request reported malformed %d times, want 1", n)
	}
}
