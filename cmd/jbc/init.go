package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/storage"
)

// defaultInitBits is init's default difficulty: 2^20 hashes, a fraction of
// a second on one core, so a private network mines without waiting.
const defaultInitBits = 20

func newInitCmd(a *app) *cobra.Command {
	var (
		bits        uint8
		spacing     time.Duration
		data, name  string
		genesisFile string
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a private network in the data directory, or join one from its genesis file",
		Long: `init creates a new private network in the data directory: a genesis block made
now, with fixed difficulty (--difficulty bits of leading zeros), or retargeting
toward one block per --spacing. With --genesis it joins an existing network
from that network's genesis file instead. Either way it writes the network's
genesis file as genesis.json in the data directory, for others to join with.
It fails if the data directory already holds a chain. New networks follow the
anchored time rules (docs/protocol.md, section 13); a retargeting one refuses
blocks more than one window's target time (20 × --spacing, at most 2 h) ahead
of a node's clock, so its nodes' clocks must agree within that.`,
		Example: `  jbc init --difficulty 20 --data "our private net"      # fixed difficulty
  jbc init --difficulty 16 --spacing 10s                  # retarget toward 10 s blocks
  jbc --datadir /srv/jbc init --genesis genesis.json      # join a network`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var p *chain.Params
			if genesisFile != "" {
				for _, f := range []string{"difficulty", "spacing", "data", "name"} {
					if cmd.Flags().Changed(f) {
						return usagef("--%s cannot be used with --genesis: the genesis file sets the network", f)
					}
				}
				raw, err := os.ReadFile(genesisFile)
				if err != nil {
					return err
				}
				p = new(chain.Params)
				if err := json.Unmarshal(raw, p); err != nil {
					return fmt.Errorf("genesis file %s: %w", genesisFile, err)
				}
			} else {
				if bits == 0 {
					return usagef("--difficulty 0 would make a chain without proof of work, which anyone could rewrite at no cost: want 1 bit or more (4 bits = one hex zero)")
				}
				now := time.Now()
				if data == "" {
					data = fmt.Sprintf("jbc network %q created %s", name, now.UTC().Format(time.RFC3339))
				}
				var err error
				if p, err = chain.NewParams(name, data, now.Unix(), bits, spacing); err != nil {
					return usageError{err}
				}
			}
			exists, err := chainIn(a.dataDir)
			if err != nil {
				return err
			}
			if exists {
				return fmt.Errorf(`%s already holds a chain: "jbc init" only makes a new one. See what it holds with "jbc --datadir %s chain", or give another --datadir`, a.dataDir, a.dataDir)
			}
			s, err := storage.Create(a.dataDir, p, storage.WithLogger(a.log))
			if err != nil {
				return err
			}
			defer s.Close()
			path, err := writeGenesis(a.dataDir, p)
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(struct {
					Network     string `json:"network"`
					Joined      bool   `json:"joined"`
					Name        string `json:"name"`
					Bits        uint8  `json:"bits"`
					Spacing     string `json:"spacing"`
					DataDir     string `json:"datadir"`
					GenesisFile string `json:"genesis_file"`
				}{p.ID().String(), genesisFile != "", p.Name, p.Bits, p.Spacing.String(), a.dataDir, path})
			}
			if genesisFile != "" {
				a.printf("joined network %q (%s) in %s\n", p.Name, p.ID(), a.dataDir)
			} else {
				a.printf("created network %q (%s) in %s\n", p.Name, p.ID(), a.dataDir)
			}
			a.printf("rules: %s\n", describeRules(p))
			a.printf("genesis file: %s (others join with: jbc init --genesis %s)\n", path, genesisFileName)
			return nil
		},
	}
	f := cmd.Flags()
	f.Uint8Var(&bits, "difficulty", defaultInitBits, "difficulty in leading zero bits of the block hash (4 bits = one hex zero)")
	f.DurationVar(&spacing, "spacing", 0, "target time between blocks; 0 fixes the difficulty")
	f.StringVar(&data, "data", "", "genesis block data (default: the name and time)")
	f.StringVar(&name, "name", "private", "network name, a label for people")
	f.StringVar(&genesisFile, "genesis", "", "join the network described by this genesis file instead")
	return cmd
}
