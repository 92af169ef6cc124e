package chain_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/big"
	"slices"
	"strconv"
	"testing"

	"github.com/jbc-project/jbc/chain"
)

// The consensus constants the tests hold the code to. They are written out
// here rather than read from the package so that a change to a rule fails a
// test instead of silently moving the test along with it.
const (
	// testNetGenesisTime is TestNet's genesis timestamp, 2020-01-01.
	testNetGenesisTime = 1577836800
	// medianTimeBlocks is the median-time window of both built-in networks.
	medianTimeBlocks = 11
	// maxFutureDrift is 2 h, in seconds.
	maxFutureDrift = 2 * 60 * 60
	// maxDataSize is 64 KiB.
	maxDataSize = 64 << 10
)

// testNow is the local clock the tests validate against: 2024-01-01, well
// after every generated block on TestNet.
const testNow = 1704067200

// solve finds the smallest nonce from tmpl.Nonce up that gives tmpl at least
// bits leading zero bits, and sets Nonce and Hash. It is deliberately not
// the Miner: generated chains must not depend on the code under test to
// be right.
func solve(tb testing.TB, b chain.Block, bits int) chain.Block {
	tb.Helper()
	for n := b.Nonce; ; n++ {
		b.Nonce = n
		b.Hash = refHash(&b)
		if refZeroBits(b.Hash) >= bits {
			return b
		}
		if n == ^uint64(0) {
			tb.Fatalf("no nonce for block %d at %d bits", b.Index, bits)
		}
	}
}

// solveExact finds a nonce that gives b exactly bits leading zero bits: a
// block that just meets, or just misses, a difficulty.
func solveExact(tb testing.TB, b chain.Block, bits int) chain.Block {
	tb.Helper()
	for n := uint64(0); n < 1<<32; n++ {
		b.Nonce = n
		b.Hash = refHash(&b)
		if refZeroBits(b.Hash) == bits {
			return b
		}
	}
	tb.Fatalf("no nonce for block %d with exactly %d bits", b.Index, bits)
	return b
}

// refHeader builds the header string the way the Python original does,
// independently of Block.AppendHeader.
func refHeader(b *chain.Block) string {
	prev := ""
	if b.PrevHash != (chain.Hash{}) {
		prev = hex.EncodeToString(b.PrevHash[:])
	}
	return strconv.FormatUint(b.Index, 10) + prev + b.Data +
		strconv.FormatInt(b.Timestamp, 10) + strconv.FormatUint(b.Nonce, 10)
}

// refHash is the block hash computed independently of Block.ComputeHash.
func refHash(b *chain.Block) chain.Hash { return sha256.Sum256([]byte(refHeader(b))) }

// refZeroBits counts leading zero bits with big.Int, independently of
// chain.LeadingZeroBits.
func refZeroBits(h chain.Hash) int {
	return 8*chain.HashSize - new(big.Int).SetBytes(h[:]).BitLen()
}

// refMedian is the median-time rule written independently: the upper
// median of the last medianTimeBlocks timestamps (newest first in recent).
func refMedian(recent []int64) int64 {
	s := slices.Clone(recent[:min(len(recent), medianTimeBlocks)])
	slices.Sort(s)
	return s[len(s)/2]
}

// wantRule fails the test unless err is, or wraps, a *chain.RuleError with
// the given code.
func wantRule(tb testing.TB, err error, code chain.ErrorCode) {
	tb.Helper()
	var re *chain.RuleError
	if !errors.As(err, &re) {
		tb.Fatalf("error %v: want a *RuleError %s", err, code)
	}
	if re.Code != code {
		tb.Fatalf("error %v: code %s, want %s", err, re.Code, code)
	}
}

// timestamps returns the blocks' timestamps newest first.
func timestamps(blocks []chain.Block) []int64 {
	r := make([]int64, len(blocks))
	for i := range blocks {
		r[i] = blocks[len(blocks)-1-i].Timestamp
	}
	return r
}

// workOf returns the cumulative work of bits, summed independently of
// chain.BlockWork.
func workOf(bits ...uint8) *big.Int {
	w := new(big.Int)
	for _, b := range bits {
		w.Add(w, new(big.Int).Exp(big.NewInt(2), big.NewInt(int64(b)), nil))
	}
	return w
}

// genChain returns TestNet's genesis and n blocks after it, spaced step
// seconds apart, each solved at p.Bits with solve. p must have a fixed
// difficulty.
func genChain(tb testing.TB, p *chain.Params, n int, step int64, data string) []chain.Block {
	tb.Helper()
	if p.Spacing != 0 {
		tb.Fatal("genChain: retargeting params")
	}
	blocks := make([]chain.Block, 1, n+1)
	blocks[0] = p.Genesis
	for i := 1; i <= n; i++ {
		prev := &blocks[i-1]
		b := chain.Block{Index: prev.Index + 1, Timestamp: prev.Timestamp + step, Data: data, PrevHash: prev.Hash}
		blocks = append(blocks, solve(tb, b, int(p.Bits)))
	}
	return blocks
}
