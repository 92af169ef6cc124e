package protocol

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	p2pprotocol "github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/protocol/pb"
	"github.com/jbc-project/jbc/storage"
)

// Golden vectors of /jbc/chain/1.1.0's new messages; docs/protocol.md
// (section 10) shows them decoded field by field.
const (
	// A GetRange request for heights 201 .. 500 of the chain ending at tip
	// 0x66.. at height 1000, in pages of at most 1 MiB.
	goldenRangeRequest = "31" + // frame length 49
		"1a2f" + // Request.get_range (3), 47 bytes
		"0a20" + "6666666666666666666666666666666666666666666666666666666666666666" + // tip
		"10e807" + // tip_height 1000
		"18c901" + // start 201
		"20ac02" + // count 300
		"28808040" // max_bytes 1048576

	// An OK response with a page of two blocks, 201 and 202 (the second
	// with nonce 0, so omitted), read from a side branch.
	goldenRangeResponse = "ae01" + // frame length 174
		"0801" + // code CODE_OK
		"2aa901" + // Response.range (5), 169 bytes
		"0a52" + // Range.blocks (1), 82 bytes
		"08c901" + // index 201
		"10c9c3aff005" + // timestamp 1577837001
		"1a0161" + // data "a"
		"2220" + "7777777777777777777777777777777777777777777777777777777777777777" + // prev_hash
		"2807" + // nonce 7
		"3220" + "8888888888888888888888888888888888888888888888888888888888888888" + // hash
		"0a51" + // Range.blocks (1), 81 bytes
		"08ca01" + // index 202
		"10cac3aff005" + // timestamp 1577837002
		"1a026263" + // data "bc"
		"2220" + "8888888888888888888888888888888888888888888888888888888888888888" + // prev_hash
		"3220" + "9999999999999999999999999999999999999999999999999999999999999999" + // hash
		"1001" // side_branch true
)

func goldenRangeReq() *pb.Request {
	return newGetRangeRequest(RangeRequest{Tip: hashOf(0x66), TipHeight: 1000, Start: 201, Count: 300, MaxBytes: 1 << 20})
}

func goldenRange() *pb.Response {
	return &pb.Response{Code: CodeOK, Body: &pb.Response_Range{Range: &pb.Range{SideBranch: true, Blocks: []*pb.Block{
		{Index: 201, Timestamp: 1577837001, Data: "a", PrevHash: fill(0x77, 32), Nonce: 7, Hash: fill(0x88, 32)},
		{Index: 202, Timestamp: 1577837002, Data: "bc", PrevHash: fill(0x88, 32), Hash: fill(0x99, 32)},
	}}}}
}

func TestGoldenRangeRequest(t *testing.T) {
	if got := hex.EncodeToString(mustFrame(t, goldenRangeReq())); got != goldenRangeRequest {
		t.Fatalf("get_range frame\n got %s\nwant %s", got, goldenRangeRequest)
	}
	buf, err := ReadFrame(bytes.NewReader(goldenBytes(t, goldenRangeRequest)), MaxRequestSize)
	if err != nil {
		t.Fatal(err)
	}
	req := new(pb.Request)
	if err := proto.Unmarshal(buf, req); err != nil {
		t.Fatal(err)
	}
	if err := ValidateRequest(req); err != nil {
		t.Fatal(err)
	}
	gr := req.GetGetRange()
	if chain.Hash(gr.GetTip()) != hashOf(0x66) || gr.GetTipHeight() != 1000 || gr.GetStart() != 201 || gr.GetCount() != 300 || rangeLimit(gr) != 1<<20 {
		t.Fatalf("decoded %v", gr)
	}
}

func TestGoldenRangeResponse(t *testing.T) {
	if got := hex.EncodeToString(mustFrame(t, goldenRange())); got != goldenRangeResponse {
		t.Fatalf("range frame\n got %s\nwant %s", got, goldenRangeResponse)
	}
	payload, err := ReadFrame(bytes.NewReader(goldenBytes(t, goldenRangeResponse)), MaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	want := RangePage{SideBranch: true, Blocks: []chain.Block{
		{Index: 201, Timestamp: 1577837001, Data: "a", PrevHash: hashOf(0x77), Nonce: 7, Hash: hashOf(0x88)},
		{Index: 202, Timestamp: 1577837002, Data: "bc", PrevHash: hashOf(0x88), Hash: hashOf(0x99)},
	}}
	// Both decoders read it, to the same page.
	fast, ok, err := decodeRange(payload, goldenRangeReq().GetGetRange())
	if !ok || err != nil {
		t.Fatalf("fast decoder: ok %v, err %v", ok, err)
	}
	slow, err := slowRange(payload, goldenRangeReq())
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []RangePage{fast, slow} {
		if !samePage(got, want) {
			t.Fatalf("decoded %+v\nwant %+v", got, want)
		}
	}
}

// slowRange is how the client decodes a range response the fast decoder
// leaves: the generated decoder, ValidateResponse, RangeFromPB.
func slowRange(payload []byte, req *pb.Request) (RangePage, error) {
	resp := new(pb.Response)
	if err := proto.Unmarshal(payload, resp); err != nil {
		return RangePage{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := ValidateResponse(req, resp); err != nil {
		return RangePage{}, err
	}
	if resp.GetCode() != CodeOK {
		return RangePage{}, &CodeError{Code: resp.GetCode()}
	}
	return RangeFromPB(resp.GetRange())
}

func samePage(a, b RangePage) bool {
	if a.SideBranch != b.SideBranch || len(a.Blocks) != len(b.Blocks) {
		return false
	}
	for i := range a.Blocks {
		if a.Blocks[i] != b.Blocks[i] {
			return false
		}
	}
	return true
}

func TestValidateGetRange(t *testing.T) {
	ok := func() *pb.GetRange {
		return &pb.GetRange{Tip: fill(1, 32), TipHeight: 10, Start: 3, Count: 8}
	}
	for _, tc := range []struct {
		name  string
		edit  func(*pb.GetRange)
		valid bool
	}{
		{"valid", func(*pb.GetRange) {}, true},
		{"to the tip", func(g *pb.GetRange) { g.Start, g.Count = 1, 10 }, true},
		{"the tip alone", func(g *pb.GetRange) { g.Start, g.Count = 10, 1 }, true},
		{"max_bytes over the cap", func(g *pb.GetRange) { g.MaxBytes = 1 << 31 }, true},
		{"no tip", func(g *pb.GetRange) { g.Tip = nil }, false},
		{"short tip", func(g *pb.GetRange) { g.Tip = fill(1, 31) }, false},
		{"zero tip", func(g *pb.GetRange) { g.Tip = fill(0, 32) }, false},
		{"start 0 (the genesis)", func(g *pb.GetRange) { g.Start = 0 }, false},
		{"count 0", func(g *pb.GetRange) { g.Count = 0 }, false},
		{"past the tip", func(g *pb.GetRange) { g.Count = 9 }, false},
		{"start past the tip", func(g *pb.GetRange) { g.Start, g.Count = 11, 1 }, false},
		{"tip at the genesis", func(g *pb.GetRange) { g.TipHeight, g.Start, g.Count = 0, 0, 1 }, false},
		{"count overflowing", func(g *pb.GetRange) { g.Count = ^uint64(0) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := ok()
			tc.edit(g)
			err := ValidateRequest(&pb.Request{Body: &pb.Request_GetRange{GetRange: g}})
			if (err == nil) != tc.valid || (err != nil && !errors.Is(err, ErrMalformed)) {
				t.Fatalf("err = %v, want valid %v", err, tc.valid)
			}
		})
	}
}

// rangePB returns an OK range response with c's blocks at heights from..to.
func rangePB(c *chain.Chain, from, to uint64) *pb.Response {
	r := &pb.Range{}
	for h := from; h <= to; h++ {
		r.Blocks = append(r.Blocks, BlockToPB(c.BlockAt(h)))
	}
	return &pb.Response{Code: CodeOK, Body: &pb.Response_Range{Range: r}}
}

func TestValidateRange(t *testing.T) {
	p := chain.TestNet()
	c := buildChain(t, p, 12, plainData)
	tip := c.TipEntry()
	req := newGetRangeRequest(RangeRequest{Tip: tip.Hash, TipHeight: 12, Start: 4, Count: 9})
	for _, tc := range []struct {
		name  string
		resp  func() *pb.Response
		valid bool
	}{
		{"heights 4 to 12", func() *pb.Response { return rangePB(c, 4, 12) }, true},
		{"a prefix", func() *pb.Response { return rangePB(c, 4, 6) }, true},
		{"one block", func() *pb.Response { return rangePB(c, 4, 4) }, true},
		{"empty", func() *pb.Response { return rangePB(c, 4, 3) }, false},
		{"not from start", func() *pb.Response { return rangePB(c, 5, 8) }, false},
		{"too many", func() *pb.Response { return rangePB(c, 3, 12) }, false},
		{"a gap", func() *pb.Response {
			r := rangePB(c, 4, 8)
			bs := r.GetRange().Blocks
			r.GetRange().Blocks = append(bs[:2], bs[3:]...)
			return r
		}, false},
		{"not linked", func() *pb.Response {
			r := rangePB(c, 4, 6)
			r.GetRange().Blocks[1].PrevHash = fill(9, 32)
			return r
		}, false},
		{"another tip at the tip's height", func() *pb.Response {
			r := rangePB(c, 4, 12)
			r.GetRange().Blocks[8].Hash = fill(9, 32)
			return r
		}, false},
		{"OK without a body", func() *pb.Response { return &pb.Response{Code: CodeOK} }, false},
		{"OK with a page of GetBlocks", func() *pb.Response { return pageFor(3, 5) }, false},
		{"unknown tip", func() *pb.Response { return &pb.Response{Code: CodeUnknownTip} }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateResponse(req, tc.resp())
			if (err == nil) != tc.valid || (err != nil && !errors.Is(err, ErrMalformed)) {
				t.Fatalf("err = %v, want valid %v", err, tc.valid)
			}
			// The fast decoder agrees.
			payload, merr := proto.Marshal(tc.resp())
			if merr != nil {
				t.Fatal(merr)
			}
			if _, ok, ferr := decodeRange(payload, req.GetGetRange()); ok && (ferr == nil) != tc.valid {
				t.Fatalf("fast decoder: err = %v, want valid %v", ferr, tc.valid)
			}
		})
	}

	// The byte bound: two blocks over max_bytes are malformed, one is not.
	small := newGetRangeRequest(RangeRequest{Tip: tip.Hash, TipHeight: 12, Start: 4, Count: 9, MaxBytes: 100})
	if err := ValidateResponse(small, rangePB(c, 4, 5)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("two blocks over 100 bytes: err = %v", err)
	}
	if err := ValidateResponse(small, rangePB(c, 4, 4)); err != nil {
		t.Fatalf("one block: %v", err)
	}
}

// TestDecodeRangeForms: the fast decoder reads the deterministic form and
// leaves every other encoding of a valid page to the generated decoder,
// which then accepts it: the same page either way.
func TestDecodeRangeForms(t *testing.T) {
	p := chain.TestNet()
	c := buildChain(t, p, 6, plainData)
	req := newGetRangeRequest(RangeRequest{Tip: c.TipEntry().Hash, TipHeight: 6, Start: 2, Count: 5})
	canonical, err := proto.Marshal(rangePB(c, 2, 4))
	if err != nil {
		t.Fatal(err)
	}
	want, err := slowRange(canonical, req)
	if err != nil {
		t.Fatal(err)
	}
	got, ok, err := decodeRange(canonical, req.GetGetRange())
	if !ok || err != nil || !samePage(got, want) {
		t.Fatalf("canonical: ok %v err %v page %+v", ok, err, got)
	}

	withUnknown := protowire.AppendTag(append([]byte(nil), canonical...), 15, protowire.VarintType)
	withUnknown = protowire.AppendVarint(withUnknown, 1)
	codeTwice := protowire.AppendVarint(protowire.AppendTag(append([]byte(nil), canonical...), 1, protowire.VarintType), uint64(CodeOK))
	for name, payload := range map[string][]byte{
		"an unknown field":  withUnknown,
		"the code repeated": codeTwice,
	} {
		if _, ok, _ := decodeRange(payload, req.GetGetRange()); ok {
			t.Errorf("%s: read by the fast decoder", name)
		}
		page, err := slowRange(payload, req)
		if err != nil || !samePage(page, want) {
			t.Errorf("%s: generated decoder: %v", name, err)
		}
	}
}

// Server side, on real stores.

// storeOf returns a store (a real bbolt file) holding c's blocks.
func storeOf(t testing.TB, c *chain.Chain) *storage.Store {
	t.Helper()
	s, err := storage.Open(t.TempDir(), c.Params, storage.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if len(c.Blocks) > 1 {
		if _, err := s.AddBlocks(c.Blocks[1:]); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// addBranch stores the blocks of b above height from (a side branch, or a
// reorg if b outweighs what s holds).
func addBranch(t testing.TB, s *storage.Store, b *chain.Chain, from uint64) {
	t.Helper()
	if _, err := s.AddBlocks(b.Blocks[from+1:]); err != nil {
		t.Fatal(err)
	}
}

// sizedData gives blocks data of varied sizes, up to about 3 KiB, so that
// byte bounds fall at irregular places.
func sizedData(i uint64) string {
	return fmt.Sprintf("block %d ", i) + strings.Repeat("x", int(i*7919%3000))
}

func wantBlocks(t *testing.T, got []chain.Block, c *chain.Chain, from uint64) {
	t.Helper()
	for i, b := range got {
		if w := c.BlockAt(from + uint64(i)); w == nil || b != *w {
			t.Fatalf("block %d of the page (height %d) differs from the chain's", i, from+uint64(i))
		}
	}
}

func TestGetRangeBestChain(t *testing.T) {
	p := chain.TestNet()
	c := buildChain(t, p, 300, sizedData)
	ch, sh := mockPair(t)
	srv, _ := startServer(t, sh, storeOf(t, c))
	cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))
	tip := c.TipEntry()

	// More than GetBlocks' 512-block cap fits a page of small blocks, and
	// the byte bound ends a page of large ones.
	page, err := cl.GetRange(ctxT(t), sh.ID(), RangeRequest{Tip: tip.Hash, TipHeight: 300, Start: 1, Count: 300})
	if err != nil {
		t.Fatal(err)
	}
	if page.SideBranch || len(page.Blocks) != 300 || page.Bytes == 0 {
		t.Fatalf("page of %d blocks, side %v, %d bytes", len(page.Blocks), page.SideBranch, page.Bytes)
	}
	wantBlocks(t, page.Blocks, c, 1)

	const bound = 20 << 10
	page, err = cl.GetRange(ctxT(t), sh.ID(), RangeRequest{Tip: tip.Hash, TipHeight: 300, Start: 100, Count: 150, MaxBytes: bound})
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for i := range page.Blocks {
		size += proto.Size(BlockToPB(&page.Blocks[i]))
	}
	next := proto.Size(BlockToPB(c.BlockAt(100 + uint64(len(page.Blocks)))))
	if len(page.Blocks) < 2 || size > bound || size+next <= bound {
		t.Fatalf("page of %d blocks, %d bytes (next %d) for a bound of %d: not as full as the bound allows", len(page.Blocks), size, next, bound)
	}
	wantBlocks(t, page.Blocks, c, 100)

	// An old tip of the best chain names its prefix.
	mid := c.BlockAt(150)
	page, err = cl.GetRange(ctxT(t), sh.ID(), RangeRequest{Tip: mid.Hash, TipHeight: 150, Start: 140, Count: 11})
	if err != nil || len(page.Blocks) != 11 || page.SideBranch || page.Blocks[10].Hash != mid.Hash {
		t.Fatalf("prefix: %d blocks, side %v, err %v", len(page.Blocks), page.SideBranch, err)
	}

	// Unknown tips: no such block, and a block at another height.
	for _, r := range []RangeRequest{
		{Tip: hashOf(0x42), TipHeight: 300, Start: 1, Count: 1},
		{Tip: tip.Hash, TipHeight: 301, Start: 1, Count: 1},
	} {
		if _, err := cl.GetRange(ctxT(t), sh.ID(), r); !errors.Is(err, ErrUnknownTip) || errors.Is(err, ErrMalformed) {
			t.Fatalf("%+v: err = %v, want ErrUnknownTip", r, err)
		}
	}
	if st := srv.Stats(); st.Served != 3 || st.Refused != 2 || st.Failed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestGetRangeSideBranch: a tip the server's best chain has left is still
// served: heights below the fork by height, above it by hash; and a range
// too far below such a tip is refused with its own code.
func TestGetRangeSideBranch(t *testing.T) {
	p := chain.TestNet()
	old := buildChain(t, p, 60, sizedData)
	heavier := branch(t, old, 40, 30, "new") // forks at 40, 70 blocks: outweighs old
	s := storeOf(t, old)
	addBranch(t, s, heavier, 40)
	if s.Tip().Hash != heavier.TipEntry().Hash {
		t.Fatal("the store did not reorganise")
	}
	ch, sh := mockPair(t)
	srv, _ := startServer(t, sh, s)
	cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))
	oldTip := old.TipEntry()

	for _, r := range []RangeRequest{
		{Start: 1, Count: 60},  // across the fork
		{Start: 30, Count: 11}, // below the fork, to it
		{Start: 10, Count: 5},  // below the fork
		{Start: 41, Count: 20}, // the branch alone
		{Start: 60, Count: 1},  // the tip alone
		{Start: 35, Count: 26, MaxBytes: 4000},
	} {
		r.Tip, r.TipHeight = oldTip.Hash, 60
		page, err := cl.GetRange(ctxT(t), sh.ID(), r)
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if !page.SideBranch || len(page.Blocks) == 0 || (r.MaxBytes == 0 && uint64(len(page.Blocks)) != r.Count) {
			t.Fatalf("%+v: %d blocks, side %v", r, len(page.Blocks), page.SideBranch)
		}
		wantBlocks(t, page.Blocks, old, r.Start)
	}

	// The walk down from the old tip is bounded: heights more than maxWalk
	// links below it are refused, heights within it served.
	srv.maxWalk = 5
	r := RangeRequest{Tip: oldTip.Hash, TipHeight: 60, Start: 50, Count: 3}
	if _, err := cl.GetRange(ctxT(t), sh.ID(), r); !errors.Is(err, ErrBranchTooDeep) {
		t.Fatalf("10 links below the tip: err = %v, want ErrBranchTooDeep", err)
	}
	r.Start = 55
	if page, err := cl.GetRange(ctxT(t), sh.ID(), r); err != nil || len(page.Blocks) != 3 {
		t.Fatalf("5 links below the tip: %d blocks, err %v", len(page.Blocks), err)
	}
}

// TestRangeNegotiation: a client asks for IDRange; a server that speaks
// only 1.0.0 says so by multistream, which is ErrUnsupported and no fault,
// and still serves 1.0.0. A server speaking both serves 1.0.0 as before
// (the same bytes on either ID) and refuses GetRange on a 1.0.0 stream,
// as a 1.0.0 server does.
func TestRangeNegotiation(t *testing.T) {
	p := chain.TestNet()
	c := buildChain(t, p, 20, plainData)
	tip := c.TipEntry()
	r := RangeRequest{Tip: tip.Hash, TipHeight: 20, Start: 1, Count: 20}

	t.Run("1.0.0 server", func(t *testing.T) {
		ch, sh := mockPair(t)
		startServer(t, sh, newMemSource(c)) // not a BranchSource: 1.0.0 only
		cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))
		_, err := cl.GetRange(ctxT(t), sh.ID(), r)
		if !errors.Is(err, ErrUnsupported) || errors.Is(err, ErrMalformed) {
			t.Fatalf("err = %v, want ErrUnsupported", err)
		}
		if cl.SupportsRange(sh.ID()) {
			t.Fatal("SupportsRange is true for a 1.0.0 server")
		}
		if _, err := cl.GetBlocks(ctxT(t), sh.ID(), []chain.Hash{p.ID()}, 5); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("1.1.0 server", func(t *testing.T) {
		ch, sh := mockPair(t)
		srv, _ := startServer(t, sh, storeOf(t, c))
		if got := srv.Protocols(); len(got) != 2 || got[0] != IDRange || got[1] != ID {
			t.Fatalf("Protocols() = %v", got)
		}
		cl := newTestClient(t, ch, newMemSource(chain.NewChain(p)))
		// The hosts connected before the server started: identify's push
		// tells the client, or the first GetRange's negotiation.
		if _, err := cl.GetRange(ctxT(t), sh.ID(), r); err != nil {
			t.Fatal(err)
		}
		if !cl.SupportsRange(sh.ID()) {
			t.Fatal("SupportsRange is false for a 1.1.0 server")
		}
		// 1.0.0 requests get the same bytes on either ID.
		for _, req := range []*pb.Request{
			newStatusRequest(Status{Genesis: p.ID(), Tip: p.ID(), Work: chain.BlockWork(p.Bits)}),
			newGetBlocksRequest([]chain.Hash{c.BlockAt(7).Hash, p.ID()}, 5),
		} {
			frame := mustFrame(t, req)
			a := rawRequestOn(t, ch, sh, ID, frame)
			b := rawRequestOn(t, ch, sh, IDRange, frame)
			if !bytes.Equal(a, b) || len(a) == 0 {
				t.Fatalf("%T answered differently on the two IDs:\n%x\n%x", req.GetBody(), a, b)
			}
		}
		// GetRange on a 1.0.0 stream is a bad request.
		got := new(pb.Response)
		if err := proto.Unmarshal(rawRequestOn(t, ch, sh, ID, mustFrame(t, newGetRangeRequest(r))), got); err != nil {
			t.Fatal(err)
		}
		if got.GetCode() != CodeBadRequest || !strings.Contains(got.GetMessage(), "1.0.0") {
			t.Fatalf("GetRange on 1.0.0: %v", got)
		}
	})
}

// rawRequestOn sends frame on a stream of protocol id and returns the
// response payload.
func rawRequestOn(t *testing.T, from, to host.Host, id string, frame []byte) []byte {
	t.Helper()
	s, err := from.NewStream(ctxT(t), to.ID(), p2pprotocol.ID(id))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Write(frame); err != nil {
		t.Fatal(err)
	}
	_ = s.CloseWrite()
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf, err := ReadFrame(s, MaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}
