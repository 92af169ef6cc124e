package protocol

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/multiformats/go-varint"
	"google.golang.org/protobuf/proto"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/protocol/pb"
)

// Native fuzz targets for every decoder. Run each with, for example,
//
//	go test ./protocol -run '^$' -fuzz '^FuzzReadFrame$' -fuzztime 15s
//
// Inputs that once failed are kept under testdata/fuzz and rerun by go test.

func goldenBytes(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzReadFrame(f *testing.F) {
	f.Add(goldenBytes(f, goldenStatusRequest))
	f.Add(goldenBytes(f, goldenBlocksResponse))
	f.Add([]byte{})
	f.Add([]byte{0x00})
	f.Add([]byte{0x80})
	f.Add([]byte{0x81, 0x00})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{0x03, 1, 2})
	f.Add([]byte{0x02, 1, 2, 3, 4})
	const limit = 1 << 10
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, plain := range []bool{false, true} {
			br := bytes.NewReader(data)
			var r io.Reader = br
			if plain {
				r = iotest.OneByteReader(br)
			}
			payload, err := ReadFrame(r, limit)
			if err != nil {
				// A bytes.Reader fails only by ending: either before the
				// frame (io.EOF) or as a malformed frame.
				if err != io.EOF && !errors.Is(err, ErrMalformed) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				if err == io.EOF && len(data) != 0 {
					t.Fatalf("io.EOF on %d bytes of input", len(data))
				}
				continue
			}
			if len(payload) == 0 || len(payload) > limit {
				t.Fatalf("payload of %d bytes passed, limit %d", len(payload), limit)
			}
			// The frame read is exactly the input's prefix, and nothing
			// past it was consumed.
			frame := append(varint.ToUvarint(uint64(len(payload))), payload...)
			if !bytes.HasPrefix(data, frame) {
				t.Fatalf("frame %x is not a prefix of the input %x", frame, data)
			}
			if consumed := len(data) - br.Len(); consumed != len(frame) {
				t.Fatalf("consumed %d bytes for a frame of %d", consumed, len(frame))
			}
		}
	})
}

func FuzzRequest(f *testing.F) {
	for _, s := range []string{goldenStatusRequest, goldenRangeRequest} {
		f.Add(goldenBytes(f, s)[1:])
	}
	loc := []chain.Hash{hashOf(1), hashOf(2), hashOf(3)}
	for _, m := range []proto.Message{
		goldenBlocksReq(),
		newGetBlocksRequest(loc, 512),
		newGetBlocksRequest(loc, 0),
		newStatusRequest(Status{Genesis: hashOf(1), Tip: hashOf(1), Work: chain.BlockWork(1)}),
		newGetRangeRequest(RangeRequest{Tip: hashOf(4), TipHeight: 9, Start: 9, Count: 1}),
		&pb.Request{Body: &pb.Request_GetRange{GetRange: &pb.GetRange{Tip: fill(4, 32), TipHeight: 1 << 40, Start: 1, Count: 1 << 40, MaxBytes: 1 << 31}}},
		&pb.Request{},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(pb.Request)
		if err := proto.Unmarshal(data, req); err != nil {
			return
		}
		if err := ValidateRequest(req); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("validation error without ErrMalformed: %v", err)
			}
			return
		}
		// A valid request converts, and its conversion re-encodes to an
		// equivalent valid request: what the server acts on is what was
		// sent.
		var again *pb.Request
		switch body := req.GetBody().(type) {
		case *pb.Request_Status:
			st, err := StatusFromPB(body.Status.GetStatus())
			if err != nil {
				t.Fatalf("valid status does not convert: %v", err)
			}
			again = newStatusRequest(st)
		case *pb.Request_GetBlocks:
			gb := body.GetBlocks
			loc := make([]chain.Hash, len(gb.GetLocator()))
			for i, h := range gb.GetLocator() {
				loc[i] = chain.Hash(h)
			}
			again = newGetBlocksRequest(loc, int(gb.GetMaxBlocks()))
		case *pb.Request_GetRange:
			gr := body.GetRange
			again = newGetRangeRequest(RangeRequest{Tip: chain.Hash(gr.GetTip()), TipHeight: gr.GetTipHeight(),
				Start: gr.GetStart(), Count: gr.GetCount(), MaxBytes: int(gr.GetMaxBytes())})
			if rangeLimit(again.GetGetRange()) != rangeLimit(gr) {
				t.Fatalf("page bound %d re-encoded as %d", rangeLimit(gr), rangeLimit(again.GetGetRange()))
			}
			// A bound over the cap is served as the cap, and re-encoded so.
			if gr.GetMaxBytes() > MaxRangeBytes {
				gr.MaxBytes = MaxRangeBytes
			}
		default:
			t.Fatalf("valid request with body %T", body)
		}
		if err := ValidateRequest(again); err != nil {
			t.Fatalf("re-encoded request invalid: %v", err)
		}
		known := new(pb.Request)
		if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, known); err != nil {
			t.Fatal(err)
		}
		if gr := known.GetGetRange(); gr != nil && gr.GetMaxBytes() > MaxRangeBytes {
			gr.MaxBytes = MaxRangeBytes
		}
		if !proto.Equal(known, again) {
			t.Fatalf("round trip changed the request:\n%v\n%v", known, again)
		}
		// And it fits a frame.
		if _, err := EncodeFrame(again); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzResponse(f *testing.F) {
	statusReq := newStatusRequest(goldenStatus())
	blocksReq := goldenBlocksReq()
	f.Add(goldenBytes(f, goldenBlocksResponse)[1:])
	seeds := []proto.Message{
		pageFor(3, 5),
		pageFor(0, 0),
		&pb.Response{Code: CodeOK, Body: &pb.Response_Status{Status: validStatusPB()}},
		&pb.Response{Code: CodeWrongNetwork, Body: &pb.Response_Status{Status: StatusToPB(Status{Genesis: hashOf(9), Tip: hashOf(9), Work: chain.BlockWork(1)})}},
		&pb.Response{Code: CodeNoCommonAncestor, Message: "none"},
		&pb.Response{},
	}
	for _, m := range seeds {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		resp := new(pb.Response)
		if err := proto.Unmarshal(data, resp); err != nil {
			return
		}
		for _, req := range []*pb.Request{statusReq, blocksReq} {
			err := ValidateResponse(req, resp)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("validation error without ErrMalformed: %v", err)
				}
				continue
			}
			switch c := resp.GetCode(); {
			case req == statusReq && (c == CodeOK || c == CodeWrongNetwork):
				st, err := StatusFromPB(resp.GetStatus())
				if err != nil {
					t.Fatalf("valid status response does not convert: %v", err)
				}
				if (st.Genesis == hashOf(0x11)) != (c == CodeOK) {
					t.Fatalf("code %s with genesis %s", c, st.Genesis.Short())
				}
			case req == blocksReq && c == CodeOK:
				page, err := PageFromPB(resp.GetBlocks())
				if err != nil {
					t.Fatalf("valid page does not convert: %v", err)
				}
				checkPage(t, req.GetGetBlocks(), page)
			case c == CodeOK:
				t.Fatalf("OK response valid for the wrong request")
			}
		}
	})
}

// checkPage asserts what a Client promises of a page it returns.
func checkPage(t *testing.T, gb *pb.GetBlocks, page Page) {
	t.Helper()
	inLocator := false
	for _, h := range gb.GetLocator() {
		inLocator = inLocator || chain.Hash(h) == page.Fork
	}
	if !inLocator {
		t.Fatalf("fork %s not in the locator", page.Fork.Short())
	}
	if len(page.Blocks) > int(gb.GetMaxBlocks()) || len(page.Blocks) > MaxBlocksPerPage {
		t.Fatalf("%d blocks for max %d", len(page.Blocks), gb.GetMaxBlocks())
	}
	prev := page.Fork
	size := 0
	for i, b := range page.Blocks {
		if b.PrevHash != prev || b.Hash.IsZero() || b.Index == 0 {
			t.Fatalf("block %d does not link: %+v", i, b)
		}
		if i > 0 && b.Index != page.Blocks[i-1].Index+1 {
			t.Fatalf("block %d index %d after %d", i, b.Index, page.Blocks[i-1].Index)
		}
		prev = b.Hash
		size += proto.Size(BlockToPB(&b))
	}
	if len(page.Blocks) > 1 && size > MaxPageBytes {
		t.Fatalf("page of %d bytes", size)
	}
}

// FuzzDecodeRange holds the client's one-pass range decoder (rangedec.go)
// to the generated decoder and ValidateResponse: on any payload, for each
// request, either both refuse it (the fast decoder's error wrapping
// ErrMalformed), or both accept it with the same page, or the fast decoder
// leaves it (ok false) to the generated one. What it reads, it reads as
// the generated decoder does; and it reads the deterministic form of every
// valid page, so that a jbc responder's pages always take the fast path.
func FuzzDecodeRange(f *testing.F) {
	reqs := []*pb.Request{
		goldenRangeReq(),
		newGetRangeRequest(RangeRequest{Tip: hashOf(0x99), TipHeight: 202, Start: 201, Count: 2}),
		newGetRangeRequest(RangeRequest{Tip: hashOf(0x99), TipHeight: 300, Start: 201, Count: 5, MaxBytes: 100}),
		newGetRangeRequest(RangeRequest{Tip: hashOf(0x88), TipHeight: 201, Start: 201, Count: 1}),
	}
	f.Add(goldenBytes(f, goldenRangeResponse)[2:])
	one := goldenRange()
	one.GetRange().Blocks = one.GetRange().Blocks[:1]
	for _, m := range []proto.Message{
		one,
		&pb.Response{Code: CodeOK, Body: &pb.Response_Range{Range: &pb.Range{}}},
		&pb.Response{Code: CodeUnknownTip, Message: "no"},
		pageFor(2, 3),
		&pb.Response{},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, req := range reqs {
			fast, ok, ferr := decodeRange(data, req.GetGetRange())
			slow, serr := slowRange(data, req)
			if ferr != nil && !errors.Is(ferr, ErrMalformed) {
				t.Fatalf("fast decoder error without ErrMalformed: %v", ferr)
			}
			if !ok {
				if ferr != nil {
					t.Fatalf("fast decoder left the payload but returned %v", ferr)
				}
				// The generated decoder reads it; if it is a valid page
				// in the deterministic form, the fast one should have.
				if serr == nil {
					resp := &pb.Response{Code: CodeOK, Body: &pb.Response_Range{Range: &pb.Range{SideBranch: slow.SideBranch}}}
					for i := range slow.Blocks {
						resp.GetRange().Blocks = append(resp.GetRange().Blocks, BlockToPB(&slow.Blocks[i]))
					}
					det, err := marshal.Marshal(resp)
					if err != nil {
						t.Fatal(err)
					}
					if _, ok, err := decodeRange(det, req.GetGetRange()); !ok || err != nil {
						t.Fatalf("deterministic form of a valid page left or refused: ok %v, err %v", ok, err)
					}
				}
				continue
			}
			if (ferr == nil) != (serr == nil) {
				t.Fatalf("decoders disagree: fast %v, generated %v", ferr, serr)
			}
			if ferr == nil && !samePage(fast, slow) {
				t.Fatalf("decoders disagree on the page:\n%+v\n%+v", fast, slow)
			}
		}
	})
}
