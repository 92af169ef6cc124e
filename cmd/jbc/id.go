package main

import (
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/jbc-project/jbc/node/p2p"
)

type idJSON struct {
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"`
}

func newIDCmd(a *app) *cobra.Command {
	var nf netFlags
	cmd := &cobra.Command{
		Use:   "id",
		Short: "Print the node's peer ID and multiaddrs without starting it",
		Long: `id prints the peer ID of the node key in the data directory (creating the key
if there is none) and the full multiaddrs a node started with the same
--listen and --announce flags would be reachable on, one per line.`,
		Example: `  jbc id
  jbc id --json | jq -r .peer_id`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			key, err := p2p.LoadOrCreateKey(a.dataDir)
			if err != nil {
				return err
			}
			pid, err := peer.IDFromPrivateKey(key)
			if err != nil {
				return err
			}
			listen, err := p2p.ParseAddrs(nf.listenAddrs())
			if err != nil {
				return usagef("--listen: %v", err)
			}
			announce, err := p2p.ParseAddrs(nf.announce)
			if err != nil {
				return usagef("--announce: %v", err)
			}
			addrs, err := p2p.DialableAddrs(listen, announce)
			if err != nil {
				return err
			}
			out := idJSON{PeerID: pid.String(), Addrs: []string{}}
			for _, m := range p2p.FullAddrs(pid, addrs) {
				out.Addrs = append(out.Addrs, m.String())
			}
			if a.json {
				return a.printJSON(out)
			}
			a.printf("%s\n", out.PeerID)
			for _, s := range out.Addrs {
				a.printf("%s\n", s)
			}
			return nil
		},
	}
	nf.register(cmd)
	return cmd
}
