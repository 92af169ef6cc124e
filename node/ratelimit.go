package node

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// Gossip rate limits per peer. A block that extends or outweighs our
// chain takes no token, however fast a miner makes them (judgeBlock); the
// block bucket is for blocks that add nothing (a duplicate, a side
// branch), which honest peers send on forks and races only, at most as
// often as miners announce (minedAnnounceGap): the burst covers a peer
// relaying a short fork. Orphans have a bucket of the same size. Entries
// come in bursts when users submit, and a peer relays the entries of every
// node behind it, so their bucket is larger: four times what one node
// takes over POST /data (submitRate) plus its re-announcements
// (reannounceRate), so that honest nodes submitting at full rate are never
// penalised. Messages beyond the limit are dropped and cost MisFlood
// (orphans are only dropped).
const (
	gossipBlockRate  = 10
	gossipBlockBurst = 50
	gossipDataRate   = 200
	gossipDataBurst  = 1000
	// requestRate and requestBurst limit each peer's protocol requests:
	// an honest peer sends a status every few seconds and one GetBlocks
	// per page while it syncs from us. A sync over a fast LAN runs at
	// about 100 pages a second; twice that leaves headroom, while a
	// flooding peer still gets only cheap, bounded answers.
	requestRate  = 200
	requestBurst = 400
	// limiterIdle is how long an idle peer's bucket is kept.
	limiterIdle = 10 * time.Minute
)

// peerLimiter is a token bucket per peer. It is safe for concurrent use.
type peerLimiter struct {
	mu    sync.Mutex
	rate  rate.Limit
	burst int
	m     map[peer.ID]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newPeerLimiter(r float64, burst int) *peerLimiter {
	return &peerLimiter{rate: rate.Limit(r), burst: burst, m: map[peer.ID]*bucket{}}
}

// allow takes a token from p's bucket and reports whether there was one.
func (l *peerLimiter) allow(p peer.ID) bool {
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
