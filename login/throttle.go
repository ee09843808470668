package login

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/latchkey-oidc/latchkey/store"
)

// throttle limits guessing with the store's attempt counters, so the limits
// hold across replicas.
type throttle struct {
	store   *store.Store
	metrics *metrics
	now     func() time.Time
}

// reserve counts one attempt on every tier of key before the attempt is
// checked, so that parallel guesses are counted one by one: of N
// simultaneous wrong passwords exactly the threshold get checked. It
// returns how long the caller must wait when a tier is over its limit; the
// attempt must then not be checked at all. A success calls clear.
func (t *throttle) reserve(ctx context.Context, kind, key string, tiers []Tier) (time.Duration, error) {
	var wait time.Duration
	for i, tier := range tiers {
		st, err := t.store.RecordFailure(ctx, tierKey(key, i), tier.Window, tier.Threshold, tier.LockFor)
		if err != nil {
			return 0, fmt.Errorf("throttle %s: %w", kind, err)
		}
		if st.Failures == tier.Threshold {
			t.metrics.lockouts.WithLabelValues(kind).Inc()
		}
		if st.Failures > tier.Threshold && !st.LockedUntil.IsZero() {
			wait = max(wait, st.LockedUntil.Sub(t.now()))
		}
	}
	return wait, nil
}

// undo takes back an attempt reserve counted that was not a failure, for
// counters that successes must not count nor reset (a source address
// shared by many people).
func (t *throttle) undo(ctx context.Context, key string, tiers []Tier) error {
	for i, tier := range tiers {
		if err := t.store.UndoFailure(ctx, tierKey(key, i), tier.Threshold); err != nil {
			return fmt.Errorf("throttle: %w", err)
		}
	}
	return nil
}

// clear forgets key's attempts after a success.
func (t *throttle) clear(ctx context.Context, key string, tiers []Tier) error {
	for i := range tiers {
		if err := t.store.ResetFailures(ctx, tierKey(key, i)); err != nil {
			return fmt.Errorf("throttle: %w", err)
		}
	}
	return nil
}

func tierKey(key string, i int) string { return key + "#" + strconv.Itoa(i) }

// sourceAddress is the client's IP address, the unit of per-source limits.
func sourceAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// waitMessage tells a throttled user how long to wait.
func waitMessage(d time.Duration) string {
	switch m := int((d + time.Minute - 1) / time.Minute); {
	case m <= 1:
		return "Too many attempts. Wait a minute and try again."
	default:
		return fmt.Sprintf("Too many attempts. Wait %d minutes and try again.", m)
	}
}
