package protocol

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/protocol/pb"
)

// Decoding a page on the client, per block: GetBlocks' path through the
// generated types (proto.Unmarshal, ValidateResponse, PageFromPB) against
// GetRange's one-pass decoder, on the same blocks. Run with
//
//	go test ./protocol -run '^$' -bench 'Decode' -benchmem
//
// and compare ns/block and allocs/block.

// benchBlocks returns n linked blocks after height 1000 whose data is an
// entry list of about 70 bytes, so that a block is about 160 bytes on the
// wire: the size of the 100,000-block chains (15.45 MB). Their
// hashes are not proofs of work; decoding does not check that.
func benchBlocks(n int) []chain.Block {
	out := make([]chain.Block, n)
	prev := sha256.Sum256([]byte("bench parent"))
	for i := range out {
		b := &out[i]
		b.Index = 1001 + uint64(i)
		b.Timestamp = 1577836800 + int64(b.Index)*30
		b.Data = fmt.Sprintf(`["payment %08d from alice to bob","fee %04d"]`, i, i%10000)
		b.PrevHash = prev
		b.Nonce = uint64(i) * 7919
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], b.Index)
		b.Hash = sha256.Sum256(append(prev[:], buf[:]...))
		prev = b.Hash
	}
	return out
}

// blocksPayload is a GetBlocks answer holding blocks, and its request.
func blocksPayload(b testing.TB, blocks []chain.Block) ([]byte, *pb.Request) {
	page := &pb.Blocks{Fork: blocks[0].PrevHash[:], ServerHeight: blocks[len(blocks)-1].Index}
	for i := range blocks {
		page.Blocks = append(page.Blocks, BlockToPB(&blocks[i]))
	}
	payload, err := marshal.Marshal(&pb.Response{Code: CodeOK, Body: &pb.Response_Blocks{Blocks: page}})
	if err != nil {
		b.Fatal(err)
	}
	return payload, newGetBlocksRequest([]chain.Hash{blocks[0].PrevHash}, MaxBlocksPerPage)
}

// rangePayload is a GetRange answer holding blocks, and its request.
func rangePayload(b testing.TB, blocks []chain.Block) ([]byte, *pb.Request) {
	r := &pb.Range{}
	for i := range blocks {
		r.Blocks = append(r.Blocks, BlockToPB(&blocks[i]))
	}
	payload, err := marshal.Marshal(&pb.Response{Code: CodeOK, Body: &pb.Response_Range{Range: r}})
	if err != nil {
		b.Fatal(err)
	}
	last := blocks[len(blocks)-1]
	return payload, newGetRangeRequest(RangeRequest{Tip: last.Hash, TipHeight: last.Index, Start: blocks[0].Index, Count: uint64(len(blocks))})
}

func perBlock(b *testing.B, n int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/block")
}

// BenchmarkDecodeGetBlocks512 is the client's decoding of a full GetBlocks
// page (512 blocks) as /jbc/chain/1.0.0 does it.
func BenchmarkDecodeGetBlocks512(b *testing.B) {
	blocks := benchBlocks(MaxBlocksPerPage)
	payload, req := blocksPayload(b, blocks)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		resp := new(pb.Response)
		if err := proto.Unmarshal(payload, resp); err != nil {
			b.Fatal(err)
		}
		if err := ValidateResponse(req, resp); err != nil {
			b.Fatal(err)
		}
		page, err := PageFromPB(resp.GetBlocks())
		if err != nil || len(page.Blocks) != len(blocks) {
			b.Fatal(err)
		}
	}
	perBlock(b, len(blocks))
}

// BenchmarkDecodeGetRange512 is GetRange's decoding of the same 512
// blocks.
func BenchmarkDecodeGetRange512(b *testing.B) {
	blocks := benchBlocks(MaxBlocksPerPage)
	payload, req := rangePayload(b, blocks)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		page, ok, err := decodeRange(payload, req.GetGetRange())
		if !ok || err != nil || len(page.Blocks) != len(blocks) {
			b.Fatal(ok, err)
		}
	}
	perBlock(b, len(blocks))
}

// BenchmarkDecodeGetRangeFull is GetRange's decoding of a full page: as
// many of these blocks as MaxRangeBytes holds (about 13,000).
func BenchmarkDecodeGetRangeFull(b *testing.B) {
	blocks := benchBlocks(MaxRangeBytes / 100)
	size := 0
	for i := range blocks {
		if size += proto.Size(BlockToPB(&blocks[i])); size > MaxRangeBytes {
			blocks = blocks[:i]
			break
		}
	}
	payload, req := rangePayload(b, blocks)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		page, ok, err := decodeRange(payload, req.GetGetRange())
		if !ok || err != nil || len(page.Blocks) != len(blocks) {
			b.Fatal(ok, err)
		}
	}
	perBlock(b, len(blocks))
}

// Fetching a chain from a server on loopback (real hosts, TCP), whole
// requests: GetBlocks as the node's sync does it today (one page of 512
// in flight), against GetRange with RangeWindow requests in flight in
// pages of up to MaxRangeBytes. Run with
//
//	go test ./protocol -run '^$' -bench 'Fetch' -benchtime 5x
//
// On loopback the link is no limit: this measures the per-request and
// per-block costs of both sides, which share the machine.

var benchChain struct {
	once sync.Once
	c    *chain.Chain
}

const benchFetchBlocks = 20000

func benchFetchChain(b *testing.B) *chain.Chain {
	benchChain.once.Do(func() {
		benchChain.c = buildChain(b, chain.TestNet(), benchFetchBlocks, func(i uint64) string {
			return fmt.Sprintf(`["payment %08d from alice to bob","fee %04d"]`, i, i%10000)
		})
	})
	return benchChain.c
}

func BenchmarkFetchGetBlocks(b *testing.B) {
	c := benchFetchChain(b)
	ch, sh := loopbackPair(b)
	startServer(b, sh, storeOf(b, c))
	cl := newTestClient(b, ch, newMemSource(chain.NewChain(c.Params)))
	b.ResetTimer()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		loc := []chain.Hash{c.Params.ID()}
		got := 0
		for got < benchFetchBlocks {
			page, err := cl.GetBlocks(ctx, sh.ID(), loc, MaxBlocksPerPage)
			if err != nil {
				b.Fatal(err)
			}
			got += len(page.Blocks)
			loc = []chain.Hash{page.Blocks[len(page.Blocks)-1].Hash}
		}
		cancel()
	}
	b.ReportMetric(float64(b.N*benchFetchBlocks)/b.Elapsed().Seconds(), "blocks/s")
}

func BenchmarkFetchGetRange(b *testing.B) {
	c := benchFetchChain(b)
	ch, sh := loopbackPair(b)
	startServer(b, sh, storeOf(b, c))
	cl := newTestClient(b, ch, newMemSource(chain.NewChain(c.Params)))
	tip := c.TipEntry()
	b.ResetTimer()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		// RangeWindow workers, each a share of the chain.
		ranges := splitRanges(benchFetchBlocks, benchFetchBlocks/RangeWindow+1)
		var wg sync.WaitGroup
		for _, r := range ranges {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := fetchRange(ctx, cl, sh.ID(), tip, r[0], r[1], 0); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		cancel()
	}
	b.ReportMetric(float64(b.N*benchFetchBlocks)/b.Elapsed().Seconds(), "blocks/s")
}

// BenchmarkServeRangeWalk is the server's cost of a GetRange whose tip is
// on a side branch MaxBranchWalk links above the range: the walk down the
// branch (two index reads a link) and the page. Against
// BenchmarkServeRangeBest, the same page of the best chain, it prices a
// link of the walk (MaxBranchWalk's reason).
func BenchmarkServeRangeWalk(b *testing.B) {
	s, side := benchBranchStore(b)
	gr := newGetRangeRequest(RangeRequest{Tip: side.TipEntry().Hash, TipHeight: side.Height(), Start: side.Height() - MaxBranchWalk, Count: 1}).GetGetRange()
	benchServeRange(b, s, gr, MaxBranchWalk)
}

func BenchmarkServeRangeBest(b *testing.B) {
	s, _ := benchBranchStore(b)
	tip := s.Tip()
	// A full page: as many blocks as 2 MiB holds.
	gr := newGetRangeRequest(RangeRequest{Tip: tip.Hash, TipHeight: tip.Height, Start: 1, Count: tip.Height}).GetGetRange()
	benchServeRange(b, s, gr, 0)
}

func benchServeRange(b *testing.B, src BranchSource, gr *pb.GetRange, links int) {
	h := loopbackHost(b)
	srv, err := NewServer(ServerConfig{Host: h, Source: src})
	if err != nil {
		b.Fatal(err)
	}
	tip, err := src.Entry(chain.Hash(gr.GetTip()))
	if err != nil {
		b.Fatal(err)
	}
	var blocks int
	for b.Loop() {
		page, err := srv.readRange(src, tip, gr)
		if err != nil {
			b.Fatal(err)
		}
		blocks = len(page.Blocks)
	}
	b.ReportMetric(float64(blocks), "blocks/page")
	if links > 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*links), "ns/link")
	}
}

var benchBranch struct {
	once sync.Once
	main *chain.Chain
	side *chain.Chain
}

// benchBranchStore returns a store whose best chain has 20,000 blocks, and
// a lighter side branch from height 100 to 5,000, also stored.
func benchBranchStore(b *testing.B) (BranchSource, *chain.Chain) {
	benchBranch.once.Do(func() {
		benchBranch.main = benchFetchChain(b)
		benchBranch.side = branch(b, benchBranch.main, 100, 4900, "side")
	})
	s := storeOf(b, benchBranch.main)
	addBranch(b, s, benchBranch.side, 100)
	return s, benchBranch.side
}
