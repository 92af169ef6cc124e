package protocol

import (
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/protocol/pb"
)

func validStatusPB() *pb.Status { return StatusToPB(goldenStatus()) }

func TestValidateRequest(t *testing.T) {
	withStatus := func(f func(s *pb.Status)) *pb.Request {
		s := validStatusPB()
		f(s)
		return &pb.Request{Body: &pb.Request_Status{Status: &pb.StatusRequest{Status: s}}}
	}
	withLocator := func(n int, maxBlocks uint32) *pb.Request {
		loc := make([]chain.Hash, n)
		for i := range loc {
			loc[i] = hashOf(byte(i + 1))
		}
		r := newGetBlocksRequest(loc, 1)
		r.GetGetBlocks().MaxBlocks = maxBlocks
		return r
	}
	tests := []struct {
		name string
		req  *pb.Request
		ok   bool
	}{
		{"status", withStatus(func(*pb.Status) {}), true},
		{"status at genesis", withStatus(func(s *pb.Status) { s.Tip, s.Height = s.Genesis, 0 }), true},
		{"status with empty agent", withStatus(func(s *pb.Status) { s.Agent = "" }), true},
		{"status with agent at limit", withStatus(func(s *pb.Status) { s.Agent = strings.Repeat("a", MaxAgentLen) }), true},
		{"status with 33-byte work", withStatus(func(s *pb.Status) { s.TotalWork = fill(0x01, MaxWorkLen) }), true},
		{"get_blocks", withLocator(1, 1), true},
		{"get_blocks, longest locator", withLocator(MaxLocatorLen, MaxBlocksPerPage), true},
		{"get_blocks, max_blocks over the page cap is clamped", withLocator(3, MaxBlocksPerPage+1), true},

		{"no body", &pb.Request{}, false},
		{"status request without status", &pb.Request{Body: &pb.Request_Status{Status: &pb.StatusRequest{}}}, false},
		{"nil status request", &pb.Request{Body: &pb.Request_Status{}}, false},
		{"nil get_blocks", &pb.Request{Body: &pb.Request_GetBlocks{}}, false},
		{"short genesis", withStatus(func(s *pb.Status) { s.Genesis = s.Genesis[:31] }), false},
		{"zero genesis", withStatus(func(s *pb.Status) { s.Genesis = fill(0, 32) }), false},
		{"long tip", withStatus(func(s *pb.Status) { s.Tip = fill(0x22, 33) }), false},
		{"missing tip", withStatus(func(s *pb.Status) { s.Tip = nil }), false},
		{"height 0 above genesis", withStatus(func(s *pb.Status) { s.Height = 0 }), false},
		{"genesis tip at height 3", withStatus(func(s *pb.Status) { s.Tip = s.Genesis }), false},
		{"no work", withStatus(func(s *pb.Status) { s.TotalWork = nil }), false},
		{"work with leading zero", withStatus(func(s *pb.Status) { s.TotalWork = []byte{0, 1, 0x2c} }), false},
		{"work too long", withStatus(func(s *pb.Status) { s.TotalWork = fill(0x01, MaxWorkLen+1) }), false},
		{"work below height+1", withStatus(func(s *pb.Status) { s.TotalWork = []byte{7} }), false},
		{"height at max uint64", withStatus(func(s *pb.Status) { s.Height = ^uint64(0); s.TotalWork = fill(0xff, 32) }), false},
		{"agent too long", withStatus(func(s *pb.Status) { s.Agent = strings.Repeat("a", MaxAgentLen+1) }), false},
		{"empty locator", withLocator(0, 1), false},
		{"locator too long", withLocator(MaxLocatorLen+1, 1), false},
		{"max_blocks 0", withLocator(1, 0), false},
		{"short locator hash", func() *pb.Request { r := withLocator(2, 1); r.GetGetBlocks().Locator[1] = fill(1, 31); return r }(), false},
		{"zero locator hash", func() *pb.Request { r := withLocator(2, 1); r.GetGetBlocks().Locator[0] = fill(0, 32); return r }(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateRequest(tt.req)
			if tt.ok && err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

// pageFor returns a valid OK response to goldenBlocksReq with n linked
// blocks after fork 0x33.., each with data of size dataLen.
func pageFor(n, dataLen int) *pb.Response {
	blocks := make([]*pb.Block, n)
	prev := fill(0x33, 32)
	for i := range blocks {
		h := fill(byte(0x80+i), 32)
		blocks[i] = &pb.Block{Index: uint64(10 + i), Timestamp: int64(1000 + i), Data: strings.Repeat("d", dataLen), PrevHash: prev, Hash: h}
		prev = h
	}
	return &pb.Response{Code: CodeOK, Body: &pb.Response_Blocks{Blocks: &pb.Blocks{Fork: fill(0x33, 32), Blocks: blocks, ServerHeight: uint64(10 + n)}}}
}

func TestValidateResponse(t *testing.T) {
	statusReq := newStatusRequest(goldenStatus())
	blocksReq := goldenBlocksReq() // locator 0x55.., 0x33..; max 16

	withStatus := func(code Code, f func(s *pb.Status)) *pb.Response {
		s := validStatusPB()
		f(s)
		return &pb.Response{Code: code, Body: &pb.Response_Status{Status: s}}
	}
	otherNet := func(s *pb.Status) { s.Genesis = fill(0x99, 32) }
	page := func(n int, f func(b *pb.Blocks)) *pb.Response {
		r := pageFor(n, 10)
		f(r.GetBlocks())
		return r
	}
	// bigPage: two blocks whose encoded sizes sum to just over MaxPageBytes.
	bigPage := pageFor(2, MaxPageBytes/2)
	oneHuge := pageFor(1, MaxDataBytes)

	tests := []struct {
		name string
		req  *pb.Request
		resp *pb.Response
		ok   bool
	}{
		{"status OK", statusReq, withStatus(CodeOK, func(*pb.Status) {}), true},
		{"status WRONG_NETWORK", statusReq, withStatus(CodeWrongNetwork, otherNet), true},
		{"rate limited, no body", statusReq, &pb.Response{Code: CodeRateLimited, Message: "slow down"}, true},
		{"unknown code", blocksReq, &pb.Response{Code: pb.Code(42)}, true},
		{"no common ancestor, body ignored", blocksReq, &pb.Response{Code: CodeNoCommonAncestor, Body: &pb.Response_Blocks{Blocks: &pb.Blocks{}}}, true},
		{"page", blocksReq, pageFor(16, 10), true},
		{"empty page", blocksReq, page(0, func(*pb.Blocks) {}), true},
		{"fork is an older locator hash", blocksReq, page(0, func(b *pb.Blocks) { b.Fork = fill(0x55, 32) }), true},
		{"one block over the byte cap", blocksReq, oneHuge, true},

		{"code unspecified", statusReq, withStatus(pb.Code_CODE_UNSPECIFIED, func(*pb.Status) {}), false},
		{"message too long", statusReq, &pb.Response{Code: CodeInternalError, Message: strings.Repeat("m", MaxMessageLen+1)}, false},
		{"status OK without status", statusReq, &pb.Response{Code: CodeOK}, false},
		{"status OK with blocks", statusReq, pageFor(1, 1), false},
		{"status OK, other genesis", statusReq, withStatus(CodeOK, otherNet), false},
		{"WRONG_NETWORK with our genesis", statusReq, withStatus(CodeWrongNetwork, func(*pb.Status) {}), false},
		{"WRONG_NETWORK without status", statusReq, &pb.Response{Code: CodeWrongNetwork}, false},
		{"status OK, bad status", statusReq, withStatus(CodeOK, func(s *pb.Status) { s.TotalWork = nil }), false},
		{"blocks OK without blocks", blocksReq, &pb.Response{Code: CodeOK}, false},
		{"blocks OK with status", blocksReq, withStatus(CodeOK, func(*pb.Status) {}), false},
		{"blocks WRONG_NETWORK", blocksReq, withStatus(CodeWrongNetwork, otherNet), false},
		{"too many blocks", blocksReq, pageFor(17, 10), false},
		{"fork not in locator", blocksReq, page(0, func(b *pb.Blocks) { b.Fork = fill(0x34, 32) }), false},
		{"short fork", blocksReq, page(0, func(b *pb.Blocks) { b.Fork = fill(0x33, 31) }), false},
		{"first block not after fork", blocksReq, page(3, func(b *pb.Blocks) { b.Blocks[0].PrevHash = fill(0x55, 32) }), false},
		{"broken link", blocksReq, page(3, func(b *pb.Blocks) { b.Blocks[2].PrevHash = b.Blocks[0].Hash }), false},
		{"index gap", blocksReq, page(3, func(b *pb.Blocks) { b.Blocks[2].Index++ }), false},
		{"genesis block in page", blocksReq, page(1, func(b *pb.Blocks) { b.Blocks[0].Index = 0 }), false},
		{"short block hash", blocksReq, page(2, func(b *pb.Blocks) { b.Blocks[1].Hash = fill(9, 31) }), false},
		{"nil block", blocksReq, page(2, func(b *pb.Blocks) { b.Blocks[1] = nil }), false},
		{"data too long", blocksReq, page(1, func(b *pb.Blocks) { b.Blocks[0].Data = strings.Repeat("x", MaxDataBytes+1) }), false},
		{"over the byte cap", blocksReq, bigPage, false},
		{"server height below last block", blocksReq, page(3, func(b *pb.Blocks) { b.ServerHeight = 11 }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateResponse(tt.req, tt.resp)
			if tt.ok && err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}

	// The byte-cap case is only meaningful if each block fits alone.
	sizes := 0
	for _, b := range bigPage.GetBlocks().GetBlocks() {
		if s := proto.Size(b); s > MaxPageBytes {
			t.Fatalf("bigPage block of %d bytes is over the cap by itself", s)
		} else {
			sizes += s
		}
	}
	if sizes <= MaxPageBytes {
		t.Fatalf("bigPage is %d bytes, not over the cap", sizes)
	}
}

func TestBlockConversion(t *testing.T) {
	c := buildChain(t, chain.TestNet(), 3, plainData)
	for i := range c.Blocks {
		b := c.Blocks[i]
		m := BlockToPB(&b)
		if i == 0 && len(m.GetPrevHash()) != 0 {
			t.Fatalf("genesis prev_hash on the wire: %x", m.GetPrevHash())
		}
		b.Hash[0] ^= 0xff // BlockToPB must have copied
		got, err := BlockFromPB(m)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.Blocks[i] {
			t.Fatalf("block %d round trip: %+v, want %+v", i, got, c.Blocks[i])
		}
	}
	bad := BlockToPB(&c.Blocks[2])
	bad.PrevHash = nil
	if _, err := BlockFromPB(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("block without prev_hash: err = %v", err)
	}
	g := BlockToPB(&c.Blocks[0])
	g.PrevHash = fill(1, 32)
	if _, err := BlockFromPB(g); !errors.Is(err, ErrMalformed) {
		t.Fatalf("genesis with prev_hash: err = %v", err)
	}
}

func TestStatusConversion(t *testing.T) {
	work, _ := new(big.Int).SetString("1000000000000000000000000000000000000000", 16)
	s := Status{Genesis: hashOf(1), Tip: hashOf(2), Height: 1 << 40, Work: work, Agent: "a"}
	got, err := StatusFromPB(StatusToPB(s))
	if err != nil {
		t.Fatal(err)
	}
	if got.Genesis != s.Genesis || got.Tip != s.Tip || got.Height != s.Height || got.Work.Cmp(work) != 0 || got.Agent != s.Agent {
		t.Fatalf("round trip %+v, want %+v", got, s)
	}
	if _, err := StatusFromPB(StatusToPB(Status{Genesis: hashOf(1), Tip: hashOf(2), Height: 1})); !errors.Is(err, ErrMalformed) {
		t.Fatalf("status without work: err = %v", err)
	}
}

func TestLocatorHeights(t *testing.T) {
	tests := []struct {
		tip  uint64
		want []uint64
	}{
		{0, []uint64{0}},
		{1, []uint64{1, 0}},
		{5, []uint64{5, 4, 3, 2, 1, 0}},
		{10, []uint64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
		{11, []uint64{11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 0}},
		{100, []uint64{100, 99, 98, 97, 96, 95, 94, 93, 92, 91, 89, 85, 77, 61, 29, 0}},
	}
	for _, tt := range tests {
		if got := LocatorHeights(tt.tip); !slices.Equal(got, tt.want) {
			t.Errorf("LocatorHeights(%d) = %v, want %v", tt.tip, got, tt.want)
		}
	}
	// Any height: newest first, strictly decreasing, genesis last, within
	// the limit.
	for _, tip := range []uint64{12, 1000, 1 << 20, 1 << 40, 1<<63 + 12345, ^uint64(0)} {
		hs := LocatorHeights(tip)
		if hs[0] != tip || hs[len(hs)-1] != 0 || len(hs) > MaxLocatorLen {
			t.Fatalf("LocatorHeights(%d) = %v", tip, hs)
		}
		for i := 1; i < len(hs); i++ {
			if hs[i] >= hs[i-1] {
				t.Fatalf("LocatorHeights(%d) not decreasing at %d: %v", tip, i, hs)
			}
		}
	}
}

func TestCodeError(t *testing.T) {
	err := error(&CodeError{Code: CodeNoCommonAncestor, Message: "none"})
	if !errors.Is(err, ErrNoCommonAncestor) || errors.Is(err, ErrWrongNetwork) || errors.Is(err, ErrMalformed) {
		t.Fatalf("%v matches the wrong sentinels", err)
	}
	var ce *CodeError
	if !errors.As(err, &ce) || ce.Code != CodeNoCommonAncestor {
		t.Fatalf("errors.As: %v", ce)
	}
	if errors.Is(&CodeError{Code: pb.Code(42)}, ErrInternal) {
		t.Fatal("unknown code matched a sentinel")
	}
	// Every non-OK code of the proto has a sentinel.
	for v := range pb.Code_name {
		c := pb.Code(v)
		if c == pb.Code_CODE_UNSPECIFIED || c == CodeOK {
			continue
		}
		if codeErrs[c] == nil {
			t.Errorf("code %s has no sentinel error", c)
		}
	}
}
