package chain_test

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jbc-project/jbc/chain"
)

// testGenesisHash is TestNet's genesis hash as python3 hashlib computes it
// (testdata/golden.py).
const testGenesisHash = "821c2b47978926c2a7df3e866fab6e98aa84b0e0fa802110191bdcba54319d30"

func mustHash(tb testing.TB, s string) chain.Hash {
	tb.Helper()
	h, err := chain.ParseHash(s)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// TestGoldenHashes pins block hashes computed by an independent
// implementation: python3 hashlib over str(index) + prev_hash + data +
// str(timestamp) + str(nonce), UTF-8 encoded (testdata/golden.py).
func TestGoldenHashes(t *testing.T) {
	tg := mustHash(t, testGenesisHash)
	tests := []struct {
		name   string
		block  chain.Block
		header string
		hash   string
	}{
		{
			name:   "testnet genesis",
			block:  chain.Block{Index: 0, Data: "jbc test network", Timestamp: 1577836800},
			header: "0jbc test network15778368000",
			hash:   testGenesisHash,
		},
		{
			name:   "mainnet genesis",
			block:  chain.Block{Index: 0, Data: "jbc genesis: the JackBlockChain carried on, 2026-11-23", Timestamp: 1795392000},
			header: "0jbc genesis: the JackBlockChain carried on, 2026-11-2317953920000",
			hash:   "727c5957421f286e205f51920695fa8bf0559f9ff1ba510e54b1722bfd14df36",
		},
		{
			name:   "unicode data",
			block:  chain.Block{Index: 1, PrevHash: tg, Data: "héllo, 世界 🌍", Timestamp: 1577836801, Nonce: 42},
			header: "1" + testGenesisHash + "héllo, 世界 🌍157783680142",
			hash:   "92d0b29d8d07e73aecb0807b2ee2d059967d9bd43f7db224e986a943fa3fab09",
		},
		{
			name:   "max nonce and index",
			block:  chain.Block{Index: math.MaxUint64, PrevHash: tg, Data: "x", Timestamp: 1577836802, Nonce: math.MaxUint64},
			header: "18446744073709551615" + testGenesisHash + "x157783680218446744073709551615",
			hash:   "eaaef888e323e86368f4cd421068b3bed32dc8d05222a1cabc5df1ac52a0bc1a",
		},
		{
			name:   "all zero, empty data",
			block:  chain.Block{},
			header: "000",
			hash:   "2ac9a6746aca543af8dff39894cfe8173afba21eb01c6fae33d52947222855ef",
		},
		{
			name:   "negative timestamp",
			block:  chain.Block{Index: 7, PrevHash: tg, Data: "before 1970", Timestamp: -1, Nonce: 3},
			header: "7" + testGenesisHash + "before 1970-13",
			hash:   "13f6670129affeacee727bfbba1fe9f9b2dde4baab29e4131e044b93e35491d3",
		},
		{
			name:   "min int64 timestamp",
			block:  chain.Block{Index: 1, PrevHash: tg, Timestamp: math.MinInt64},
			header: "1" + testGenesisHash + "-92233720368547758080",
			hash:   "7e01beb5ea1755b06d011a82bb720621be63b0b7312f364149f889857987fb80",
		},
		{
			name:   "max int64 timestamp",
			block:  chain.Block{Index: 2, PrevHash: tg, Timestamp: math.MaxInt64, Nonce: 1},
			header: "2" + testGenesisHash + "92233720368547758071",
			hash:   "aae4d242726b1b9a7aec67fec4199e7238f10692c026882d998aee3344eac830",
		},
		{
			name:   "json specials in data",
			block:  chain.Block{Index: 3, PrevHash: tg, Data: "q\"b\\s\n\t\x00</script>&", Timestamp: 1577836803, Nonce: 99},
			header: "3" + testGenesisHash + "q\"b\\s\n\t\x00</script>&157783680399",
			hash:   "b5029de97cb15094303bb0f3334770b30ab2df39034e05e22d356c9c3406d623",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.block
			if got := string(b.AppendHeader(nil)); got != tt.header {
				t.Errorf("AppendHeader = %q, want %q", got, tt.header)
			}
			if got := string(b.AppendHeader([]byte("keep:"))); got != "keep:"+tt.header {
				t.Errorf("AppendHeader does not append: %q", got)
			}
			if got := b.HeaderLen(); got != len(tt.header) {
				t.Errorf("HeaderLen = %d, want %d", got, len(tt.header))
			}
			if got := b.ComputeHash().String(); got != tt.hash {
				t.Errorf("ComputeHash = %s, want %s", got, tt.hash)
			}
		})
	}
}

// TestComputeHashNoAlloc holds ComputeHash to its documented promise: no
// allocation for a header that fits in 256 bytes.
func TestComputeHashNoAlloc(t *testing.T) {
	b := chain.Block{Index: 12345, PrevHash: mustHash(t, testGenesisHash), Data: strings.Repeat("d", 100), Timestamp: testNow, Nonce: 987654321}
	if b.HeaderLen() > 256 {
		t.Fatalf("header is %d bytes; the test needs one that fits in 256", b.HeaderLen())
	}
	var sink chain.Hash
	if n := testing.AllocsPerRun(100, func() { sink = b.ComputeHash() }); n != 0 {
		t.Errorf("ComputeHash allocates %.1f times per call", n)
	}
	if sink != refHash(&b) {
		t.Errorf("ComputeHash = %s, want %s", sink, refHash(&b))
	}
	// A header over 256 bytes still hashes right.
	b.Data = strings.Repeat("é", 500)
	if b.ComputeHash() != refHash(&b) {
		t.Error("ComputeHash wrong for a header over 256 bytes")
	}
}

func TestParseHash(t *testing.T) {
	good := testGenesisHash
	tests := []struct {
		in string
		ok bool
	}{
		{"", true},
		{good, true},
		{"ff" + good[2:], true},
		{strings.ToUpper(good), false},
		{"A" + good[1:], false},
		{good[:63], false},
		{good + "0", false},
		{"0x" + good[2:], false},
		{"g" + good[1:], false},
		{" " + good[1:], false},
		{strings.Repeat("0", 64), false},
		{strings.Repeat("0", 63) + "1", true},
		{"00", false},
	}
	for _, tt := range tests {
		h, err := chain.ParseHash(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseHash(%q) error %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && h.String() != tt.in {
			t.Errorf("ParseHash(%q).String() = %q", tt.in, h.String())
		}
	}

	h := mustHash(t, good)
	if h.IsZero() || !(chain.Hash{}).IsZero() {
		t.Error("IsZero wrong")
	}
	if h[0] != 0x82 || h[31] != 0x30 {
		t.Errorf("bytes decoded wrong: % x", h)
	}
	if got := h.Short(); got != good[:12] {
		t.Errorf("Short = %q, want %q", got, good[:12])
	}
	if got := (chain.Hash{}).Short(); got != "" {
		t.Errorf("zero Short = %q", got)
	}
	// Text marshalling: a hash in a JSON map key and value.
	m := map[chain.Hash]chain.Hash{h: {}}
	enc, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"` + good + `":""}`; string(enc) != want {
		t.Errorf("marshal = %s, want %s", enc, want)
	}
	var back map[chain.Hash]chain.Hash
	if err := json.Unmarshal(enc, &back); err != nil || len(back) != 1 || !back[h].IsZero() {
		t.Errorf("unmarshal = %v, %v", back, err)
	}
	var bad chain.Hash
	if err := bad.UnmarshalText([]byte(strings.ToUpper(good))); err == nil || !bad.IsZero() {
		t.Errorf("UnmarshalText of uppercase: err %v, hash %s", err, bad)
	}
}

// pyBlock is the "unicode data" golden block as the Python original writes
// it: every value a string.
const pyBlock = `{"index": "1", "timestamp": "1577836801", "data": "h\u00e9llo, \u4e16\u754c \ud83c\udf0d", "prev_hash": "` + testGenesisHash + `", "hash": "92d0b29d8d07e73aecb0807b2ee2d059967d9bd43f7db224e986a943fa3fab09", "nonce": "42"}`

func goldenBlock(tb testing.TB) chain.Block {
	return chain.Block{
		Index: 1, Timestamp: 1577836801, Data: "héllo, 世界 🌍", PrevHash: mustHash(tb, testGenesisHash), Nonce: 42,
		Hash: mustHash(tb, "92d0b29d8d07e73aecb0807b2ee2d059967d9bd43f7db224e986a943fa3fab09"),
	}
}

func decodeMap(tb testing.TB, s string) map[string]any {
	tb.Helper()
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		tb.Fatal(err)
	}
	return m
}

func encodeMap(tb testing.TB, m map[string]any) []byte {
	tb.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestBlockJSONDecode(t *testing.T) {
	want := goldenBlock(t)
	numForm := `{"index":1,"timestamp":1577836801,"data":"héllo, 世界 🌍","prev_hash":"` + testGenesisHash +
		`","hash":"92d0b29d8d07e73aecb0807b2ee2d059967d9bd43f7db224e986a943fa3fab09","nonce":42}`
	for name, in := range map[string]string{"python strings": pyBlock, "jbc numbers": numForm} {
		var b chain.Block
		if err := json.Unmarshal([]byte(in), &b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b != want {
			t.Errorf("%s: decoded %+v, want %+v", name, b, want)
		}
	}

	// Each field is required; null counts as missing.
	for _, key := range []string{"index", "timestamp", "data", "prev_hash", "hash", "nonce"} {
		for _, how := range []string{"missing", "null"} {
			m := decodeMap(t, pyBlock)
			if how == "missing" {
				delete(m, key)
			} else {
				m[key] = nil
			}
			var b chain.Block
			err := json.Unmarshal(encodeMap(t, m), &b)
			if err == nil || !strings.Contains(err.Error(), "missing field "+key) {
				t.Errorf("%s %s: error %v, want missing field", how, key, err)
			}
		}
	}

	// Field values: which are accepted and what they decode to.
	tests := []struct {
		key  string
		val  any // a JSON value, written with json.Marshal unless a json.Number
		ok   bool
		want func(*chain.Block) bool
	}{
		{"index", json.Number("18446744073709551615"), true, func(b *chain.Block) bool { return b.Index == math.MaxUint64 }},
		{"index", "18446744073709551615", true, func(b *chain.Block) bool { return b.Index == math.MaxUint64 }},
		{"index", json.Number("18446744073709551616"), false, nil},
		{"index", json.Number("-1"), false, nil},
		{"index", "-1", false, nil},
		{"index", json.Number("0"), true, func(b *chain.Block) bool { return b.Index == 0 }},
		{"index", json.Number("1.0"), false, nil},
		{"index", json.Number("1e3"), false, nil},
		{"index", json.Number("1E3"), false, nil},
		{"index", "1e3", false, nil},
		{"index", "1.0", false, nil},
		{"index", "0x10", false, nil},
		{"index", "", false, nil},
		{"index", " 1", false, nil},
		{"index", true, false, nil},
		{"index", []int{1}, false, nil},
		{"index", map[string]int{"a": 1}, false, nil},
		{"timestamp", json.Number("-9223372036854775808"), true, func(b *chain.Block) bool { return b.Timestamp == math.MinInt64 }},
		{"timestamp", "-1", true, func(b *chain.Block) bool { return b.Timestamp == -1 }},
		{"timestamp", json.Number("0"), true, func(b *chain.Block) bool { return b.Timestamp == 0 }},
		{"timestamp", json.Number("9223372036854775808"), false, nil},
		{"timestamp", json.Number("1577836801.5"), false, nil},
		{"timestamp", json.Number("1.5e9"), false, nil},
		{"timestamp", "0x10", false, nil},
		{"timestamp", "0o17", false, nil},
		{"timestamp", "1_000", false, nil},
		{"nonce", "1_000", false, nil},
		{"nonce", json.Number("18446744073709551615"), true, func(b *chain.Block) bool { return b.Nonce == math.MaxUint64 }},
		{"nonce", json.Number("-5"), false, nil},
		{"nonce", json.Number("4.2e1"), false, nil},
		{"data", "", true, func(b *chain.Block) bool { return b.Data == "" }},
		{"data", " \tpadded\n ", true, func(b *chain.Block) bool { return b.Data == " \tpadded\n " }},
		{"data", "\ufffd\u0000", true, func(b *chain.Block) bool { return b.Data == "\ufffd\x00" }},
		{"data", 5, false, nil},
		{"prev_hash", "", true, func(b *chain.Block) bool { return b.PrevHash.IsZero() }},
		{"prev_hash", strings.ToUpper(testGenesisHash), false, nil},
		{"prev_hash", testGenesisHash[:62], false, nil},
		{"prev_hash", "zz" + testGenesisHash[2:], false, nil},
		{"prev_hash", strings.Repeat("0", 64), false, nil},
		{"hash", "", false, nil},
		{"hash", strings.ToUpper(want.Hash.String()), false, nil},
		{"hash", want.Hash.String()[:63] + "G", false, nil},
		{"hash", strings.Repeat("0", 64), false, nil},
		{"hash", 5, false, nil},
	}
	for _, tt := range tests {
		m := decodeMap(t, pyBlock)
		m[tt.key] = tt.val
		in := encodeMap(t, m)
		b := chain.Block{Data: "unchanged"}
		err := json.Unmarshal(in, &b)
		if (err == nil) != tt.ok {
			t.Errorf("%s = %v: error %v, want ok=%v", tt.key, tt.val, err, tt.ok)
			continue
		}
		if !tt.ok {
			if b != (chain.Block{Data: "unchanged"}) {
				t.Errorf("%s = %v: failed decode changed the block to %+v", tt.key, tt.val, b)
			}
			continue
		}
		if !tt.want(&b) {
			t.Errorf("%s = %v: decoded %+v", tt.key, tt.val, b)
		}
	}

	// Unknown keys are ignored; whitespace around numbers is fine.
	m := decodeMap(t, pyBlock)
	m["extra"] = []int{1, 2}
	m["hash2"] = "nonsense"
	var b chain.Block
	if err := json.Unmarshal(encodeMap(t, m), &b); err != nil || b != want {
		t.Errorf("unknown keys: %+v, %v", b, err)
	}
	spaced := strings.Replace(numForm, `"nonce":42`, `"nonce" :  42 `, 1)
	if err := json.Unmarshal([]byte(spaced), &b); err != nil || b != want {
		t.Errorf("spaced number: %+v, %v", b, err)
	}

	// Not an object at all.
	for _, in := range []string{`[]`, `"block"`, `{`, `{"index":1`} {
		if err := json.Unmarshal([]byte(in), &b); err == nil {
			t.Errorf("%s decoded", in)
		}
	}
}

// TestBlockJSONEncode pins both encodings of the golden block, and checks
// their shapes: Python's all strings, jbc's integers as numbers.
func TestBlockJSONEncode(t *testing.T) {
	b := goldenBlock(t)

	py, err := b.MarshalPython()
	if err != nil {
		t.Fatal(err)
	}
	wantPy := `{"index":"1","timestamp":"1577836801","data":"héllo, 世界 🌍","prev_hash":"` + testGenesisHash +
		`","hash":"92d0b29d8d07e73aecb0807b2ee2d059967d9bd43f7db224e986a943fa3fab09","nonce":"42"}`
	if string(py) != wantPy {
		t.Errorf("MarshalPython =\n%s\nwant\n%s", py, wantPy)
	}
	for k, v := range decodeMap(t, string(py)) {
		if _, ok := v.(string); !ok {
			t.Errorf("MarshalPython: %s is %T, want a string", k, v)
		}
	}
	// The same values as the Python original's own output.
	if got, want := decodeMap(t, string(py)), decodeMap(t, pyBlock); !mapsEqual(got, want) {
		t.Errorf("MarshalPython = %v, Python wrote %v", got, want)
	}

	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	wantJ := `{"index":1,"timestamp":1577836801,"data":"héllo, 世界 🌍","prev_hash":"` + testGenesisHash +
		`","hash":"92d0b29d8d07e73aecb0807b2ee2d059967d9bd43f7db224e986a943fa3fab09","nonce":42}`
	if string(jb) != wantJ {
		t.Errorf("MarshalJSON =\n%s\nwant\n%s", jb, wantJ)
	}

	// Round trips, including extreme values, a genesis link and data that
	// JSON must escape.
	blocks := []chain.Block{
		b,
		chain.TestNet().Genesis,
		{Index: math.MaxUint64, Timestamp: math.MinInt64, Data: "q\"b\\\n\x00\u2028</script>&", PrevHash: b.Hash, Nonce: math.MaxUint64, Hash: b.PrevHash},
		{Index: 0, Timestamp: math.MaxInt64, Hash: b.Hash},
	}
	for i, want := range blocks {
		for name, enc := range map[string]func() ([]byte, error){
			"python": want.MarshalPython,
			"jbc":    want.MarshalJSON,
		} {
			data, err := enc()
			if err != nil {
				t.Fatal(err)
			}
			var got chain.Block
			if err := json.Unmarshal(data, &got); err != nil {
				t.Errorf("block %d %s: %v", i, name, err)
				continue
			}
			if got != want {
				t.Errorf("block %d %s round trip: %+v, want %+v", i, name, got, want)
			}
		}
	}
}

func mapsEqual(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestPythonChainFile reads a chain written and mined by the independent
// Python implementation (testdata/golden.py: NUM_ZEROS = 1, all strings) on
// TestNet's genesis and checks that it decodes, validates and re-encodes to
// the same values.
func TestPythonChainFile(t *testing.T) {
	raw, err := os.ReadFile("testdata/python_chain.json")
	if err != nil {
		t.Fatal(err)
	}
	c := &chain.Chain{Params: chain.TestNet()}
	if err := json.Unmarshal(raw, &c.Blocks); err != nil {
		t.Fatal(err)
	}
	if len(c.Blocks) != 12 {
		t.Fatalf("%d blocks, want 12", len(c.Blocks))
	}
	if err := c.Validate(func() time.Time { return time.Unix(testNow, 0) }); err != nil {
		t.Fatal(err)
	}
	for i := range c.Blocks {
		// NUM_ZEROS = 1 is 4 bits, more than TestNet's 1.
		if i > 0 && chain.LeadingZeroBits(&c.Blocks[i].Hash) < 4 {
			t.Errorf("block %d: hash %s has fewer than 4 zero bits", i, c.Blocks[i].Hash)
		}
	}
	// Every block counts 2^1; the genesis too.
	if c.Work().Cmp(workOf(bytes.Repeat([]byte{1}, 12)...)) != 0 {
		t.Errorf("work %s, want 24", c.Work())
	}

	var pyList []map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&pyList); err != nil {
		t.Fatal(err)
	}
	for i := range c.Blocks {
		py, err := c.Blocks[i].MarshalPython()
		if err != nil {
			t.Fatal(err)
		}
		if got := decodeMap(t, string(py)); !mapsEqual(got, pyList[i]) {
			t.Errorf("block %d: MarshalPython = %v, file has %v", i, got, pyList[i])
		}
	}
}
