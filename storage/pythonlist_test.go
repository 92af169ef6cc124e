package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jbc-project/jbc/chain"
)

// fixtureList is the Python-made chain as a Python node serves it:
// json.dumps of the list of its block dicts.
func fixtureList(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i := 0; i < pyFixtureBlocks; i++ {
		data, err := os.ReadFile(filepath.Join(py2Fixture, PythonFileName(uint64(i))))
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			buf.WriteString(", ")
		}
		buf.Write(data)
	}
	buf.WriteByte(']')
	return buf.Bytes()
}

func readList(data []byte, limit int64) ([]chain.Block, error) {
	var out []chain.Block
	err := ReadPythonList(bytes.NewReader(data), "http://127.0.0.1:5000/blockchain.json", 0, limit, func(b chain.Block) error {
		out = append(out, b)
		return nil
	})
	return out, err
}

// TestReadPythonList reads a Python node's /blockchain.json, and refuses
// what is not one, naming the block.
func TestReadPythonList(t *testing.T) {
	list := fixtureList(t)
	got, err := readList(list, int64(len(list)))
	if err != nil {
		t.Fatal(err)
	}
	want := pyReadFixture(t)
	if len(got) != len(want) {
		t.Fatalf("read %d blocks, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("block %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	// jbc's own /blockchain.json ends with a newline.
	if _, err := readList(append(list, '\n'), int64(len(list))+1); err != nil {
		t.Fatalf("trailing newline: %v", err)
	}

	third := bytes.Index(list, []byte(`{"nonce"`+`: "121"`)) // block 3
	for _, c := range []struct {
		name, want string
		data       []byte
		limit      int64
	}{
		{"over the limit", "larger than the limit", list, int64(len(list)) - 1},
		{"not a list", "not a JSON list", []byte(`{"index": "0"}`), 100},
		{"empty", "not a JSON list", nil, 100},
		{"no blocks", "holds no blocks", []byte(`[]`), 100},
		{"cut short", "block 19: bad block JSON", list[:len(list)-20], int64(len(list))},
		{"not closed", "does not end", list[:len(list)-1], int64(len(list))},
		{"after the list", "data after the list", append(append([]byte{}, list...), `[]`...), int64(len(list)) + 2},
		{"missing block", "holds block index 4, but block 3 comes here", append(append([]byte{}, list[:third]...), list[bytes.Index(list[third:], []byte(`}, `))+third+3:]...), int64(len(list))},
		{"bad field", "block 0: bad block JSON", []byte(`[{"index": "0", "timestamp": "x", "prev_hash": "", "hash": "", "data": "", "nonce": "0"}]`), 1000},
	} {
		_, err := readList(c.data, c.limit)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "http://127.0.0.1:5000/blockchain.json") {
			t.Errorf("%s: %v, want an error saying %q and naming the URL", c.name, err, c.want)
		}
		if c.name == "over the limit" && !errors.Is(err, ErrListTooLarge) {
			t.Errorf("over the limit: %v is not ErrListTooLarge", err)
		}
	}
}

// TestImportPythonList: a chain read from a URL imports as the directory
// does, and a bad block is named by the URL and its index, leaving the data
// directory as it was.
func TestImportPythonList(t *testing.T) {
	blocks, err := readList(fixtureList(t), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	const src = "http://127.0.0.1:5000/blockchain.json"
	dataDir := filepath.Join(t.TempDir(), "data")
	res, err := ImportPythonList(dataDir, src, blocks, PythonImport{Zeros: InferZeros})
	if err != nil || !res.Created || res.Tip.Height != pyFixtureBlocks-1 || res.Params.Bits != 8 {
		t.Fatalf("import: %+v, %v", res, err)
	}
	bad := append([]chain.Block(nil), blocks...)
	bad[11].Data = "forged"
	other := filepath.Join(t.TempDir(), "other")
	_, err = ImportPythonList(other, src, bad, PythonImport{Zeros: InferZeros})
	var re *chain.RuleError
	if err == nil || !strings.Contains(err.Error(), src+": block 11") || !errors.As(err, &re) || re.Code != chain.ErrBadHash {
		t.Fatalf("forged block 11: %v", err)
	}
	if _, serr := os.Stat(other); !errors.Is(serr, os.ErrNotExist) {
		t.Fatal("a refused import made the data directory")
	}
}
