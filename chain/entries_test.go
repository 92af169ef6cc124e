package chain

import (
	"errors"
	"strings"
	"testing"
)

func TestPackUnpackEntries(t *testing.T) {
	entries := []string{"alpha", `quote " and \ backslash`, "ünïcode ✓", "line\nbreak"}
	data, n := PackEntries(entries, 1<<10)
	if n != len(entries) {
		t.Fatalf("packed %d of %d", n, len(entries))
	}
	got := UnpackEntries(data)
	if len(got) != len(entries) {
		t.Fatalf("unpacked %q from %q", got, data)
	}
	for i := range entries {
		if got[i] != entries[i] {
			t.Fatalf("entry %d: %q, want %q", i, got[i], entries[i])
		}
	}
}

func TestPackEntriesRespectsLimit(t *testing.T) {
	entries := []string{strings.Repeat("a", 10), strings.Repeat("b", 10), strings.Repeat("c", 10)}
	// ["aaaaaaaaaa","bbbbbbbbbb"] is 27 bytes.
	data, n := PackEntries(entries, 27)
	if n != 2 || len(data) != 27 {
		t.Fatalf("packed %d entries in %d bytes (%q), want 2 in 27", n, len(data), data)
	}
	if _, n := PackEntries(entries, 26); n != 1 {
		t.Fatalf("limit 26 packed %d, want 1", n)
	}
	if d, n := PackEntries(entries, 5); n != 0 || d != "" {
		t.Fatalf("limit 5 packed %d (%q), want none", n, d)
	}
	// Escaping counts: a quote takes two bytes encoded.
	if _, n := PackEntries([]string{`""`}, 7); n != 0 {
		t.Fatal(`an entry of two quotes needs 8 bytes, packed in 7`)
	}
}

func TestUnpackNonEntries(t *testing.T) {
	for _, d := range []string{"", "mined by 12D3KooW", "First block data", "[1,2]", "[", `["a"`, `{"a":1}`} {
		if got := UnpackEntries(d); got != nil {
			t.Errorf("UnpackEntries(%q) = %q, want nil", d, got)
		}
	}
}

func TestCheckEntry(t *testing.T) {
	p := TestNet()
	if err := p.CheckEntry("hello"); err != nil {
		t.Fatal(err)
	}
	var re *RuleError
	if err := p.CheckEntry(""); !errors.As(err, &re) || re.Code != ErrBadData {
		t.Fatalf("empty entry: %v", err)
	}
	if err := p.CheckEntry("\xff"); !errors.As(err, &re) || re.Code != ErrBadData {
		t.Fatalf("invalid UTF-8: %v", err)
	}
	big := strings.Repeat("x", p.MaxDataSize-EntryOverhead)
	if err := p.CheckEntry(big); err != nil {
		t.Fatalf("entry filling a block exactly: %v", err)
	}
	if err := p.CheckEntry(big + "x"); !errors.As(err, &re) || re.Code != ErrDataTooLarge {
		t.Fatalf("entry one byte too big: %v", err)
	}
	if EntryID("a") == EntryID("b") || EntryID("a") != EntryID("a") {
		t.Fatal("EntryID is not a function of the text")
	}
}
