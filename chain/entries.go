package chain

import (
	"crypto/sha256"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// Submitted data entries travel in a block's data field. The packing rule:
// the data field is a JSON array of strings, one per entry, oldest entry
// first, holding as many pending entries as fit in the network's
// MaxDataSize once encoded. A data field that is not such an array (for
// example "mined by <peer id>", which a miner writes when nothing is
// pending, or the data of a Python chain) holds no entries.

// EntryID returns the identifier of a data entry: the SHA-256 of its text.
// Two submissions of the same text are the same entry.
func EntryID(text string) Hash { return sha256.Sum256([]byte(text)) }

// EntryOverhead is the encoded size of an array holding one entry beyond
// the entry's own bytes when it needs no escaping: brackets and quotes.
const EntryOverhead = 4

// PackEntries returns the data field holding the longest prefix of entries
// that fits in max bytes, and how many entries it holds. With no entry
// fitting it returns "" and 0.
func PackEntries(entries []string, max int) (string, int) {
	var (
		b strings.Builder
		n int
	)
	b.WriteByte('[')
	for _, e := range entries {
		enc, err := json.Marshal(e)
		if err != nil {
			break
		}
		// One separator after the first entry, and the closing bracket.
		extra := len(enc) + 1
		if n > 0 {
			extra++
		}
		if b.Len()+extra > max {
			break
		}
		if n > 0 {
			b.WriteByte(',')
		}
		b.Write(enc)
		n++
	}
	if n == 0 {
		return "", 0
	}
	b.WriteByte(']')
	return b.String(), n
}

// UnpackEntries returns the entries a block's data field holds, or nil if
// it holds none.
func UnpackEntries(data string) []string {
	if len(data) < 2 || data[0] != '[' || data[len(data)-1] != ']' {
		return nil
	}
	var out []string
	if err := json.Unmarshal([]byte(data), &out); err != nil {
		return nil
	}
	return out
}

// CheckEntry reports whether text can be submitted as an entry on network
// p: valid UTF-8, not empty, and small enough to fit a block alone.
func (p *Params) CheckEntry(text string) error {
	if text == "" {
		return ruleError(ErrBadData, "entry is empty")
	}
	if !utf8.ValidString(text) {
		return ruleError(ErrBadData, "entry is not valid UTF-8")
	}
	if _, n := PackEntries([]string{text}, p.MaxDataSize); n != 1 {
		return ruleError(ErrDataTooLarge, "entry of %d bytes does not fit a block's data (limit %d bytes encoded)", len(text), p.MaxDataSize)
	}
	return nil
}
