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
	for _, s := range []string{goldenStatusRequest} {
		f.Add(goldenBytes(f, s)[1:])
	}
	loc := []chain.Hash{hashOf(1), hashOf(2), hashOf(3)}
	for _, m := range []proto.Message{
		goldenBlocksReq(),
		newGetBlocksRequest(loc, 512),
		newGetBlocksRequest(loc, 0),
		newStatusRequest(Status{Genesis: hashOf(1), Tip: hashOf(1), Work: chain.BlockWork(1)}),
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
