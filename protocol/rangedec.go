package protocol

import (
	"bytes"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/protocol/pb"
)

// A page decoded through the generated types costs five allocations a
// block (the pb.Block, its two hashes, its data, and the chain.Block's
// copy), which on a syncing node made allocation and garbage collection a
// quarter of its CPU. decodeRange reads an OK range response straight into
// chain.Blocks instead: one copy of the payload as a string, whose
// substrings are the blocks' Data, and one slice of blocks: two
// allocations a page, none a block.
//
// It reads only the form a responder writes (proto3's deterministic
// encoding: each field once, in any order, none at its zero value, no
// unknown fields) and leaves anything else, and every response with
// another code, to the generated decoder (ok false): a later version's
// extra fields, say, still decode, only more slowly. On what it reads it
// applies the rules of validateRange (msgs.go), which stays the one
// statement of them: FuzzDecodeRange checks that both decoders accept
// exactly the same payloads and return the same pages.

// decodeRange decodes payload, a response frame's payload answering gr,
// and checks it as ValidateResponse would. ok is false when payload is not
// an OK range response in the deterministic form; the caller must then
// decode it with proto.Unmarshal. An error wraps ErrMalformed.
func decodeRange(payload []byte, gr *pb.GetRange) (page RangePage, ok bool, err error) {
	body, ok := rangeBody(payload)
	if !ok {
		return RangePage{}, false, nil
	}

	// First pass: the envelope of each block, to size the slice.
	n, side := 0, false
	for b := body; len(b) > 0; {
		num, typ, tn := protowire.ConsumeTag(b)
		if tn < 0 {
			return RangePage{}, false, nil
		}
		b = b[tn:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			_, vn := protowire.ConsumeBytes(b)
			if vn < 0 {
				return RangePage{}, false, nil
			}
			b = b[vn:]
			n++
		case num == 2 && typ == protowire.VarintType:
			v, vn := protowire.ConsumeVarint(b)
			if vn < 0 {
				return RangePage{}, false, nil
			}
			b = b[vn:]
			side = v != 0 // the last occurrence wins, as for the generated decoder
		default:
			return RangePage{}, false, nil
		}
	}
	if n == 0 {
		return RangePage{}, true, malformed("range: no blocks")
	}
	if uint64(n) > gr.GetCount() {
		return RangePage{}, true, malformed("range: %d blocks, asked for at most %d", n, gr.GetCount())
	}

	// Second pass: the blocks. Their data are substrings of one copy of
	// the payload.
	text := string(payload)
	page = RangePage{Blocks: make([]chain.Block, 0, n), SideBranch: side}
	size := 0
	var prevHash []byte
	for b := body; len(b) > 0; {
		num, _, tn := protowire.ConsumeTag(b)
		b = b[tn:]
		if num != 1 {
			_, vn := protowire.ConsumeVarint(b)
			b = b[vn:]
			continue
		}
		msg, vn := protowire.ConsumeBytes(b)
		at := len(payload) - len(b) + vn - len(msg) // msg's offset in payload
		b = b[vn:]

		i := len(page.Blocks)
		page.Blocks = page.Blocks[:i+1]
		blk := &page.Blocks[i]
		hash, prev, ok, err := decodeBlock(blk, msg, text[at:at+len(msg)])
		if !ok || err != nil {
			if err != nil {
				err = malformed("range[%d]: %v", i, err)
			}
			return RangePage{}, ok, err
		}
		if want := gr.GetStart() + uint64(i); blk.Index != want {
			return RangePage{}, true, malformed("range[%d]: index %d, want %d", i, blk.Index, want)
		}
		if i > 0 && !bytes.Equal(prev, prevHash) {
			return RangePage{}, true, malformed("range[%d]: prev_hash %x does not link to %x", i, prev, prevHash)
		}
		prevHash = hash
		size += len(msg)
	}
	if limit := rangeLimit(gr); n > 1 && size > limit {
		return RangePage{}, true, malformed("range: %d blocks of %d bytes, limit %d", n, size, limit)
	}
	if last := &page.Blocks[n-1]; last.Index == gr.GetTipHeight() && !bytes.Equal(last.Hash[:], gr.GetTip()) {
		return RangePage{}, true, malformed("range: block %d is %x, not the tip %x asked for", last.Index, last.Hash[:], gr.GetTip())
	}
	return page, true, nil
}

// rangeBody returns the encoded Range of payload if payload is an OK
// response with a range body and nothing else, each field once.
func rangeBody(payload []byte) ([]byte, bool) {
	var (
		body            []byte
		codeOK, hasBody bool
	)
	for b := payload; len(b) > 0; {
		num, typ, tn := protowire.ConsumeTag(b)
		if tn < 0 {
			return nil, false
		}
		b = b[tn:]
		switch {
		case num == 1 && typ == protowire.VarintType && !codeOK:
			v, vn := protowire.ConsumeVarint(b)
			if vn < 0 || v != uint64(CodeOK) {
				return nil, false
			}
			b, codeOK = b[vn:], true
		case num == 5 && typ == protowire.BytesType && !hasBody:
			v, vn := protowire.ConsumeBytes(b)
			if vn < 0 {
				return nil, false
			}
			b, body, hasBody = b[vn:], v, true
		default:
			return nil, false
		}
	}
	return body, codeOK && hasBody
}

// decodeBlock decodes msg, one encoded Block whose bytes are also text (the
// same bytes as a string, so that Data is a substring rather than a copy),
// into blk, a zero Block, and checks its shape as validateBlock does. It
// returns its hash and prev_hash as read. ok is false when msg is not in
// the deterministic form: its length then differs from the size its
// fields give.
func decodeBlock(blk *chain.Block, msg []byte, text string) (hash, prev []byte, ok bool, err error) {
	var data string
	for b := msg; len(b) > 0; {
		num, typ, tn := protowire.ConsumeTag(b)
		if tn < 0 {
			return nil, nil, false, nil
		}
		b = b[tn:]
		if typ == protowire.VarintType {
			v, vn := protowire.ConsumeVarint(b)
			if vn < 0 {
				return nil, nil, false, nil
			}
			b = b[vn:]
			switch num {
			case 1:
				blk.Index = v
			case 2:
				blk.Timestamp = int64(v)
			case 5:
				blk.Nonce = v
			default:
				return nil, nil, false, nil
			}
			continue
		}
		if typ != protowire.BytesType {
			return nil, nil, false, nil
		}
		v, vn := protowire.ConsumeBytes(b)
		if vn < 0 {
			return nil, nil, false, nil
		}
		at := len(msg) - len(b) + vn - len(v)
		b = b[vn:]
		switch num {
		case 3:
			data = text[at : at+len(v)]
		case 4:
			prev = v
		case 6:
			hash = v
		default:
			return nil, nil, false, nil
		}
	}
	// Deterministic form: each field once, none at its zero value. Any
	// other encoding of the same fields is longer.
	if blockSize(blk, len(data), len(prev), len(hash)) != len(msg) {
		return nil, nil, false, nil
	}
	// A string field must be UTF-8, or the generated decoder fails.
	if !utf8.ValidString(data) {
		return nil, nil, true, errString("data is not valid UTF-8")
	}
	if err := checkHash(hash); err != nil {
		return nil, nil, true, errString("hash: " + err.Error())
	}
	if blk.Index == 0 {
		if len(prev) != 0 {
			return nil, nil, true, errString("genesis block with a prev_hash")
		}
	} else if err := checkHash(prev); err != nil {
		return nil, nil, true, errString("prev_hash: " + err.Error())
	}
	if len(data) > MaxDataBytes {
		return nil, nil, true, errString("data over the limit")
	}
	blk.Data = data
	blk.Hash = chain.Hash(hash)
	if blk.Index != 0 {
		blk.PrevHash = chain.Hash(prev)
	}
	return hash, prev, true, nil
}

// blockSize is the deterministic encoded size of a Block with b's integer
// fields and data, prev_hash and hash of the lengths given.
func blockSize(b *chain.Block, data, prev, hash int) int {
	n := 0
	if b.Index != 0 {
		n += 1 + protowire.SizeVarint(b.Index)
	}
	if b.Timestamp != 0 {
		n += 1 + protowire.SizeVarint(uint64(b.Timestamp))
	}
	if data != 0 {
		n += 1 + protowire.SizeBytes(data)
	}
	if prev != 0 {
		n += 1 + protowire.SizeBytes(prev)
	}
	if b.Nonce != 0 {
		n += 1 + protowire.SizeVarint(b.Nonce)
	}
	if hash != 0 {
		n += 1 + protowire.SizeBytes(hash)
	}
	return n
}

// errString is an error with a fixed text, wrapped by the caller.
type errString string

func (e errString) Error() string { return string(e) }
