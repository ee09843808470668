package store

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"
)

// One-time codes are the short codes the login app sends by email. The
// caller generates and hashes them; the store limits how many a user is sent
// and how often each may be guessed, and lets each be used once.

// Errors of one-time codes, beside ErrNotFound (no code pending).
var (
	// ErrTooManyOneTimeCodes reports that the user was already sent as many
	// codes for the purpose as the window allows.
	ErrTooManyOneTimeCodes = errors.New("too many one-time codes requested")
	// ErrOneTimeCodeMismatch reports a wrong code; attempts remain.
	ErrOneTimeCodeMismatch = errors.New("wrong one-time code")
	// ErrOneTimeCodeExpired reports that the pending code has expired.
	ErrOneTimeCodeExpired = errors.New("one-time code expired")
	// ErrOneTimeCodeExhausted reports that the pending code took as many
	// wrong guesses as allowed (this one included) and no longer works.
	ErrOneTimeCodeExhausted = errors.New("one-time code has no attempts left")
)

// CreateOneTimeCode stores the hash of a new code for a user and purpose,
// valid for ttl. It refuses with ErrTooManyOneTimeCodes when the user was
// already sent maxPerWindow codes for that purpose within the last window.
// The new code supersedes any earlier unused one, so only the latest email
// works. A missing user gives ErrNotFound.
//
// Counting and inserting happen in one transaction that holds the user's
// row (PostgreSQL) or the database write lock (SQLite), so concurrent
// requests cannot slip past the limit together.
func (s *Store) CreateOneTimeCode(ctx context.Context, userID, purpose, codeHash string, ttl time.Duration, maxPerWindow int, window time.Duration) error {
	if ttl <= 0 || maxPerWindow < 1 || window <= 0 || codeHash == "" {
		return fmt.Errorf("create one-time code for user %q: need a code hash, a positive ttl, limit and window", userID)
	}
	now := s.now()
	// The row outlives the code while the limit still counts it.
	keep := max(ttl, window)
	err := s.InTx(ctx, func(ctx context.Context) error {
		if err := s.lockUser(ctx, userID); err != nil {
			return err
		}
		var sent int
		if err := s.get(ctx, &sent, `SELECT COUNT(*) FROM one_time_codes WHERE user_id = ? AND purpose = ? AND created_at > ?`,
			userID, purpose, now.Add(-window)); err != nil {
			return err
		}
		if sent >= maxPerWindow {
			return ErrTooManyOneTimeCodes
		}
		// used_at marks a code spent: verified, or superseded as here.
		if _, err := s.exec(ctx, `UPDATE one_time_codes SET used_at = ? WHERE user_id = ? AND purpose = ? AND used_at IS NULL`,
			now, userID, purpose); err != nil {
			return err
		}
		_, err := s.exec(ctx, `INSERT INTO one_time_codes (id, user_id, purpose, code_hash, attempts, created_at, valid_until, expires_at)
			VALUES (?, ?, ?, ?, 0, ?, ?, ?)`,
			randomUUID(), userID, purpose, codeHash, now, now.Add(ttl), now.Add(keep))
		return err
	})
	if err != nil {
		return fmt.Errorf("create %s code for user %q: %w", purpose, userID, err)
	}
	return nil
}

type oneTimeCodeRow struct {
	ID         string     `db:"id"`
	CodeHash   string     `db:"code_hash"`
	Attempts   int        `db:"attempts"`
	ValidUntil *time.Time `db:"valid_until"`
}

// VerifyOneTimeCode checks codeHash against the user's pending code for
// purpose and, when it matches, spends it. It returns ErrNotFound when no
// code is pending (none sent, or already used), ErrOneTimeCodeExpired,
// ErrOneTimeCodeExhausted once maxAttempts wrong codes were entered, and
// ErrOneTimeCodeMismatch for a wrong code with attempts left.
//
// The check runs in a transaction holding the code's row, so concurrent
// verifications are counted one by one and at most one of them spends the
// code. A wrong guess is committed before the error is returned: call this
// outside a transaction of your own, or commit it even on error.
func (s *Store) VerifyOneTimeCode(ctx context.Context, userID, purpose, codeHash string, maxAttempts int) error {
	if maxAttempts < 1 {
		return fmt.Errorf("verify %s code of user %q: maxAttempts must be positive", purpose, userID)
	}
	q := `SELECT id, code_hash, attempts, valid_until FROM one_time_codes
		WHERE user_id = ? AND purpose = ? AND used_at IS NULL ORDER BY created_at DESC, id DESC LIMIT 1`
	if s.dialect == postgres {
		q += ` FOR UPDATE`
	}
	var verdict error
	err := s.InTx(ctx, func(ctx context.Context) error {
		now := s.now()
		var row oneTimeCodeRow
		if err := s.get(ctx, &row, q, userID, purpose); err != nil {
			return err
		}
		switch {
		case row.ValidUntil == nil || !row.ValidUntil.After(now):
			verdict = ErrOneTimeCodeExpired
			return nil
		case row.Attempts >= maxAttempts:
			verdict = ErrOneTimeCodeExhausted
			return nil
		case subtle.ConstantTimeCompare([]byte(row.CodeHash), []byte(codeHash)) != 1:
			verdict = ErrOneTimeCodeMismatch
			if row.Attempts+1 >= maxAttempts {
				verdict = ErrOneTimeCodeExhausted
			}
			return s.execOne(ctx, `UPDATE one_time_codes SET attempts = attempts + 1 WHERE id = ?`, row.ID)
		}
		return s.execOne(ctx, `UPDATE one_time_codes SET used_at = ? WHERE id = ? AND used_at IS NULL`, now, row.ID)
	})
	if err == nil {
		err = verdict
	}
	if err != nil {
		return fmt.Errorf("verify %s code of user %q: %w", purpose, userID, err)
	}
	return nil
}
