package node

// Hostile peers. Each test puts a node built as `jbc node` builds it (its
// own libp2p host with the resource manager and the connection gater, from
// DataDir and Listen) in front of an attacker on a real libp2p host that
// speaks raw frames, and checks three things:
//
//  1. an honest peer is served while the attack runs: it keeps sending
//     status and GetBlocks requests, each round trip timed and held to
//     honestBound;
//  2. nothing invalid reaches the store: Verify passes, the tip is the one
//     expected, the attacker's bad blocks are not stored;
//  3. the attacker pays: its score rises, or it is banned, disconnected
//     and refused by the gater when it dials again.
//
// Every host listens on 127.0.0.1 only, with no relay, no NAT port mapping,
// no mDNS and no DHT; nothing dials anything but loopback. The timings each
// attack produced are logged (go test -v -run Hostile ./node/) and
// summarised in docs/reliability.md.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/multiformats/go-varint"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/protocol"
	"github.com/jbc-project/jbc/protocol/pb"
	"github.com/jbc-project/jbc/storage"
)

const (
	// honestBound bounds one honest round trip (a status request and a
	// page of blocks) while an attack runs. On loopback it takes about a
	// millisecond; the bound leaves room for the race detector and a
	// loaded two-core machine, and is still far below the 5 s an honest
	// peer would give up after.
	honestBound = 2 * time.Second
	// honestEvery spaces the honest peer's round trips: 20 a second, well
	// within the node's request rate limit.
	honestEvery = 50 * time.Millisecond
	// banWithin bounds the wait for a provable offence (a malformed
	// request, an invalid block) to get its sender banned and cut off. It
	// takes milliseconds (each test logs how long), but a loaded machine
	// can stall the node, the attacker or the TCP stack for a second or
	// more: the wait ends as soon as the ban is seen, and nothing but the
	// offence can ban these attackers, so a generous bound costs nothing.
	banWithin = 15 * time.Second
	// syncBanWithin bounds the same for offences found by sync: connect,
	// status exchange, a sync kick and a page come first.
	syncBanWithin = 15 * time.Second
)

// hostileNode starts a node serving s on its own host, listening on
// 127.0.0.1 only, with the gater installed; mDNS and the DHT are off.
func hostileNode(t testing.TB, s *storage.Store) *Node {
	t.Helper()
	return startNodeWith(t, Config{Store: s, DataDir: t.TempDir(), Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
}

// rawHost returns a bare libp2p host on 127.0.0.1: an attacker, or the
// honest peer's host.
func rawHost(t testing.TB) host.Host {
	t.Helper()
	return rawHostAt(t, "127.0.0.1")
}

// rawHostAt is rawHost listening, and so dialling, from the loopback
// address ip: identities on different addresses are different address
// groups to admission.
func rawHostAt(t testing.TB, ip string) host.Host {
	t.Helper()
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/"+ip+"/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(),
		libp2p.ForceReachabilityPrivate(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// dialNode connects h to n.
func dialNode(t testing.TB, h host.Host, n *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Connect(ctx, peer.AddrInfo{ID: n.ID(), Addrs: n.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// honestPeer is a well-behaved peer of the node's network: its store holds
// only the genesis, so the node never syncs from it, and it serves that
// store so that the node's status requests are answered.
type honestPeer struct {
	h   host.Host
	c   *protocol.Client
	gen chain.Hash
}

func newHonestPeer(t testing.TB, n *Node) *honestPeer {
	t.Helper()
	h := rawHost(t)
	s := nodetest.NewStore(t, n.store.Params())
	srv, err := protocol.NewServer(protocol.ServerConfig{Host: h, Source: s, Agent: "honest"})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Close() })
	c, err := protocol.NewClient(h, s, "honest", nil)
	if err != nil {
		t.Fatal(err)
	}
	dialNode(t, h, n)
	return &honestPeer{h: h, c: c, gen: s.Params().ID()}
}

// roundTrip asks n for its status and for the first page of its chain, as
// a peer starting a sync does, checks both answers, and returns how long
// they took.
func (hp *honestPeer) roundTrip(ctx context.Context, n *Node) (time.Duration, error) {
	start := time.Now()
	st, err := hp.c.Status(ctx, n.ID())
	if err != nil {
		return 0, fmt.Errorf("status: %w", err)
	}
	if st.Genesis != hp.gen {
		return 0, fmt.Errorf("status names genesis %s", st.Genesis.Short())
	}
	page, err := hp.c.GetBlocks(ctx, n.ID(), []chain.Hash{hp.gen}, protocol.MaxBlocksPerPage)
	if err != nil {
		return 0, fmt.Errorf("get blocks: %w", err)
	}
	took := time.Since(start)
	if st.Height > 0 {
		want, err := n.store.HashAt(1)
		if err != nil {
			return 0, err
		}
		if len(page.Blocks) == 0 || page.Blocks[0].Hash != want {
			return 0, fmt.Errorf("first page of %d blocks does not start with the node's block 1", len(page.Blocks))
		}
	}
	return took, nil
}

// honestWatch runs an honest peer's round trips until checked.
type honestWatch struct {
	stop, done chan struct{}
	rounds     int
	slowest    time.Duration
	errs       []error
}

// watch starts round trips to n every honestEvery.
func (hp *honestPeer) watch(n *Node) *honestWatch {
	w := &honestWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*honestBound)
			d, err := hp.roundTrip(ctx, n)
			cancel()
			if err != nil {
				w.errs = append(w.errs, err)
			} else {
				w.rounds++
				w.slowest = max(w.slowest, d)
			}
			select {
			case <-w.stop:
				return
			case <-time.After(honestEvery):
			}
		}
	}()
	return w
}

// check stops the round trips and fails t unless every one succeeded within
// honestBound. It returns the slowest.
func (w *honestWatch) check(t testing.TB) time.Duration {
	t.Helper()
	close(w.stop)
	<-w.done
	for _, err := range w.errs {
		t.Errorf("honest peer: %v", err)
	}
	if w.rounds == 0 {
		t.Error("honest peer: no round trip completed during the attack")
	}
	if w.slowest > honestBound {
		t.Errorf("honest peer: slowest round trip %v, bound %v", w.slowest, honestBound)
	}
	return w.slowest
}

// wantBanned waits until n has banned att and both sides see the
// connection gone, then checks that att cannot connect again: n's gater
// refuses it. It returns how long the ban took, counted from since.
func wantBanned(t testing.TB, n *Node, att host.Host, since time.Time, within time.Duration) time.Duration {
	t.Helper()
	nodetest.WaitFor(t, within, "the attacker banned and cut off", func() bool {
		return n.peers.IsBanned(att.ID()) &&
			n.host.Network().Connectedness(att.ID()) != network.Connected &&
			att.Network().Connectedness(n.ID()) != network.Connected
	})
	took := time.Since(since)
	wantRefused(t, n, att)
	return took
}

// wantRefused dials n from att and checks that n's gater refuses the
// connection: n's swarm never reports it connected, and if att's side of
// the handshake finished first, att sees it closed at once and can open no
// stream on it.
func wantRefused(t testing.TB, n *Node, att host.Host) {
	t.Helper()
	var accepted atomic.Int32
	nb := &network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if c.RemotePeer() == att.ID() {
			accepted.Add(1)
		}
	}}
	n.host.Network().Notify(nb)
	defer n.host.Network().StopNotify(nb)
	// Dial past the attacker's own dial backoff, so that the node's gater
	// is what answers.
	if sw, ok := att.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(n.ID())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := att.Connect(ctx, peer.AddrInfo{ID: n.ID(), Addrs: n.Host().Addrs()}); err == nil {
		// The dialer can finish its side of the handshake before the
		// listener's gater decides; the connection must then die at once.
		nodetest.WaitFor(t, 15*time.Second, "the refused connection closed", func() bool {
			return att.Network().Connectedness(n.ID()) != network.Connected
		})
	}
	time.Sleep(50 * time.Millisecond) // let a notification that should not come, come
	if accepted.Load() != 0 || n.host.Network().Connectedness(att.ID()) == network.Connected {
		t.Fatal("the node accepted a connection from the banned peer")
	}
}

// wantChain checks that n's store is valid, ends in tip, and holds none of
// absent.
func wantChain(t testing.TB, n *Node, tip chain.Hash, absent ...chain.Hash) {
	t.Helper()
	if err := n.store.Verify(nil); err != nil {
		t.Fatalf("store: %v", err)
	}
	if got := n.store.Tip(); got.Hash != tip {
		t.Fatalf("tip %s at %d, want %s", got.Hash.Short(), got.Height, tip.Short())
	}
	for _, h := range absent {
		if n.store.Has(h) {
			t.Fatalf("the store holds the attacker's block %s", h.Short())
		}
	}
}

// frameOf returns body as one frame: its varint length, then body.
func frameOf(body []byte) []byte { return append(varint.ToUvarint(uint64(len(body))), body...) }

// mustMarshal encodes m as the protocol does.
func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// statusRequest returns a valid status request carrying s's status.
func statusRequest(s *storage.Store) *pb.Request {
	st := protocol.StatusToPB(protocol.LocalStatus(s, "attacker"))
	return &pb.Request{Body: &pb.Request_Status{Status: &pb.StatusRequest{Status: st}}}
}

// getBlocksRequest returns a valid GetBlocks request from the genesis.
func getBlocksRequest(s *storage.Store) *pb.Request {
	g := s.Params().ID()
	return &pb.Request{Body: &pb.Request_GetBlocks{GetBlocks: &pb.GetBlocks{
		Locator: [][]byte{g[:]}, MaxBlocks: protocol.MaxBlocksPerPage}}}
}

// rawExchange opens a chain-protocol stream from h to p, writes raw,
// closes its write side and reads one response frame. An error means the
// stream failed, was reset or ended without a response.
func rawExchange(h host.Host, p peer.ID, raw []byte) (*pb.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	str, err := h.NewStream(ctx, p, protocol.ID)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	defer str.Reset()
	_ = str.SetDeadline(time.Now().Add(5 * time.Second))
	// The server may answer a frame it refuses from its length alone and
	// stop reading, so a failed write is reported only if no answer comes.
	_, werr := str.Write(raw)
	if werr == nil {
		_ = str.CloseWrite()
	}
	buf, err := protocol.ReadFrame(str, protocol.MaxFrameSize)
	if err != nil {
		return nil, fmt.Errorf("read: %w (write: %v)", err, werr)
	}
	resp := new(pb.Response)
	if err := proto.Unmarshal(buf, resp); err != nil {
		return nil, fmt.Errorf("response does not decode: %w", err)
	}
	return resp, nil
}

// TestHostileRequests sends the node's server requests that break the
// framing or the message rules, each from a fresh attacker on a real
// loopback host: the server answers BAD_REQUEST every time (the answer
// always arrives before the ban closes the connection, as docs/protocol.md
// section 2 says), the attacker is banned and refused when it dials again,
// and an honest peer is served throughout.
func TestHostileRequests(t *testing.T) {
	s := nodetest.NewStore(t, chain.TestNet())
	nodetest.Extend(t, s, 0, 20, "target")
	n := hostileNode(t, s)
	hp := newHonestPeer(t, n)
	tip := s.Tip().Hash

	status := mustMarshal(t, statusRequest(s))
	if len(status) >= 128 {
		t.Fatalf("a status request of %d bytes has a 2-byte length; the non-minimal case needs 1", len(status))
	}
	shortGenesis := statusRequest(s)
	shortGenesis.GetStatus().Status.Genesis = shortGenesis.GetStatus().Status.Genesis[:31]
	longLocator := getBlocksRequest(s)
	for len(longLocator.GetGetBlocks().Locator) <= protocol.MaxLocatorLen {
		longLocator.GetGetBlocks().Locator = append(longLocator.GetGetBlocks().Locator, bytes.Repeat([]byte{7}, 32))
	}
	zeroMax := getBlocksRequest(s)
	zeroMax.GetGetBlocks().MaxBlocks = 0
	// A message of a kind this version does not know: field 9, a body.
	unknown := protowire.AppendBytes(protowire.AppendTag(nil, 9, protowire.BytesType), []byte("gimme everything"))
	// A valid status request padded with an unknown field to one byte over
	// MaxRequestSize: valid but for its size.
	oversized := bytes.Clone(status)
	pad := protocol.MaxRequestSize + 1 - len(oversized) - 3 // a tag byte, a 2-byte length
	oversized = protowire.AppendBytes(protowire.AppendTag(oversized, 15, protowire.BytesType), make([]byte, pad))
	if len(oversized) != protocol.MaxRequestSize+1 {
		t.Fatalf("padded request is %d bytes, want %d", len(oversized), protocol.MaxRequestSize+1)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}

	cases := []struct {
		name string
		raw  []byte
	}{
		{"length prefix far over the limit", append(varint.ToUvarint(1<<40), status...)},
		{"length prefix one over the limit", append(varint.ToUvarint(protocol.MaxFrameSize+1), status...)},
		{"valid request one byte over MaxRequestSize", frameOf(oversized)},
		{"overlong length varint", bytes.Repeat([]byte{0xff}, 12)},
		{"non-minimal length", append([]byte{0x80 | byte(len(status)), 0x00}, status...)},
		{"zero length", []byte{0x00}},
		{"stream ends inside the length", []byte{0x80}},
		{"truncated frame", frameOf(status)[:len(status)/2]},
		{"random bytes (64)", random(64)},
		{"random bytes (4096)", random(4096)},
		{"random body in a valid frame", frameOf(random(200))},
		{"trailing garbage inside the frame", frameOf(append(bytes.Clone(status), 0xff, 0xff, 0xff))},
		{"unknown message type", frameOf(unknown)},
		{"status with a 31-byte genesis", frameOf(mustMarshal(t, shortGenesis))},
		{"locator over 64 hashes", frameOf(mustMarshal(t, longLocator))},
		{"get_blocks of zero blocks", frameOf(mustMarshal(t, zeroMax))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Each waits out peering's badRequestLinger before its ban closes the
			// connection: run them side by side.
			t.Parallel()
			att := rawHost(t)
			dialNode(t, att, n)
			w := hp.watch(n)
			start := time.Now()
			resp, err := rawExchange(att, n.ID(), c.raw)
			switch {
			case err != nil:
				// docs/protocol.md, section 2: answered, never cut.
				t.Errorf("no answer: %v; want BAD_REQUEST before the connection closes", err)
			case resp.GetCode() != protocol.CodeBadRequest:
				t.Errorf("answered %s %q, want BAD_REQUEST", resp.GetCode(), resp.GetMessage())
			}
			answered := time.Since(start)
			took := wantBanned(t, n, att, start, banWithin)
			slowest := w.check(t)
			wantChain(t, n, tip)
			t.Logf("answered %s in %v; banned and cut off after %v; honest slowest round trip %v", resp.GetCode(), answered.Round(time.Millisecond), took.Round(time.Millisecond), slowest.Round(time.Microsecond))
		})
	}

	// Bytes after a valid request frame are ignored (docs/protocol.md,
	// section 2): the request is served and nobody is blamed.
	t.Run("bytes after a valid frame", func(t *testing.T) {
		att := rawHost(t)
		dialNode(t, att, n)
		resp, err := rawExchange(att, n.ID(), append(frameOf(status), random(100)...))
		if err != nil || resp.GetCode() != protocol.CodeOK {
			t.Fatalf("answer %v, %v; want OK", resp, err)
		}
		time.Sleep(100 * time.Millisecond)
		if v := n.scores.Get(att.ID(), time.Now()); v != 0 || n.peers.IsBanned(att.ID()) {
			t.Fatalf("a valid request followed by junk cost score %v (banned %v)", v, n.peers.IsBanned(att.ID()))
		}
	})
}
