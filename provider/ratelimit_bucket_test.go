package provider

import (
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/store"
)

// TestTokenRateBucket: a bucket holds one second of requests, refills at
// the rate, never beyond its size, and says how long to wait when empty.
func TestTokenRateBucket(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newTokenRateLimits(2, func() time.Time { return now })
	c := &store.Client{ID: "c"}
	take := func(want bool, wantWait time.Duration) {
		t.Helper()
		ok, wait := l.allow(c)
		if ok != want || wait != wantWait {
			t.Fatalf("at %v: allow = %v, wait %v; want %v, %v", now.Format(time.StampMilli), ok, wait, want, wantWait)
		}
	}
	take(true, 0)
	take(true, 0)
	take(false, 500*time.Millisecond)
	now = now.Add(250 * time.Millisecond)
	take(false, 250*time.Millisecond)
	now = now.Add(250 * time.Millisecond)
	take(true, 0)
	// Idle for long: no more than one second's worth is saved up.
	now = now.Add(time.Hour)
	take(true, 0)
	take(true, 0)
	take(false, 500*time.Millisecond)

	// A client's own rate replaces the default; changing it starts a
	// new bucket.
	c.TokenRateLimit = 0.5
	take(true, 0)
	take(false, 2*time.Second)
	// No limit at all.
	free := newTokenRateLimits(0, func() time.Time { return now })
	for range 100 {
		if ok, _ := free.allow(&store.Client{ID: "free"}); !ok {
			t.Fatal("a client without a rate was limited")
		}
	}
}
