package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// AccountSession is a user's session with the login app itself, behind the
// login app's own cookie: it lets the user manage their account without
// signing in again. It is separate from the provider's SSO sessions, which
// the login app never reads. The cookie value is a bearer secret, so the
// database keeps only its SHA-256.
type AccountSession struct {
	ID     string // the cookie value
	UserID string
	// AMR lists the methods the user proved at AuthTime (RFC 8176 values).
	AMR       []string
	AuthTime  time.Time
	CreatedAt time.Time
	ExpiresAt time.Time
}

type accountSessionRow struct {
	UserID    string    `db:"user_id"`
	AMR       string    `db:"amr"`
	AuthTime  time.Time `db:"auth_time"`
	CreatedAt time.Time `db:"created_at"`
	ExpiresAt time.Time `db:"expires_at"`
}

// CreateAccountSession stores a new session. AuthTime defaults to now. A
// taken cookie value gives ErrAlreadyExists, a missing user ErrNotFound.
func (s *Store) CreateAccountSession(ctx context.Context, as *AccountSession) error {
	switch {
	case as.ID == "":
		return errors.New("create account session: cookie value is empty")
	case as.UserID == "":
		return errors.New("create account session: user ID is empty")
	case as.ExpiresAt.IsZero():
		return errors.New("create account session: no expiry")
	}
	amr, err := encodeAMR(as.AMR)
	if err != nil {
		return fmt.Errorf("create account session: %w", err)
	}
	now := s.now()
	authTime := now
	if !as.AuthTime.IsZero() {
		authTime = utc(as.AuthTime)
	}
	exp := utc(as.ExpiresAt)
	if _, err := s.exec(ctx, `INSERT INTO account_sessions (id, user_id, amr, auth_time, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		hashKey(as.ID), as.UserID, amr, authTime, now, exp); err != nil {
		return fmt.Errorf("create account session of user %q: %w", as.UserID, userRefErr(err))
	}
	as.AuthTime, as.CreatedAt, as.ExpiresAt = authTime, now, exp
	return nil
}

// GetAccountSession returns the live session behind a cookie value; an
// expired one is ErrNotFound.
func (s *Store) GetAccountSession(ctx context.Context, cookieValue string) (*AccountSession, error) {
	var row accountSessionRow
	if err := s.get(ctx, &row, `SELECT user_id, amr, auth_time, created_at, expires_at FROM account_sessions WHERE id = ? AND expires_at > ?`,
		hashKey(cookieValue), s.now()); err != nil {
		return nil, fmt.Errorf("load account session: %w", err)
	}
	var amr []string
	if err := json.Unmarshal([]byte(row.AMR), &amr); err != nil {
		return nil, fmt.Errorf("decode amr of account session: %w", err)
	}
	return &AccountSession{
		ID:        cookieValue,
		UserID:    row.UserID,
		AMR:       amr,
		AuthTime:  row.AuthTime.UTC(),
		CreatedAt: row.CreatedAt.UTC(),
		ExpiresAt: row.ExpiresAt.UTC(),
	}, nil
}

// DeleteAccountSession ends the session behind a cookie value. Ending a
// session that is not there is not an error: signing out twice is fine.
func (s *Store) DeleteAccountSession(ctx context.Context, cookieValue string) error {
	if _, err := s.exec(ctx, `DELETE FROM account_sessions WHERE id = ?`, hashKey(cookieValue)); err != nil {
		return fmt.Errorf("delete account session: %w", err)
	}
	return nil
}

// DeleteAccountSessions ends every session of a user except the one behind
// keep (which may be empty), after a password change or MFA reset. It
// returns how many it ended.
func (s *Store) DeleteAccountSessions(ctx context.Context, userID, keep string) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM account_sessions WHERE user_id = ? AND id <> ?`, userID, hashKey(keep))
	if err != nil {
		return 0, fmt.Errorf("delete account sessions of user %q: %w", userID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete account sessions of user %q: %w", userID, err)
	}
	return n, nil
}
