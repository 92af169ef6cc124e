package protocol

import (
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/protocol/pb"
)

// ID is the libp2p protocol ID of the jbc chain protocol, version 1.0.0:
// status and GetBlocks. The version is bumped on any change an old peer
// would misread (docs/protocol.md, section 11).
const ID = "/jbc/chain/1.0.0"

// IDRange is version 1.1.0 of the protocol: 1.0.0 and one request more,
// GetRange (blocks by height of a chain named by its tip). A minor version,
// because it is a superset: every 1.0.0 exchange is valid on a 1.1.0 stream,
// byte for byte, with the same meaning. A 1.0.0 peer would answer GetRange
// CodeBadRequest (and a jbc node bans for that), so GetRange is sent only on
// a stream negotiated as 1.1.0. A Server serves both IDs.
const IDRange = "/jbc/chain/1.1.0"

// ServiceName is the name a Server's streams are attributed to in the
// host's resource manager (network.ResourceScopeViewer.ViewService).
const ServiceName = "jbc.chain"

// Limits of the wire protocol. Both sides enforce them: a responder refuses a
// request that breaks one with CodeBadRequest, and a requester rejects a
// response that breaks one as ErrMalformed.
const (
	// MaxFrameSize bounds one frame's payload. A response page is at most
	// MaxPageBytes of blocks plus one block (the first is always sent) plus
	// a few hundred bytes of envelope; 4 MiB leaves room for that while
	// bounding what a peer can make us allocate per stream.
	MaxFrameSize = 4 << 20

	// MaxRequestSize bounds a request frame's payload. The largest valid
	// request, a GetBlocks with MaxLocatorLen hashes, is 2,185 bytes; a
	// status request is at most 251. 4 KiB leaves room for that and no
	// more, so a responder reads at most 4 KiB per stream before it knows
	// what is asked, and, since MinReceiveRate demands 32 KiB by the end of
	// MinReceiveGrace, a request that trickles is cut when the grace ends
	// instead of holding a handler until RequestReadTimeout.
	MaxRequestSize = 4 << 10

	// MaxBlocksPerPage bounds the number of blocks in one page. 512 blocks
	// of a typical few hundred bytes is a page of well under 1 MiB, so
	// initial sync of a long chain of small blocks takes few round trips,
	// while one page never costs a responder much reading.
	MaxBlocksPerPage = 512

	// MaxPageBytes is the soft cap on the encoded size of the blocks in one
	// page: a responder adds blocks while their summed encoded size stays
	// within it, and always sends at least one block when it has any. 2 MiB
	// holds 31 blocks of the default maximum data size (64 KiB), and keeps a
	// page transferable well within ResponseTimeout on a slow link.
	MaxPageBytes = 2 << 20

	// MaxDataBytes bounds a block's data field on the wire, so that a page
	// of one block always fits a frame. Consensus (chain.Params.MaxDataSize,
	// 64 KiB by default) is stricter; a network whose MaxDataSize exceeds
	// this cannot be served (NewServer refuses it).
	MaxDataBytes = MaxPageBytes

	// MaxLocatorLen bounds the locator of a GetBlocks request. A locator
	// built by BuildLocator has 10 dense hashes, then one per doubling of
	// the step, then the genesis: under 64 for any chain shorter than 2^50
	// blocks.
	MaxLocatorLen = 64

	// MaxAgentLen bounds Status.agent, in bytes: ample for a name, version
	// and platform ("jbc/1.2.3 linux/amd64"), small enough to log.
	MaxAgentLen = 128

	// MaxMessageLen bounds Response.message, in bytes: one line of detail.
	MaxMessageLen = 512

	// MaxRangeBytes bounds a GetRange page (Range.blocks), in encoded
	// bytes as MaxPageBytes counts them, whatever max_bytes asks: the page
	// is bounded by bytes, not by a block count, so that a page of small
	// blocks carries as many as a page of large ones (about 13,000 blocks of
	// a 100-byte entry, where GetBlocks stops at 512). 2 MiB, as
	// MaxPageBytes: a page and one oversize first block still fit
	// MaxFrameSize, and at 1.1 Mbit/s (what ResponseTimeout demands of a
	// full frame) a full page takes 15 s, so a requester sizing max_bytes
	// to its link keeps several in flight within the deadline. Per request
	// the responder reads at most this much, as for GetBlocks.
	MaxRangeBytes = MaxPageBytes

	// MaxBranchWalk bounds the parent links a responder follows down from
	// a GetRange tip that is not on its best chain, to reach the range or
	// its best chain (below which the range is read by height). Each link
	// is two index reads: on jbc's store 4,096 of them cost a third to a
	// half of what reading and encoding a full page of small blocks does
	// (BenchmarkServeRangeWalk against BenchmarkServeRangeBest), so a
	// request costs the server at most about two pages' work. A side branch that deep
	// above the range is an old best chain left by a reorg at least that
	// deep; its blocks near the tip are still served, deeper ones answered
	// CodeBranchTooDeep: the requester should follow the new best chain.
	MaxBranchWalk = 4096

	// MaxWorkLen bounds Status.total_work, in bytes. Work is a sum of
	// 2^bits per block with bits <= 255; 33 bytes hold up to 2^264-1, the
	// work of 511 blocks at the hardest possible difficulty, or of 2^64
	// blocks at 200 bits: beyond any real chain.
	MaxWorkLen = 33
)

// Deadlines. A requester waiting on a stalled peer, or a responder held by a
// slow one, gives up after these; both are overridable by options.
const (
	// FirstByteTimeout is how long a requester waits, from when it starts
	// writing its request, for the first byte of the response. A responder answers
	// from its local store in milliseconds; 5 s covers a slow disk and a
	// long round trip, and drops a peer that accepted the stream but will
	// never answer long before ResponseTimeout.
	FirstByteTimeout = 5 * time.Second

	// ResponseTimeout is how long a requester waits, from the same moment,
	// for the whole response (writing the request included). A full frame (4 MiB) in 30 s needs
	// about 1.1 Mbit/s, which any peer worth syncing from has.
	ResponseTimeout = 30 * time.Second

	// RequestReadTimeout is how long a responder waits for the whole
	// request after the stream opens. Requests are at most a few KiB and
	// are written at once, so 10 s is generous, while a peer holding
	// streams open without writing cannot pin handlers for long.
	RequestReadTimeout = 10 * time.Second

	// ResponseWriteTimeout is how long a responder spends writing its
	// response before resetting the stream: the requester's
	// ResponseTimeout, since a requester gives up then anyway.
	ResponseWriteTimeout = ResponseTimeout
)

// Limits on concurrent requests a Server serves.
const (
	// MaxInflightPerPeer is how many requests one peer may have served at
	// once, over both protocol versions; more are answered
	// CodeRateLimited. Sync by GetBlocks needs one request and the odd
	// status at a time; sync by GetRange keeps RangeWindow (3) in flight,
	// which with byte-bounded pages fills any link one peer is likely to
	// give (see RangeWindow), and the fourth is the status.
	MaxInflightPerPeer = 4

	// RangeWindow is how many GetRange requests a requester should keep in
	// flight to one peer: all that MaxInflightPerPeer admits but one, left
	// for a status request. Three full pages in flight (6 MiB) cover the
	// bandwidth-delay product of a 400 Mbit/s link at 100 ms, more than
	// one peer is likely to give; more in flight would only add to what
	// the responder holds per peer (MaxInflightPerPeer frames of up to
	// MaxFrameSize), and a requester wanting more syncs from more peers.
	RangeWindow = MaxInflightPerPeer - 1

	// MaxInflight is how many requests a Server serves at once over all
	// peers; more are answered CodeUnavailable. Each may hold a page of
	// up to MaxFrameSize in memory, so 64 bounds that memory to 256 MiB.
	MaxInflight = 64
)

// Code is the outcome of a request, carried in every response.
type Code = pb.Code

// The status codes; see docs/protocol.md for when each is sent.
const (
	CodeOK               = pb.Code_CODE_OK
	CodeBadRequest       = pb.Code_CODE_BAD_REQUEST
	CodeNoCommonAncestor = pb.Code_CODE_NO_COMMON_ANCESTOR
	CodeWrongNetwork     = pb.Code_CODE_WRONG_NETWORK
	CodeRateLimited      = pb.Code_CODE_RATE_LIMITED
	CodeInternalError    = pb.Code_CODE_INTERNAL_ERROR
	CodeUnavailable      = pb.Code_CODE_UNAVAILABLE
	CodeUnknownTip       = pb.Code_CODE_UNKNOWN_TIP
	CodeBranchTooDeep    = pb.Code_CODE_BRANCH_TOO_DEEP
)

// Errors returned by the client. A *CodeError matches (errors.Is) the
// sentinel for its code.
var (
	// ErrMalformed: the peer broke the protocol (a bad frame, a message that
	// does not decode or fails validation, a page that is not a linked run
	// from a locator hash). It is the only error that says the peer is
	// faulty; penalise for it.
	ErrMalformed = errors.New("protocol: malformed message")
	// ErrTimeout: the peer did not answer within FirstByteTimeout, did not
	// finish its answer within ResponseTimeout, or sent it more slowly than
	// MinReceiveRate (then the error matches ErrTooSlow too). The peer is
	// slow or stalled; it may be dropped, but it has not provably
	// misbehaved.
	ErrTimeout = errors.New("protocol: peer timed out")

	// ErrBadRequest: the peer answered CodeBadRequest. Our request broke the
	// protocol: a local bug or a version mismatch.
	ErrBadRequest = errors.New("protocol: peer says bad request")
	// ErrNoCommonAncestor: the peer answered CodeNoCommonAncestor: no
	// locator hash is on its best chain.
	ErrNoCommonAncestor = errors.New("protocol: no common ancestor")
	// ErrWrongNetwork: the peer is on another network (its genesis differs).
	ErrWrongNetwork = errors.New("protocol: peer is on another network")
	// ErrRateLimited: the peer answered CodeRateLimited.
	ErrRateLimited = errors.New("protocol: rate limited by peer")
	// ErrInternal: the peer answered CodeInternalError.
	ErrInternal = errors.New("protocol: peer internal error")
	// ErrUnavailable: the peer answered CodeUnavailable; retry later.
	ErrUnavailable = errors.New("protocol: peer unavailable")
	// ErrUnknownTip: the peer answered CodeUnknownTip: it holds no block
	// with the GetRange tip at that height. It never had that chain (or
	// the requester named it wrong); ask another peer for it.
	ErrUnknownTip = errors.New("protocol: peer does not hold the tip asked for")
	// ErrBranchTooDeep: the peer answered CodeBranchTooDeep: the tip is on
	// a side branch of the peer's, and the range lies deeper below it than
	// MaxBranchWalk. The peer's best chain has moved on: ask it for its
	// status, and other peers for this range.
	ErrBranchTooDeep = errors.New("protocol: range too deep below a side-branch tip")

	// ErrUnsupported: the peer does not speak the protocol version a
	// request needs (GetRange needs IDRange). Not a fault: an older node.
	ErrUnsupported = errors.New("protocol: peer does not speak the protocol version needed")
)

// ErrStop is returned by a ForEach callback to stop the walk early; ForEach
// then returns nil.
var ErrStop = errors.New("protocol: stop")

// codeErrs maps each non-OK code to its sentinel.
var codeErrs = map[Code]error{
	CodeBadRequest:       ErrBadRequest,
	CodeNoCommonAncestor: ErrNoCommonAncestor,
	CodeWrongNetwork:     ErrWrongNetwork,
	CodeRateLimited:      ErrRateLimited,
	CodeInternalError:    ErrInternal,
	CodeUnavailable:      ErrUnavailable,
	CodeUnknownTip:       ErrUnknownTip,
	CodeBranchTooDeep:    ErrBranchTooDeep,
}

// CodeError is a well-formed response with a code other than OK. It matches
// the sentinel of its code with errors.Is (ErrNoCommonAncestor for
// CodeNoCommonAncestor, and so on); a code this version does not know
// matches none.
type CodeError struct {
	Code    Code
	Message string
}

func (e *CodeError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("protocol: peer answered %s", e.Code)
	}
	return fmt.Sprintf("protocol: peer answered %s: %s", e.Code, e.Message)
}

// Is reports whether target is the sentinel error of e's code.
func (e *CodeError) Is(target error) bool {
	s, ok := codeErrs[e.Code]
	return ok && s == target
}

// Status describes a node's best chain, as exchanged by the status request.
type Status struct {
	// Genesis is the network's genesis hash (chain.Params.ID).
	Genesis chain.Hash
	// Tip is the hash of the best chain's last block, at Height.
	Tip    chain.Hash
	Height uint64
	// Work is the best chain's cumulative work (chain.Entry.Work).
	Work *big.Int
	// Agent names the node's software.
	Agent string
	// Keep is set in a status request whose sender chose the receiver as
	// one of its outbound peers (the request's keep field); false in a
	// response and from older nodes. A hint anyone may set.
	Keep bool
}

// LocalStatus returns the Status of src's best chain, with agent.
func LocalStatus(src ChainSource, agent string) Status {
	tip := src.Tip()
	return Status{
		Genesis: src.Params().ID(),
		Tip:     tip.Hash,
		Height:  tip.Height,
		Work:    tip.Work,
		Agent:   agent,
	}
}

// Page is one answer to a GetBlocks request.
type Page struct {
	// Fork is the locator hash the peer found on its best chain; the first
	// block's PrevHash.
	Fork chain.Hash
	// Blocks follow Fork on the peer's best chain, oldest first, each the
	// child of the one before. Their consensus validity is not checked.
	Blocks []chain.Block
	// ServerHeight is the height of the peer's tip when it answered.
	ServerHeight uint64
	// Bytes is how many bytes were read from the stream.
	Bytes int
}

// RangeRequest names the heights Start .. Start+Count-1 of the chain whose
// last block is Tip, at TipHeight, for GetRange.
type RangeRequest struct {
	Tip       chain.Hash
	TipHeight uint64
	// Start is at least 1; Start+Count-1 at most TipHeight.
	Start uint64
	// Count is at least 1.
	Count uint64
	// MaxBytes bounds the page as Range.blocks counts it; 0 means
	// MaxRangeBytes, and more than MaxRangeBytes is served as it.
	MaxBytes int
}

// End returns the last height r names.
func (r RangeRequest) End() uint64 { return r.Start + r.Count - 1 }

// RangePage is one answer to a GetRange request.
type RangePage struct {
	// Blocks are the named chain's blocks at heights Start, Start+1, ...,
	// each the child of the one before: at least one, at most Count. If
	// the last is at TipHeight its hash is Tip. Their consensus validity
	// is not checked, nor that the first links to the block below Start.
	//
	// The blocks' Data share the memory of the response they came in, so
	// that decoding a page costs a few allocations, not a few per block:
	// holding one block's Data holds the page's bytes (at most
	// MaxFrameSize). Clone Data (strings.Clone) to keep a block long.
	Blocks []chain.Block
	// SideBranch is true when the tip is not on the peer's best chain.
	SideBranch bool
	// Bytes is how many bytes were read from the stream.
	Bytes int
}

// ChainSource is the chain a Server serves and a Client reports in its
// status requests. Its methods are called concurrently from stream handlers
// and must be safe for concurrent use.
type ChainSource interface {
	// Params returns the network's parameters.
	Params() *chain.Params
	// Tip returns the best chain's tip entry.
	Tip() chain.Entry
	// FindFork returns the entry of the first hash in locator that is on
	// the best chain, and true; or false when none is. An error is a local
	// failure (reported to the peer as CodeInternalError), never "not
	// found".
	FindFork(locator []chain.Hash) (chain.Entry, bool, error)
	// ForEach calls fn with the best chain's blocks at heights from to to,
	// inclusive, in order; heights above the tip are not visited. It stops
	// and returns nil when fn returns ErrStop, and returns any other error
	// fn returns. fn must not retain the block.
	ForEach(from, to uint64, fn func(*chain.Block) error) error
}

// BranchSource is a ChainSource that also reads blocks off its best chain,
// by hash: what serving GetRange (IDRange) needs, since the chain a
// requester names may be one the responder has left. A Server whose Source
// is one serves IDRange as well as ID. *storage.Store is one. Blocks once
// held must stay held (a store never deletes one), so that Has followed by
// Entry cannot fail for want of the block.
type BranchSource interface {
	ChainSource
	// Has reports whether block h is held, on any branch.
	Has(h chain.Hash) bool
	// Entry returns the index entry of the held block h, on any branch.
	Entry(h chain.Hash) (chain.Entry, error)
	// OnBest reports whether block h is on the best chain; false, not an
	// error, when h is not held.
	OnBest(h chain.Hash) (bool, error)
	// Block returns the held block h, on any branch.
	Block(h chain.Hash) (*chain.Block, error)
}
