package chainsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jbc-project/jbc/chain"
	"github.com/jbc-project/jbc/node/peering"
	"github.com/jbc-project/jbc/protocol"
)

// Range sync: the heights of the target chain we lack are cut into spans,
// fetched by GetRange (/jbc/chain/1.1.0) from every peer that carries the
// target, several requests in flight to each, and handed on in height
// order. One goroutine (rangeFetch.run) owns the schedule; each request
// runs in a goroutine of its own and reports to it.
const (
	// aheadBytes bounds the blocks fetched or asked for and not yet
	// stored: spans are cut only while the heights above the last batch
	// the syncer stored, up to the top of the last span, take at most this
	// much, counting each block as its bytes on the wire plus
	// decodedBlockOverhead. 32 MiB is about eight spans of small blocks:
	// one being stored, one waiting and every request of a peer's window
	// in flight twice over, so that the store never waits for the link on
	// loopback; and about 120,000 small blocks, so that with the Go
	// collector's doubling the syncing node's heap stays near 100 MB
	// whatever the chain's length (issue 15: peak RSS <= 200 MB at
	// 1,000,000 blocks, the store's mapped pages included).
	aheadBytes = 32 << 20
	// decodedBlockOverhead is what a decoded block costs beyond its bytes
	// on the wire: its chain.Block (104 bytes) and its slot in the batch.
	decodedBlockOverhead = 128
	// spanPageShare is the share of a full page (MaxRangeBytes) a span's
	// blocks are cut to take at the bytes per block seen: a span must come
	// in one answer, since the rest of a span cut short by the page's
	// bound is asked for only after it, a round trip later; blocks vary
	// in size, so three quarters.
	spanPageShare = 0.75
	// windowSpanBytes bounds the spans of a sync short enough that they
	// are cut below a page: an answer within the initial window of its
	// yamux stream (256 KiB; each request is a stream of its own) goes
	// out without waiting for the window's update. An answer a little
	// over the window waits a round trip for its last bytes, and a
	// peer's answers in flight then end together, leaving the link idle
	// for the round trip of the next ones. Over 50 ms and 20 Mbit/s,
	// 100,000 blocks synced in 5.1 to 5.3 s with spans of 290 KB, 4.6 to
	// 4.9 s with 200 KiB, and 4.52 s with 128 KiB in eight runs: plain
	// TCP's 4.49 s on the same link (docs/performance.md). Such a sync
	// holds under 36 pages' worth (spansPerWorker x RangeWindow x
	// minCarriers spans of at most three quarters of a page), so at most
	// about 430 spans of this size: within a jbc peer's request burst
	// (peering.RequestBurst, 400, refilled at 200 a second), never a
	// flood however fast the link.
	windowSpanBytes = 128 << 10
	// quickAnswer: once an answer has come within this, the round trip
	// is too short for windowSpanBytes to matter, and the rest of the
	// sync is cut in the wider spans (fewer requests: on loopback, spans
	// of 128 KiB throughout made a sync of 300,000 blocks 30 % slower).
	quickAnswer = 15 * time.Millisecond
	// minSpanBlocks is the smallest span: below it the round trip of a
	// request costs more than the blocks it brings.
	minSpanBlocks = 64
	// spansPerWorker is how many spans each request slot (RangeWindow
	// per carrier) should get over a sync, so that the last spans,
	// fetched alone, are a small part of the whole.
	spansPerWorker = 3
	// minCarriers is the fewest carriers spans are cut for: peers whose
	// status arrives just after the sync starts join it, and should find
	// spans left to fetch.
	minCarriers = 4
	// hedgeMinWait is how long a span at the delivery point is left with
	// its peer before an idle peer that has served no page yet is asked
	// for it too: above a page's transfer on any link worth hedging to.
	// An idle peer whose time per page is known waits hedgeFactor times
	// that, and at least hedgeFloor (a few of the scheduler's ticks): on
	// loopback or a LAN a page takes milliseconds, and a stalled peer
	// would otherwise hold delivery up for the whole of hedgeMinWait.
	hedgeMinWait = 500 * time.Millisecond
	hedgeFloor   = 100 * time.Millisecond
	// hedgeFactor: a span is hedged when its request has taken this many
	// times the idle peer's own time per page: twice is slow against the
	// others beyond the jitter of a shared link (all requests in flight
	// share it), and a stalled peer is passed after two of its pages'
	// time (measured in netlab: 3 made a stall among 4 seeders cost 1.54x
	// the fault-free time).
	hedgeFactor = 2
	// busyRetry is how long a peer that answered RATE_LIMITED or
	// UNAVAILABLE is left before its next request: a round trip or so.
	busyRetry = 100 * time.Millisecond
	// windowRegrow is how many pages a peer must serve without being busy
	// for its window to grow by one again, up to protocol.RangeWindow.
	windowRegrow = 8
	// maxDisputes is how many times a span's first page may fail to link
	// to the blocks below it, each from another peer, before the sync
	// gives up: two peers agreeing against what was delivered means that
	// what was delivered is what is in doubt.
	maxDisputes = 2
	// rangeTick is how often the scheduler looks for spans to hedge.
	rangeTick = 50 * time.Millisecond
)

// errRangesDisagree ends a range fetch whose spans, from different peers,
// do not link: not provably anyone's fault (a peer may have reorganised).
var errRangesDisagree = errors.New("chainsync: pages from different peers do not link")

// errNoCarriers ends a range fetch when every peer carrying the target was
// dropped (each was judged when dropped).
var errNoCarriers = errors.New("chainsync: no peer left to fetch the target from")

// rangeTarget is the chain a range fetch follows and where it starts.
type rangeTarget struct {
	tip       chain.Hash
	tipHeight uint64
	// from is the first height to fetch; prev the hash of the block below
	// it, which we hold (or hold in the branch being validated).
	from uint64
	prev chain.Hash
	// blockBytes is an estimate of the bytes per block, from pages seen.
	blockBytes int
}

// carrier is a peer that holds the target, as the scheduler sees it.
type carrier struct {
	id       peer.ID
	window   int // requests it may have in flight
	inflight int
	okPages  int // pages served since its window last shrank
	// pageTime is an EWMA of its time per page, 0 until one is served.
	pageTime time.Duration
	// retryAt holds off its next request after RATE_LIMITED.
	retryAt time.Time
	dropped bool
	blocks  int // blocks it delivered
}

// span is a run of heights start..end of the target.
type span struct {
	start, end uint64
	next       uint64           // first height not yet received
	last       chain.Hash       // hash of the block at next-1, once received
	pieces     []fetched        // received, contiguous from the first undelivered height
	owners     map[peer.ID]*ask // requests in flight for it
	excluded   map[peer.ID]bool // peers whose pages for it did not link
	disputes   int
}

// ask is one GetRange request in flight.
type ask struct {
	c      *carrier
	sp     *span
	from   uint64
	at     time.Time
	cancel context.CancelFunc
}

// answer is what a request brought back to the scheduler.
type answer struct {
	a    *ask
	page protocol.RangePage
	err  error
}

// rangeFetch is the schedule of one range fetch; only run's goroutine
// touches it.
type rangeFetch struct {
	s        *Syncer
	t        rangeTarget
	carriers []*carrier
	spans    []*span // undelivered, by start
	cut      uint64  // first height in no span yet
	spanLen  uint64
	// wideSpanLen is the span a short sync cuts once its first answer
	// came within quickAnswer: no round trip worth saving.
	wideSpanLen uint64
	next        uint64     // first height not yet delivered
	prev        chain.Hash // hash of the block at next-1
	sent        uint64     // first height not yet taken by the consumer
	queue       []fetched  // delivered, waiting for the consumer
	answers     chan answer
	inflight    int
	lastErr     error
	// carriersNow lists the peers carrying the target now: peers whose
	// status arrives during the fetch join it.
	carriersNow func() []peer.ID
}

// fetchRange fetches heights t.from..t.tipHeight of the chain ending in
// t.tip from the peers carrying it (carriers, asked again as the fetch
// goes, so that peers connecting meanwhile join in) and sends them on out
// as pages, in height order, each linked to the one before and the first
// to t.prev. It returns nil
// when the tip was sent, or the error that ended it: errNoCarriers,
// errRangesDisagree or ctx's. Peers are judged here for what they sent:
// penalised for a stall, a malformed page or a block that fails the checks
// that need no parent (its hash, its data), and dropped from the fetch;
// their spans go to the others. Busy peers get fewer requests for a while.
func (s *Syncer) fetchRange(ctx context.Context, t rangeTarget, carriers func() []peer.ID, out chan<- fetched) error {
	if t.from > t.tipHeight {
		return nil
	}
	f := &rangeFetch{s: s, t: t, cut: t.from, next: t.from, prev: t.prev, sent: t.from, answers: make(chan answer), carriersNow: carriers}
	f.join()
	if len(f.carriers) == 0 {
		return errNoCarriers
	}
	// Spans: three quarters of a page each, fewer blocks when the sync is
	// short so that every request slot gets a few, and then no more than
	// one muxer window.
	bb := max(t.blockBytes, 1)
	total := t.tipHeight - t.from + 1
	f.spanLen = uint64(spanPageShare * protocol.MaxRangeBytes / bb)
	if per := total / uint64(max(len(f.carriers), minCarriers)*protocol.RangeWindow*spansPerWorker); per < f.spanLen {
		f.wideSpanLen = max(per, minSpanBlocks)
		f.spanLen = min(per, windowSpanBytes/uint64(bb))
	}
	f.spanLen = max(f.spanLen, minSpanBlocks)
	f.wideSpanLen = max(f.wideSpanLen, f.spanLen)
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		for f.inflight > 0 { // wait for every request to end
			<-f.answers
			f.inflight--
		}
	}()
	return f.run(ctx, out)
}

// run is the scheduler's loop.
func (f *rangeFetch) run(ctx context.Context, out chan<- fetched) error {
	tick := time.NewTicker(rangeTick)
	defer tick.Stop()
	for {
		if len(f.queue) == 0 && f.sent > f.t.tipHeight {
			return nil
		}
		waiting := f.assign(ctx)
		if f.inflight == 0 && !waiting && len(f.queue) == 0 {
			// No request in flight, none can be sent, nothing to hand on.
			if f.lastErr != nil {
				return fmt.Errorf("%w: %w", errNoCarriers, f.lastErr)
			}
			return errNoCarriers
		}
		var (
			send chan<- fetched
			head fetched
		)
		if len(f.queue) > 0 {
			send, head = out, f.queue[0]
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case send <- head:
			f.queue[0] = fetched{}
			f.queue = f.queue[1:]
			f.sent = head.page.Blocks[len(head.page.Blocks)-1].Index + 1
		case a := <-f.answers:
			f.inflight--
			if err := f.handle(a); err != nil {
				return err
			}
		case <-f.s.storedWake: // the budget allows more
		case <-tick.C:
			f.join()
		}
	}
}

// join adds the peers that carry the target now and are not in the fetch
// yet; one dropped stays out.
func (f *rangeFetch) join() {
	for _, id := range f.carriersNow() {
		if !slices.ContainsFunc(f.carriers, func(c *carrier) bool { return c.id == id }) {
			f.carriers = append(f.carriers, &carrier{id: id, window: protocol.RangeWindow})
		}
	}
}

// assign fills every carrier's window: with the span at the delivery
// point when its peer is slow against this one (a hedge: both fetch it,
// the first answer wins), or else with the lowest span no one is fetching,
// within the fetch-ahead budget. It reports whether a carrier is held
// off for a while (busy), and so may take a span later.
func (f *rangeFetch) assign(ctx context.Context) (waiting bool) {
	now := time.Now()
	// Faster peers first: they get the spans nearest the delivery point.
	slices.SortStableFunc(f.carriers, func(a, b *carrier) int { return int(a.pageTime - b.pageTime) })
	for _, c := range f.carriers {
		if !c.dropped && now.Before(c.retryAt) {
			waiting = true
		}
		for !c.dropped && c.inflight < c.window && !now.Before(c.retryAt) {
			// The span holding up delivery first, if its peer is slow
			// against this one; then the lowest free span.
			sp := f.hedge(c, now)
			if sp == nil {
				sp = f.free(c)
			}
			if sp == nil {
				break
			}
			f.launch(ctx, c, sp, now)
		}
	}
	return waiting
}

// free returns the lowest span without a request in flight that c may
// fetch, cutting a new one if the budget allows.
func (f *rangeFetch) free(c *carrier) *span {
	for _, sp := range f.spans {
		if len(sp.owners) == 0 && sp.next <= sp.end && !sp.excluded[c.id] {
			return sp
		}
	}
	stored := max(f.t.from, f.s.stored.Load()+1)
	if f.cut > f.t.tipHeight || f.cut > stored && (f.cut-stored)*uint64(f.t.blockBytes+decodedBlockOverhead) > aheadBytes {
		return nil
	}
	end := min(f.cut+f.spanLen-1, f.t.tipHeight)
	sp := &span{start: f.cut, end: end, next: f.cut, owners: map[peer.ID]*ask{}, excluded: map[peer.ID]bool{}}
	f.cut = end + 1
	f.spans = append(f.spans, sp)
	return sp
}

// hedge returns the lowest unfinished span, the one holding up delivery,
// if one other peer only has been fetching it for longer than c would take
// for it.
func (f *rangeFetch) hedge(c *carrier, now time.Time) *span {
	wait := hedgeMinWait
	if c.pageTime > 0 {
		wait = max(hedgeFloor, hedgeFactor*c.pageTime)
	}
	for _, sp := range f.spans {
		if sp.next > sp.end {
			continue
		}
		if len(sp.owners) != 1 || sp.excluded[c.id] {
			return nil // only the lowest unfinished span is worth hedging
		}
		for id, a := range sp.owners {
			if id != c.id && now.Sub(a.at) > wait {
				return sp
			}
		}
		return nil
	}
	return nil
}

// launch sends one GetRange for sp's missing heights to c.
func (f *rangeFetch) launch(ctx context.Context, c *carrier, sp *span, now time.Time) {
	actx, cancel := context.WithCancel(ctx)
	a := &ask{c: c, sp: sp, from: sp.next, at: now, cancel: cancel}
	sp.owners[c.id] = a
	c.inflight++
	f.inflight++
	req := protocol.RangeRequest{Tip: f.t.tip, TipHeight: f.t.tipHeight, Start: sp.next, Count: sp.end - sp.next + 1, MaxBytes: protocol.MaxRangeBytes}
	params := f.s.cfg.Store.Params()
	go func() {
		defer cancel()
		page, err := f.s.cfg.Client.GetRange(actx, c.id, req)
		if err == nil {
			err = checkPage(params, page.Blocks)
		}
		f.answers <- answer{a: a, page: page, err: err}
	}()
}

// checkPage applies to each block the consensus checks that need no
// parent: its data's size and encoding, that its hash recomputes, and that
// it has the least proof of work the network ever asks.
// They run in the request's goroutine, so on as many cores as there are
// requests, and they tell which peer sent a forged block.
func checkPage(p *chain.Params, blocks []chain.Block) error {
	for i := range blocks {
		b := &blocks[i]
		if len(b.Data) > p.MaxDataSize {
			return &chain.RuleError{Code: chain.ErrDataTooLarge, Reason: fmt.Sprintf("block %d: data is %d bytes, limit %d", b.Index, len(b.Data), p.MaxDataSize)}
		}
		if !utf8.ValidString(b.Data) {
			return &chain.RuleError{Code: chain.ErrBadData, Reason: fmt.Sprintf("block %d: data is not valid UTF-8", b.Index)}
		}
		if h := b.ComputeHash(); h != b.Hash {
			return &chain.RuleError{Code: chain.ErrBadHash, Reason: fmt.Sprintf("block %d: hash %s does not match its header (%s)", b.Index, b.Hash.Short(), h.Short())}
		}
		if z := chain.LeadingZeroBits(&b.Hash); z < int(p.MinBits) {
			return &chain.RuleError{Code: chain.ErrDifficulty, Reason: fmt.Sprintf("block %d: hash %s has %d leading zero bits, the network's least is %d", b.Index, b.Hash.Short(), z, p.MinBits)}
		}
	}
	return nil
}

// handle takes one answer: a page is kept if it brings heights its span
// still lacks; an error judges the peer.
func (f *rangeFetch) handle(an answer) error {
	a, c, sp := an.a, an.a.c, an.a.sp
	c.inflight--
	if sp.owners[c.id] == a {
		delete(sp.owners, c.id)
	}
	if an.err != nil {
		f.judge(c, an.err)
		return nil
	}
	took := time.Since(a.at)
	if took < quickAnswer && f.spanLen < f.wideSpanLen {
		f.spanLen = f.wideSpanLen
	}
	if c.pageTime == 0 {
		c.pageTime = took
	} else {
		c.pageTime = (3*c.pageTime + took) / 4
	}
	if c.okPages++; c.okPages%windowRegrow == 0 && c.window < protocol.RangeWindow {
		c.window++
	}
	blocks := an.page.Blocks
	// Heights another peer brought first are dropped.
	if a.from < sp.next {
		skip := sp.next - a.from
		if skip >= uint64(len(blocks)) || blocks[skip].PrevHash != sp.last {
			// Nothing new, or it disagrees with the peer that answered
			// first: the first answer stands (deliver checks it).
			return nil
		}
		blocks = blocks[skip:]
	} else if a.from > sp.next {
		return nil // asked before the span was reset
	}
	n := len(blocks)
	sp.pieces = append(sp.pieces, fetched{page: protocol.Page{Blocks: blocks, ServerHeight: f.t.tipHeight, Bytes: an.page.Bytes}, from: c.id})
	sp.next += uint64(n)
	sp.last = blocks[n-1].Hash
	if sp.next > sp.end {
		now := time.Now()
		for _, o := range sp.owners { // hedges lost
			o.cancel()
			if o.at.Before(a.at) {
				f.overtaken(o, now)
			}
		}
	}
	return f.deliver()
}

// overtaken deals with a peer whose request o a later request overtook:
// it is slow against the others, or stalled. It has taken at least this
// long a page; its other requests are cancelled and their spans free for
// the others at once (a stalled peer's would each hold delivery up in
// turn); and it gets one request at a time until it has served
// windowRegrow pages, so that it holds at most one span up, and that one
// the furthest from delivery, its time per page sorting it last.
func (f *rangeFetch) overtaken(o *ask, now time.Time) {
	c := o.c
	c.pageTime = max(c.pageTime, now.Sub(o.at))
	c.window, c.okPages = 1, 0
	for _, sp := range f.spans {
		if a, ok := sp.owners[c.id]; ok && a != o {
			a.cancel()
			delete(sp.owners, c.id)
		}
	}
}

// deliver moves the received pieces at the delivery point to the queue,
// checking that each links to the block below it. A span whose first piece
// does not is fetched again from another peer.
func (f *rangeFetch) deliver() error {
	for len(f.spans) > 0 {
		sp := f.spans[0]
		for len(sp.pieces) > 0 {
			pc := sp.pieces[0]
			if pc.page.Blocks[0].PrevHash != f.prev {
				// It does not link to what was delivered below it.
				sp.disputes++
				if sp.disputes >= maxDisputes {
					return fmt.Errorf("%w: heights from %d, from %s, do not follow %s", errRangesDisagree, f.next, pc.from, f.prev.Short())
				}
				sp.excluded[pc.from] = true
				for _, o := range sp.owners {
					o.cancel()
				}
				sp.pieces, sp.next, sp.last = nil, f.next, f.prev
				return nil
			}
			sp.pieces[0] = fetched{}
			sp.pieces = sp.pieces[1:]
			last := pc.page.Blocks[len(pc.page.Blocks)-1]
			f.next, f.prev = last.Index+1, last.Hash
			for _, c := range f.carriers {
				if c.id == pc.from {
					c.blocks += len(pc.page.Blocks)
				}
			}
			f.queue = append(f.queue, pc)
		}
		if sp.next <= sp.end {
			return nil
		}
		f.spans = f.spans[1:]
	}
	return nil
}

// judge deals with a failed request: the peer is dropped from the fetch,
// and penalised if what it did is a fault, or given fewer requests if it
// was only busy. Its spans are free for the others at once.
func (f *rangeFetch) judge(c *carrier, err error) {
	var re *chain.RuleError
	switch {
	case errors.Is(err, context.Canceled), c.dropped:
		return // a hedge that lost, the fetch ending, or a peer judged already
	case errors.Is(err, protocol.ErrRateLimited), errors.Is(err, protocol.ErrUnavailable):
		c.window = max(1, c.window/2)
		c.okPages = 0
		c.retryAt = time.Now().Add(busyRetry)
		return
	case errors.As(err, &re):
		f.s.cfg.Penalise(c.id, peering.MisInvalidBlock, err.Error())
		f.s.skip(c.id, failedPeerPause, false)
	case errors.Is(err, protocol.ErrMalformed):
		f.s.cfg.Penalise(c.id, peering.MisMalformed, err.Error())
		f.s.skip(c.id, failedPeerPause, false)
	case errors.Is(err, protocol.ErrTimeout):
		f.s.cfg.Penalise(c.id, peering.MisStalled, err.Error())
		f.s.skip(c.id, failedPeerPause, true)
	default:
		// It does not hold the target after all (UNKNOWN_TIP: it may have
		// restarted on another store), has moved on (BRANCH_TOO_DEEP),
		// speaks only 1.0.0, or went away: no fault proved.
	}
	f.s.log.Debug("sync: peer relieved of its ranges", "peer", c.id, "err", err)
	c.dropped = true
	f.lastErr = err
	for _, sp := range f.spans {
		if a, ok := sp.owners[c.id]; ok {
			a.cancel()
		}
	}
}
