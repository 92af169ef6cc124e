//go:build unix

package storage_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// TestPermissions checks that a new data directory is 0700 and the chain
// file 0600: the store is the node's alone.
func TestPermissions(t *testing.T) {
	// Under the usual umask 022 a mode asked for as 0755 or 0644 shows as
	// such; set it so that the test does not depend on the caller's.
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)

	dir := filepath.Join(t.TempDir(), "new", "data")
	s, err := storage.Create(dir, chain.TestNet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for path, want := range map[string]os.FileMode{
		filepath.Dir(dir):                    0o700,
		dir:                                  0o700,
		filepath.Join(dir, storage.FileName): 0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", path, got, want)
		}
	}
}
