package node

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/gossip"
	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/node/peering"
	"github.com/jbc-project/jbc/protocol"
)

const (
	// poolSpamRate and poolSpamSize are the attack of issue 11: distinct
	// 60 KB entries gossiped at 150 a second, which filled the 16 MiB
	// pool in under 8 s. The rate is shared among the attacker's IDs.
	poolSpamRate = 150
	poolSpamSize = 60 << 10
	// poolSpamFor is how long the attack runs: long enough to fill the
	// pool (it took under 8 s) and for IDs over their share to pay.
	poolSpamFor = 10 * time.Second
	// poolSpamSubmit is when the honest entry is submitted: the pool is
	// full by then, or its spammers banned.
	poolSpamSubmit = 5 * time.Second
	// poolSpamBits makes the node under attack mine a block every few
	// tenths of a second on one core: slow enough that the pool fills,
	// fast enough that the test sees the next block soon.
	poolSpamBits = 20
	// poolSpamIDs is the many-identity attack: fresh keys, each on an
	// address of its own and sending a status, as many as admission's
	// inbound slots (peering.InboundSlots, 24) let in, with one to spare.
	poolSpamIDs = peering.InboundSlots - 1
)

// dataSpammer joins the node's data topic on a fresh host and waits until
// the node is in it.
func dataSpammer(t testing.TB, n *Node, ip string) (host.Host, *pubsub.Topic) {
	t.Helper()
	h := rawHostAt(t, ip)
	ps, err := pubsub.NewGossipSub(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(gossip.DataTopic(n.store.Params().ID()))
	if err != nil {
		t.Fatal(err)
	}
	dialNode(t, h, n)
	// Send a status of the node's network, as an honest newcomer does, so
	// that admission keeps the connection past its status deadline.
	c, err := protocol.NewClient(h, n.store, "spammer", nil)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Status(sctx, n.ID()); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitFor(t, 30*time.Second, "the node in the spammer's data topic", func() bool {
		for _, p := range topic.ListPeers() {
			if p == n.ID() {
				return true
			}
		}
		return false
	})
	return h, topic
}

// TestHostilePoolSpam gossips distinct 60 KB entries at 150 a second to a
// mining node, from one peer ID and from poolSpamIDs (an attacker with
// fresh keys and addresses), and then submits an honest 2 KB entry over
// the HTTP API: it must be accepted (202) and mined in the node's next
// block. No ID may hold more than its share of the pool: half of it for a
// node's only peer, which it reaches within two seconds, and pays for
// every entry it sends past it (peering.MisPoolShare) until it is banned; an
// eighth each for poolSpamIDs IDs, which they never reach sending 3
// entries a second, so that the pool fills, and the entry submitted here
// evicts the largest contributor's.
func TestHostilePoolSpam(t *testing.T) {
	for _, ids := range []int{1, poolSpamIDs} {
		t.Run(fmt.Sprintf("%d IDs", ids), func(t *testing.T) {
			if ids > 1 && testing.Short() {
				t.Skip("many attacking hosts")
			}
			poolSpam(t, ids)
		})
	}
}

func poolSpam(t *testing.T, ids int) {
	p, err := chain.NewParams("pool-spam", "pool spam test network", 1577836800, poolSpamBits, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := nodetest.NewStore(t, p)
	n := startNodeWith(t, Config{Store: s, DataDir: t.TempDir(), Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Mine: true, MineThreads: 1})
	api := httptest.NewServer(n.Handler())
	defer api.Close()

	type spammer struct {
		h     host.Host
		topic *pubsub.Topic
	}
	sp := make([]spammer, ids)
	for i := range sp {
		// Each identity on an address of its own: admission lets in one
		// slot per address while its inbound slots are full.
		sp[i].h, sp[i].topic = dataSpammer(t, n, fmt.Sprintf("127.0.1.%d", i+1))
	}

	// The spam: each ID publishes its part of the rate until the attack
	// ends or the node has cut it off.
	var (
		published atomic.Int64
		maxShare  atomic.Int64 // the most any ID held of the pool, in bytes
		wg        sync.WaitGroup
	)
	start := time.Now()
	pad := strings.Repeat("s", poolSpamSize)
	for i := range sp {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Duration(ids) * time.Second / poolSpamRate)
			defer tick.Stop()
			for k := 0; time.Since(start) < poolSpamFor; k++ {
				<-tick.C
				if sp[i].h.Network().Connectedness(n.ID()) != network.Connected {
					return
				}
				if err := sp[i].topic.Publish(context.Background(), []byte(fmt.Sprintf("spam %d/%d %s", i, k, pad))); err != nil {
					return
				}
				published.Add(1)
			}
		}()
	}
	// Watch every ID's part of the pool while the spam runs.
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for time.Since(start) < poolSpamFor {
			if b := int64(n.pool.Stats().PeerBytes); b > maxShare.Load() {
				maxShare.Store(b)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	time.Sleep(poolSpamSubmit)
	st := n.pool.Stats()
	poolBytes, evictedBefore := st.Bytes, st.Evicted

	entry := "an honest entry " + strings.Repeat("h", 2<<10)
	resp, err := http.Post(api.URL+"/data", "text/plain", strings.NewReader(entry))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h0 := s.Tip().Height
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("honest POST /data under spam: %s, want 202", resp.Status)
	}
	var mined uint64
	nodetest.WaitFor(t, time.Minute, "the honest entry mined", func() bool {
		_, height, found, err := s.EntryBlock(chain.EntryID(entry))
		mined = height
		return err == nil && found
	})
	// The miner restarts on the entry; a block it had just found without
	// it may come first.
	if mined > h0+2 {
		t.Errorf("the honest entry was mined at height %d; the tip was %d when it was accepted: want the next block", mined, h0)
	}
	wg.Wait()
	<-watchDone

	evicted := n.pool.Stats().Evicted - evictedBefore
	if share := int64(gossip.MaxPoolBytes / min(gossip.PoolShares, ids+1)); maxShare.Load() > share {
		t.Errorf("an ID held %d bytes of the pool, over its share of %d", maxShare.Load(), share)
	}
	banned := 0
	for i := range sp {
		if n.peers.IsBanned(sp[i].h.ID()) {
			banned++
		}
	}
	if ids == 1 && banned != 1 {
		t.Error("the spammer was not banned; it sent past its share of the pool")
	}
	if ids > 1 && evicted == 0 {
		t.Errorf("the pool held %d bytes when the entry came and evicted nothing for it; want it full, and spam evicted", poolBytes)
	}
	if err := s.Verify(nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d IDs published %d entries in %v; pool held %d bytes at the submission, the most any ID held %d; %d banned; "+
		"the honest entry accepted at height %d and mined at %d, %d spam entries evicted for it and since",
		ids, published.Load(), poolSpamFor, poolBytes, maxShare.Load(), banned, h0, mined, evicted)
}
