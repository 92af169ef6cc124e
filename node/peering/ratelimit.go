package peering

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// Request rate limits per peer, of /jbc/chain/1.0.0: an honest peer sends
// a status every few seconds and one GetBlocks per page while it syncs
// from us. A sync over a fast LAN runs at about 100 pages a second; twice
// that leaves headroom, while a flooding peer still gets only cheap,
// bounded answers. A request over the limit is answered RATE_LIMITED and
// costs MisFlood. A syncing node keeps under a peer's limit
// (chainsync's page rate is three quarters of RequestRate).
const (
	RequestRate  = 200
	RequestBurst = 400
)

// limiterIdle is how long an idle peer's bucket is kept.
const limiterIdle = 10 * time.Minute

// Limiter is a token bucket per peer. It is safe for concurrent use.
type Limiter struct {
	mu    sync.Mutex
	rate  rate.Limit
	burst int
	m     map[peer.ID]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewLimiter returns a limiter giving each peer r tokens a second, up to
// burst.
func NewLimiter(r float64, burst int) *Limiter {
	return &Limiter{rate: rate.Limit(r), burst: burst, m: map[peer.ID]*bucket{}}
}

// Allow takes a token from p's bucket and reports whether there was one.
func (l *Limiter) Allow(p peer.ID) bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.m[p]
	if !ok {
		if len(l.m) >= 1024 {
			for id, x := range l.m {
				if now.Sub(x.seen) > limiterIdle {
					delete(l.m, id)
				}
			}
		}
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.m[p] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}
