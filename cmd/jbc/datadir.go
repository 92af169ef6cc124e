package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// genesisFileName is the genesis file init and import write into the data
// directory: another node joins the network with
// "jbc init --genesis DATADIR/genesis.json".
const genesisFileName = "genesis.json"

// errNoChain is returned by commands that only read when the data
// directory holds no chain: they never make one, so that a mistyped
// --datadir is an error rather than a new, empty chain.
var errNoChain = errors.New("no chain")

// chainIn reports whether dir holds a chain file. A data directory that
// cannot be read is an error, not an empty one.
func chainIn(dir string) (bool, error) {
	_, err := os.Stat(filepath.Join(dir, storage.FileName))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return false, fmt.Errorf("cannot read the data directory %s: %w", dir, err)
}

// noChainError says that dir holds no chain and how to make one.
func noChainError(dir string) error {
	return fmt.Errorf(`%w in %s (is --datadir right?): make one with "jbc init" (a private network), "jbc import --from DIR|URL" (a Python chain), or "jbc node" (joins the built-in network)`, errNoChain, dir)
}

// openStore opens the chain in the data directory. With create (node and
// mine), a data directory holding no chain gets the built-in network
// (chain.MainNet); without, it is errNoChain.
func (a *app) openStore(create bool) (*storage.Store, error) {
	exists, err := chainIn(a.dataDir)
	if err != nil {
		return nil, err
	}
	var p *chain.Params
	if !exists {
		if !create {
			return nil, noChainError(a.dataDir)
		}
		p = chain.MainNet()
		a.log.Info("no chain in the data directory: starting the built-in network", "datadir", a.dataDir, "network", p.Name, "id", p.ID().Short())
	}
	s, err := storage.Open(a.dataDir, p, storage.WithLogger(a.log))
	if errors.Is(err, storage.ErrNoChain) && p == nil {
		if !create {
			return nil, fmt.Errorf("the chain file in %s is empty (a chain was being created when the process stopped): %w", a.dataDir, noChainError(a.dataDir))
		}
		// A chain.db that never got its first commit (a crash while it was
		// being created) holds nothing: start the built-in network in it.
		p = chain.MainNet()
		a.log.Info("the data directory's chain file is empty: starting the built-in network", "datadir", a.dataDir, "network", p.Name)
		s, err = storage.Open(a.dataDir, p, storage.WithLogger(a.log))
	}
	if err != nil {
		return nil, err
	}
	a.log.Debug("opened chain", "datadir", a.dataDir, "network", s.Params().Name, "height", s.Tip().Height)
	return s, nil
}

// writeGenesis writes p as the genesis file of the data directory,
// atomically, and returns its path.
func writeGenesis(dataDir string, p *chain.Params) (string, error) {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dataDir, genesisFileName)
	if err := writeFileAtomic(path, append(data, '\n')); err != nil {
		return "", fmt.Errorf("write genesis file: %w", err)
	}
	return path, nil
}

// writeFileAtomic writes data to path through a synced temporary file
// renamed into place.
func writeFileAtomic(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// chainSummary is what chain --json prints, and what init and import
// report about the network.
type chainSummary struct {
	Network   string `json:"network"`
	Height    uint64 `json:"height"`
	Tip       string `json:"tip"`
	TotalWork string `json:"total_work"`
	Blocks    int    `json:"blocks"`
}

func summarize(s *storage.Store) (chainSummary, error) {
	n, err := s.Count()
	if err != nil {
		return chainSummary{}, err
	}
	tip := s.Tip()
	return chainSummary{
		Network:   s.Params().ID().String(),
		Height:    tip.Height,
		Tip:       tip.Hash.String(),
		TotalWork: tip.Work.String(),
		Blocks:    n,
	}, nil
}

// describeRules says in words how hard a network's blocks are.
func describeRules(p *chain.Params) string {
	if p.Spacing == 0 {
		return fmt.Sprintf("fixed difficulty %d bits", p.Bits)
	}
	return fmt.Sprintf("difficulty %d bits, retargeting every %d blocks toward one block per %s", p.Bits, p.RetargetInterval, p.Spacing)
}
