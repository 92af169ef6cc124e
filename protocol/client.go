package protocol

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	p2pprotocol "github.com/libp2p/go-libp2p/core/protocol"
	msmux "github.com/multiformats/go-multistream"
	"google.golang.org/protobuf/proto"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/protocol/pb"
)

// ClientOption changes a default of NewClient.
type ClientOption func(*Client) error

// WithFirstByteTimeout sets how long the client waits for the first byte of
// a response (default FirstByteTimeout).
func WithFirstByteTimeout(d time.Duration) ClientOption {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("protocol: first byte timeout %v must be positive", d)
		}
		c.firstByte = d
		return nil
	}
}

// WithResponseTimeout sets how long the client waits for a whole response
// (default ResponseTimeout).
func WithResponseTimeout(d time.Duration) ClientOption {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("protocol: response timeout %v must be positive", d)
		}
		c.response = d
		return nil
	}
}

// WithMinResponseRate sets the slowest a response may arrive, in bytes per
// second averaged from its first byte, and how long after the first byte
// that is first checked (defaults MinReceiveRate and MinReceiveGrace).
func WithMinResponseRate(bytesPerSecond int, grace time.Duration) ClientOption {
	return func(c *Client) error {
		if bytesPerSecond <= 0 {
			return fmt.Errorf("protocol: minimum response rate %d bytes/s must be positive", bytesPerSecond)
		}
		if grace < 0 {
			return fmt.Errorf("protocol: minimum response rate grace %v must not be negative", grace)
		}
		c.minRate, c.minGrace = bytesPerSecond, grace
		return nil
	}
}

// WithKeep sets the judge of which peers the client's status requests say
// we keep (Status.Keep): the peers the node chose. Without it no request
// sets keep.
func WithKeep(keep func(peer.ID) bool) ClientOption {
	return func(c *Client) error {
		if keep == nil {
			return errors.New("protocol: keep judge must not be nil")
		}
		c.keep = keep
		return nil
	}
}

// Client sends /jbc/chain/1.0.0 requests, and GetRange on /jbc/chain/1.1.0.
// Each call opens one stream, so calls made at once are requests in flight
// at once: to keep several GetRange requests in flight to one peer (up to
// RangeWindow), call GetRange from several goroutines. Its methods are safe
// for concurrent use.
type Client struct {
	h         host.Host
	src       ChainSource
	agent     string
	log       *slog.Logger
	firstByte time.Duration
	response  time.Duration
	minRate   int
	minGrace  time.Duration
	keep      func(peer.ID) bool
}

// NewClient returns a Client that sends requests from h and reports src's
// best chain, with agent, in its status requests. A nil logger discards
// logs.
func NewClient(h host.Host, src ChainSource, agent string, logger *slog.Logger, opts ...ClientOption) (*Client, error) {
	if h == nil {
		return nil, errors.New("protocol: client needs a host")
	}
	if src == nil {
		return nil, errors.New("protocol: client needs a chain source")
	}
	if err := checkAgent(agent); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		h:         h,
		src:       src,
		agent:     agent,
		log:       logger.With("component", "protocol-client"),
		firstByte: FirstByteTimeout,
		response:  ResponseTimeout,
		minRate:   MinReceiveRate,
		minGrace:  MinReceiveGrace,
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Status sends our status to p and returns p's. If p is on another network
// it returns p's status and an error matching ErrWrongNetwork. Other errors:
// a *CodeError for another code, or an error matching ErrMalformed,
// ErrTimeout, or the context's error, or a stream error.
func (c *Client) Status(ctx context.Context, p peer.ID) (Status, error) {
	st := LocalStatus(c.src, c.agent)
	st.Keep = c.keep != nil && c.keep(p)
	req := newStatusRequest(st)
	resp, _, err := c.roundTrip(ctx, p, req)
	if err != nil {
		return Status{}, err
	}
	switch resp.GetCode() {
	case CodeOK, CodeWrongNetwork:
		st, err := StatusFromPB(resp.GetStatus())
		if err != nil {
			return Status{}, err
		}
		if resp.GetCode() == CodeWrongNetwork {
			return st, &CodeError{Code: resp.GetCode(), Message: resp.GetMessage()}
		}
		return st, nil
	}
	return Status{}, &CodeError{Code: resp.GetCode(), Message: resp.GetMessage()}
}

// GetBlocks asks p for up to maxBlocks blocks of its best chain after the
// first hash of locator on it (see BuildLocator). locator must hold 1 to
// MaxLocatorLen hashes and maxBlocks be 1 to MaxBlocksPerPage. The page is
// checked to be a linked run after a locator hash, within the limits; its
// blocks' consensus validity is not. Errors as for Status; a peer with none
// of the locator's hashes gives an error matching ErrNoCommonAncestor.
func (c *Client) GetBlocks(ctx context.Context, p peer.ID, locator []chain.Hash, maxBlocks int) (Page, error) {
	if maxBlocks < 1 || maxBlocks > MaxBlocksPerPage {
		return Page{}, fmt.Errorf("protocol: GetBlocks of %d blocks, want 1 to %d", maxBlocks, MaxBlocksPerPage)
	}
	req := newGetBlocksRequest(locator, maxBlocks)
	resp, n, err := c.roundTrip(ctx, p, req)
	if err != nil {
		return Page{}, err
	}
	if resp.GetCode() != CodeOK {
		return Page{}, &CodeError{Code: resp.GetCode(), Message: resp.GetMessage()}
	}
	page, err := PageFromPB(resp.GetBlocks())
	if err != nil {
		return Page{}, err
	}
	page.Bytes = n
	return page, nil
}

// SupportsRange reports whether p is known to speak IDRange, and so to
// serve GetRange: whether its identify exchange (or a push of it since)
// listed it, or a stream of it was negotiated. It is advice, for choosing
// whom to ask: GetRange to a peer not known to speak IDRange negotiates,
// which costs a round trip, and fails with ErrUnsupported if it does not.
func (c *Client) SupportsRange(p peer.ID) bool {
	ids, err := c.h.Peerstore().SupportsProtocols(p, IDRange)
	return err == nil && len(ids) > 0
}

// GetRange asks p for the blocks at heights r.Start .. r.End() of the chain
// whose last block is r.Tip at r.TipHeight, on a stream of IDRange. The
// page holds at least one block, from r.Start on, as many as fit r.MaxBytes;
// ask again from after its last block for the rest. It is checked to be
// linked, at those heights, within the bound, and to end in r.Tip if it
// reaches r.TipHeight; its blocks' consensus validity is not checked, nor
// that the first links to the block below r.Start. The blocks' Data share
// the response's memory (see RangePage).
//
// Errors as for Status, and: ErrUnsupported when p does not speak IDRange
// (an older node, not a fault); a *CodeError matching ErrUnknownTip when p
// holds no r.Tip at r.TipHeight, ErrBranchTooDeep when r.Tip is on a side
// branch of p's too far above the range, ErrRateLimited when p already
// serves MaxInflightPerPeer requests of ours.
func (c *Client) GetRange(ctx context.Context, p peer.ID, r RangeRequest) (RangePage, error) {
	switch {
	case r.Start < 1 || r.Count < 1 || r.Start > r.TipHeight || r.Count > r.TipHeight-r.Start+1:
		return RangePage{}, fmt.Errorf("protocol: GetRange of heights %d+%d, want 1 <= start <= start+count-1 <= tip height %d", r.Start, r.Count, r.TipHeight)
	case r.MaxBytes < 0:
		return RangePage{}, fmt.Errorf("protocol: GetRange max bytes %d is negative", r.MaxBytes)
	}
	req := newGetRangeRequest(r)
	gr := req.GetGetRange()
	var page RangePage
	n, err := c.exchange(ctx, p, IDRange, req, func(payload []byte) error {
		var (
			ok  bool
			err error
		)
		if page, ok, err = decodeRange(payload, gr); ok {
			return err
		}
		// Not the form decodeRange reads: another code, or an encoding
		// it leaves to the generated decoder.
		resp := new(pb.Response)
		if err := proto.Unmarshal(payload, resp); err != nil {
			return fmt.Errorf("%w: response does not decode: %v", ErrMalformed, err)
		}
		if err := ValidateResponse(req, resp); err != nil {
			return err
		}
		if resp.GetCode() != CodeOK {
			return &CodeError{Code: resp.GetCode(), Message: resp.GetMessage()}
		}
		page, err = RangeFromPB(resp.GetRange())
		return err
	})
	if err != nil {
		return RangePage{}, err
	}
	page.Bytes = n
	return page, nil
}

// roundTrip sends req to p on a new stream of ID and returns the validated
// response and the number of bytes read. The stream is reset on any error
// and when ctx is done.
func (c *Client) roundTrip(ctx context.Context, p peer.ID, req *pb.Request) (*pb.Response, int, error) {
	var resp *pb.Response
	n, err := c.exchange(ctx, p, ID, req, func(payload []byte) error {
		resp = new(pb.Response)
		if err := proto.Unmarshal(payload, resp); err != nil {
			return fmt.Errorf("%w: response does not decode: %v", ErrMalformed, err)
		}
		return ValidateResponse(req, resp)
	})
	return resp, n, err
}

// framePool holds buffers that response frames are read into. A decoder
// copies what it keeps (the generated one its fields, decodeRange the
// payload as one string), so a buffer is reused as soon as its frame is
// decoded, and a page costs no allocation of its size but that copy.
var framePool = sync.Pool{New: func() any { return new([]byte) }}

// exchange sends req to p on a new stream of protocol id, reads the
// response frame and hands its payload to decode, which must not retain
// it; it returns the number of bytes read, and decode's error. The stream
// is reset on any error and when ctx is done.
func (c *Client) exchange(ctx context.Context, p peer.ID, id string, req *pb.Request, decode func(payload []byte) error) (_ int, err error) {
	// Our own request is checked like a peer's: a bad one is our bug, and
	// is reported without ErrMalformed so that no peer is blamed for it.
	if err := ValidateRequest(req); err != nil {
		return 0, fmt.Errorf("protocol: invalid request: %v", err)
	}

	str, err := c.h.NewStream(ctx, p, p2pprotocol.ID(id))
	if err != nil {
		if errors.Is(err, msmux.ErrNotSupported[p2pprotocol.ID]{}) {
			return 0, fmt.Errorf("%w: %s: %v", ErrUnsupported, id, err)
		}
		return 0, fmt.Errorf("protocol: open stream to %s: %w", p, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = str.Reset() })
	defer stop()
	defer func() {
		if err != nil {
			_ = str.Reset()
			c.log.Debug("request failed", "peer", p, "err", err)
		}
	}()

	// Deadlines count from now: the first byte within firstByte, the whole
	// response within response, both within ctx's deadline; in between, the
	// response must keep up minRate from its first byte.
	start := time.Now()
	whole := start.Add(c.response)
	if d, ok := ctx.Deadline(); ok && d.Before(whole) {
		whole = d
	}
	first := start.Add(c.firstByte)
	if first.After(whole) {
		first = whole
	}

	_ = str.SetWriteDeadline(whole)
	if _, err := WriteFrame(str, req); err != nil {
		return 0, c.streamErr(ctx, "write request", err)
	}
	if err := str.CloseWrite(); err != nil {
		return 0, c.streamErr(ctx, "close write", err)
	}

	r := newRateReader(str, first, whole, c.minRate, c.minGrace)
	bp := framePool.Get().(*[]byte)
	defer framePool.Put(bp)
	buf, err := readFrameInto(r, MaxFrameSize, *bp)
	if err != nil {
		if err == io.EOF {
			return 0, fmt.Errorf("%w: stream closed without a response", ErrMalformed)
		}
		return 0, c.streamErr(ctx, "read response", err)
	}
	*bp = buf[:0]
	if err := decode(buf); err != nil {
		return 0, err
	}
	_ = str.Close()
	return r.n, nil
}

// streamErr describes a failed read or write: the context's error if ctx
// ended it, ErrTimeout if a deadline did (ErrTooSlow as well if it was the
// minimum rate's), else the stream's error.
func (c *Client) streamErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("protocol: %s: %w", what, context.Cause(ctx))
	}
	if errors.Is(err, ErrTooSlow) {
		return fmt.Errorf("%w: %s: %w", ErrTimeout, what, err)
	}
	if isTimeout(err) {
		return fmt.Errorf("%w: %s: %v", ErrTimeout, what, err)
	}
	if errors.Is(err, ErrMalformed) {
		return err
	}
	return fmt.Errorf("protocol: %s: %w", what, err)
}
