package storage_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// TestImportBuiltinNetwork imports a jbc export of the built-in test
// network into an empty data directory: the chain must land in that
// network, with its rules, not in a new network sharing its genesis (and
// so its ID) under other rules; and a difficulty given for it is refused.
func TestImportBuiltinNetwork(t *testing.T) {
	p := chain.TestNet()
	s, _ := newStore(t, p)
	mustAdd(t, s, mine(t, s, s.Tip().Hash, 20, "builtin"))
	out := filepath.Join(t.TempDir(), "chaindata")
	if _, err := storage.ExportPython(s, out, 0, 1<<63); err != nil {
		t.Fatal(err)
	}
	tip := s.Tip()

	opts := []storage.Option{storage.WithClock(clock)}
	if _, err := storage.ImportPython(filepath.Join(t.TempDir(), "d"), out, storage.PythonImport{Zeros: 1, Options: opts}); err == nil || !strings.Contains(err.Error(), "built-in network "+p.Name) {
		t.Fatalf("import of %s with a difficulty: %v, want a refusal naming the network", p.Name, err)
	}
	dir := filepath.Join(t.TempDir(), "d")
	res, err := storage.ImportPython(dir, out, storage.PythonImport{Zeros: storage.InferZeros, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Params.Name != p.Name || res.Params.ID() != p.ID() || res.Tip.Hash != tip.Hash {
		t.Fatalf("import: created %v, network %s (%s), tip %s; want %s (%s) at %s", res.Created, res.Params.Name, res.Params.ID().Short(), res.Tip.Hash.Short(), p.Name, p.ID().Short(), tip.Hash.Short())
	}
	got := reopen(t, dir)
	if gp := got.Params(); gp.Name != p.Name || gp.Bits != p.Bits || gp.Spacing != p.Spacing || gp.MaxDataSize != p.MaxDataSize {
		t.Fatalf("stored network %+v, want the built-in %s's rules", gp, p.Name)
	}
	// The store opens as the built-in network too.
	got.Close()
	if s2, err := storage.Open(dir, chain.TestNet(), opts...); err != nil {
		t.Fatalf("open as %s: %v", p.Name, err)
	} else {
		s2.Close()
	}
}
