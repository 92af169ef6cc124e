package chain_test

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jbc-project/jbc/chain"
)

// FuzzUnpackEntries: UnpackEntries finds entries exactly in a data field
// that is a JSON array of strings, each entry valid UTF-8; what it finds
// packs back (PackEntries) into a data field holding the same entries, a
// fixed point of packing and unpacking; packing under a limit keeps the
// longest prefix that fits; and every non-empty entry of a packed data
// field within a network's MaxDataSize passes that network's CheckEntry.
//
// An entry of an arbitrary block need not pass CheckEntry: a block may hold
// [""], and PackEntries escapes <, > and & (6 bytes each), so an entry of
// ["<<<..."] that fits a block's data as written can be too large for
// CheckEntry. The target checks only what the code promises.
func FuzzUnpackEntries(f *testing.F) {
	packed, _ := chain.PackEntries([]string{"alpha", `quote " and \ backslash`, "ünïcode ✓", "line\nbreak", "<&>\u2028"}, 1<<10)
	for _, s := range []string{
		packed,
		`["one"]`,
		`[]`,
		`[""]`,
		`[null]`,
		`["a",null,"b"]`,
		`["a","a"]`,
		`[ "spaced" , "out" ]`,
		` ["leading space"]`,
		`["trailing space"] `,
		`["a"]]`,
		`[["a"]]`,
		`["a",]`,
		`["a"`,
		`[1,2]`,
		`["\ud800 lone surrogate"]`,
		"[\"\xff not UTF-8\"]",
		`["\u003c escaped \u0026"]`,
		`["` + strings.Repeat("<", 60) + `"]`,
		`{"a":1}`,
		"",
		"[",
		"]",
		"mined by 12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo",
		"First block data",
		"héllo, 世界 🌍",
	} {
		f.Add(s, uint16(len(s)))
		f.Add(s, uint16(64))
	}
	f.Fuzz(func(t *testing.T, data string, limit uint16) {
		got := chain.UnpackEntries(data)
		want, ok := entriesOracle(data)
		if !ok {
			if len(got) != 0 {
				t.Fatalf("UnpackEntries(%q) = %q, want none", data, got)
			}
			return
		}
		if !slices.Equal(got, want) {
			t.Fatalf("UnpackEntries(%q) = %q, want %q", data, got, want)
		}
		for i, e := range got {
			if !utf8.ValidString(e) {
				t.Fatalf("entry %d of %q is not valid UTF-8: %q", i, data, e)
			}
		}
		if len(got) == 0 {
			return
		}

		// Unlimited, every entry packs, and the result is a fixed point.
		all, n := chain.PackEntries(got, math.MaxInt)
		if n != len(got) {
			t.Fatalf("packed %d of %d entries without a limit", n, len(got))
		}
		if again := chain.UnpackEntries(all); !slices.Equal(again, got) {
			t.Fatalf("PackEntries(%q) = %q unpacks to %q", got, all, again)
		}
		if all2, _ := chain.PackEntries(chain.UnpackEntries(all), math.MaxInt); all2 != all {
			t.Fatalf("packing is not a fixed point: %q then %q", all, all2)
		}

		// Under a limit: the longest prefix that fits, within the limit.
		lim := int(limit)
		part, k := chain.PackEntries(got, lim)
		if len(part) > lim || (k == 0) != (part == "") {
			t.Fatalf("PackEntries(%q, %d) = %q, %d", got, lim, part, k)
		}
		if k > 0 && !slices.Equal(chain.UnpackEntries(part), got[:k]) {
			t.Fatalf("PackEntries(%q, %d) = %q does not hold the first %d entries", got, lim, part, k)
		}
		if k < len(got) {
			if longer, _ := chain.PackEntries(got[:k+1], math.MaxInt); len(longer) <= lim {
				t.Fatalf("PackEntries(%q, %d) stopped at %d entries, but %d fit in %d bytes", got, lim, k, k+1, len(longer))
			}
		}

		// An entry a block of the network can carry packed, it accepts.
		p := chain.TestNet()
		p.MaxDataSize = lim
		for _, e := range got[:k] {
			err := p.CheckEntry(e)
			if e == "" {
				wantRule(t, err, chain.ErrBadData)
				continue
			}
			if err != nil {
				t.Fatalf("entry %q packed within %d bytes, but CheckEntry: %v", e, lim, err)
			}
		}
	})
}

// entriesOracle is the packing rule read independently: a data field holds
// entries when it is, byte for byte from its first to its last, a JSON
// array whose elements are strings (or null, which encoding/json leaves as
// ""). Invalid UTF-8 and lone surrogates decode as U+FFFD.
func entriesOracle(data string) ([]string, bool) {
	if !strings.HasPrefix(data, "[") || !strings.HasSuffix(data, "]") || len(data) < 2 {
		return nil, false
	}
	var elems []any
	if err := json.Unmarshal([]byte(data), &elems); err != nil {
		return nil, false
	}
	out := make([]string, len(elems))
	for i, e := range elems {
		switch v := e.(type) {
		case string:
			out[i] = v
		case nil:
		default:
			return nil, false
		}
	}
	return out, true
}
