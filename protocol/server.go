package protocol

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/protocol/pb"
)

// ServerConfig holds what a Server needs.
type ServerConfig struct {
	// Host is the libp2p host whose streams the server answers. Required.
	Host host.Host
	// Source is the chain served. Required.
	Source ChainSource
	// Agent names our software in status replies; at most MaxAgentLen
	// bytes of valid UTF-8.
	Agent string
	// OnStatus, if set, is called with every valid status a peer sends in a
	// status request, including one from another network (so that the
	// node can disconnect it) and one refused for load. It is called before
	// the response is written, so the node knows a peer's status by the
	// time the peer has ours. It runs on the stream's handler goroutine: it
	// must not block, and should not close the connection to the peer
	// synchronously, or the peer never gets the response (a peer on
	// another network gets ErrWrongNetwork and should hang up itself).
	OnStatus func(peer.ID, Status)
	// Allow, if set, is asked before each request is served; when it
	// returns false the request is answered CodeRateLimited unread. The
	// node uses it for per-peer token buckets.
	Allow func(peer.ID) bool
	// OnMalformed, if set, is called when a peer's request breaks the
	// protocol (a bad frame, a message that does not decode or fails
	// validation), so the node can count it against the peer. It is called
	// after the CodeBadRequest answer has been written and the stream
	// closed; the answer may still be on its way, so a node
	// that bans the peer should close its connection only a little later
	// (the node waits badRequestLinger). It runs on the handler goroutine
	// and must not block.
	OnMalformed func(peer.ID, error)
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// ServerOption changes a default of NewServer.
type ServerOption func(*Server) error

// WithRequestReadTimeout sets how long the server waits for a request after
// a stream opens (default RequestReadTimeout).
func WithRequestReadTimeout(d time.Duration) ServerOption {
	return func(s *Server) error {
		if d <= 0 {
			return fmt.Errorf("protocol: request read timeout %v must be positive", d)
		}
		s.readTimeout = d
		return nil
	}
}

// WithResponseWriteTimeout sets how long the server spends writing a
// response (default ResponseWriteTimeout).
func WithResponseWriteTimeout(d time.Duration) ServerOption {
	return func(s *Server) error {
		if d <= 0 {
			return fmt.Errorf("protocol: response write timeout %v must be positive", d)
		}
		s.writeTimeout = d
		return nil
	}
}

// WithMinRequestRate sets the slowest a request may arrive, in bytes per
// second averaged from its first byte, and how long after the first byte
// that is first checked (defaults MinReceiveRate and MinReceiveGrace).
func WithMinRequestRate(bytesPerSecond int, grace time.Duration) ServerOption {
	return func(s *Server) error {
		if bytesPerSecond <= 0 {
			return fmt.Errorf("protocol: minimum request rate %d bytes/s must be positive", bytesPerSecond)
		}
		if grace < 0 {
			return fmt.Errorf("protocol: minimum request rate grace %v must not be negative", grace)
		}
		s.minRate, s.minGrace = bytesPerSecond, grace
		return nil
	}
}

// ServerStats counts what a Server has done since it was made.
type ServerStats struct {
	// Served is the number of requests answered CodeOK.
	Served uint64
	// Refused is the number of requests answered with another code.
	Refused uint64
	// Failed is the number of streams reset: a read or write failed or
	// timed out, the server closed, or a handler panicked.
	Failed uint64
	// Panics is the number of handlers that panicked (counted in Failed too).
	Panics uint64
}

// Server answers /jbc/chain/1.0.0 requests from a ChainSource, and
// /jbc/chain/1.1.0 ones (GetRange too) when the source is a BranchSource.
// Both versions share its limits: MaxInflightPerPeer and MaxInflight count
// a peer's requests whatever the version. Its methods are safe for
// concurrent use.
type Server struct {
	cfg          ServerConfig
	log          *slog.Logger
	readTimeout  time.Duration
	writeTimeout time.Duration
	minRate      int
	minGrace     time.Duration
	// branches is cfg.Source as a BranchSource, nil if it is not one.
	branches BranchSource
	// maxWalk is MaxBranchWalk; tests lower it.
	maxWalk int

	closing atomic.Bool
	wg      sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	streams  map[network.Stream]*streamState
	inflight map[peer.ID]int

	served, refused, failed, panics atomic.Uint64
}

// NewServer returns a Server for cfg; Start makes it answer.
func NewServer(cfg ServerConfig, opts ...ServerOption) (*Server, error) {
	if cfg.Host == nil {
		return nil, errors.New("protocol: server needs a host")
	}
	if cfg.Source == nil {
		return nil, errors.New("protocol: server needs a chain source")
	}
	if err := checkAgent(cfg.Agent); err != nil {
		return nil, err
	}
	if p := cfg.Source.Params(); p.MaxDataSize > MaxDataBytes {
		return nil, fmt.Errorf("protocol: network %q allows %d bytes of block data, more than the protocol's %d", p.Name, p.MaxDataSize, MaxDataBytes)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:          cfg,
		log:          log.With("component", "protocol-server"),
		readTimeout:  RequestReadTimeout,
		writeTimeout: ResponseWriteTimeout,
		minRate:      MinReceiveRate,
		minGrace:     MinReceiveGrace,
		streams:      make(map[network.Stream]*streamState),
		inflight:     make(map[peer.ID]int),
		maxWalk:      MaxBranchWalk,
	}
	s.branches, _ = cfg.Source.(BranchSource)
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func checkAgent(a string) error {
	if len(a) > MaxAgentLen {
		return fmt.Errorf("protocol: agent is %d bytes, limit %d", len(a), MaxAgentLen)
	}
	if !utf8.ValidString(a) {
		return errors.New("protocol: agent is not valid UTF-8")
	}
	return nil
}

// Start registers the server's stream handlers on the host: for ID, and for
// IDRange when the source is a BranchSource. Call it once.
func (s *Server) Start() {
	s.cfg.Host.SetStreamHandler(ID, s.handleStream)
	if s.branches != nil {
		s.cfg.Host.SetStreamHandler(IDRange, s.handleStream)
	}
}

// Protocols returns the protocol IDs the server answers, newest first.
func (s *Server) Protocols() []string {
	if s.branches != nil {
		return []string{IDRange, ID}
	}
	return []string{ID}
}

// Close removes the stream handlers, resets the streams being served, and
// waits for their handlers to return; after it returns the server no longer
// calls the ChainSource or OnStatus. It always returns nil.
func (s *Server) Close() error {
	s.cfg.Host.RemoveStreamHandler(ID)
	s.cfg.Host.RemoveStreamHandler(IDRange)
	s.closing.Store(true)
	s.mu.Lock()
	s.closed = true
	for str := range s.streams {
		_ = str.Reset()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Served:  s.served.Load(),
		Refused: s.refused.Load(),
		Failed:  s.failed.Load(),
		Panics:  s.panics.Load(),
	}
}

// admit registers str and says whether the server is open and, if so,
// whether the request may be served (CodeOK) or must be refused for load.
func (s *Server) admit(str network.Stream) (Code, bool) {
	p := str.Conn().RemotePeer()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, false
	}
	s.wg.Add(1)
	if len(s.streams) >= MaxInflight {
		s.evictSlowest()
	}
	s.streams[str] = &streamState{since: time.Now(), waiting: true}
	switch {
	case s.inflight[p] >= MaxInflightPerPeer:
		return CodeRateLimited, true
	case len(s.streams) > MaxInflight:
		return CodeUnavailable, true
	}
	s.inflight[p]++
	return CodeOK, true
}

// streamState is what the server tracks of a stream it serves.
type streamState struct {
	since time.Time
	// waiting is true until the whole request has been read.
	waiting bool
}

// evictSlowest resets the oldest stream still waiting for its request, to
// make room when the server is full. A request is a few KiB written at
// once; a stream that has not delivered it after others came is the
// cheapest to drop, and dropping it stops peers that open streams and
// trickle requests from holding every slot. s.mu must be held.
func (s *Server) evictSlowest() {
	var (
		oldest network.Stream
		at     time.Time
	)
	for str, st := range s.streams {
		if st.waiting && (oldest == nil || st.since.Before(at)) {
			oldest, at = str, st.since
		}
	}
	if oldest == nil {
		return
	}
	// Its handler releases it (and its peer's in-flight count) when the
	// reset reaches it; its slot is free now.
	delete(s.streams, oldest)
	s.log.Debug("server full: resetting the oldest stream still sending its request", "peer", oldest.Conn().RemotePeer(), "age", time.Since(at))
	_ = oldest.Reset()
}

// requestRead records that str's request has arrived.
func (s *Server) requestRead(str network.Stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.streams[str]; ok {
		st.waiting = false
	}
}

// release undoes admit.
func (s *Server) release(str network.Stream, admitted Code) {
	p := str.Conn().RemotePeer()
	s.mu.Lock()
	delete(s.streams, str)
	if admitted == CodeOK {
		if s.inflight[p]--; s.inflight[p] <= 0 {
			delete(s.inflight, p)
		}
	}
	s.mu.Unlock()
	s.wg.Done()
}

// handleStream is the stream handler: admission, then the one wrapper
// around serving.
func (s *Server) handleStream(str network.Stream) {
	admitted, open := s.admit(str)
	if !open {
		_ = str.Reset()
		return
	}
	defer s.release(str, admitted)
	// Attribute the stream's resources to this protocol in the host's
	// resource manager, so that a node can give it limits of its own.
	_ = str.Scope().SetService(ServiceName)
	s.wrap(str, func(readBy time.Time) error { return s.serve(str, admitted, readBy) })
}

// wrap runs fn under the stream's deadlines, resets the stream if fn fails
// or panics and closes it if not, and counts failures. Every stream goes
// through it. fn is given the deadline for reading the request.
func (s *Server) wrap(str network.Stream, fn func(readBy time.Time) error) {
	p := str.Conn().RemotePeer()
	defer func() {
		if r := recover(); r != nil {
			s.panics.Add(1)
			s.failed.Add(1)
			s.log.Error("handler panicked", "peer", p, "panic", r, "stack", string(debug.Stack()))
			_ = str.Reset()
		}
	}()

	// The whole exchange must end within both timeouts; reading the
	// request, within the first.
	now := time.Now()
	readBy := now.Add(s.readTimeout)
	_ = str.SetDeadline(now.Add(s.readTimeout + s.writeTimeout))
	_ = str.SetReadDeadline(readBy)

	if err := fn(readBy); err != nil {
		s.failed.Add(1)
		s.log.Debug("stream reset", "peer", p, "err", err)
		_ = str.Reset()
		return
	}
	_ = str.Close()
}

// serve reads one request from str, by readBy and at the minimum rate from
// its first byte, and answers it. It returns an error if the stream must be
// reset (a request too slow among them: slow is not malformed, so it is not
// reported to OnMalformed); a request refused with a code (bad request,
// load, no fork) is answered and is not an error.
func (s *Server) serve(str network.Stream, admitted Code, readBy time.Time) error {
	p := str.Conn().RemotePeer()
	if s.cfg.Allow != nil && !s.cfg.Allow(p) {
		return s.respond(str, nil, refuse(CodeRateLimited, "request rate over the limit"))
	}
	buf, err := ReadFrame(newRateReader(str, readBy, readBy, s.minRate, s.minGrace), MaxRequestSize)
	s.requestRead(str)
	switch {
	case err == io.EOF:
		return errors.New("stream closed before a request")
	case errors.Is(err, ErrMalformed):
		return s.badRequest(str, err, err.Error())
	case err != nil:
		return fmt.Errorf("read request: %w", err)
	}
	req := new(pb.Request)
	if err := proto.Unmarshal(buf, req); err != nil {
		return s.badRequest(str, err, "request does not decode: "+err.Error())
	}
	if err := ValidateRequest(req); err != nil {
		return s.badRequest(str, err, err.Error())
	}
	if req.GetGetRange() != nil && str.Protocol() != IDRange {
		// As a 1.0.0 responder would: to it the request has no body.
		err := malformed("request: get_range is not part of %s", str.Protocol())
		return s.badRequest(str, err, err.Error())
	}

	// A valid status is reported even when load refuses the request: it
	// is free information about the peer's chain.
	var peerStatus Status
	if sr := req.GetStatus(); sr != nil {
		if peerStatus, err = StatusFromPB(sr.GetStatus()); err != nil {
			panic(fmt.Sprintf("protocol: validated status does not convert: %v", err))
		}
		peerStatus.Keep = sr.GetKeep()
		if s.cfg.OnStatus != nil && !s.closing.Load() {
			s.cfg.OnStatus(str.Conn().RemotePeer(), peerStatus)
		}
	}
	if admitted != CodeOK {
		return s.respond(str, req, refuse(admitted, "too many requests in flight"))
	}

	var resp *pb.Response
	switch body := req.GetBody().(type) {
	case *pb.Request_Status:
		resp = s.status(&peerStatus)
	case *pb.Request_GetBlocks:
		resp = s.getBlocks(body.GetBlocks)
	case *pb.Request_GetRange:
		resp = s.getRange(body.GetRange)
	}
	return s.respond(str, req, resp)
}

// badRequest answers a request that broke the protocol CodeBadRequest with
// msg, closes the stream so that the answer is complete (the end of the
// stream follows it on the wire: the peer can read it whole even if the
// connection is gone by then), and only then reports err to OnMalformed: a
// node that bans the peer for it must not cut the answer off
// (docs/protocol.md, section 2). The read side is closed first, so that a
// peer still writing what the server will not read is not waited for.
func (s *Server) badRequest(str network.Stream, err error, msg string) error {
	werr := s.respond(str, nil, refuse(CodeBadRequest, msg))
	if werr == nil {
		if cerr := str.Close(); cerr != nil {
			werr = fmt.Errorf("close after bad request: %w", cerr)
		}
	}
	// Reported whether or not the answer got out: the peer broke the
	// protocol either way (it may have reset the stream once it had read
	// the answer).
	if s.cfg.OnMalformed != nil {
		s.cfg.OnMalformed(str.Conn().RemotePeer(), err)
	}
	return werr
}

// respond writes resp. When req is set and resp is an answer to it, resp is
// first checked as the peer will check it: a response we would reject is
// replaced by CodeInternalError, so that a fault of ours is never blamed on
// the peer.
func (s *Server) respond(str network.Stream, req *pb.Request, resp *pb.Response) error {
	if req != nil {
		if err := ValidateResponse(req, resp); err != nil {
			s.log.Error("refusing to send an invalid response", "peer", str.Conn().RemotePeer(), "err", err)
			resp = refuse(CodeInternalError, "server built an invalid response")
		}
	}
	if resp.GetCode() == CodeOK {
		s.served.Add(1)
	} else {
		s.refused.Add(1)
		s.log.Debug("refused request", "peer", str.Conn().RemotePeer(), "code", resp.GetCode(), "msg", resp.GetMessage())
	}
	if _, err := WriteFrame(str, resp); err != nil {
		return fmt.Errorf("write response: %w", err)
	}
	return nil
}

// refuse returns a response with a non-OK code and a message clipped to
// MaxMessageLen.
func refuse(code Code, msg string) *pb.Response {
	return &pb.Response{Code: code, Message: clip(msg, MaxMessageLen)}
}

// clip returns s cut to at most n bytes of valid UTF-8.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// status answers a status request whose sender's status is theirs.
func (s *Server) status(theirs *Status) *pb.Response {
	ours := LocalStatus(s.cfg.Source, s.cfg.Agent)
	if theirs.Genesis != ours.Genesis {
		resp := refuse(CodeWrongNetwork, "genesis "+theirs.Genesis.String()+", ours "+ours.Genesis.String())
		resp.Body = &pb.Response_Status{Status: StatusToPB(ours)}
		return resp
	}
	return &pb.Response{Code: CodeOK, Body: &pb.Response_Status{Status: StatusToPB(ours)}}
}

// errReorg stops a page whose blocks no longer link: the best chain
// changed between FindFork and ForEach.
var errReorg = errors.New("best chain changed while serving")

// errClosing stops a page when the server is closing.
var errClosing = errors.New("server closing")

// getBlocks answers a GetBlocks request: the blocks after the first locator
// hash on our best chain, up to the request's max_blocks, MaxBlocksPerPage
// and MaxPageBytes.
func (s *Server) getBlocks(gb *pb.GetBlocks) *pb.Response {
	locator := make([]chain.Hash, len(gb.GetLocator()))
	for i, h := range gb.GetLocator() {
		locator[i] = chain.Hash(h)
	}
	fork, ok, err := s.cfg.Source.FindFork(locator)
	if err != nil {
		s.log.Warn("find fork failed", "err", err)
		return refuse(CodeInternalError, "cannot read chain")
	}
	if !ok {
		return refuse(CodeNoCommonAncestor, "no locator hash is on our best chain")
	}

	tip := s.cfg.Source.Tip()
	page := &pb.Blocks{Fork: fork.Hash[:], ServerHeight: tip.Height}
	want := min(uint64(gb.GetMaxBlocks()), MaxBlocksPerPage)
	if fork.Height < tip.Height {
		to := fork.Height + min(want, tip.Height-fork.Height)
		prev, size := fork.Hash, 0
		err := s.cfg.Source.ForEach(fork.Height+1, to, func(b *chain.Block) error {
			if s.closing.Load() {
				return errClosing
			}
			if b.PrevHash != prev {
				return errReorg
			}
			m := BlockToPB(b)
			n := marshal.Size(m)
			if len(page.Blocks) > 0 && size+n > MaxPageBytes {
				return ErrStop
			}
			page.Blocks = append(page.Blocks, m)
			size += n
			prev = b.Hash
			return nil
		})
		switch {
		case errors.Is(err, errReorg) && len(page.Blocks) == 0:
			return refuse(CodeUnavailable, "best chain changed while serving; retry")
		case errors.Is(err, errReorg):
			// Send the blocks that still link.
		case err == nil, errors.Is(err, ErrStop):
		case errors.Is(err, errClosing):
			return refuse(CodeUnavailable, "server closing")
		case err != nil:
			s.log.Warn("reading blocks failed", "err", err)
			return refuse(CodeInternalError, "cannot read chain")
		}
	}
	if n := len(page.Blocks); n > 0 && page.ServerHeight < page.Blocks[n-1].GetIndex() {
		page.ServerHeight = page.Blocks[n-1].GetIndex()
	}
	return &pb.Response{Code: CodeOK, Body: &pb.Response_Blocks{Blocks: page}}
}

// getRange answers a GetRange request: the blocks at the heights asked for
// of the chain ending at the tip named, within the request's byte bound
// and MaxRangeBytes. If the best chain changes while the page is read, it
// is read again once, then refused CodeUnavailable.
func (s *Server) getRange(gr *pb.GetRange) *pb.Response {
	src := s.branches
	if src == nil {
		// Unreachable: IDRange is served only for a BranchSource.
		return refuse(CodeInternalError, "ranges not served")
	}
	tip := chain.Hash(gr.GetTip())
	if !src.Has(tip) {
		return refuse(CodeUnknownTip, "no block "+tip.String())
	}
	e, err := src.Entry(tip)
	if err != nil {
		s.log.Warn("reading a range tip's entry failed", "tip", tip, "err", err)
		return refuse(CodeInternalError, "cannot read chain")
	}
	if e.Height != gr.GetTipHeight() {
		return refuse(CodeUnknownTip, fmt.Sprintf("block %s is at height %d, not %d", tip, e.Height, gr.GetTipHeight()))
	}
	for try := 0; ; try++ {
		page, err := s.readRange(src, e, gr)
		switch {
		case err == nil:
			return &pb.Response{Code: CodeOK, Body: &pb.Response_Range{Range: page}}
		case errors.Is(err, errReorg) && try == 0:
			continue
		case errors.Is(err, errReorg):
			return refuse(CodeUnavailable, "best chain changed while serving; retry")
		case errors.Is(err, errClosing):
			return refuse(CodeUnavailable, "server closing")
		case errors.Is(err, errTooDeep):
			return refuse(CodeBranchTooDeep, err.Error())
		default:
			s.log.Warn("reading a range failed", "tip", tip, "err", err)
			return refuse(CodeInternalError, "cannot read chain")
		}
	}
}

// errTooDeep stops a range that lies too far below a side-branch tip.
var errTooDeep = fmt.Errorf("tip is on a side branch more than %d blocks above the range", MaxBranchWalk)

// readRange reads the page gr asks for of the chain ending at tip. It walks
// down from tip by parent links until it reaches the range's first height
// or a block of the best chain (the fork; at once when tip is on the best
// chain): heights up to the fork are then read from the best chain, by
// height, and those above it from the branch, by hash. Blocks read by
// height are the tip's ancestors only if the fork was on the best chain
// when they were read: the page checks that it reached the fork, or
// checks the fork again after reading, and returns errReorg if not.
func (s *Server) readRange(src BranchSource, tip chain.Entry, gr *pb.GetRange) (*pb.Range, error) {
	start, end := gr.GetStart(), gr.GetStart()+gr.GetCount()-1
	limit := rangeLimit(gr)

	// The tip's chain above the fork, within the range: newest first.
	var (
		branch []chain.Hash
		fork   chain.Entry
		onBest bool
		cur    = tip
	)
	for steps := 0; ; steps++ {
		var err error
		if onBest, err = src.OnBest(cur.Hash); err != nil {
			return nil, err
		}
		if onBest {
			fork = cur
			break
		}
		if cur.Height <= end {
			branch = append(branch, cur.Hash)
		}
		if cur.Height == start {
			break
		}
		if steps >= s.maxWalk {
			return nil, errTooDeep
		}
		// A held block's parent is held (down to the genesis, which is on
		// every best chain, so the walk ends before it).
		if cur, err = src.Entry(cur.Parent); err != nil {
			return nil, err
		}
	}

	page := &pb.Range{SideBranch: !onBest || fork.Hash != tip.Hash}
	var (
		size int
		prev chain.Hash
		full bool // the byte bound stopped the page
	)
	add := func(b *chain.Block) bool {
		m := BlockToPB(b)
		n := marshal.Size(m)
		if len(page.Blocks) > 0 && size+n > limit {
			full = true
			return false
		}
		page.Blocks = append(page.Blocks, m)
		size += n
		prev = b.Hash
		return true
	}

	// Heights start .. min(fork, end), from the best chain.
	if onBest && fork.Height >= start {
		to := min(fork.Height, end)
		reached := false // whether the page read the fork itself
		err := src.ForEach(start, to, func(b *chain.Block) error {
			switch {
			case s.closing.Load():
				return errClosing
			case len(page.Blocks) > 0 && b.PrevHash != prev:
				return errReorg
			case b.Index == fork.Height && b.Hash != fork.Hash:
				return errReorg
			}
			if !add(b) {
				return ErrStop
			}
			reached = b.Index == fork.Height
			return nil
		})
		switch {
		case err != nil && !errors.Is(err, ErrStop):
			return nil, err
		case !full && (len(page.Blocks) == 0 || page.Blocks[len(page.Blocks)-1].GetIndex() != to):
			// Our best chain is shorter than the fork's height now.
			return nil, errReorg
		}
		if !reached {
			still, err := src.OnBest(fork.Hash)
			if err != nil {
				return nil, err
			}
			if !still {
				return nil, errReorg
			}
		}
	}

	// Heights above the fork, from the branch, oldest first.
	for i := len(branch) - 1; i >= 0 && !full; i-- {
		b, err := src.Block(branch[i])
		if err != nil {
			return nil, err
		}
		if len(page.Blocks) > 0 && b.PrevHash != prev {
			return nil, fmt.Errorf("block %s does not link to %s", b.Hash, prev)
		}
		add(b)
	}
	return page, nil
}
