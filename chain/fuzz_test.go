package chain_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/jbc-project/jbc/chain"
)

// FuzzBlockJSON: decoding never panics; a block that decodes re-encodes,
// in both forms, to JSON that decodes to the same block, and a failed
// decode leaves the block alone.
func FuzzBlockJSON(f *testing.F) {
	f.Add([]byte(pyBlock))
	g := goldenBlock(f)
	jb, _ := json.Marshal(g)
	f.Add(jb)
	py, _ := g.MarshalPython()
	f.Add(py)
	tg, _ := json.Marshal(chain.TestNet().Genesis)
	f.Add(tg)
	if raw, err := os.ReadFile("testdata/python_chain.json"); err == nil {
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) == nil && len(list) > 1 {
			f.Add([]byte(list[1]))
		}
	}
	f.Add([]byte(`{"index":1e3,"timestamp":"-0","data":"\ud800","prev_hash":"","hash":"` + testGenesisHash + `","nonce":" 1"}`))
	f.Add([]byte(`{"index":18446744073709551616,"timestamp":-9223372036854775809}`))
	f.Add([]byte(`{"INDEX":"1","Timestamp":2,"data":"","prev_hash":"","hash":"` + testGenesisHash + `","nonce":0,"nonce":1}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"index":null}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		sentinel := chain.Block{Data: "sentinel", Nonce: 7}
		b := sentinel
		if err := b.UnmarshalJSON(data); err != nil {
			if b != sentinel {
				t.Fatalf("failed decode changed the block: %+v", b)
			}
			return
		}
		if b.Hash.IsZero() {
			t.Fatal("decoded a block with an empty hash")
		}
		for name, enc := range map[string]func() ([]byte, error){"jbc": b.MarshalJSON, "python": b.MarshalPython} {
			out, err := enc()
			if err != nil {
				t.Fatalf("%s: re-encoding %+v: %v", name, b, err)
			}
			var again chain.Block
			if err := json.Unmarshal(out, &again); err != nil {
				t.Fatalf("%s: decoding our own %s: %v", name, out, err)
			}
			if again != b {
				t.Fatalf("%s: round trip changed the block:\n%+v\n%+v", name, b, again)
			}
			out2, _ := enc()
			if string(out2) != string(out) {
				t.Fatalf("%s: encoding not deterministic", name)
			}
		}
	})
}

// FuzzParseHash: ParseHash accepts exactly "" and 64 lowercase hex digits
// other than all zeros, and its text form is its input.
func FuzzParseHash(f *testing.F) {
	for _, s := range []string{
		"", testGenesisHash, strings.ToUpper(testGenesisHash), strings.Repeat("0", 64),
		strings.Repeat("0", 63) + "1", testGenesisHash[:63], testGenesisHash + "0", "0x" + testGenesisHash[2:],
		strings.Repeat("é", 32),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := chain.ParseHash(s)
		if want := validHashText(s); (err == nil) != want {
			t.Fatalf("ParseHash(%q): error %v, want ok=%v", s, err, want)
		}
		if err != nil {
			return
		}
		if h.String() != s {
			t.Fatalf("ParseHash(%q).String() = %q", s, h.String())
		}
		var u chain.Hash
		if err := u.UnmarshalText([]byte(s)); err != nil || u != h {
			t.Fatalf("UnmarshalText(%q) = %s, %v", s, u, err)
		}
		if txt, _ := h.MarshalText(); string(txt) != s {
			t.Fatalf("MarshalText = %q, want %q", txt, s)
		}
	})
}

// validHashText is the hash text rule written independently.
func validHashText(s string) bool {
	if s == "" {
		return true
	}
	if len(s) != 64 || strings.Trim(s, "0") == "" {
		return false
	}
	return strings.Trim(s, "0123456789abcdef") == ""
}
