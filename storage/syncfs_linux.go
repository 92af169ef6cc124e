package storage

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFilesIn makes durable every file written so far on the filesystem
// holding file (a file in dir): one syncfs(2) for a whole batch.
func syncFilesIn(dir, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
