package main

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/jbc-project/jbc/node"
	nodeapi "github.com/jbc-project/jbc/node/api"
	"github.com/jbc-project/jbc/node/chainsync"
	"github.com/jbc-project/jbc/node/p2p"
)

// bootstrapEnv names the environment variable holding bootstrap multiaddrs,
// comma-separated, used when --bootstrap is not given.
const bootstrapEnv = "JBC_BOOTSTRAP"

// netFlags are the flags that shape a node's host: shared by node and id so
// that id prints what node would listen on.
type netFlags struct {
	listen, announce []string
}

func (f *netFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&f.listen, "listen", nil, fmt.Sprintf("multiaddr to listen on (repeatable; default TCP and QUIC on port %d, all interfaces)", p2p.DefaultPort))
	cmd.Flags().StringArrayVar(&f.announce, "announce", nil, "multiaddr to advertise instead of the listen addresses (repeatable; for docker or NAT)")
}

// checkAddrFlags checks the --listen and --announce multiaddrs and, in
// peerFlags (flag name to values), peers' full multiaddrs, as usage errors
// naming the flag.
func checkAddrFlags(nf netFlags, peerFlags map[string][]string) error {
	if _, err := p2p.ParseAddrs(nf.listenAddrs()); err != nil {
		return usagef("--listen: %v", err)
	}
	if _, err := p2p.ParseAddrs(nf.announce); err != nil {
		return usagef("--announce: %v", err)
	}
	for _, name := range slices.Sorted(maps.Keys(peerFlags)) {
		for _, s := range peerFlags[name] {
			if _, err := p2p.ParsePeerAddr(s); err != nil {
				return usagef("%s: %v", name, err)
			}
		}
	}
	return nil
}

func (f *netFlags) listenAddrs() []string {
	if len(f.listen) == 0 {
		return p2p.DefaultListenAddrs()
	}
	return f.listen
}

func newNodeCmd(a *app) *cobra.Command {
	var (
		nf        netFlags
		bootstrap []string
		peers     []string
		noMDNS    bool
		noDHT     bool
		relay     bool
		dhtPrefix string
		mine      bool
		threads   int
		httpAddr  string
		// legacyPeers are Python JackBlockChain nodes to follow, polled
		// every legacyPoll.
		legacyPeers []string
		legacyPoll  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run a node: find peers, sync the best chain, serve it, optionally mine",
		Long: `node runs a jbc node on the chain in the data directory. It listens with
libp2p on TCP and QUIC (port ` + fmt.Sprint(p2p.DefaultPort) + ` by default), finds peers by mDNS on the LAN
and through the Kademlia DHT from --bootstrap multiaddrs, syncs the chain with
the most work from them, and serves its own. No public peers are built in:
with no --bootstrap, --peer or mDNS the node waits for peers to dial it.

At start it prints its peer ID and its full multiaddrs, one per line: what
other nodes pass to --bootstrap or --peer.`,
		Example: `  jbc node                                   # LAN: peers found by mDNS
  jbc node --no-mdns --listen /ip4/127.0.0.1/tcp/4747
  jbc node --bootstrap /ip4/192.0.2.7/tcp/4747/p2p/12D3KooW...
  jbc node --mine --http 127.0.0.1:8080`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Every argument is checked before anything is written: a node
			// that cannot start leaves no chain and no key behind.
			bootFlag := "--bootstrap"
			if len(bootstrap) == 0 {
				if env := os.Getenv(bootstrapEnv); env != "" {
					bootFlag = bootstrapEnv + " (environment)"
					for _, s := range strings.Split(env, ",") {
						if s = strings.TrimSpace(s); s != "" {
							bootstrap = append(bootstrap, s)
						}
					}
				}
			}
			if err := checkAddrFlags(nf, map[string][]string{bootFlag: bootstrap, "--peer": peers}); err != nil {
				return err
			}
			if !strings.HasPrefix(dhtPrefix, "/") {
				return usagef("--dht-prefix %q must start with /", dhtPrefix)
			}
			listen, _ := p2p.ParseAddrs(nf.listenAddrs()) // checked above
			if err := p2p.CheckListenAddrs(listen); err != nil {
				return err
			}
			if threads < 0 {
				return usagef("--threads %d: want 0 (all CPUs) or more", threads)
			}
			if legacyPoll <= 0 {
				return usagef("--legacy-poll %s: want a positive duration", legacyPoll)
			}
			for _, u := range legacyPeers {
				if _, err := chainsync.LegacyChainURL(u); err != nil {
					return usagef("--legacy-peer: %v", err)
				}
			}
			if httpAddr != "" {
				if _, _, err := net.SplitHostPort(httpAddr); err != nil {
					return usagef("--http %q: want HOST:PORT, like %s (or \"\" for no API)", httpAddr, nodeapi.DefaultHTTPAddr)
				}
				// Taken (another node's API, say): said now, before the
				// chain and key are written, not once the node starts.
				l, err := net.Listen("tcp", httpAddr)
				if err != nil {
					return fmt.Errorf("--http %s: %w (another node's API? give this one another --http address, or \"\" for none)", httpAddr, err)
				}
				l.Close()
			}
			s, err := a.openStore(true)
			if err != nil {
				return err
			}
			defer s.Close()
			n, err := node.New(node.Config{
				Store:              s,
				DataDir:            a.dataDir,
				Listen:             nf.listenAddrs(),
				Announce:           nf.announce,
				Bootstrap:          bootstrap,
				Peers:              peers,
				LegacyPeers:        legacyPeers,
				LegacyPollInterval: legacyPoll,
				MDNS:               !noMDNS,
				DHT:                !noDHT,
				DHTPrefix:          dhtPrefix,
				NoRelay:            !relay,
				Mine:               mine,
				MineThreads:        threads,
				HTTPAddr:           httpAddr,
				Logger:             a.log,
			})
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if err := n.Start(ctx); err != nil {
				n.Close()
				return err
			}
			if addr := n.HTTPAddr(); addr != "" {
				// Commands that read the chain find the node from here
				// while it holds the chain file (running.go).
				remove, err := writeAPIFile(a.dataDir, addr, n.ID().String())
				if err != nil {
					a.log.Warn("cannot note the API address in the data directory: jbc chain, blocks, export and verify will not find this node", "err", err)
				} else {
					defer remove()
				}
			}
			a.printf("%s\n", n.ID())
			for _, addr := range n.Addrs() {
				a.printf("%s\n", addr)
			}
			tip := s.Tip()
			a.log.Info("node running", "network", s.Params().Name, "id", s.Params().ID().Short(),
				"height", tip.Height, "tip", tip.Hash.Short(), "mdns", !noMDNS, "dht", !noDHT, "relay", relay,
				"bootstrap", len(bootstrap), "http", n.HTTPAddr())
			go showSyncProgress(ctx, a, n)
			<-ctx.Done()
			a.log.Info("shutting down")
			return n.Close()
		},
	}
	nf.register(cmd)
	f := cmd.Flags()
	f.StringArrayVar(&bootstrap, "bootstrap", nil, "DHT bootstrap peer multiaddr ending in /p2p/<id> (repeatable; env "+bootstrapEnv+", comma-separated)")
	f.StringArrayVar(&peers, "peer", nil, "peer multiaddr ending in /p2p/<id> to dial directly and keep connected (repeatable)")
	f.StringArrayVar(&legacyPeers, "legacy-peer", nil, "http:// URL of a Python JackBlockChain node to follow: its /blockchain.json is polled and a chain with more work adopted (repeatable)")
	f.DurationVar(&legacyPoll, "legacy-poll", chainsync.DefaultLegacyPollInterval, "how often each --legacy-peer's chain is fetched (each fetch costs a Python node a read of its whole chain)")
	f.BoolVar(&noMDNS, "no-mdns", false, "turn off mDNS discovery on the LAN")
	f.BoolVar(&noDHT, "no-dht", false, "turn off the Kademlia DHT")
	f.BoolVar(&relay, "relay", true, "offer a circuit relay (tight limits) to nodes behind NAT while this node is reachable from outside; --relay=false refuses")
	f.StringVar(&dhtPrefix, "dht-prefix", p2p.DefaultDHTPrefix, "DHT protocol prefix (/ipfs to meet over an IPFS DHT)")
	f.BoolVar(&mine, "mine", false, "mine on the best tip, restarting whenever it changes")
	f.IntVar(&threads, "threads", 0, "mining goroutines (0: one per CPU)")
	f.StringVar(&httpAddr, "http", nodeapi.DefaultHTTPAddr, `HTTP API listen address ("" to disable)`)
	return cmd
}

// syncBarMin is how many blocks a sync must be behind for a progress bar:
// short catch-ups finish before a bar would be seen.
const syncBarMin = 5000

// showSyncProgress draws a progress bar for long syncs when stderr is a
// terminal; the node itself logs progress lines otherwise.
func showSyncProgress(ctx context.Context, a *app, n *node.Node) {
	f, ok := a.stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	var (
		bar  *progress
		base uint64
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := n.Status().Sync
		switch {
		case st.Syncing && bar == nil && st.Target > st.Height+syncBarMin:
			base = st.Height
			bar = a.newProgress("syncing", int64(st.Target-base))
		case st.Syncing && bar != nil:
			bar.set(int64(st.Height - base))
		case !st.Syncing && bar != nil:
			bar.finish()
			bar = nil
		}
	}
}
