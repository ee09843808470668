package store

import (
	"context"
	"fmt"
	"time"
)

// JanitorOptions tune a janitor pass.
type JanitorOptions struct {
	// BatchSize is how many rows one DELETE removes; small batches keep each
	// statement short so token traffic is not blocked. Defaults to 1000.
	BatchSize int
	// Pause is slept between batches to leave room for other writers.
	Pause time.Duration
}

// sweep names a table and the condition under which its rows are garbage.
type sweep struct {
	table string
	key   string // primary key column(s)
	where string // with one ? for the current time
}

// sweeps lists every table that holds expiring rows.
var sweeps = []sweep{
	{"oauth2_tokens", "signature, kind", "expires_at < ?"},
	{"device_codes", "signature", "expires_at < ?"},
	{"jtis", "jti_hash", "expires_at < ?"},
	{"challenges", "id", "expires_at < ?"},
	{"login_sessions", "id", "expires_at < ?"},
	{"login_session_clients", "sid, client_id", "created_at < ? AND sid NOT IN (SELECT sid FROM login_sessions)"},
	{"consent_grants", "subject, client_id", "expires_at IS NOT NULL AND expires_at < ?"},
	{"account_sessions", "id", "expires_at < ?"},
	{"one_time_codes", "id", "expires_at < ?"},
	{"attempt_counters", "key", "expires_at < ?"},
	{"signing_keys", "id", "state = 'retired' AND expires_at IS NOT NULL AND expires_at < ?"},
}

// Janitor deletes expired rows from every table in bounded batches and
// returns how many it removed per table.
func (s *Store) Janitor(ctx context.Context, opts JanitorOptions) (map[string]int64, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	now := s.now()
	removed := make(map[string]int64, len(sweeps))
	for _, sw := range sweeps {
		q := fmt.Sprintf(`DELETE FROM %[1]s WHERE (%[2]s) IN (SELECT %[2]s FROM %[1]s WHERE %[3]s LIMIT ?)`, sw.table, sw.key, sw.where)
		for {
			res, err := s.exec(ctx, q, now, opts.BatchSize)
			if err != nil {
				return removed, fmt.Errorf("janitor %s: %w", sw.table, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return removed, fmt.Errorf("janitor %s: %w", sw.table, err)
			}
			removed[sw.table] += n
			if n < int64(opts.BatchSize) {
				break
			}
			if opts.Pause > 0 {
				select {
				case <-ctx.Done():
					return removed, ctx.Err()
				case <-time.After(opts.Pause):
				}
			}
		}
	}
	return removed, nil
}

// RunJanitor runs a janitor pass every interval until ctx ends, reporting
// errors to onErr.
func (s *Store) RunJanitor(ctx context.Context, interval time.Duration, opts JanitorOptions, onErr func(error)) {
	every(ctx, interval, func() {
		if _, err := s.Janitor(ctx, opts); err != nil && ctx.Err() == nil && onErr != nil {
			onErr(err)
		}
	})
}
