package protocol

import (
	"bytes"
	"fmt"
	"math/big"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/protocol/pb"
)

// This file is the one place where messages are checked. Every request a
// Server reads passes ValidateRequest, and every response a Client reads
// passes ValidateResponse, before anything else looks at them. The checks
// are of shape only (lengths, ranges, links between the fields); whether
// blocks obey consensus is for the node to decide.

// malformed returns an error wrapping ErrMalformed.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// ValidateRequest checks that req is a well-formed request of
// /jbc/chain/1.1.0 (IDRange); on a 1.0.0 stream a GetRange is refused too
// (Server.serve), as a 1.0.0 responder would. The error wraps ErrMalformed
// and says which field is wrong.
func ValidateRequest(req *pb.Request) error {
	switch body := req.GetBody().(type) {
	case *pb.Request_Status:
		if body.Status == nil {
			return malformed("status request: missing status")
		}
		return validateStatus("status request", body.Status.GetStatus())
	case *pb.Request_GetBlocks:
		return validateGetBlocks(body.GetBlocks)
	case *pb.Request_GetRange:
		return validateGetRange(body.GetRange)
	case nil:
		return malformed("request: no body")
	default:
		return malformed("request: unknown body %T", body)
	}
}

func validateGetBlocks(gb *pb.GetBlocks) error {
	if gb == nil {
		return malformed("get_blocks: missing")
	}
	n := len(gb.GetLocator())
	if n == 0 || n > MaxLocatorLen {
		return malformed("get_blocks: locator has %d hashes, want 1 to %d", n, MaxLocatorLen)
	}
	for i, h := range gb.GetLocator() {
		if err := checkHash(h); err != nil {
			return malformed("get_blocks: locator[%d]: %v", i, err)
		}
	}
	// A max_blocks over MaxBlocksPerPage is served as MaxBlocksPerPage, so
	// that a later version may raise the cap without breaking this one.
	if gb.GetMaxBlocks() == 0 {
		return malformed("get_blocks: max_blocks is 0")
	}
	return nil
}

func validateGetRange(gr *pb.GetRange) error {
	if gr == nil {
		return malformed("get_range: missing")
	}
	if err := checkHash(gr.GetTip()); err != nil {
		return malformed("get_range: tip: %v", err)
	}
	// The genesis is never sent (every chain of a network shares it), so
	// a range starts at 1 and its tip is above the genesis.
	start, count, tip := gr.GetStart(), gr.GetCount(), gr.GetTipHeight()
	if start == 0 || count == 0 {
		return malformed("get_range: start %d, count %d; both must be at least 1", start, count)
	}
	if start > tip || count > tip-start+1 {
		return malformed("get_range: heights %d and %d more pass the tip's height %d", start, count-1, tip)
	}
	// A max_bytes of 0 or over MaxRangeBytes is served as MaxRangeBytes, so
	// that a later version may raise the cap without breaking this one.
	return nil
}

// rangeLimit returns the page size a GetRange is served within.
func rangeLimit(gr *pb.GetRange) int {
	if m := gr.GetMaxBytes(); m != 0 && m < MaxRangeBytes {
		return int(m)
	}
	return MaxRangeBytes
}

// ValidateResponse checks that resp is a well-formed answer to req, a
// request that passed ValidateRequest. Beyond each field's shape it checks
// that the answer fits the question: an OK or WRONG_NETWORK status reply
// carries a status whose genesis equals or differs from the requester's; an
// OK blocks reply is a linked run of at most the requested number of blocks
// (and of MaxBlocksPerPage), starting after a locator hash, within
// MaxPageBytes unless it is a single block; an OK range reply holds the
// heights asked for, from the first, linked, within the byte bound unless
// it is a single block, and ends in the tip if it reaches its height
// (rangedec.go decodes and checks a range reply in one pass; its fuzz
// target holds it to exactly these rules). Responses with other codes are
// checked only for their message; their body, if any, is ignored. The error
// wraps ErrMalformed.
func ValidateResponse(req *pb.Request, resp *pb.Response) error {
	if resp.GetCode() == pb.Code_CODE_UNSPECIFIED {
		return malformed("response: code unspecified")
	}
	if n := len(resp.GetMessage()); n > MaxMessageLen {
		return malformed("response: message is %d bytes, limit %d", n, MaxMessageLen)
	}
	switch resp.GetCode() {
	case CodeOK, CodeWrongNetwork:
	default:
		return nil
	}

	switch rb := req.GetBody().(type) {
	case *pb.Request_Status:
		st := resp.GetStatus()
		if st == nil {
			return malformed("status response with code %s: no status", resp.GetCode())
		}
		if err := validateStatus("status response", st); err != nil {
			return err
		}
		same := bytes.Equal(st.GetGenesis(), rb.Status.GetStatus().GetGenesis())
		if resp.GetCode() == CodeOK && !same {
			return malformed("status response: code OK but genesis differs from ours")
		}
		if resp.GetCode() == CodeWrongNetwork && same {
			return malformed("status response: code WRONG_NETWORK but genesis is ours")
		}
		return nil
	case *pb.Request_GetBlocks:
		if resp.GetCode() != CodeOK {
			return malformed("get_blocks response: code %s", resp.GetCode())
		}
		return validateBlocks(rb.GetBlocks, resp.GetBlocks())
	case *pb.Request_GetRange:
		if resp.GetCode() != CodeOK {
			return malformed("get_range response: code %s", resp.GetCode())
		}
		return validateRange(rb.GetRange, resp.GetRange())
	default:
		return fmt.Errorf("protocol: ValidateResponse: request has no body")
	}
}

// validateBlocks checks a page against the GetBlocks request it answers.
func validateBlocks(gb *pb.GetBlocks, page *pb.Blocks) error {
	if page == nil {
		return malformed("get_blocks response: no blocks body")
	}

	// The fork is one of the locator hashes we sent.
	if err := checkHash(page.GetFork()); err != nil {
		return malformed("blocks: fork: %v", err)
	}
	found := false
	for _, h := range gb.GetLocator() {
		if bytes.Equal(h, page.GetFork()) {
			found = true
			break
		}
	}
	if !found {
		return malformed("blocks: fork %x is not in the locator", page.GetFork())
	}

	// No more blocks than asked for, nor than a page holds.
	limit := min(int(gb.GetMaxBlocks()), MaxBlocksPerPage)
	blocks := page.GetBlocks()
	if len(blocks) > limit {
		return malformed("blocks: %d blocks, asked for at most %d", len(blocks), limit)
	}

	// Each block has the shape of a non-genesis block and is the child of
	// the one before; the first is the fork's child.
	prev := page.GetFork()
	size := 0
	for i, b := range blocks {
		if err := validateBlock(b); err != nil {
			return malformed("blocks[%d]: %v", i, err)
		}
		if b.GetIndex() == 0 {
			return malformed("blocks[%d]: a genesis block cannot follow a fork", i)
		}
		if !bytes.Equal(b.GetPrevHash(), prev) {
			return malformed("blocks[%d]: prev_hash %x does not link to %x", i, b.GetPrevHash(), prev)
		}
		if i > 0 && b.GetIndex() != blocks[i-1].GetIndex()+1 {
			return malformed("blocks[%d]: index %d follows %d", i, b.GetIndex(), blocks[i-1].GetIndex())
		}
		prev = b.GetHash()
		size += marshal.Size(b)
	}

	// Within the byte cap, unless a single block is over it by itself.
	if len(blocks) > 1 && size > MaxPageBytes {
		return malformed("blocks: %d blocks of %d bytes, page limit %d", len(blocks), size, MaxPageBytes)
	}

	// The server's tip is at or above the last block it sent.
	if n := len(blocks); n > 0 && page.GetServerHeight() < blocks[n-1].GetIndex() {
		return malformed("blocks: server_height %d below last block %d", page.GetServerHeight(), blocks[n-1].GetIndex())
	}
	return nil
}

// validateRange checks a range page against the GetRange request it
// answers.
func validateRange(gr *pb.GetRange, page *pb.Range) error {
	if page == nil {
		return malformed("get_range response: no range body")
	}
	blocks := page.GetBlocks()
	if len(blocks) == 0 {
		return malformed("range: no blocks")
	}
	if uint64(len(blocks)) > gr.GetCount() {
		return malformed("range: %d blocks, asked for at most %d", len(blocks), gr.GetCount())
	}
	size := 0
	for i, b := range blocks {
		if err := validateBlock(b); err != nil {
			return malformed("range[%d]: %v", i, err)
		}
		if want := gr.GetStart() + uint64(i); b.GetIndex() != want {
			return malformed("range[%d]: index %d, want %d", i, b.GetIndex(), want)
		}
		if i > 0 && !bytes.Equal(b.GetPrevHash(), blocks[i-1].GetHash()) {
			return malformed("range[%d]: prev_hash %x does not link to %x", i, b.GetPrevHash(), blocks[i-1].GetHash())
		}
		size += marshal.Size(b)
	}
	if limit := rangeLimit(gr); len(blocks) > 1 && size > limit {
		return malformed("range: %d blocks of %d bytes, limit %d", len(blocks), size, limit)
	}
	if last := blocks[len(blocks)-1]; last.GetIndex() == gr.GetTipHeight() && !bytes.Equal(last.GetHash(), gr.GetTip()) {
		return malformed("range: block %d is %x, not the tip %x asked for", last.GetIndex(), last.GetHash(), gr.GetTip())
	}
	return nil
}

// validateStatus checks a Status message; what names it in errors.
func validateStatus(what string, s *pb.Status) error {
	if s == nil {
		return malformed("%s: missing status", what)
	}
	if err := checkHash(s.GetGenesis()); err != nil {
		return malformed("%s: genesis: %v", what, err)
	}
	if err := checkHash(s.GetTip()); err != nil {
		return malformed("%s: tip: %v", what, err)
	}
	atGenesis := bytes.Equal(s.GetTip(), s.GetGenesis())
	if atGenesis != (s.GetHeight() == 0) {
		return malformed("%s: height %d inconsistent with tip (genesis tip: %v)", what, s.GetHeight(), atGenesis)
	}
	w := s.GetTotalWork()
	if len(w) == 0 || len(w) > MaxWorkLen {
		return malformed("%s: total_work is %d bytes, want 1 to %d", what, len(w), MaxWorkLen)
	}
	if w[0] == 0 {
		return malformed("%s: total_work has a leading zero byte", what)
	}
	// Every block adds at least 2^0 = 1 to the work.
	if h := s.GetHeight(); h == ^uint64(0) || new(big.Int).SetBytes(w).Cmp(new(big.Int).SetUint64(h+1)) < 0 {
		return malformed("%s: total_work %x is below height+1 = %d+1", what, w, h)
	}
	if n := len(s.GetAgent()); n > MaxAgentLen {
		return malformed("%s: agent is %d bytes, limit %d", what, n, MaxAgentLen)
	}
	return nil
}

// validateBlock checks the shape of one block: hash sizes, and a data field
// that fits a frame. The error does not wrap ErrMalformed; callers wrap it.
func validateBlock(b *pb.Block) error {
	if b == nil {
		return fmt.Errorf("missing block")
	}
	if err := checkHash(b.GetHash()); err != nil {
		return fmt.Errorf("hash: %v", err)
	}
	if b.GetIndex() == 0 {
		if len(b.GetPrevHash()) != 0 {
			return fmt.Errorf("genesis block with a prev_hash")
		}
	} else if err := checkHash(b.GetPrevHash()); err != nil {
		return fmt.Errorf("prev_hash: %v", err)
	}
	if n := len(b.GetData()); n > MaxDataBytes {
		return fmt.Errorf("data is %d bytes, limit %d", n, MaxDataBytes)
	}
	return nil
}

// checkHash checks that h is a 32-byte hash other than all zeros, which no
// block has (chain.Hash's zero value stands for "no hash").
func checkHash(h []byte) error {
	if len(h) != chain.HashSize {
		return fmt.Errorf("%d bytes, want %d", len(h), chain.HashSize)
	}
	if chain.Hash(h).IsZero() {
		return fmt.Errorf("all zeros")
	}
	return nil
}

// Conversions between the wire types and chain's. The FromPB functions
// expect a message that passed validation; they recheck sizes and return an
// error wrapping ErrMalformed rather than panic.

// BlockToPB returns b as a wire block. It copies; b may be reused after.
func BlockToPB(b *chain.Block) *pb.Block {
	m := &pb.Block{
		Index:     b.Index,
		Timestamp: b.Timestamp,
		Data:      b.Data,
		Nonce:     b.Nonce,
		Hash:      bytes.Clone(b.Hash[:]),
	}
	if !b.PrevHash.IsZero() {
		m.PrevHash = bytes.Clone(b.PrevHash[:])
	}
	return m
}

// BlockFromPB returns the chain block m describes, after checking its shape
// (not its consensus validity).
func BlockFromPB(m *pb.Block) (chain.Block, error) {
	if err := validateBlock(m); err != nil {
		return chain.Block{}, malformed("block: %v", err)
	}
	b := chain.Block{
		Index:     m.GetIndex(),
		Timestamp: m.GetTimestamp(),
		Data:      m.GetData(),
		Nonce:     m.GetNonce(),
		Hash:      chain.Hash(m.GetHash()),
	}
	if m.GetIndex() != 0 {
		b.PrevHash = chain.Hash(m.GetPrevHash())
	}
	return b, nil
}

// StatusToPB returns s as a wire status. s.Work must be positive.
func StatusToPB(s Status) *pb.Status {
	m := &pb.Status{
		Genesis: bytes.Clone(s.Genesis[:]),
		Tip:     bytes.Clone(s.Tip[:]),
		Height:  s.Height,
		Agent:   s.Agent,
	}
	if s.Work != nil {
		m.TotalWork = s.Work.Bytes()
	}
	return m
}

// StatusFromPB returns the Status m describes, after validating it.
func StatusFromPB(m *pb.Status) (Status, error) {
	if err := validateStatus("status", m); err != nil {
		return Status{}, err
	}
	return Status{
		Genesis: chain.Hash(m.GetGenesis()),
		Tip:     chain.Hash(m.GetTip()),
		Height:  m.GetHeight(),
		Work:    new(big.Int).SetBytes(m.GetTotalWork()),
		Agent:   m.GetAgent(),
	}, nil
}

// PageFromPB returns the page m describes. m must have passed
// ValidateResponse.
func PageFromPB(m *pb.Blocks) (Page, error) {
	if err := checkHash(m.GetFork()); err != nil {
		return Page{}, malformed("blocks: fork: %v", err)
	}
	p := Page{
		Fork:         chain.Hash(m.GetFork()),
		Blocks:       make([]chain.Block, len(m.GetBlocks())),
		ServerHeight: m.GetServerHeight(),
	}
	for i, b := range m.GetBlocks() {
		var err error
		if p.Blocks[i], err = BlockFromPB(b); err != nil {
			return Page{}, err
		}
	}
	return p, nil
}

// RangeFromPB returns the range page m describes. m must have passed
// ValidateResponse; the blocks' Data are m's strings.
func RangeFromPB(m *pb.Range) (RangePage, error) {
	p := RangePage{Blocks: make([]chain.Block, len(m.GetBlocks())), SideBranch: m.GetSideBranch()}
	for i, b := range m.GetBlocks() {
		var err error
		if p.Blocks[i], err = BlockFromPB(b); err != nil {
			return RangePage{}, err
		}
	}
	return p, nil
}

// newStatusRequest returns a status request carrying s, and s.Keep as its
// keep field.
func newStatusRequest(s Status) *pb.Request {
	return &pb.Request{Body: &pb.Request_Status{Status: &pb.StatusRequest{Status: StatusToPB(s), Keep: s.Keep}}}
}

// newGetBlocksRequest returns a GetBlocks request.
func newGetBlocksRequest(locator []chain.Hash, maxBlocks int) *pb.Request {
	gb := &pb.GetBlocks{Locator: make([][]byte, len(locator)), MaxBlocks: uint32(maxBlocks)}
	for i := range locator {
		gb.Locator[i] = bytes.Clone(locator[i][:])
	}
	return &pb.Request{Body: &pb.Request_GetBlocks{GetBlocks: gb}}
}

// newGetRangeRequest returns a GetRange request for r.
func newGetRangeRequest(r RangeRequest) *pb.Request {
	return &pb.Request{Body: &pb.Request_GetRange{GetRange: &pb.GetRange{
		Tip:       bytes.Clone(r.Tip[:]),
		TipHeight: r.TipHeight,
		Start:     r.Start,
		Count:     r.Count,
		MaxBytes:  uint32(min(max(r.MaxBytes, 0), MaxRangeBytes)),
	}}}
}
