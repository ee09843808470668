package provider

import (
	"math"
	"sync"
	"time"

	"github.com/latchkey-oidc/latchkey/store"
)

// tokenRateLimits limits how often each client may be issued tokens: a
// token bucket per client, refilled at the client's rate
// (latchkey_token_rate_limit, else Config.TokenRateLimit) and holding one
// second's worth, at least one request.
//
// The buckets live in memory, so each replica enforces the limit on the
// requests it serves: behind a balancer spreading a client over N replicas
// the client gets up to N times its rate. A shared counter would cost a
// database write per token, which is what the token endpoint must not add.
type tokenRateLimits struct {
	def float64 // requests per second; 0 is no limit
	now func() time.Time

	mu      sync.Mutex
	buckets map[string]*rateBucket
}

type rateBucket struct {
	rate   float64 // requests per second
	tokens float64
	last   time.Time
}

// maxRateBuckets bounds the buckets kept; past it, full ones (idle clients)
// are dropped, which loses nothing: a new bucket starts full.
const maxRateBuckets = 10000

func newTokenRateLimits(def float64, now func() time.Time) *tokenRateLimits {
	return &tokenRateLimits{def: def, now: now, buckets: map[string]*rateBucket{}}
}

// allow takes one request from c's bucket. When the bucket is empty it
// returns false and how long until it holds a request again.
func (l *tokenRateLimits) allow(c *store.Client) (bool, time.Duration) {
	rate := l.def
	if c.TokenRateLimit > 0 {
		rate = c.TokenRateLimit
	}
	if rate <= 0 {
		return true, 0
	}
	capacity := math.Max(1, rate)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[c.ID]
	if !ok || b.rate != rate {
		if len(l.buckets) >= maxRateBuckets {
			l.dropFull(now)
		}
		b = &rateBucket{rate: rate, tokens: capacity, last: now}
		l.buckets[c.ID] = b
	}
	b.tokens = math.Min(capacity, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
	}
	b.tokens--
	return true, 0
}

func (l *tokenRateLimits) dropFull(now time.Time) {
	for id, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*b.rate >= math.Max(1, b.rate) {
			delete(l.buckets, id)
		}
	}
}
