package protocol

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// Minimum receive rate. A deadline on the whole message alone lets a peer
// that trickles a byte at a time hold a stream, and the memory and handler
// behind it, until that deadline: 30 s for a response, 10 s for a request.
// Once a message has started, its sender must keep up at least this rate,
// averaged from its first byte; a peer that falls behind is cut off as soon
// as it does, however long the whole-message deadline still has to run.
// Both the requester (reading a response) and the responder (reading a
// request) enforce it.
const (
	// MinReceiveRate is the slowest a peer may send a message, in bytes per
	// second averaged from the message's first byte: 16 KiB/s, about 130
	// kbit/s. That is about an eighth of the 1.1 Mbit/s ResponseTimeout
	// already demands of a full frame, and under a quarter of the 70 KiB/s
	// a full page (MaxPageBytes) needs to arrive within ResponseTimeout:
	// a peer sending steadily fast enough to deliver a page in time is far
	// above it, while one trickling a byte at a time is cut off when
	// MinReceiveGrace ends.
	MinReceiveRate = 16 << 10

	// MinReceiveGrace is how long after a message's first byte the rate is
	// first checked. It covers TCP and QUIC slow start, the multiplexer's
	// flow-control window opening, and a scheduling pause on a loaded
	// machine; 2 s is many round trips on any link, yet short next to the
	// whole-message deadlines. From then on the sender must have sent
	// MinReceiveRate times the time since its first byte: at least 32 KiB at
	// the end of the grace, so a message shorter than that must be complete
	// within the grace of its first byte.
	MinReceiveGrace = 2 * time.Second
)

// ErrTooSlow: the peer sent a message more slowly than MinReceiveRate. It
// wraps ErrTimeout: like a timeout it says the peer is slow or stalled, not
// that it provably misbehaved, and code that handles ErrTimeout handles it.
var ErrTooSlow = fmt.Errorf("%w: below the minimum receive rate", ErrTimeout)

// slowError describes a message cut off for falling below the minimum rate.
// It matches ErrTooSlow (and so ErrTimeout) with errors.Is.
type slowError struct {
	n       int           // bytes received
	elapsed time.Duration // since the first byte
	rate    int           // bytes per second required
}

func (e *slowError) Error() string {
	return fmt.Sprintf("%d bytes in %v since the first byte, below the minimum of %d bytes/s",
		e.n, e.elapsed.Round(time.Millisecond), e.rate)
}

func (e *slowError) Unwrap() error { return ErrTooSlow }

// deadlineReader is the part of a network.Stream a rateReader uses.
type deadlineReader interface {
	io.Reader
	SetReadDeadline(time.Time) error
}

// rateReader reads one message from a stream, moving the stream's read
// deadline as bytes arrive so that a sender below its minimum rate is cut
// off by the deadline, with no goroutine or timer of its own. Before the
// first byte the deadline is firstBy; after it, the time at which the bytes
// read so far fall below rate times the time since the first byte (but not
// before the grace period ends); never later than hard. A read that times
// out on the rate's deadline returns a *slowError; on firstBy or hard, the
// stream's own timeout error.
//
// A rateReader is not safe for concurrent use.
type rateReader struct {
	s     deadlineReader
	rate  int           // bytes per second
	grace time.Duration // after the first byte, before the rate applies
	hard  time.Time     // no deadline is set after it
	now   func() time.Time

	n        int       // bytes read so far
	first    time.Time // when the first byte was read; zero before
	deadline time.Time // the read deadline last set
	byRate   bool      // whether deadline is the rate's, not firstBy or hard
}

// newRateReader returns a rateReader over s and sets s's first read
// deadline. rate must be positive.
func newRateReader(s deadlineReader, firstBy, hard time.Time, rate int, grace time.Duration) *rateReader {
	r := &rateReader{s: s, rate: rate, grace: grace, hard: hard, now: time.Now}
	r.setDeadline(firstBy)
	return r
}

// Read reads from the stream, then moves its read deadline to account for
// the bytes read.
func (r *rateReader) Read(p []byte) (int, error) {
	n, err := r.s.Read(p)
	if n > 0 {
		if r.n == 0 {
			r.first = r.now()
		}
		r.n += n
		// The bytes read so far buy n/rate seconds from the first byte.
		due := time.Duration(r.n) * time.Second / time.Duration(r.rate)
		r.setDeadline(r.first.Add(max(r.grace, due)))
	}
	if err != nil && r.byRate && isTimeout(err) {
		return n, &slowError{n: r.n, elapsed: r.now().Sub(r.first), rate: r.rate}
	}
	return n, err
}

// setDeadline sets the stream's read deadline to d, or to hard if that is
// sooner, unless it is set there already.
func (r *rateReader) setDeadline(d time.Time) {
	byRate := !r.first.IsZero() && d.Before(r.hard)
	if !d.Before(r.hard) {
		d = r.hard
	}
	r.byRate = byRate
	if d.Equal(r.deadline) {
		return
	}
	r.deadline = d
	_ = r.s.SetReadDeadline(d)
}

// isTimeout reports whether err is a deadline's (the stream's error has a
// Timeout method that says so).
func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
