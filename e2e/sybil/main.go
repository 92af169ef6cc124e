// Command sybil is the attacker of e2e/sybil.sh, not part of jbc: it holds
// connections to a jbc node from many libp2p identities, each replaced by
// a fresh identity as soon as the node drops it, so that no per-identity
// score can stop it. With -speak the identities also speak the chain
// protocol as an honest new node at height 0 does: each sends a status of
// the node's network on connect and answers the node's status requests,
// which makes them indistinguishable from honest newcomers but for their
// addresses. Without it they say nothing.
//
//	sybil -target /ip4/10.77.1.1/tcp/4747/p2p/12D3... -n 10 [-speak -genesis genesis.json] [-for 30s]
//
// It prints one line of counts a second (identities connected now, made in
// all, dropped by the target, dials refused) and a last line when it ends.
// It dials only the target's address.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/protocol"
)

// Pacing of the attack.
const (
	// retryDelay is the pause after a refused dial before the slot dials
	// again with a fresh identity: short, as an attacker's would be, yet
	// long enough not to spin a core on dials refused at once.
	retryDelay = 50 * time.Millisecond
	// dialTimeout bounds one dial.
	dialTimeout = 5 * time.Second
)

// genesisSource is a chain of the genesis block alone: what a new node
// serves, and the status it sends.
type genesisSource struct{ p *chain.Params }

func (g genesisSource) Params() *chain.Params { return g.p }
func (g genesisSource) Tip() chain.Entry      { return g.p.GenesisEntry() }
func (g genesisSource) FindFork(loc []chain.Hash) (chain.Entry, bool, error) {
	for _, h := range loc {
		if h == g.p.ID() {
			return g.p.GenesisEntry(), true, nil
		}
	}
	return chain.Entry{}, false, nil
}
func (g genesisSource) ForEach(from, to uint64, fn func(*chain.Block) error) error {
	if from > 0 || to < from {
		return nil
	}
	b := g.p.Genesis
	if err := fn(&b); err != nil && err != protocol.ErrStop {
		return err
	}
	return nil
}

type counts struct {
	now, made, dropped, refused atomic.Int64
}

func main() {
	target := flag.String("target", "", "the node's multiaddr, ending in /p2p/<id>")
	n := flag.Int("n", 10, "identities held at once")
	speak := flag.Bool("speak", false, "speak the chain protocol as an honest new node (needs -genesis)")
	genesis := flag.String("genesis", "", "the network's genesis file (jbc init writes it as genesis.json)")
	listen := flag.String("listen", "", "IP to dial from (each identity listens on it, so go-libp2p dials from it); default: the kernel's choice")
	dur := flag.Duration("for", 0, "stop after this long (0: until interrupted)")
	flag.Parse()
	if err := run(*target, *n, *speak, *genesis, *listen, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "sybil:", err)
		os.Exit(1)
	}
}

func run(target string, n int, speak bool, genesisFile, listen string, dur time.Duration) error {
	addr, err := ma.NewMultiaddr(target)
	if err != nil {
		return fmt.Errorf("-target: %w", err)
	}
	info, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		return fmt.Errorf("-target must end in /p2p/<id>: %w", err)
	}
	var src genesisSource
	if speak {
		data, err := os.ReadFile(genesisFile)
		if err != nil {
			return fmt.Errorf("-speak needs -genesis: %w", err)
		}
		var p chain.Params
		if err := json.Unmarshal(data, &p); err != nil {
			return fmt.Errorf("%s: %w", genesisFile, err)
		}
		src.p = &p
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if dur > 0 {
		ctx, cancel = context.WithTimeout(ctx, dur)
		defer cancel()
	}
	var c counts
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				hold(ctx, *info, src, listen, &c)
			}
		}()
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	report := func(final string) {
		fmt.Printf("%sconnected=%d made=%d dropped=%d refused=%d\n", final, c.now.Load(), c.made.Load(), c.dropped.Load(), c.refused.Load())
	}
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			report("end ")
			return nil
		case <-t.C:
			report("")
		}
	}
}

// hold connects one fresh identity to the target and keeps the connection
// until the target drops it or ctx ends.
func hold(ctx context.Context, target peer.AddrInfo, src genesisSource, listen string, c *counts) {
	opts := []libp2p.Option{
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(),
		libp2p.ForceReachabilityPrivate(),
		libp2p.DisableMetrics(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.NoListenAddrs,
	}
	if listen != "" {
		opts = append(opts, libp2p.ListenAddrStrings("/ip4/"+listen+"/tcp/0"))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sybil: host:", err)
		time.Sleep(time.Second)
		return
	}
	defer h.Close()
	if src.p != nil {
		if srv, err := protocol.NewServer(protocol.ServerConfig{Host: h, Source: src, Agent: "sybil"}); err == nil {
			srv.Start()
			defer srv.Close()
		}
	}
	gone := make(chan struct{}, 1)
	h.Network().Notify(&network.NotifyBundle{DisconnectedF: func(nw network.Network, conn network.Conn) {
		if conn.RemotePeer() == target.ID && nw.Connectedness(target.ID) != network.Connected {
			select {
			case gone <- struct{}{}:
			default:
			}
		}
	}})
	// A dial refused before the handshake finished never told the node
	// this identity, so the next try may use it again (past our own
	// swarm's dial backoff); one the node has seen and dropped is replaced
	// by a fresh one.
	for {
		if sw, ok := h.Network().(*swarm.Swarm); ok {
			sw.Backoff().Clear(target.ID)
		}
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		err = h.Connect(dctx, target)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		c.refused.Add(1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(retryDelay):
		}
	}
	c.made.Add(1)
	c.now.Add(1)
	defer c.now.Add(-1)
	if src.p != nil {
		// Every identity claims to have chosen the target (the status
		// request's keep flag), as an attacker would: admission must still
		// make room for honest newcomers.
		claimKeep := protocol.WithKeep(func(peer.ID) bool { return true })
		if cl, err := protocol.NewClient(h, src, "sybil", nil, claimKeep); err == nil {
			sctx, cancel := context.WithTimeout(ctx, dialTimeout)
			cl.Status(sctx, target.ID)
			cancel()
		}
	}
	for h.Network().Connectedness(target.ID) == network.Connected {
		select {
		case <-ctx.Done():
			return
		case <-gone:
		case <-time.After(100 * time.Millisecond):
		}
	}
	c.dropped.Add(1)
}
