package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Attempt counters throttle sign-in and code guesses. A key is the caller's
// name for what is counted, e.g. "user:alice" or "ip:203.0.113.9". Failures
// are counted in a window that restarts once it has passed; reaching the
// threshold locks the key for a fixed time. A lock is never extended by the
// failures it rejects and ends by itself, so nobody can lock a victim out
// for good; after it ends counting starts afresh.

// AttemptState is a key's counter after a failure.
type AttemptState struct {
	// Failures counted in the current window.
	Failures int
	// WindowStart is when the current window began.
	WindowStart time.Time
	// LockedUntil is when the lock ends; zero when the key is not locked.
	LockedUntil time.Time
}

type attemptRow struct {
	Failures    int        `db:"failures"`
	WindowStart time.Time  `db:"window_start"`
	LockedUntil *time.Time `db:"locked_until"`
}

// RecordFailure counts a failure for key and returns the counter. When the
// failures within window reach threshold, the key is locked for lockFor. It
// is a single upsert, so concurrent failures are all counted.
func (s *Store) RecordFailure(ctx context.Context, key string, window time.Duration, threshold int, lockFor time.Duration) (AttemptState, error) {
	if window <= 0 || threshold < 1 || lockFor <= 0 {
		return AttemptState{}, errors.New("record failure: window, threshold and lock time must be positive")
	}
	now := s.now()
	lockEnd := now.Add(lockFor)
	var firstLock *time.Time
	if threshold <= 1 {
		firstLock = &lockEnd
	}
	// The row stays until the window and every lock have passed; then the
	// janitor may remove it.
	expires := now.Add(max(window, lockFor))
	// A new window starts when the old one has passed or a lock has ended.
	const fresh = `(attempt_counters.window_start <= ? OR (attempt_counters.locked_until IS NOT NULL AND attempt_counters.locked_until <= ?))`
	var row attemptRow
	err := s.getWrite(ctx, &row, `INSERT INTO attempt_counters (key, failures, window_start, locked_until, expires_at) VALUES (?, 1, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET
			failures = CASE WHEN `+fresh+` THEN 1 ELSE attempt_counters.failures + 1 END,
			window_start = CASE WHEN `+fresh+` THEN ? ELSE attempt_counters.window_start END,
			locked_until = CASE
				WHEN attempt_counters.locked_until > ? THEN attempt_counters.locked_until
				WHEN (CASE WHEN `+fresh+` THEN 1 ELSE attempt_counters.failures + 1 END) >= ? THEN ?
				ELSE NULL END,
			expires_at = CASE WHEN attempt_counters.locked_until > ? THEN attempt_counters.locked_until ELSE ? END
		RETURNING failures, window_start, locked_until`,
		key, now, firstLock, expires,
		now.Add(-window), now,
		now.Add(-window), now, now,
		now,
		now.Add(-window), now, threshold, lockEnd,
		expires, expires)
	if err != nil {
		return AttemptState{}, fmt.Errorf("record failure for %q: %w", key, err)
	}
	st := AttemptState{Failures: row.Failures, WindowStart: row.WindowStart.UTC()}
	if row.LockedUntil != nil && row.LockedUntil.After(now) {
		st.LockedUntil = row.LockedUntil.UTC()
	}
	return st, nil
}

// UndoFailure takes back one failure RecordFailure counted for key, for an
// attempt that turned out not to fail. Callers that must count exactly
// count every attempt before they check it, so that concurrent attempts
// cannot all pass a limit together; where successes must not count (a
// source address shared by many people) they undo a success's count.
// threshold is the one given to RecordFailure: when the undone attempt was
// the one that reached it, the lock it set goes too. Should later attempts
// have been counted meanwhile, the lock stays for them.
func (s *Store) UndoFailure(ctx context.Context, key string, threshold int) error {
	if threshold < 1 {
		return errors.New("undo failure: threshold must be positive")
	}
	if _, err := s.exec(ctx, `UPDATE attempt_counters SET
			failures = failures - 1,
			locked_until = CASE WHEN failures = ? THEN NULL ELSE locked_until END
		WHERE key = ? AND failures > 0`, threshold, key); err != nil {
		return fmt.Errorf("undo failure of %q: %w", key, err)
	}
	return nil
}

// CheckLock returns when the lock on key ends, or the zero time when key is
// not locked.
func (s *Store) CheckLock(ctx context.Context, key string) (time.Time, error) {
	var until *time.Time
	err := s.get(ctx, &until, `SELECT locked_until FROM attempt_counters WHERE key = ?`, key)
	if errors.Is(err, ErrNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("check lock of %q: %w", key, err)
	}
	if until == nil || !until.After(s.now()) {
		return time.Time{}, nil
	}
	return until.UTC(), nil
}

// ResetFailures forgets key's failures, and any lock, after a success.
// Callers check the lock before they accept a success.
func (s *Store) ResetFailures(ctx context.Context, key string) error {
	if _, err := s.exec(ctx, `DELETE FROM attempt_counters WHERE key = ?`, key); err != nil {
		return fmt.Errorf("reset failures of %q: %w", key, err)
	}
	return nil
}
