package gossip

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/p2p"
	"github.com/jbc-project/jbc/protocol"
	"github.com/jbc-project/jbc/protocol/pb"
)

// Native fuzz targets for the gossip decoders. They fuzz the pure parts of
// the topic validators (decodeGossipBlock, knownBlockVerdict,
// orphanPlausible, decodeGossipEntry) and the consensus checks a gossiped
// block then meets, without a libp2p host. Run one with, for example,
//
//	go test ./node/gossip -run '^$' -fuzz '^FuzzGossipBlock$' -fuzztime 60s
//
// Inputs that once failed are kept under testdata/fuzz and rerun by go test.

// fuzzNow is the local clock the targets validate against: well after
// TestNet's genesis.
const fuzzNow = 1704067200

// refBlockHash is a block's hash computed independently of
// chain.Block.ComputeHash: the SHA-256 of the Python original's header
// string, index + prev_hash + data + timestamp + nonce.
func refBlockHash(b *chain.Block) chain.Hash {
	prev := ""
	if !b.PrevHash.IsZero() {
		prev = hex.EncodeToString(b.PrevHash[:])
	}
	return sha256.Sum256([]byte(strconv.FormatUint(b.Index, 10) + prev + b.Data +
		strconv.FormatInt(b.Timestamp, 10) + strconv.FormatUint(b.Nonce, 10)))
}

// refZeroBits counts h's leading zero bits independently of
// chain.LeadingZeroBits.
func refZeroBits(h chain.Hash) int {
	n := 0
	for _, c := range h {
		for bit := 7; bit >= 0; bit-- {
			if c>>bit&1 != 0 {
				return n
			}
			n++
		}
	}
	return n
}

// fuzzChild mines, on TestNet, the child of the genesis carrying data.
func fuzzChild(tb testing.TB, data string) chain.Block {
	tb.Helper()
	p := chain.TestNet()
	tmpl := chain.Block{Index: 1, Timestamp: p.Genesis.Timestamp + 1, Data: data, PrevHash: p.Genesis.Hash}
	b, err := (&chain.Miner{Threads: 1}).Solve(context.Background(), tmpl, p.Bits)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzGossipBlock decodes arbitrary messages of the block topic as
// validateBlock does, against a node on TestNet holding the genesis and
// one child. A message that fails to decode is either not protobuf or a
// malformed block (ErrMalformed). A decoded block has the shape the wire
// promises, re-encodes within the gossip size limit and decodes back to
// itself. Every route to acceptance checks the hash: a block whose hash we
// hold is relayed only if it is the stored block itself (and recent), any
// other claiming that hash is refused; a plausible orphan's hash
// recomputes and meets MinBits, and a block accepted as the genesis or as
// its child has a hash that recomputes and meets the difficulty; a block
// refused by consensus is refused with a *chain.RuleError, the only error
// that counts against its sender.
func FuzzGossipBlock(f *testing.F) {
	p := chain.TestNet()
	genesis := p.Genesis
	child := fuzzChild(f, `["entry one","entry two"]`)
	stored := map[chain.Hash]*chain.Block{genesis.Hash: &genesis, child.Hash: &child}

	enc := func(b chain.Block) []byte {
		data, err := proto.Marshal(protocol.BlockToPB(&b))
		if err != nil {
			f.Fatal(err)
		}
		return data
	}
	badHash := child
	badHash.Hash[31] ^= 1
	forged := child
	forged.Data = `["entry one","entry 2"]`
	// Orphans are judged on a network whose limits the seeds straddle:
	// data of at most 16 bytes, at least 2 zero bits.
	op := chain.TestNet()
	op.MaxDataSize, op.MinBits = 16, 2
	orphan := func(data string, lo, hi int) chain.Block {
		b := chain.Block{Index: 7, Timestamp: genesis.Timestamp + 7, Data: data, PrevHash: chain.Hash{0xee, 1}}
		for b.Hash = b.ComputeHash(); refZeroBits(b.Hash) < lo || refZeroBits(b.Hash) >= hi; b.Hash = b.ComputeHash() {
			b.Nonce++
		}
		return b
	}
	for _, b := range []chain.Block{
		genesis, child, forged, badHash, fuzzChild(f, "héllo, 世界 🌍"),
		orphan("sixteen bytes ok", 2, 256), orphan("seventeen bytes!!", 2, 256), orphan("little work", 0, 2),
	} {
		f.Add(enc(b), uint8(1))
		f.Add(enc(b), uint8(1+recentRelay))
	}
	// Hand-made wire blocks: fields 1 index, 2 timestamp, 3 data,
	// 4 prev_hash, 5 nonce, 6 hash.
	hash := child.Hash[:]
	for _, m := range [][]byte{
		{},
		[]byte("\xff garbage"),
		protowire.AppendBytes(protowire.AppendTag(nil, 6, protowire.BytesType), hash[:31]),
		protowire.AppendBytes(protowire.AppendTag(nil, 6, protowire.BytesType), make([]byte, 32)),
		protowire.AppendBytes(protowire.AppendTag(nil, 6, protowire.BytesType), hash),
		protowire.AppendVarint(protowire.AppendTag(enc(genesis), 1, protowire.VarintType), 3),
		protowire.AppendBytes(protowire.AppendTag(enc(genesis), 4, protowire.BytesType), hash),
		protowire.AppendBytes(protowire.AppendTag(enc(child), 3, protowire.BytesType), []byte("\xff not UTF-8")),
		protowire.AppendBytes(protowire.AppendTag(enc(child), 99, protowire.BytesType), []byte("unknown field")),
		protowire.AppendVarint(protowire.AppendTag(enc(child), 2, protowire.VarintType), 1<<63),
	} {
		f.Add(m, uint8(1))
	}

	ge := p.GenesisEntry()
	f.Fuzz(func(t *testing.T, data []byte, tipHeight uint8) {
		b, err := decodeGossipBlock(data)
		if err != nil {
			if proto.Unmarshal(data, new(pb.Block)) == nil && !errors.Is(err, protocol.ErrMalformed) {
				t.Fatalf("a protobuf block refused without ErrMalformed: %v", err)
			}
			return
		}

		// The shape the wire promises.
		if b.Hash.IsZero() || b.PrevHash.IsZero() != (b.Index == 0) {
			t.Fatalf("decoded a block of the wrong shape: %+v", b)
		}
		if len(b.Data) > protocol.MaxDataBytes || !utf8.ValidString(b.Data) {
			t.Fatalf("decoded data of %d bytes (valid UTF-8: %v)", len(b.Data), utf8.ValidString(b.Data))
		}
		// What we accept we can relay and publish ourselves.
		again, err := proto.Marshal(protocol.BlockToPB(&b))
		if err != nil {
			t.Fatal(err)
		}
		if len(again) > p2p.MaxGossipBlock {
			t.Fatalf("a decoded block re-encodes to %d bytes, over the gossip limit %d", len(again), p2p.MaxGossipBlock)
		}
		if b2, err := decodeGossipBlock(again); err != nil || b2 != b {
			t.Fatalf("round trip changed the block:\n%+v\n%+v (%v)", b, b2, err)
		}

		hashOK := refBlockHash(&b) == b.Hash
		zeros := refZeroBits(b.Hash)

		// A block whose hash we hold.
		if s, ok := stored[b.Hash]; ok {
			v := knownBlockVerdict(&b, s, uint64(tipHeight))
			if v == pubsub.ValidationAccept && (b != *s || !hashOK) {
				t.Fatalf("relayed a block that is not the one stored under its hash %s:\n%+v\nstored %+v", b.Hash.Short(), b, *s)
			}
			// The stored block itself is relayed while recent, ignored
			// after; any other is refused.
			want := pubsub.ValidationReject
			if b == *s {
				want = pubsub.ValidationIgnore
				if s.Index+recentRelay >= uint64(tipHeight) {
					want = pubsub.ValidationAccept
				}
			}
			if v != want {
				t.Fatalf("verdict %v on %+v (stored %+v, tip %d), want %v", v, b, *s, tipHeight, want)
			}
			return
		}

		// An orphan is kept only if it could be valid whatever its parent.
		want := len(b.Data) <= op.MaxDataSize && hashOK && zeros >= int(op.MinBits)
		if got := orphanPlausible(op, &b); got != want {
			t.Fatalf("orphanPlausible(%+v) = %v, want %v", b, got, want)
		}

		// Consensus, as storing it would check it.
		switch {
		case b.Index == 0:
			err = p.CheckGenesis(&b)
			if err == nil && (b != genesis || !hashOK) {
				t.Fatalf("accepted %+v as the genesis", b)
			}
		case b.PrevHash == genesis.Hash:
			_, err = p.CheckBlock(&b, &ge, []int64{genesis.Timestamp}, fuzzNow)
			if err == nil && (!hashOK || zeros < int(p.Bits) || b.Index != 1) {
				t.Fatalf("accepted %+v as the genesis' child (hash recomputes: %v, %d zero bits)", b, hashOK, zeros)
			}
		default:
			return
		}
		var re *chain.RuleError
		if err != nil && !errors.As(err, &re) {
			t.Fatalf("refused with %v, not a *chain.RuleError", err)
		}
	})
}

// FuzzGossipEntry decodes arbitrary messages of the data topic as
// validateData does, on networks of MaxDataSize up to 255 bytes (small, so
// that the limit is often hit and inputs stay quick to minimise). It accepts
// exactly non-empty UTF-8 text whose JSON string form, in brackets, fits
// MaxDataSize, and refuses the rest with a *chain.RuleError. An accepted
// entry is the message's bytes unchanged (its ID is their SHA-256), and
// mined alone it makes a valid block whose data unpacks to it.
func FuzzGossipEntry(f *testing.F) {
	for _, s := range []string{"hello", "", "\xff", "a\x00b", `"\`, "<&>", "\u2028", "ünïcode ✓", `["an array"]`, "mined by 12D3KooW"} {
		f.Add([]byte(s), uint8(64))
		f.Add([]byte(s), uint8(len(s)+chain.EntryOverhead))
		f.Add([]byte(s), uint8(len(s)+chain.EntryOverhead-1))
	}
	// An entry that fills the largest block exactly, and one a byte over.
	f.Add([]byte(strings.Repeat("a", 255-chain.EntryOverhead)), uint8(255))
	f.Add([]byte(strings.Repeat("a", 256-chain.EntryOverhead)), uint8(255))
	f.Fuzz(func(t *testing.T, data []byte, limit uint8) {
		p := chain.TestNet()
		p.MaxDataSize = int(limit)
		text, err := decodeGossipEntry(p, data)
		enc, _ := json.Marshal(string(data))
		want := len(data) > 0 && utf8.Valid(data) && len(enc)+2 <= p.MaxDataSize
		if (err == nil) != want {
			t.Fatalf("decodeGossipEntry(%q) with limit %d: %v, want ok=%v", data, limit, err, want)
		}
		if err != nil {
			var re *chain.RuleError
			if !errors.As(err, &re) || (re.Code != chain.ErrBadData && re.Code != chain.ErrDataTooLarge) {
				t.Fatalf("refused %q with %v, want a bad-data or data-too-large *chain.RuleError", data, err)
			}
			return
		}
		if text != string(data) || chain.EntryID(text) != sha256.Sum256(data) {
			t.Fatalf("accepted %q as %q", data, text)
		}
		packed, n := chain.PackEntries([]string{text}, p.MaxDataSize)
		if n != 1 || !slices.Equal(chain.UnpackEntries(packed), []string{text}) {
			t.Fatalf("accepted entry %q packs to %q (%d entries)", text, packed, n)
		}
		b := chain.Block{Index: 1, Timestamp: p.Genesis.Timestamp + 1, Data: packed, PrevHash: p.Genesis.Hash}
		for b.Hash = b.ComputeHash(); refZeroBits(b.Hash) < int(p.Bits); b.Hash = b.ComputeHash() {
			b.Nonce++
		}
		ge := p.GenesisEntry()
		if _, err := p.CheckBlock(&b, &ge, []int64{p.Genesis.Timestamp}, fuzzNow); err != nil {
			t.Fatalf("a block holding only accepted entry %q: %v", text, err)
		}
	})
}
