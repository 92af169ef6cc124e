//go:build !linux

package storage

import (
	"os"
	"path/filepath"
	"strings"
)

// syncFilesIn makes durable the hidden temporary files in dir, one fsync
// each: without syncfs(2) there is no cheaper way.
func syncFilesIn(dir, _ string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") || !strings.Contains(e.Name(), ".tmp") {
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, e.Name()), os.O_RDWR, 0)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
