// Package protocol implements /jbc/chain/1.0.0 and /jbc/chain/1.1.0, the
// libp2p protocol jbc nodes use to learn each other's best chain and to
// copy blocks: the wire messages (protobuf, in package pb), their framing
// and validation, a Server that answers from a ChainSource, and a Client.
//
// Each stream carries one request and one response, each one frame: an
// unsigned varint length and that many bytes of protobuf. A status request
// exchanges both sides' Status (genesis, tip, height, cumulative work); a
// GetBlocks request sends a locator of the requester's best chain and gets
// back a Page: the blocks after the newest locator hash the responder has
// on its best chain. Version 1.1.0 (IDRange) adds GetRange: the blocks at
// given heights of the chain ending at a given tip, whichever peer holds
// it, in pages bounded by bytes, so that disjoint ranges of one chain can
// be fetched from several peers at once, several requests in flight to
// each; the client decodes its pages without an allocation per block.
// docs/protocol.md is the specification.
//
// What the package does not do: it does not validate blocks against the
// consensus rules (package chain, called by the node), store them, choose
// peers, decide when to sync, or score peers. It checks only the shape of
// messages: sizes, limits, and that a page is a linked run of blocks after
// a locator hash. Every message read is checked in one place (msgs.go)
// before it is used.
//
// Error contract. Client methods return:
//   - an error matching ErrMalformed when the peer broke the protocol (bad
//     frame, undecodable or invalid message, a page that does not fit the
//     request). This is the only error that proves the peer faulty;
//   - an error matching ErrTimeout when the peer was too slow (no first
//     byte within FirstByteTimeout, no whole response within
//     ResponseTimeout, or a response arriving below MinReceiveRate once
//     MinReceiveGrace has passed since its first byte, which matches
//     ErrTooSlow as well);
//   - a *CodeError when the peer answered with a code other than OK; it
//     matches the code's sentinel (ErrNoCommonAncestor, ErrWrongNetwork,
//     ErrRateLimited, ErrUnavailable, ErrInternal, ErrBadRequest,
//     ErrUnknownTip, ErrBranchTooDeep) with errors.Is. Status returns the
//     peer's status along with ErrWrongNetwork;
//   - an error matching ErrUnsupported when the peer does not speak the
//     version a request needs (GetRange to a 1.0.0 peer): no fault;
//   - the context's error when the context ended the request, and other
//     stream or dial errors as they are (wrapped).
//
// A Server never returns errors to its caller: a bad request is answered
// CodeBadRequest, a failure of the ChainSource CodeInternalError, and a
// stream that fails or times out (its request not read within
// RequestReadTimeout, or arriving below MinReceiveRate) is reset and counted
// in Stats.
package protocol
