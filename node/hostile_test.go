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
	"math/big"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/multiformats/go-varint"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/gossip"
	"github.com/jbc-project/jbc/node/internal/nodetest"
	"github.com/jbc-project/jbc/node/peering"
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
			// Each waits out badRequestLinger before its ban closes the
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

// fakePeer is an attacker acting as a server: it answers the node's status
// requests with the status it claims and the node's GetBlocks with
// whatever getBlocks writes.
type fakePeer struct {
	h         host.Host
	claim     *pb.Status
	getBlocks func(str network.Stream, gb *pb.GetBlocks)
	// asked receives the time of each GetBlocks, when there is room.
	asked chan time.Time
}

func newFakePeer(t testing.TB, claim *pb.Status, getBlocks func(network.Stream, *pb.GetBlocks)) *fakePeer {
	t.Helper()
	f := &fakePeer{h: rawHost(t), claim: claim, getBlocks: getBlocks, asked: make(chan time.Time, 16)}
	f.h.SetStreamHandler(protocol.ID, f.handle)
	return f
}

func (f *fakePeer) handle(str network.Stream) {
	defer str.Close()
	_ = str.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf, err := protocol.ReadFrame(str, protocol.MaxFrameSize)
	if err != nil {
		str.Reset()
		return
	}
	req := new(pb.Request)
	if err := proto.Unmarshal(buf, req); err != nil {
		str.Reset()
		return
	}
	switch body := req.GetBody().(type) {
	case *pb.Request_Status:
		_, _ = protocol.WriteFrame(str, &pb.Response{Code: protocol.CodeOK, Body: &pb.Response_Status{Status: f.claim}})
	case *pb.Request_GetBlocks:
		select {
		case f.asked <- time.Now():
		default:
		}
		f.getBlocks(str, body.GetBlocks)
	}
}

// claimStatus returns a status on s's network claiming a chain ending in
// tip at height with work.
func claimStatus(s *storage.Store, tip chain.Hash, height uint64, work *big.Int) *pb.Status {
	return protocol.StatusToPB(protocol.Status{Genesis: s.Params().ID(), Tip: tip, Height: height, Work: work, Agent: "attacker"})
}

// pageFrame returns an OK response carrying blocks after fork as a frame.
func pageFrame(t testing.TB, fork chain.Hash, blocks []chain.Block, serverHeight uint64) []byte {
	t.Helper()
	page := &pb.Blocks{Fork: bytes.Clone(fork[:]), ServerHeight: serverHeight}
	for i := range blocks {
		page.Blocks = append(page.Blocks, protocol.BlockToPB(&blocks[i]))
	}
	return frameOf(mustMarshal(t, &pb.Response{Code: protocol.CodeOK, Body: &pb.Response_Blocks{Blocks: page}}))
}

// solve mines tmpl to bits leading zero bits.
func solve(t testing.TB, tmpl chain.Block, bits uint8) chain.Block {
	t.Helper()
	b, err := (&chain.Miner{Threads: 1}).Solve(context.Background(), tmpl, bits)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// underMine returns tmpl with the first nonce whose hash has at least lo
// and fewer than hi leading zero bits: a block whose hash is honest but
// whose work falls short of hi.
func underMine(tmpl chain.Block, lo, hi int) chain.Block {
	for nonce := uint64(0); ; nonce++ {
		tmpl.Nonce = nonce
		h := tmpl.ComputeHash()
		if z := chain.LeadingZeroBits(&h); z >= lo && z < hi {
			tmpl.Hash = h
			return tmpl
		}
	}
}

// hostileParams is a network whose difficulty starts at 6 bits and, with
// blocks one second apart against a 60 s spacing, rises by two bits at
// every 20th block: a block mined at the old difficulty is then wrong.
func hostileParams(t testing.TB) *chain.Params {
	t.Helper()
	p, err := chain.NewParams("hostile-test", "hostile test network", 1577836800, 6, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHostileBlocks syncs the node from attackers that claim more work and
// serve pages holding a block that breaks one rule, after valid blocks
// (kept: they are valid) or alone. Whether the protocol layer (the page's
// shape) or consensus refuses it, the attacker is banned, the bad block
// and everything after it is not stored, and the tip is the last valid
// block.
func TestHostileBlocks(t *testing.T) {
	p := hostileParams(t)
	s := nodetest.NewStore(t, p)
	// The next block is the 20th: the first retarget, to 8 bits.
	nodetest.Extend(t, s, 0, 19, "target")
	n := hostileNode(t, s)
	hp := newHonestPeer(t, n)

	const notUTF8 = "<<not utf-8>>"
	cases := []struct {
		name string
		// prefix valid blocks come before the bad one.
		prefix int
		// bad turns a template on the valid blocks' tip, needing bits,
		// into the bad block.
		bad func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block
		// protocol is true when the page's shape is wrong, so that the
		// protocol layer refuses the whole page before consensus sees it.
		protocol bool
	}{
		{name: "wrong difficulty: mined at the old difficulty across a retarget", bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			if bits != 8 {
				t.Fatalf("the next block needs %d bits, want the retarget to 8", bits)
			}
			return underMine(tmpl, 6, 8)
		}},
		{name: "too little work", prefix: 2, bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			return underMine(tmpl, 0, 1)
		}},
		{name: "hash does not recompute (forged proof of work)", prefix: 2, bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			b := solve(t, tmpl, bits)
			b.Hash = chain.Hash{0, 0, 0, 0, 0, 0, 0, 1, 2, 3}
			return b
		}},
		{name: "nonce changed after mining", prefix: 2, bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			b := solve(t, tmpl, bits)
			b.Nonce++
			return b
		}},
		{name: "wrong index", bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			tmpl.Index += 3
			return solve(t, tmpl, bits)
		}},
		{name: "broken link", prefix: 2, protocol: true, bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			tmpl.PrevHash = chain.Hash{1, 2, 3}
			return solve(t, tmpl, bits)
		}},
		{name: "timestamp far in the future", prefix: 2, bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			tmpl.Timestamp = time.Now().Add(3 * time.Hour).Unix()
			return solve(t, tmpl, bits)
		}},
		{name: "timestamp before the median of the past", prefix: 2, bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			// jbc init networks allow a timestamp equal to the median.
			tmpl.Timestamp = v.MedianTime() - 1
			return solve(t, tmpl, bits)
		}},
		{name: "data over the network's limit", prefix: 2, bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			tmpl.Data = strings.Repeat("x", p.MaxDataSize+1)
			return solve(t, tmpl, bits)
		}},
		{name: "data over the wire limit", protocol: true, bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			tmpl.Data = strings.Repeat("x", protocol.MaxDataBytes+1)
			return solve(t, tmpl, bits)
		}},
		{name: "data not UTF-8", prefix: 2, protocol: true, bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			tmpl.Data = notUTF8 // replaced by invalid bytes on the wire
			return solve(t, tmpl, bits)
		}},
		{name: "a genesis block in a page", protocol: true, bad: func(t testing.TB, v *chain.Validator, tmpl chain.Block, bits uint8) chain.Block {
			g := chain.NewGenesis("another genesis", tmpl.Timestamp)
			return g
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := s.Tip()
			v, err := s.Validator(before.Hash)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now().Unix()
			var page []chain.Block
			for i := 0; i < c.prefix; i++ {
				tmpl, bits := v.Template("valid before the bad one", v.Tip().Time+1)
				b := solve(t, tmpl, bits)
				if _, err := v.Next(&b, now); err != nil {
					t.Fatal(err)
				}
				page = append(page, b)
			}
			tmpl, bits := v.Template("bad", v.Tip().Time+1)
			bad := c.bad(t, v, tmpl, bits)
			after := solve(t, chain.Block{Index: bad.Index + 1, Timestamp: bad.Timestamp + 1, Data: "after the bad one", PrevHash: bad.Hash}, bits)
			page = append(page, bad, after)

			wantTip := before.Hash
			if c.prefix > 0 && !c.protocol {
				wantTip = page[c.prefix-1].Hash
			}
			raw := pageFrame(t, before.Hash, page, after.Index)
			raw = bytes.Replace(raw, []byte(notUTF8), bytes.Repeat([]byte{0xff}, len(notUTF8)), 1)

			claimed := new(big.Int).Lsh(before.Work, 10)
			att := newFakePeer(t, claimStatus(s, after.Hash, after.Index, claimed), func(str network.Stream, gb *pb.GetBlocks) {
				_, _ = str.Write(raw)
			})
			w := hp.watch(n)
			start := time.Now()
			dialNode(t, att.h, n)
			took := wantBanned(t, n, att.h, start, syncBanWithin)
			slowest := w.check(t)
			select {
			case <-att.asked:
			default:
				t.Fatal("the attacker was never asked for blocks")
			}
			wantChain(t, n, wantTip, bad.Hash, after.Hash)
			for i := 0; i < c.prefix; i++ {
				if n.store.Has(page[i].Hash) == c.protocol {
					t.Fatalf("valid block %d before the bad one stored: %v", i, !c.protocol)
				}
			}
			layer := "consensus"
			if c.protocol {
				layer = "protocol"
			}
			t.Logf("refused by %s; %d valid blocks before it kept; banned and cut off %v after connecting; honest slowest %v",
				layer, int(s.Tip().Height-before.Height), took.Round(time.Millisecond), slowest.Round(time.Microsecond))
		})
	}
}

// TestHostileStatusClaims syncs the node from attackers whose status
// claims enormous work that their answers do not back: an empty page,
// garbage, no common ancestor, or a valid chain lighter than the node's.
// The empty page, and a lighter chain that does not hold the tip the
// status named, are lies about work that nothing proves (peering.MisLiedWork: the
// score rises, the peer is skipped); a lighter chain ending in the tip the
// status named proves the claim false (peering.MisFalseClaim) and bans, as garbage
// (malformed) does; no common ancestor fails the sync and the peer is
// skipped.
func TestHostileStatusClaims(t *testing.T) {
	p := chain.TestNet()
	s := nodetest.NewStore(t, p)
	nodetest.Extend(t, s, 0, 40, "target")
	n := hostileNode(t, s)
	hp := newHonestPeer(t, n)
	tip := s.Tip()
	huge := new(big.Int).SetBytes(bytes.Repeat([]byte{0xff}, protocol.MaxWorkLen))

	// waitSync waits for the node's record of a sync with p.
	waitSync := func(t *testing.T, p peer.ID) *peering.SyncRecord {
		var rec *peering.SyncRecord
		nodetest.WaitFor(t, syncBanWithin, "a sync attempt with the attacker", func() bool {
			pi, ok := n.peers.Get(p)
			rec = pi.LastSync
			return ok && rec != nil
		})
		return rec
	}

	t.Run("enormous work then an empty page", func(t *testing.T) {
		att := newFakePeer(t, claimStatus(s, chain.Hash{9}, 1_000_000, huge), func(str network.Stream, gb *pb.GetBlocks) {
			_, _ = str.Write(pageFrame(t, chain.Hash(gb.GetLocator()[0]), nil, 1_000_000))
		})
		w := hp.watch(n)
		start := time.Now()
		dialNode(t, att.h, n)
		rec := waitSync(t, att.h.ID())
		took := time.Since(start)
		slowest := w.check(t)
		if !strings.Contains(rec.Result, "claimed work") {
			t.Fatalf("sync result %q, want a refusal naming the claimed work", rec.Result)
		}
		if v := n.scores.Get(att.h.ID(), time.Now()); v < peering.Penalty(peering.MisLiedWork)*0.99 {
			t.Fatalf("score %v after the lie, want %v", v, peering.Penalty(peering.MisLiedWork))
		}
		wantChain(t, n, tip.Hash)
		t.Logf("refused after %v (%q); score %.0f; honest slowest %v", took.Round(time.Millisecond), rec.Result, n.scores.Get(att.h.ID(), time.Now()), slowest.Round(time.Microsecond))
	})

	t.Run("enormous work then garbage", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		garbage := make([]byte, 1000)
		for i := range garbage {
			garbage[i] = byte(rng.Uint32())
		}
		att := newFakePeer(t, claimStatus(s, chain.Hash{9}, 1_000_000, huge), func(str network.Stream, gb *pb.GetBlocks) {
			_, _ = str.Write(garbage)
		})
		w := hp.watch(n)
		start := time.Now()
		dialNode(t, att.h, n)
		took := wantBanned(t, n, att.h, start, syncBanWithin)
		slowest := w.check(t)
		wantChain(t, n, tip.Hash)
		t.Logf("banned and cut off %v after connecting; honest slowest %v", took.Round(time.Millisecond), slowest.Round(time.Microsecond))
	})

	// A peer of our network always has our genesis, the last hash of
	// every locator: this answer is a lie too, but only one the protocol
	// cannot tell from a broken peer. The node skips the peer for
	// failedPeerPause without scoring it (docs/reliability.md).
	t.Run("enormous work then no common ancestor", func(t *testing.T) {
		att := newFakePeer(t, claimStatus(s, chain.Hash{9}, 1_000_000, huge), func(str network.Stream, gb *pb.GetBlocks) {
			_, _ = protocol.WriteFrame(str, &pb.Response{Code: protocol.CodeNoCommonAncestor, Message: "never heard of it"})
		})
		w := hp.watch(n)
		start := time.Now()
		dialNode(t, att.h, n)
		rec := waitSync(t, att.h.ID())
		took := time.Since(start)
		slowest := w.check(t)
		if !strings.HasPrefix(rec.Result, "failed") {
			t.Fatalf("sync result %q, want a failure", rec.Result)
		}
		wantChain(t, n, tip.Hash)
		t.Logf("sync failed after %v (%q), peer skipped; score %.0f; honest slowest %v", took.Round(time.Millisecond), rec.Result, n.scores.Get(att.h.ID(), time.Now()), slowest.Round(time.Microsecond))
	})

	t.Run("enormous work then a valid lighter chain", func(t *testing.T) {
		h, light := lighterLiar(t, p, 10, "lighter", liar{})
		w := hp.watch(n)
		start := time.Now()
		dialNode(t, h, n)
		// Its status names its real tip with work that tip does not have:
		// once the blocks are validated, a provable lie.
		took := wantBanned(t, n, h, start, syncBanWithin)
		slowest := w.check(t)
		wantChain(t, n, tip.Hash)
		// The lighter blocks are valid, but were held in memory until they
		// outweighed our chain, which they never did: none is stored.
		for _, b := range light {
			if n.store.Has(b.Hash) {
				t.Fatalf("lighter block %d (%s) stored; a branch with less work than ours must not be", b.Index, b.Hash.Short())
			}
		}
		t.Logf("banned and cut off %v after connecting, none of its %d blocks stored; honest slowest %v",
			took.Round(time.Millisecond), len(light), slowest.Round(time.Microsecond))
	})

	// The same, but its status names a tip it does not have: nothing
	// proves the claim false (an honest peer may have moved to another
	// chain since), so the lie costs lied-work (50) and a pause.
	t.Run("enormous work naming a tip it lacks, then a valid lighter chain", func(t *testing.T) {
		h, light := lighterLiar(t, p, 10, "lighter, unnamed", fakeTipLiar{})
		w := hp.watch(n)
		start := time.Now()
		dialNode(t, h, n)
		rec := waitSync(t, h.ID())
		took := time.Since(start)
		slowest := w.check(t)
		if !strings.Contains(rec.Result, "claimed work") || strings.Contains(rec.Result, "provable") {
			t.Fatalf("sync result %q, want a refusal naming the claimed work, not a proven lie", rec.Result)
		}
		if v := n.scores.Get(h.ID(), time.Now()); v < peering.Penalty(peering.MisLiedWork)*0.99 || n.peers.IsBanned(h.ID()) {
			t.Fatalf("score %v after the lie (banned %v), want %v", v, n.peers.IsBanned(h.ID()), peering.Penalty(peering.MisLiedWork))
		}
		wantChain(t, n, tip.Hash)
		for _, b := range light {
			if n.store.Has(b.Hash) {
				t.Fatalf("lighter block %d (%s) stored", b.Index, b.Hash.Short())
			}
		}
		if rec.Blocks != 0 || !strings.Contains(rec.Result, fmt.Sprintf("%d valid blocks of less work not stored", len(light))) {
			t.Fatalf("sync record: %d blocks, %q; want none stored and the %d held named", rec.Blocks, rec.Result, len(light))
		}
		t.Logf("refused after %v (%q); score %.0f; honest slowest %v",
			took.Round(time.Millisecond), rec.Result, n.scores.Get(h.ID(), time.Now()), slowest.Round(time.Microsecond))
	})
}

// fakeTipLiar is a chain source whose status claims enormous work for a
// tip that is not on its chain.
type fakeTipLiar struct{ *storage.Store }

func (l fakeTipLiar) Tip() chain.Entry {
	e := l.Store.Tip()
	e.Hash = chain.Hash{0xfa, 0xce}
	e.Work = new(big.Int).Lsh(big.NewInt(1), 200)
	return e
}

// lighterLiar starts a real server on a host of its own for a chain of n
// blocks of network p, whose blocks carry data, wrapped by as (liar{} or
// fakeTipLiar{}) so that its statuses claim enormous work: an attacker
// with a valid chain lighter than it says. It returns the host and the
// chain's blocks.
func lighterLiar(t *testing.T, p *chain.Params, n int, data string, as protocol.ChainSource) (host.Host, []chain.Block) {
	t.Helper()
	ls := nodetest.NewStore(t, p)
	blocks := nodetest.Extend(t, ls, 0, n, data)
	switch as.(type) {
	case liar:
		as = liar{ls}
	case fakeTipLiar:
		as = fakeTipLiar{ls}
	default:
		t.Fatalf("lighterLiar: unknown liar %T", as)
	}
	h := rawHost(t)
	srv, err := protocol.NewServer(protocol.ServerConfig{Host: h, Source: as, Agent: "liar"})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Close() })
	return h, blocks
}

// TestSyncHoldLimit lowers the syncer's hold limit to one byte: no block
// of a forked branch fits, so, as for a branch past chainsync.SyncHoldBytes, only
// the hashes of its blocks are kept while validation goes on. A lighter branch from a liar naming its
// real tip is still never stored (before the fix it was stored as a side
// branch past the limit), and its sender is banned.
func TestSyncHoldLimit(t *testing.T) {
	p := chain.TestNet()
	s := nodetest.NewStore(t, p)
	nodetest.Extend(t, s, 0, 20, "target")
	n := hostileNode(t, s)
	n.sync.SetHoldBytes(1)
	tip := s.Tip()
	count, err := s.Count()
	if err != nil {
		t.Fatal(err)
	}
	h, light := lighterLiar(t, p, 10, "lighter", liar{})
	start := time.Now()
	dialNode(t, h, n)
	took := wantBanned(t, n, h, start, syncBanWithin)
	wantChain(t, n, tip.Hash)
	for _, b := range light {
		if n.store.Has(b.Hash) {
			t.Fatalf("lighter block %d stored", b.Index)
		}
	}
	if c, err := s.Count(); err != nil || c != count {
		t.Fatalf("store holds %d blocks, %v; want the %d it had", c, err, count)
	}
	// No block's data fits: hashes only.
	if peak, bound := n.sync.HeldPeak(), len(light)*chain.HashSize; peak > int64(bound) {
		t.Fatalf("held %d bytes of the branch at most, want at most %d: its hashes", peak, bound)
	}
	t.Logf("banned %v after connecting; none of the branch stored; held at most %d bytes", took.Round(time.Millisecond), n.sync.HeldPeak())
}

// TestHostileSlowRequests holds all of an attacker's request slots the
// longest way left to it: each stream announces a request of MaxRequestSize
// bytes and sends all of it but the last byte at once. A request that small
// cannot keep up MinReceiveRate past MinReceiveGrace (it would need 32 KiB
// by then), so the server cuts each when the grace ends, not at
// RequestReadTimeout; meanwhile it answers the attacker's next request
// RATE_LIMITED and serves an honest peer. A slow requester is not provably
// faulty (docs/protocol.md, section 6), so its score stays 0.
func TestHostileSlowRequests(t *testing.T) {
	t.Parallel()
	s := nodetest.NewStore(t, chain.TestNet())
	nodetest.Extend(t, s, 0, 20, "target")
	n := hostileNode(t, s)
	hp := newHonestPeer(t, n)
	att := rawHost(t)
	dialNode(t, att, n)
	failedBefore := n.server.Stats().Failed
	frame := frameOf(mustMarshal(t, statusRequest(s)))

	var firstCut atomic.Int64 // Unix nanoseconds of the first cut, 0 before
	cut := make(chan time.Duration, protocol.MaxInflightPerPeer)
	held := append(varint.ToUvarint(protocol.MaxRequestSize), make([]byte, protocol.MaxRequestSize-1)...)
	for i := 0; i < protocol.MaxInflightPerPeer; i++ {
		str, err := att.NewStream(context.Background(), n.ID(), protocol.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer str.Reset()
		start := time.Now()
		if _, err := str.Write(held); err != nil {
			t.Fatal(err)
		}
		go func() {
			var buf [1]byte
			_, _ = str.Read(buf[:]) // returns when the server resets the stream
			firstCut.CompareAndSwap(0, time.Now().UnixNano())
			cut <- time.Since(start)
		}()
	}
	// A handler starts once its stream's first byte is in, which a loaded
	// machine can delay; the server attributes a stream to its service
	// once it has admitted it. Until the honest peer starts, only the
	// attacker sends the node requests.
	nodetest.WaitFor(t, 15*time.Second, "the server to hold the four requests (or cut one)", func() bool {
		held := 0
		_ = n.host.Network().ResourceManager().ViewService(protocol.ServiceName, func(sc network.ServiceScope) error {
			held = sc.Stat().NumStreamsInbound
			return nil
		})
		return held >= protocol.MaxInflightPerPeer || firstCut.Load() != 0
	})
	w := hp.watch(n)
	resp, err := rawExchange(att, n.ID(), frame)
	answered := time.Now().UnixNano()
	switch fc := firstCut.Load(); {
	case err == nil && resp.GetCode() == protocol.CodeRateLimited:
	case fc != 0 && fc < answered:
		// One of the four was cut before the fifth was answered, as a
		// loaded machine may delay the fifth past the grace: its slot was
		// free, and any answer is right.
		t.Logf("a held request was cut before the fifth was answered (%v, %v)", resp.GetCode(), err)
	default:
		t.Fatalf("a fifth request while four are held: %v, %v; want RATE_LIMITED", resp, err)
	}
	var cuts []time.Duration
	for range protocol.MaxInflightPerPeer {
		d := <-cut
		cuts = append(cuts, d.Round(time.Millisecond))
		if d < protocol.MinReceiveGrace-200*time.Millisecond || d > protocol.MinReceiveGrace+2*time.Second {
			t.Errorf("a held request was cut after %v, want about %v (RequestReadTimeout is %v)", d, protocol.MinReceiveGrace, protocol.RequestReadTimeout)
		}
	}
	slowest := w.check(t)
	if got := n.server.Stats().Failed - failedBefore; got < protocol.MaxInflightPerPeer {
		t.Errorf("server reset %d streams, want %d", got, protocol.MaxInflightPerPeer)
	}
	if v := n.scores.Get(att.ID(), time.Now()); v != 0 {
		t.Errorf("a slow requester scored %v", v)
	}
	wantChain(t, n, s.Tip().Hash)
	t.Logf("held requests cut after %v; fifth request %v; honest slowest %v", cuts, resp.GetCode(), slowest.Round(time.Microsecond))
}

// TestHostileStalledResponse syncs the node from an attacker that claims
// more work, then answers GetBlocks with nothing at all: the node gives up
// at FirstByteTimeout, scores the stall (peering.MisStalled, not a ban: an honest
// peer can be slow), and keeps its chain.
func TestHostileStalledResponse(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the 5 s first-byte deadline")
	}
	t.Parallel()
	s := nodetest.NewStore(t, chain.TestNet())
	nodetest.Extend(t, s, 0, 20, "target")
	n := hostileNode(t, s)
	hp := newHonestPeer(t, n)
	tip := s.Tip()
	release := make(chan struct{})
	defer close(release)
	att := newFakePeer(t, claimStatus(s, chain.Hash{9}, 1000, new(big.Int).Lsh(tip.Work, 10)), func(str network.Stream, gb *pb.GetBlocks) {
		<-release
	})
	w := hp.watch(n)
	dialNode(t, att.h, n)
	var asked time.Time
	select {
	case asked = <-att.asked:
	case <-time.After(syncBanWithin):
		t.Fatal("the attacker was never asked for blocks")
	}
	nodetest.WaitFor(t, protocol.FirstByteTimeout+3*time.Second, "the stall scored", func() bool {
		return n.scores.Get(att.h.ID(), time.Now()) > 0
	})
	took := time.Since(asked)
	slowest := w.check(t)
	if took < protocol.FirstByteTimeout-200*time.Millisecond || took > protocol.FirstByteTimeout+2*time.Second {
		t.Errorf("gave up %v after asking, want about %v", took, protocol.FirstByteTimeout)
	}
	if v := n.scores.Get(att.h.ID(), time.Now()); v < peering.Penalty(peering.MisStalled)*0.99 || v >= peering.BanScore {
		t.Errorf("score %v after one stall, want %v", v, peering.Penalty(peering.MisStalled))
	}
	wantChain(t, n, tip.Hash)
	t.Logf("gave up %v after asking; score %.0f; honest slowest %v", took.Round(time.Millisecond), n.scores.Get(att.h.ID(), time.Now()), slowest.Round(time.Microsecond))
}

// TestHostileTrickledResponse syncs the node from an attacker that answers
// GetBlocks with a page of valid, heavier blocks sent a byte every 100 ms:
// its first byte comes at once, then far less than MinReceiveRate. The
// node cuts it once MinReceiveGrace is over, long before ResponseTimeout,
// scores the stall and stores none of it.
func TestHostileTrickledResponse(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the minimum receive rate's grace")
	}
	t.Parallel()
	p := chain.TestNet()
	s := nodetest.NewStore(t, p)
	base := nodetest.Extend(t, s, 0, 20, "target")
	n := hostileNode(t, s)
	hp := newHonestPeer(t, n)
	tip := s.Tip()
	// The attacker's chain: the node's and 10 valid blocks more.
	as := nodetest.NewStore(t, p)
	if _, err := as.AddBlocks(base); err != nil {
		t.Fatal(err)
	}
	more := nodetest.Extend(t, as, tip.Height, 10, "trickled")
	raw := pageFrame(t, tip.Hash, more, as.Tip().Height)
	if len(raw)/10 < int(protocol.ResponseTimeout/time.Second)+5 {
		t.Fatalf("a %d-byte page trickles in under the response deadline", len(raw))
	}
	att := newFakePeer(t, protocol.StatusToPB(protocol.LocalStatus(as, "trickler")), func(str network.Stream, gb *pb.GetBlocks) {
		for _, b := range raw {
			if _, err := str.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	w := hp.watch(n)
	dialNode(t, att.h, n)
	var asked time.Time
	select {
	case asked = <-att.asked:
	case <-time.After(syncBanWithin):
		t.Fatal("the attacker was never asked for blocks")
	}
	nodetest.WaitFor(t, protocol.ResponseTimeout+5*time.Second, "the trickle scored", func() bool {
		return n.scores.Get(att.h.ID(), time.Now()) > 0
	})
	took := time.Since(asked)
	slowest := w.check(t)
	if took < protocol.MinReceiveGrace-200*time.Millisecond || took > protocol.MinReceiveGrace+5*time.Second {
		t.Errorf("gave up %v after asking, want about %v (the minimum rate's grace; ResponseTimeout is %v)", took, protocol.MinReceiveGrace, protocol.ResponseTimeout)
	}
	if v := n.scores.Get(att.h.ID(), time.Now()); v < peering.Penalty(peering.MisStalled)*0.99 || v >= peering.BanScore {
		t.Errorf("score %v after one stall, want %v", v, peering.Penalty(peering.MisStalled))
	}
	wantChain(t, n, tip.Hash, more[0].Hash)
	t.Logf("gave up %v after asking (page of %d bytes at 10 B/s); score %.0f; honest slowest %v",
		took.Round(time.Millisecond), len(raw), n.scores.Get(att.h.ID(), time.Now()), slowest.Round(time.Microsecond))
}

// TestHostileRequestFlood has an attacker send valid requests, one per
// stream, sixteen streams at a time. Streams beyond the per-peer limits are
// refused (by the resource manager, or answered RATE_LIMITED for
// MaxInflightPerPeer) at no cost to the attacker; requests beyond the
// per-peer token bucket are answered RATE_LIMITED unread and each costs
// peering.MisFlood, so the attacker is banned after ten of them. An honest peer is
// served throughout.
func TestHostileRequestFlood(t *testing.T) {
	s := nodetest.NewStore(t, chain.TestNet())
	nodetest.Extend(t, s, 0, 600, "target")
	n := hostileNode(t, s)
	// The node's bucket is scaled down to a quarter (50 requests a second,
	// a burst of 100), so that the attacker outruns it on any machine
	// (under the race detector the server answers only a few hundred
	// requests a second in all). The honest peer sends about 40 a second.
	// Set before any peer connects: nothing reads it yet.
	n.reqLimit = peering.NewLimiter(peering.RequestRate/4, peering.RequestBurst/4)
	hp := newHonestPeer(t, n)
	att := rawHost(t)
	dialNode(t, att, n)
	// Mostly status requests, the cheapest to send; every fourth a page.
	status, page := frameOf(mustMarshal(t, statusRequest(s))), frameOf(mustMarshal(t, getBlocksRequest(s)))
	frames := [][]byte{status, status, status, page}

	var (
		mu     sync.Mutex
		counts = map[string]int{}
		wg     sync.WaitGroup
	)
	stop := make(chan struct{})
	refusedBefore := n.server.Stats().Refused
	w := hp.watch(n)
	start := time.Now()
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := i; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := rawExchange(att, n.ID(), frames[j%len(frames)])
				what := "stream refused or cut"
				if err == nil {
					what = resp.GetCode().String()
				}
				mu.Lock()
				counts[what]++
				mu.Unlock()
				if err != nil && att.Network().Connectedness(n.ID()) != network.Connected {
					return
				}
			}
		}()
	}
	// The ban comes once the attacker has outrun the bucket's refill; on a
	// loaded machine it sends barely faster than that, and takes seconds.
	took := wantBanned(t, n, att, start, banWithin)
	close(stop)
	wg.Wait()
	sent := 0
	mu.Lock()
	for _, c := range counts {
		sent += c
	}
	mu.Unlock()
	slowest := w.check(t)
	wantChain(t, n, s.Tip().Hash)
	mu.Lock()
	defer mu.Unlock()
	// The requests over the bucket are answered RATE_LIMITED, but the one
	// that reaches peering.BanScore closes the connection, and with sixteen
	// streams in flight the attacker may not have read any of those
	// answers by then: its streams die with their answers unread. The
	// server counts each answer it writes, after the penalty that may have
	// banned: wait for them there when the attacker saw none.
	nodetest.WaitFor(t, 15*time.Second, "the node to answer RATE_LIMITED", func() bool {
		return counts[protocol.CodeRateLimited.String()] > 0 || n.server.Stats().Refused > refusedBefore
	})
	if counts[protocol.CodeOK.String()] == 0 {
		t.Errorf("answers %v: want some served", counts)
	}
	t.Logf("%d requests (%.0f a second): %v; banned and cut off after %v; honest slowest %v",
		sent, float64(sent)/took.Seconds(), counts, took.Round(time.Millisecond), slowest.Round(time.Microsecond))
}

// gossipAttacker joins the node's block topic on a fresh host and waits
// until the node is in it.
func gossipAttacker(t testing.TB, n *Node) (host.Host, *pubsub.Topic) {
	t.Helper()
	att := rawHost(t)
	ps, err := pubsub.NewGossipSub(context.Background(), att)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(gossip.BlockTopic(n.store.Params().ID()))
	if err != nil {
		t.Fatal(err)
	}
	dialNode(t, att, n)
	nodetest.WaitFor(t, 15*time.Second, "the node in the attacker's topic", func() bool {
		for _, p := range topic.ListPeers() {
			if p == n.ID() {
				return true
			}
		}
		return false
	})
	return att, topic
}

// TestHostileGossipFlood has an attacker publish invalid blocks on the
// node's block topic as fast as it can: garbage, forged hashes, too
// little work. The first one it judges gets the attacker banned and cut
// off; none is stored, and an honest peer is served throughout.
func TestHostileGossipFlood(t *testing.T) {
	p := nodetest.GossipParams(t)
	s := nodetest.NewStore(t, p)
	nodetest.Extend(t, s, 0, 5, "target")
	n := hostileNode(t, s)
	hp := newHonestPeer(t, n)
	tip := s.Tip()
	att, topic := gossipAttacker(t, n)

	// 300 distinct invalid messages on the node's tip.
	v, err := s.Validator(tip.Hash)
	if err != nil {
		t.Fatal(err)
	}
	var msgs [][]byte
	var forged []chain.Hash
	for i := 0; i < 300; i++ {
		tmpl, bits := v.Template(fmt.Sprintf("flood %d", i), tip.Time+1)
		var b chain.Block
		switch i % 3 {
		case 0:
			msgs = append(msgs, []byte(fmt.Sprintf("\xff garbage %d", i)))
			continue
		case 1:
			b = solve(t, tmpl, bits)
			b.Hash = chain.Hash{0, 0, 0, 0, byte(i), byte(i >> 8), 1}
		case 2:
			b = underMine(tmpl, 0, int(bits))
		}
		forged = append(forged, b.Hash)
		msgs = append(msgs, mustMarshal(t, protocol.BlockToPB(&b)))
	}

	w := hp.watch(n)
	start := time.Now()
	published := 0
	for _, m := range msgs {
		if att.Network().Connectedness(n.ID()) != network.Connected {
			break
		}
		if err := topic.Publish(context.Background(), m); err != nil {
			break
		}
		published++
	}
	took := wantBanned(t, n, att, start, banWithin)
	slowest := w.check(t)
	if n.gossip.Rejected() == 0 {
		t.Fatal("the node rejected no gossiped block")
	}
	wantChain(t, n, tip.Hash, forged...)
	t.Logf("published %d of %d; node rejected %d, ignored %d; banned and cut off after %v; honest slowest %v",
		published, len(msgs), n.gossip.Rejected(), n.gossip.Ignored(), took.Round(time.Millisecond), slowest.Round(time.Microsecond))
}

// TestHostileGossipOrphans has an attacker publish blocks whose parent is
// unknown. A well-mined one is kept as an orphan and costs nothing (its
// parent may simply not have arrived yet); ones whose hash does not
// recompute are invalid whatever their parent, so the first gets the
// attacker banned, and none joins the orphan pool.
func TestHostileGossipOrphans(t *testing.T) {
	p := nodetest.GossipParams(t)
	s := nodetest.NewStore(t, p)
	nodetest.Extend(t, s, 0, 5, "target")
	n := hostileNode(t, s)
	tip := s.Tip()
	att, topic := gossipAttacker(t, n)

	// A plausible orphan: the second of two valid blocks, the first withheld.
	v, err := s.Validator(tip.Hash)
	if err != nil {
		t.Fatal(err)
	}
	var valid []chain.Block
	for i := 0; i < 2; i++ {
		tmpl, bits := v.Template("withheld parent", v.Tip().Time+1)
		b := solve(t, tmpl, bits)
		if _, err := v.Next(&b, time.Now().Unix()); err != nil {
			t.Fatal(err)
		}
		valid = append(valid, b)
	}
	if err := topic.Publish(context.Background(), mustMarshal(t, protocol.BlockToPB(&valid[1]))); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitFor(t, 15*time.Second, "the plausible orphan kept", func() bool { return n.gossip.Orphans().Len() == 1 })
	if v := n.scores.Get(att.ID(), time.Now()); v != 0 {
		t.Fatalf("a well-mined orphan cost its sender %v", v)
	}

	// Forged orphans: fewer than the gossip burst, so that only their
	// invalidity can stop them.
	start := time.Now()
	var forged []chain.Hash
	for i := 0; i < gossip.BlockBurst/2; i++ {
		b := chain.Block{Index: tip.Height + 5, Timestamp: tip.Time + 5, Data: fmt.Sprint("orphan ", i),
			PrevHash: chain.Hash{0xee, byte(i)}, Hash: chain.Hash{0, 0, 0, 0, byte(i), 1}}
		forged = append(forged, b.Hash)
		if att.Network().Connectedness(n.ID()) != network.Connected {
			break
		}
		if err := topic.Publish(context.Background(), mustMarshal(t, protocol.BlockToPB(&b))); err != nil {
			break
		}
	}
	took := wantBanned(t, n, att, start, banWithin)
	if got := n.gossip.Orphans().Len(); got != 1 {
		t.Fatalf("the orphan pool holds %d blocks, want only the well-mined one", got)
	}
	wantChain(t, n, tip.Hash, forged...)
	t.Logf("well-mined orphan kept at no cost; forged ones: rejected %d, ignored %d; banned and cut off after %v",
		n.gossip.Rejected(), n.gossip.Ignored(), took.Round(time.Millisecond))
}

// TestHostileOtherNetwork has peers of another network connect to the
// node, some answering its status request, some sending their own: each is
// cut off and banned (in milliseconds; the test logs how long), and each
// one's later dials are refused by the gater.
func TestHostileOtherNetwork(t *testing.T) {
	other, err := chain.NewParams("other", "another genesis", 1577836800, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := nodetest.NewStore(t, chain.TestNet())
	nodetest.Extend(t, s, 0, 10, "target")
	n := hostileNode(t, s)
	hp := newHonestPeer(t, n)
	otherStore := nodetest.NewStore(t, other)
	nodetest.Extend(t, otherStore, 0, 30, "other")
	w := hp.watch(n)
	var cuts []time.Duration
	for i := 0; i < 6; i++ {
		att := rawHost(t)
		asks := i%2 == 1
		if !asks {
			// It serves its chain: the node's own status request finds it out.
			srv, err := protocol.NewServer(protocol.ServerConfig{Host: att, Source: otherStore, Agent: "other"})
			if err != nil {
				t.Fatal(err)
			}
			srv.Start()
			t.Cleanup(func() { srv.Close() })
		}
		start := time.Now()
		dialNode(t, att, n)
		if asks {
			// It sends its status: the node answers WRONG_NETWORK.
			resp, err := rawExchange(att, n.ID(), frameOf(mustMarshal(t, statusRequest(otherStore))))
			if err == nil && resp.GetCode() != protocol.CodeWrongNetwork {
				t.Fatalf("answered %s, want WRONG_NETWORK", resp.GetCode())
			}
		}
		took := wantBanned(t, n, att, start, banWithin)
		cuts = append(cuts, took.Round(time.Millisecond))
		// It keeps reconnecting: the gater refuses it every time.
		for j := 0; j < 3; j++ {
			wantRefused(t, n, att)
		}
	}
	slowest := w.check(t)
	wantChain(t, n, s.Tip().Hash)
	if got := n.peers.BannedCount(); got != 6 {
		t.Fatalf("%d peers banned, want 6", got)
	}
	t.Logf("other-network peers cut off after %v; reconnections refused; honest slowest %v", cuts, slowest.Round(time.Microsecond))
}

// TestHostileSybilSlowloris: 17 peers each hold their 4 allowed streams
// open with one byte of a request, more than the server's MaxInflight. The
// server resets the oldest of them to admit the honest peer's requests.
func TestHostileSybilSlowloris(t *testing.T) {
	s := nodetest.NewStore(t, chain.TestNet())
	nodetest.Extend(t, s, 0, 20, "target")
	n := hostileNode(t, s)
	hp := newHonestPeer(t, n)
	frame := frameOf(mustMarshal(t, statusRequest(s)))
	held := 0
	for a := 0; a <= protocol.MaxInflight/protocol.MaxInflightPerPeer; a++ {
		att := rawHost(t)
		dialNode(t, att, n)
		for i := 0; i < protocol.MaxInflightPerPeer; i++ {
			str, err := att.NewStream(context.Background(), n.ID(), protocol.ID)
			if err != nil {
				continue
			}
			defer str.Reset()
			if _, err := str.Write(frame[:1]); err == nil {
				held++
			}
		}
	}
	time.Sleep(500 * time.Millisecond) // the handlers start on the first byte
	t.Logf("%d slow streams held", held)
	w := hp.watch(n)
	time.Sleep(2 * time.Second)
	w.check(t)
}
