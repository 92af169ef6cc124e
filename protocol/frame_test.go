package protocol

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"math/big"
	"strings"
	"testing"
	"testing/iotest"

	"google.golang.org/protobuf/proto"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/protocol/pb"
)

// Golden vectors: the exact bytes of two frames. Another implementation of
// the protocol must produce and accept these; docs/protocol.md shows them
// decoded field by field. A change here is a wire format change.
const (
	// A status request carrying Status{genesis 0x11.., tip 0x22..,
	// height 7, total_work 300, agent "jbc/test"}.
	goldenStatusRequest = "58" + // frame length 88
		"0a56" + // Request.status (1), 86 bytes
		"0a54" + // StatusRequest.status (1), 84 bytes
		"0a20" + "1111111111111111111111111111111111111111111111111111111111111111" + // genesis
		"1220" + "2222222222222222222222222222222222222222222222222222222222222222" + // tip
		"1807" + // height 7
		"2202012c" + // total_work 0x012c = 300
		"2a086a62632f74657374" // agent "jbc/test"

	// The same status request from a peer that chose the receiver: keep
	// set (field 2 of StatusRequest).
	goldenStatusRequestKeep = "5a" + // frame length 90
		"0a58" + // Request.status (1), 88 bytes
		"0a54" + // StatusRequest.status (1), 84 bytes
		"0a20" + "1111111111111111111111111111111111111111111111111111111111111111" + // genesis
		"1220" + "2222222222222222222222222222222222222222222222222222222222222222" + // tip
		"1807" + // height 7
		"2202012c" + // total_work 0x012c = 300
		"2a086a62632f74657374" + // agent "jbc/test"
		"1001" // StatusRequest.keep (2) true

	// An OK response with a page of one block after fork 0x33...
	goldenBlocksResponse = "7f" + // frame length 127
		"0801" + // code CODE_OK
		"227b" + // Response.blocks (4), 123 bytes
		"0a20" + "3333333333333333333333333333333333333333333333333333333333333333" + // fork
		"1255" + // Blocks.blocks (2), 85 bytes
		"0801" + // index 1
		"1081c2aff005" + // timestamp 1577836801
		"1a0568656c6c6f" + // data "hello"
		"2220" + "3333333333333333333333333333333333333333333333333333333333333333" + // prev_hash
		"2805" + // nonce 5
		"3220" + "4444444444444444444444444444444444444444444444444444444444444444" + // hash
		"1809" // server_height 9
)

func goldenStatus() Status {
	return Status{Genesis: hashOf(0x11), Tip: hashOf(0x22), Height: 7, Work: big.NewInt(300), Agent: "jbc/test"}
}

func goldenBlocksReq() *pb.Request {
	return newGetBlocksRequest([]chain.Hash{hashOf(0x55), hashOf(0x33)}, 16)
}

func goldenBlocks() *pb.Response {
	return &pb.Response{Code: CodeOK, Body: &pb.Response_Blocks{Blocks: &pb.Blocks{
		Fork:         fill(0x33, 32),
		ServerHeight: 9,
		Blocks: []*pb.Block{{
			Index: 1, Timestamp: 1577836801, Data: "hello",
			PrevHash: fill(0x33, 32), Nonce: 5, Hash: fill(0x44, 32),
		}},
	}}}
}

// TestGoldenStatusRequestKeep: the keep flag's encoding, and that a
// request without it (an older node's) reads as keep false.
func TestGoldenStatusRequestKeep(t *testing.T) {
	st := goldenStatus()
	st.Keep = true
	if got := hex.EncodeToString(mustFrame(t, newStatusRequest(st))); got != goldenStatusRequestKeep {
		t.Fatalf("status request frame with keep\n got %s\nwant %s", got, goldenStatusRequestKeep)
	}
	for golden, want := range map[string]bool{goldenStatusRequestKeep: true, goldenStatusRequest: false} {
		raw, _ := hex.DecodeString(golden)
		buf, err := ReadFrame(bytes.NewReader(raw), MaxFrameSize)
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
		if got := req.GetStatus().GetKeep(); got != want {
			t.Errorf("keep decoded %v, want %v", got, want)
		}
	}
}

func TestGoldenStatusRequest(t *testing.T) {
	got := hex.EncodeToString(mustFrame(t, newStatusRequest(goldenStatus())))
	if got != goldenStatusRequest {
		t.Fatalf("status request frame\n got %s\nwant %s", got, goldenStatusRequest)
	}

	// And the golden bytes decode back to the same status.
	raw, _ := hex.DecodeString(goldenStatusRequest)
	buf, err := ReadFrame(bytes.NewReader(raw), MaxFrameSize)
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
	st, err := StatusFromPB(req.GetStatus().GetStatus())
	if err != nil {
		t.Fatal(err)
	}
	want := goldenStatus()
	if st.Genesis != want.Genesis || st.Tip != want.Tip || st.Height != want.Height || st.Work.Cmp(want.Work) != 0 || st.Agent != want.Agent {
		t.Fatalf("decoded %+v, want %+v", st, want)
	}
}

func TestGoldenBlocksResponse(t *testing.T) {
	got := hex.EncodeToString(mustFrame(t, goldenBlocks()))
	if got != goldenBlocksResponse {
		t.Fatalf("blocks response frame\n got %s\nwant %s", got, goldenBlocksResponse)
	}

	raw, _ := hex.DecodeString(goldenBlocksResponse)
	buf, err := ReadFrame(bytes.NewReader(raw), MaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	resp := new(pb.Response)
	if err := proto.Unmarshal(buf, resp); err != nil {
		t.Fatal(err)
	}
	if err := ValidateResponse(goldenBlocksReq(), resp); err != nil {
		t.Fatal(err)
	}
	page, err := PageFromPB(resp.GetBlocks())
	if err != nil {
		t.Fatal(err)
	}
	b := page.Blocks
	if page.Fork != hashOf(0x33) || page.ServerHeight != 9 || len(b) != 1 ||
		b[0].Index != 1 || b[0].Timestamp != 1577836801 || b[0].Data != "hello" ||
		b[0].PrevHash != hashOf(0x33) || b[0].Nonce != 5 || b[0].Hash != hashOf(0x44) {
		t.Fatalf("decoded page %+v", page)
	}
}

func frameOf(prefix []byte, body []byte) []byte {
	return append(append([]byte(nil), prefix...), body...)
}

func TestReadFrame(t *testing.T) {
	const limit = 200
	body := bytes.Repeat([]byte{0xab}, limit)
	tests := []struct {
		name      string
		in        []byte
		want      []byte // payload on success
		eof       bool   // io.EOF, unwrapped
		malformed bool
	}{
		{name: "one byte", in: []byte{0x01, 0x07}, want: []byte{0x07}},
		{name: "at the limit", in: frameOf([]byte{0xc8, 0x01}, body), want: body},
		{name: "two-byte length", in: frameOf([]byte{0x80, 0x01}, bytes.Repeat([]byte{1}, 128)), want: bytes.Repeat([]byte{1}, 128)},
		{name: "empty stream", in: nil, eof: true},
		{name: "zero length", in: []byte{0x00, 0x01}, malformed: true},
		{name: "over the limit", in: frameOf([]byte{0xc9, 0x01}, append(body, 0)), malformed: true},
		{name: "huge length", in: []byte{0xff, 0xff, 0xff, 0xff, 0x0f}, malformed: true},
		{name: "overlong varint", in: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, malformed: true},
		{name: "non-minimal varint", in: []byte{0x81, 0x00, 0x01}, malformed: true},
		{name: "length cut short", in: []byte{0x80}, malformed: true},
		{name: "body cut short", in: []byte{0x05, 1, 2, 3}, malformed: true},
		{name: "length only", in: []byte{0x05}, malformed: true},
	}
	for _, tt := range tests {
		for _, mode := range []string{"ByteReader", "plain Reader"} {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				var r io.Reader = bytes.NewReader(tt.in)
				if mode == "plain Reader" {
					r = iotest.OneByteReader(r)
				}
				got, err := ReadFrame(r, limit)
				switch {
				case tt.eof:
					if err != io.EOF {
						t.Fatalf("err = %v, want io.EOF", err)
					}
				case tt.malformed:
					if !errors.Is(err, ErrMalformed) {
						t.Fatalf("err = %v, want ErrMalformed", err)
					}
				default:
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, tt.want) {
						t.Fatalf("payload %x, want %x", got, tt.want)
					}
				}
			})
		}
	}
}

// TestReadFrameDoesNotReadAhead checks that the bytes after a frame are left
// in the reader, for both reader kinds.
func TestReadFrameDoesNotReadAhead(t *testing.T) {
	in := []byte{0x02, 0xaa, 0xbb, 0x01, 0xcc}
	for _, plain := range []bool{false, true} {
		br := bytes.NewReader(in)
		var r io.Reader = br
		if plain {
			r = iotest.OneByteReader(br)
		}
		a, err := ReadFrame(r, 10)
		if err != nil {
			t.Fatal(err)
		}
		if br.Len() != 2 {
			t.Fatalf("plain=%v: %d bytes left after the first frame, want 2", plain, br.Len())
		}
		b, err := ReadFrame(r, 10)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, []byte{0xaa, 0xbb}) || !bytes.Equal(b, []byte{0xcc}) {
			t.Fatalf("frames %x %x", a, b)
		}
	}
}

// countingReader records how many bytes were asked for at most in one Read:
// a reader that allocated for the claimed length first would ask for it.
type countingReader struct {
	r       io.Reader
	maxRead int
	total   int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.maxRead = max(c.maxRead, len(p))
	n, err := c.r.Read(p)
	c.total += n
	return n, err
}

// TestReadFrameOversizeBeforeAllocating feeds a length of 2^62 followed by
// an endless stream: the reader must refuse after the length alone, without
// asking for (or allocating) the body.
func TestReadFrameOversizeBeforeAllocating(t *testing.T) {
	length := []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40} // 2^62
	cr := &countingReader{r: io.MultiReader(bytes.NewReader(length), infinite{})}
	_, err := ReadFrame(cr, MaxFrameSize)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
	if cr.total != len(length) || cr.maxRead != 1 {
		t.Fatalf("read %d bytes (largest read %d); want only the %d length bytes, one at a time", cr.total, cr.maxRead, len(length))
	}
	if !strings.Contains(err.Error(), "limit") {
		t.Fatalf("err %q does not name the limit", err)
	}
}

type infinite struct{}

func (infinite) Read(p []byte) (int, error) { return len(p), nil }

// TestTrailingGarbageInFrame: bytes inside a frame after the message that
// do not parse make the frame undecodable.
func TestTrailingGarbageInFrame(t *testing.T) {
	frame := mustFrame(t, newStatusRequest(goldenStatus()))
	payload := append(append([]byte(nil), frame[1:]...), 0xff) // a truncated field key
	req := new(pb.Request)
	if err := proto.Unmarshal(payload, req); err == nil {
		t.Fatal("payload with trailing garbage decoded")
	}
}

func TestEncodeFrameLimits(t *testing.T) {
	if _, err := EncodeFrame(&pb.Request{}); err == nil {
		t.Fatal("empty message encoded")
	}
	big := &pb.Response{Code: CodeOK, Message: strings.Repeat("x", MaxFrameSize)}
	if _, err := EncodeFrame(big); err == nil {
		t.Fatal("oversize message encoded")
	}
	var buf bytes.Buffer
	n, err := WriteFrame(&buf, goldenBlocks())
	if err != nil || n != buf.Len() || hex.EncodeToString(buf.Bytes()) != goldenBlocksResponse {
		t.Fatalf("WriteFrame wrote %d (%v): %x", n, err, buf.Bytes())
	}
}
