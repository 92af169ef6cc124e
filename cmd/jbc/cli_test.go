package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// pyFixture is the Python-made chain of package storage's tests (20
// blocks, NUM_ZEROS = 2), written by Python 3; py2Fixture is the same chain
// as the original writes it under Python 2 (its own files' key order).
var (
	pyFixture  = filepath.Join("..", "..", "storage", "testdata", "pychain", "chaindata")
	py2Fixture = filepath.Join("..", "..", "storage", "testdata", "pychain", "chaindata-py2")
)

// result is what one in-process run of jbc did.
type result struct {
	stdout, stderr string
	code           int
}

// jbc runs the command in-process with args, as the binary would.
func jbc(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return result{out.String(), errb.String(), code}
}

// mustJBC runs jbc and fails the test unless it exits 0; it returns stdout.
func mustJBC(t *testing.T, args ...string) string {
	t.Helper()
	r := jbc(t, args...)
	if r.code != 0 {
		t.Fatalf("jbc %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// treeHash hashes a directory tree: every path, type and file content; a
// missing directory hashes as "absent".
func treeHash(t *testing.T, dir string) string {
	t.Helper()
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return "absent"
	}
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(h, "%s\x00%s\x00", rel, d.Type())
		if d.Type().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%d\x00", len(data))
			h.Write(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func chainJSON(t *testing.T, dataDir string) map[string]any {
	t.Helper()
	out := mustJBC(t, "--datadir", dataDir, "chain", "--json")
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("chain --json: %v\n%s", err, out)
	}
	return m
}

func blocksList(t *testing.T, dataDir string, args ...string) []chain.Block {
	t.Helper()
	out := mustJBC(t, append([]string{"--datadir", dataDir, "blocks"}, args...)...)
	var bs []chain.Block
	if err := json.Unmarshal([]byte(out), &bs); err != nil {
		t.Fatalf("blocks: %v\n%s", err, out)
	}
	return bs
}

func TestInitMineChainBlocksVerify(t *testing.T) {
	d := filepath.Join(t.TempDir(), "data")
	out := mustJBC(t, "--datadir", d, "init", "--difficulty", "4", "--name", "t", "--data", "hello")
	if !strings.Contains(out, `created network "t"`) {
		t.Fatalf("init said %q", out)
	}
	var gp chain.Params
	raw, err := os.ReadFile(filepath.Join(d, genesisFileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &gp); err != nil || gp.Bits != 4 || gp.Genesis.Data != "hello" {
		t.Fatalf("genesis file: %+v, %v", gp, err)
	}

	out = mustJBC(t, "--datadir", d, "mine", "--blocks", "5", "--threads", "1")
	if n := strings.Count(out, "\nblock ") + boolInt(strings.HasPrefix(out, "block ")); n != 5 {
		t.Fatalf("mine printed %d blocks:\n%s", n, out)
	}
	if !strings.Contains(out, "blocks/s") || !strings.Contains(out, "H/s") {
		t.Fatalf("mine printed no rates:\n%s", out)
	}

	m := chainJSON(t, d)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if fmt.Sprint(keys) != "[blocks height network tip total_work]" {
		t.Fatalf("chain --json keys %v", keys)
	}
	// Six blocks of 4 bits each: 6 * 2^4 = 96.
	if m["network"] != gp.ID().String() || m["height"] != 5.0 || m["blocks"] != 6.0 || m["total_work"] != "96" {
		t.Fatalf("chain --json: %v", m)
	}

	bs := blocksList(t, d)
	if len(bs) != 6 || bs[0] != gp.Genesis || bs[5].Hash.String() != m["tip"] {
		t.Fatalf("blocks: %+v", bs)
	}
	for i := 1; i < len(bs); i++ {
		if bs[i].Index != uint64(i) || bs[i].PrevHash != bs[i-1].Hash || bs[i].Data != defaultMineData {
			t.Fatalf("block %d: %+v", i, bs[i])
		}
	}
	if got := blocksList(t, d, "--from", "2", "--to", "3"); len(got) != 2 || got[0] != bs[2] || got[1] != bs[3] {
		t.Fatalf("blocks 2..3: %+v", got)
	}
	if got := blocksList(t, d, "--from", "9"); len(got) != 0 {
		t.Fatalf("blocks past the tip: %+v", got)
	}
	if r := jbc(t, "--datadir", d, "blocks", "--from", "3", "--to", "2"); r.code != exitUsage {
		t.Fatalf("blocks --from 3 --to 2: exit %d", r.code)
	}

	if out := mustJBC(t, "--datadir", d, "verify"); !strings.HasPrefix(out, "ok:") {
		t.Fatalf("verify: %q", out)
	}
	var v struct {
		OK     bool   `json:"ok"`
		Height uint64 `json:"height"`
	}
	if err := json.Unmarshal([]byte(mustJBC(t, "--datadir", d, "verify", "--json")), &v); err != nil || !v.OK || v.Height != 5 {
		t.Fatalf("verify --json: %+v, %v", v, err)
	}

	// mine --json: one object per block, then the summary.
	out = mustJBC(t, "--datadir", d, "--json", "mine", "--blocks", "2", "--data", "x")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("mine --json of 2 blocks printed %d lines, want 3 (one object each):\n%s", len(lines), out)
	}
	var last mineSummary
	if err := json.Unmarshal([]byte(lines[2]), &last); err != nil || last.Event != "done" || last.Blocks != 2 || last.Height != 7 {
		t.Fatalf("mine --json summary: %+v, %v\n%s", last, err, out)
	}
	var first mined
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first.Event != "block" || first.Height != 6 {
		t.Fatalf("mine --json block line: %+v, %v", first, err)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestDefaultNetwork checks that the commands that only read never make a
// chain (a mistyped --datadir is an error, not a new chain), and that mine,
// finding none, starts the built-in network in the directory
// $JBC_DATADIR names.
func TestDefaultNetwork(t *testing.T) {
	d := filepath.Join(t.TempDir(), "env")
	t.Setenv(dataDirEnv, d)
	for _, args := range [][]string{{"chain"}, {"blocks"}, {"verify"}, {"export", "--out", filepath.Join(t.TempDir(), "x")}} {
		r := jbc(t, args...)
		if r.code != exitError || !strings.Contains(r.stderr, "no chain in "+d) || !strings.Contains(r.stderr, "jbc init") {
			t.Fatalf("%v without a chain: %+v", args, r)
		}
		if treeHash(t, d) != "absent" {
			t.Fatalf("%v made the data directory", args)
		}
	}
	mustJBC(t, "mine", "--blocks", "1", "--threads", "2")
	var m map[string]any
	if err := json.Unmarshal([]byte(mustJBC(t, "chain", "--json")), &m); err != nil {
		t.Fatal(err)
	}
	mn := chain.MainNet()
	if m["network"] != mn.ID().String() || m["height"] != 1.0 || m["blocks"] != 2.0 {
		t.Fatalf("chain mined from nothing: %v", m)
	}
	// --datadir beats the environment.
	d2 := filepath.Join(t.TempDir(), "flag")
	if r := jbc(t, "--datadir", d2, "verify"); r.code != exitError || !strings.Contains(r.stderr, "no chain in "+d2) {
		t.Fatalf("verify --datadir %s: %+v", d2, r)
	}
}

func TestInitErrors(t *testing.T) {
	d := t.TempDir()
	mustJBC(t, "--datadir", d, "init", "--difficulty", "2")
	before := treeHash(t, d)
	if r := jbc(t, "--datadir", d, "init"); r.code != exitError || !strings.Contains(r.stderr, "already holds a chain") {
		t.Fatalf("second init: %+v", r)
	}
	if r := jbc(t, "--datadir", d, "init", "--genesis", "x.json", "--difficulty", "3"); r.code != exitUsage {
		t.Fatalf("--genesis with --difficulty: %+v", r)
	}
	if r := jbc(t, "--datadir", d, "init", "extra"); r.code != exitUsage {
		t.Fatalf("positional argument: %+v", r)
	}
	if r := jbc(t, "--datadir", d, "--log-level", "loud", "chain"); r.code != exitUsage {
		t.Fatalf("bad --log-level: %+v", r)
	}
	if r := jbc(t, "--datadir", d, "init", "--nope"); r.code != exitUsage {
		t.Fatalf("unknown flag: %+v", r)
	}
	if treeHash(t, d) != before {
		t.Fatal("data directory changed")
	}

	// Joining from the genesis file gives the same network.
	d2 := filepath.Join(t.TempDir(), "joined")
	mustJBC(t, "--datadir", d2, "init", "--genesis", filepath.Join(d, genesisFileName))
	if a, b := chainJSON(t, d)["network"], chainJSON(t, d2)["network"]; a != b {
		t.Fatalf("joined network %v, want %v", b, a)
	}
	// A broken genesis file is refused and creates nothing.
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"name":"x"}`), 0o644)
	d3 := filepath.Join(t.TempDir(), "none")
	if r := jbc(t, "--datadir", d3, "init", "--genesis", bad); r.code != exitError || !strings.Contains(r.stderr, "bad.json") {
		t.Fatalf("bad genesis file: %+v", r)
	}
	if treeHash(t, d3) != "absent" {
		t.Fatal("bad genesis file created the data directory")
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	a := t.TempDir()
	mustJBC(t, "--datadir", a, "init", "--difficulty", "4")
	mustJBC(t, "--datadir", a, "mine", "--blocks", "30", "--threads", "1")
	x1 := filepath.Join(t.TempDir(), "x1")
	if out := mustJBC(t, "--datadir", a, "export", "--out", x1); !strings.Contains(out, "exported 31 blocks") {
		t.Fatalf("export: %q", out)
	}

	// Into an empty data directory: a new network of the same genesis.
	b := filepath.Join(t.TempDir(), "b")
	out := mustJBC(t, "--datadir", b, "import", "--from", x1)
	if !strings.Contains(out, "validated 31 blocks") || !strings.Contains(out, "1 hex zeros") {
		t.Fatalf("import: %q", out)
	}
	ca, cb := chainJSON(t, a), chainJSON(t, b)
	if !reflect.DeepEqual(ca, cb) {
		t.Fatalf("imported chain %v, want %v", cb, ca)
	}
	if !reflect.DeepEqual(blocksList(t, a), blocksList(t, b)) {
		t.Fatal("imported blocks differ")
	}
	if _, err := os.Stat(filepath.Join(b, genesisFileName)); err != nil {
		t.Fatal("import wrote no genesis file")
	}
	x2 := filepath.Join(t.TempDir(), "x2")
	mustJBC(t, "--datadir", b, "export", "--out", x2)
	if treeHash(t, x1) != treeHash(t, x2) {
		t.Fatal("export of the import differs from the first export")
	}

	// Into the data directory it came from: nothing new.
	var res struct {
		Created bool `json:"created"`
		Added   int  `json:"added"`
		Best    bool `json:"best"`
	}
	out = mustJBC(t, "--datadir", a, "--json", "import", "--from", x1)
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Created || res.Added != 0 || !res.Best {
		t.Fatalf("re-import: %+v, %v\n%s", res, err, out)
	}

	// A partial export.
	x3 := t.TempDir()
	if out := mustJBC(t, "--datadir", a, "export", "--out", x3, "--from", "10", "--to", "12"); !strings.Contains(out, "exported 3 blocks (heights 10 to 12)") {
		t.Fatalf("partial export: %q", out)
	}
}

// TestImportPythonFixture imports the Python-made chain and exports it
// back, byte for byte.
func TestImportPythonFixture(t *testing.T) {
	d := t.TempDir()
	var res struct {
		Created bool   `json:"created"`
		Bits    uint8  `json:"bits"`
		Height  uint64 `json:"height"`
		Name    string `json:"name"`
	}
	out := mustJBC(t, "--datadir", d, "--json", "import", "--from", pyFixture)
	if err := json.Unmarshal([]byte(out), &res); err != nil || !res.Created || res.Bits != 8 || res.Height != 19 || res.Name != storage.ImportedName {
		t.Fatalf("import: %+v, %v\n%s", res, err, out)
	}
	mustJBC(t, "--datadir", d, "verify")
	// By default export writes the original's own files (Python 2 key
	// order); --key-order python3 writes what it writes under Python 3.
	x := t.TempDir()
	mustJBC(t, "--datadir", d, "export", "--out", x)
	if treeHash(t, x) != treeHash(t, py2Fixture) {
		t.Fatal("export differs from the files the original writes (Python 2)")
	}
	x3 := t.TempDir()
	mustJBC(t, "--datadir", d, "export", "--out", x3, "--key-order", "python3")
	if treeHash(t, x3) != treeHash(t, pyFixture) {
		t.Fatal("export --key-order python3 differs from the files the original writes under Python 3")
	}
	if r := jbc(t, "--datadir", d, "export", "--out", t.TempDir(), "--key-order", "python4"); r.code != exitUsage {
		t.Fatalf("export --key-order python4: %+v", r)
	}
	// The Python 2 files import to the same chain.
	d2 := t.TempDir()
	mustJBC(t, "--datadir", d2, "import", "--from", py2Fixture)
	if !reflect.DeepEqual(chainJSON(t, d), chainJSON(t, d2)) {
		t.Fatal("the Python 2 files import to another chain than the Python 3 ones")
	}
	// The imported network mines on, at its difficulty.
	out = mustJBC(t, "--datadir", d, "mine", "--blocks", "1", "--threads", "1")
	if !strings.HasPrefix(out, "block 20 00") {
		t.Fatalf("mining on the imported chain: %q", out)
	}
}

// copyFixture copies the Python-made chain into a temporary directory.
func copyFixture(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(pyFixture)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(pyFixture, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func editBlock(t *testing.T, dir string, index uint64, f func(b *chain.Block)) {
	t.Helper()
	path := filepath.Join(dir, storage.PythonFileName(index))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := storage.DecodePythonFile(filepath.Base(path), data)
	if err != nil {
		t.Fatal(err)
	}
	f(&b)
	if data, err = storage.EncodePythonFile(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// mineTo re-mines b to exactly zeros leading hex zeros.
func mineTo(b *chain.Block, zeros int) {
	for b.Nonce = 0; ; b.Nonce++ {
		b.Hash = b.ComputeHash()
		if storage.LeadingHexZeros(&b.Hash) == zeros {
			return
		}
	}
}

// TestImportMalformed checks that every kind of bad input fails with a
// message naming the file and the rule, a non-zero exit, and a data
// directory exactly as it was: missing, empty, holding the same network,
// or holding another.
func TestImportMalformed(t *testing.T) {
	// The rule broken when the blocks are checked against another network:
	// its genesis is not theirs.
	otherGenesis := []string{"000000.json", "bad-genesis"}
	cases := []struct {
		name string
		edit func(t *testing.T, dir string)
		args []string
		// want: substrings of stderr, importing into a data directory
		// without a chain; wantSame and wantOther, into one holding the
		// Python chain's network or another (nil: as want).
		want, wantSame, wantOther []string
		code                      int
	}{
		{"bad JSON", func(t *testing.T, d string) {
			os.WriteFile(filepath.Join(d, "000003.json"), []byte(`{"index": "3",`), 0o644)
		}, nil, []string{"000003.json", "bad block JSON"}, nil, nil, exitError},
		{"missing field", func(t *testing.T, d string) {
			os.WriteFile(filepath.Join(d, "000004.json"), []byte(`{"index": "4", "timestamp": "1", "prev_hash": "", "data": "", "nonce": "0"}`), 0o644)
		}, nil, []string{"000004.json", "missing field hash"}, nil, nil, exitError},
		{"gap", func(t *testing.T, d string) { os.Remove(filepath.Join(d, "000010.json")) },
			nil, []string{"block 10 is missing", "000010.json"}, nil, nil, exitError},
		{"malformed name", func(t *testing.T, d string) {
			os.WriteFile(filepath.Join(d, "0007.json"), []byte(`{}`), 0o644)
		}, nil, []string{"0007.json", "not a block file name"}, nil, nil, exitError},
		{"index differs from name", func(t *testing.T, d string) {
			editBlock(t, d, 8, func(b *chain.Block) { b.Index = 80 })
		}, nil, []string{"000008.json", "file name says 8"}, nil, nil, exitError},
		{"wrong hash", func(t *testing.T, d string) {
			editBlock(t, d, 11, func(b *chain.Block) { b.Data = "forged" })
		}, nil, []string{"000011.json", "bad-hash"}, nil, otherGenesis, exitError},
		{"too little work", func(t *testing.T, d string) {
			editBlock(t, d, 19, func(b *chain.Block) { mineTo(b, 1) })
		}, []string{"--zeros", "2"}, []string{"000019.json", "difficulty", "8 required"}, nil, otherGenesis, exitError},
		{"too little work for --zeros", nil, []string{"--zeros", "3"}, []string{".json", "difficulty", "12 required"},
			[]string{"3 hex zeros", "fixed difficulty 8 bits"}, []string{"3 hex zeros"}, exitError},
		{"broken link", func(t *testing.T, d string) {
			editBlock(t, d, 12, func(b *chain.Block) { b.Data = "changed"; mineTo(b, 2) })
		}, nil, []string{"000013.json", "bad-link"}, nil, otherGenesis, exitError},
		{"no such directory", nil, []string{"--from", "/nonexistent/chaindata"}, []string{"/nonexistent/chaindata"}, nil, nil, exitError},
		{"no --from", nil, []string{"--from", ""}, []string{"--from is required"}, nil, nil, exitUsage},
		{"--zeros out of range", nil, []string{"--zeros", "64"}, []string{"--zeros 64"}, nil, nil, exitUsage},
	}
	targets := []struct {
		name string
		make func(t *testing.T) string
	}{
		{"missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "new") }},
		{"empty", func(t *testing.T) string { return t.TempDir() }},
		{"same network", func(t *testing.T) string {
			d := t.TempDir()
			mustJBC(t, "--datadir", d, "import", "--from", pyFixture)
			return d
		}},
		{"other network", func(t *testing.T) string {
			d := t.TempDir()
			mustJBC(t, "--datadir", d, "init", "--difficulty", "8")
			return d
		}},
	}
	for _, c := range cases {
		for _, tg := range targets {
			t.Run(c.name+"/"+tg.name, func(t *testing.T) {
				src := copyFixture(t)
				if c.edit != nil {
					c.edit(t, src)
				}
				d := tg.make(t)
				before := treeHash(t, d)
				args := append([]string{"--datadir", d, "import", "--from", src}, c.args...)
				r := jbc(t, args...)
				if r.code != c.code {
					t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, c.code, r.stdout, r.stderr)
				}
				want := c.want
				switch {
				case tg.name == "same network" && c.wantSame != nil:
					want = c.wantSame
				case tg.name == "other network" && c.wantOther != nil:
					want = c.wantOther
				}
				for _, w := range want {
					if !strings.Contains(r.stderr, w) {
						t.Errorf("stderr %q does not contain %q", r.stderr, w)
					}
				}
				if after := treeHash(t, d); after != before {
					t.Errorf("data directory changed (%s -> %s)", before, after)
				}
			})
		}
	}
}

func TestVersion(t *testing.T) {
	if out := mustJBC(t, "version"); !strings.HasPrefix(out, "jbc ") {
		t.Fatalf("version: %q", out)
	}
	var v map[string]string
	if err := json.Unmarshal([]byte(mustJBC(t, "version", "--json")), &v); err != nil || v["version"] == "" || v["go"] == "" {
		t.Fatalf("version --json: %v, %v", v, err)
	}
}
