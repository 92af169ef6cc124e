// Command mkchain is a helper of e2e/sync.sh, not part of jbc: it makes a
// private network of difficulty 1 and a chain of -blocks blocks on it in
// the data directory -dir, as fast as the store appends (blocks in batches
// of one transaction), and writes the network's genesis.json there, as
// `jbc init` does, for the other nodes to join with `jbc init --genesis`.
// The genesis is dated -blocks seconds and an hour back and the blocks a
// second apart, so that none is ahead of the clock.
//
//	mkchain -dir /tmp/seed -blocks 100000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// batch is how many blocks one transaction stores.
const batch = 4096

func main() {
	dir := flag.String("dir", "", "data directory to create the chain in")
	n := flag.Int("blocks", 1000, "blocks to mine")
	data := flag.String("data", "e2e sync chain block", "data each block carries")
	flag.Parse()
	if err := run(*dir, *n, *data); err != nil {
		fmt.Fprintln(os.Stderr, "mkchain:", err)
		os.Exit(1)
	}
}

func run(dir string, n int, data string) error {
	if dir == "" {
		return fmt.Errorf("-dir is required")
	}
	start := time.Now().Unix() - int64(n) - 3600
	p, err := chain.NewParams("e2e-sync", "e2e sync network", start, 1, 0)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	s, err := storage.Create(dir, p, storage.WithNoSync())
	if err != nil {
		return err
	}
	defer s.Close()
	raw, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "genesis.json"), append(raw, '\n'), 0o644); err != nil {
		return err
	}
	v, err := s.Validator(s.Tip().Hash)
	if err != nil {
		return err
	}
	m := &chain.Miner{Threads: 1}
	now := time.Now().Unix()
	run := make([]chain.Block, 0, batch)
	for i := 0; i < n; i++ {
		tmpl, bits := v.Template(data, v.Tip().Time+1)
		b, err := m.Solve(context.Background(), tmpl, bits)
		if err != nil {
			return err
		}
		if _, err := v.Next(&b, now); err != nil {
			return err
		}
		run = append(run, b)
		if len(run) == batch || i == n-1 {
			if _, err := s.AddBlocks(run); err != nil {
				return err
			}
			run = run[:0]
		}
	}
	fmt.Printf("%d %s\n", s.Tip().Height, s.Tip().Hash)
	return nil
}
