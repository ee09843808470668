package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// BackchannelLogout is a logout token a client's backchannel_logout_uri
// still has to receive (OpenID Connect Back-Channel Logout 1.0). The queue
// of them is the source of truth: a row is written in the transaction that
// ends the SSO session and deleted only once the token was delivered or the
// provider gave up, so a provider restart loses no logout.
//
// The row holds the token's claims, not the token: the provider signs it
// when it sends it, so a token resent hours later is not expired and is
// signed with the key of the day.
type BackchannelLogout struct {
	// ID is the logout token's jti: the same on every attempt, so a
	// relying party can recognise a token it already processed.
	ID        string
	ClientID  string
	SID       string
	Subject   string
	CreatedAt time.Time
	// DueAt is when the next attempt is due; while a provider holds the
	// row, when its claim lapses.
	DueAt time.Time
	// Attempts counts the attempts started, the claimed one included.
	Attempts int
	// Lease identifies the claim a provider holds on the row; empty when
	// nobody does.
	Lease string
	// LastError says why the last attempt failed, for operators.
	LastError string
}

type backchannelLogoutRow struct {
	ID        string    `db:"id"`
	ClientID  string    `db:"client_id"`
	SID       string    `db:"sid"`
	Subject   string    `db:"subject"`
	CreatedAt time.Time `db:"created_at"`
	DueAt     time.Time `db:"due_at"`
	Attempts  int       `db:"attempts"`
	Lease     string    `db:"lease"`
	LastError string    `db:"last_error"`
}

const backchannelLogoutColumns = `id, client_id, sid, subject, created_at, due_at, attempts, lease, last_error`

func (r backchannelLogoutRow) logout() *BackchannelLogout {
	return &BackchannelLogout{
		ID:        r.ID,
		ClientID:  r.ClientID,
		SID:       r.SID,
		Subject:   r.Subject,
		CreatedAt: r.CreatedAt.UTC(),
		DueAt:     r.DueAt.UTC(),
		Attempts:  r.Attempts,
		Lease:     r.Lease,
		LastError: r.LastError,
	}
}

// maxLastError bounds the stored reason of a failed attempt.
const maxLastError = 500

// EnqueueBackchannelLogouts queues logout tokens, due at once. Each needs a
// ClientID and a SID or a Subject (the token must name what it ends); a
// missing ID is generated. CreatedAt and DueAt are set to now, Attempts,
// Lease and LastError cleared. Call it in the transaction that ends the
// sessions (Store.InTx).
func (s *Store) EnqueueBackchannelLogouts(ctx context.Context, logouts []*BackchannelLogout) error {
	for _, l := range logouts {
		if l.ClientID == "" {
			return errors.New("enqueue back-channel logout: client ID is empty")
		}
		if l.SID == "" && l.Subject == "" {
			return fmt.Errorf("enqueue back-channel logout for %q: neither sid nor subject", l.ClientID)
		}
	}
	if len(logouts) == 0 {
		return nil
	}
	now := s.now()
	err := s.InTx(ctx, func(ctx context.Context) error {
		for _, l := range logouts {
			if l.ID == "" {
				l.ID = randomLogoutID()
			}
			if _, err := s.exec(ctx, `INSERT INTO backchannel_logouts (`+backchannelLogoutColumns+`) VALUES (?, ?, ?, ?, ?, ?, 0, '', '')`,
				l.ID, l.ClientID, l.SID, l.Subject, now, now); err != nil {
				return fmt.Errorf("client %q: %w", l.ClientID, err)
			}
			l.CreatedAt, l.DueAt, l.Attempts, l.Lease, l.LastError = now, now, 0, "", ""
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("enqueue back-channel logouts: %w", err)
	}
	return nil
}

// ClaimBackchannelLogout takes the queued logout that has been due longest
// for one attempt, holding it for hold: until then no other caller (in this
// process, another replica or another process on the same database) can
// claim it; after that it is due again, so a provider that died while
// sending does not lose it. The answer has Attempts counting this attempt
// and the Lease to finish it with. With nothing due it returns ErrNotFound.
//
// On PostgreSQL concurrent claimers skip each other's rows (FOR UPDATE SKIP
// LOCKED); on SQLite the UPDATE holds the database's write lock, and its
// condition on due_at makes a second claim of the same row change nothing.
func (s *Store) ClaimBackchannelLogout(ctx context.Context, hold time.Duration) (*BackchannelLogout, error) {
	if hold <= 0 {
		return nil, errors.New("claim back-channel logout: the hold must be positive")
	}
	now := s.now()
	lock := ""
	if s.dialect == postgres {
		lock = ` FOR UPDATE SKIP LOCKED`
	}
	var row backchannelLogoutRow
	err := s.getWrite(ctx, &row, `UPDATE backchannel_logouts SET lease = ?, due_at = ?, attempts = attempts + 1
		WHERE id = (SELECT id FROM backchannel_logouts WHERE due_at <= ? ORDER BY due_at, id LIMIT 1`+lock+`)
		AND due_at <= ?
		RETURNING `+backchannelLogoutColumns,
		randomLogoutID(), utc(now.Add(hold)), now, now)
	if err != nil {
		return nil, fmt.Errorf("claim back-channel logout: %w", err)
	}
	return row.logout(), nil
}

// FinishBackchannelLogout removes a claimed logout from the queue: it was
// delivered, or will never be. It is ErrNotFound when the claim lease no
// longer holds (it lapsed and another provider took the row over, which
// then decides).
func (s *Store) FinishBackchannelLogout(ctx context.Context, id, lease string) error {
	if lease == "" {
		return fmt.Errorf("finish back-channel logout %q: %w", id, ErrNotFound)
	}
	if err := s.execOne(ctx, `DELETE FROM backchannel_logouts WHERE id = ? AND lease = ?`, id, lease); err != nil {
		return fmt.Errorf("finish back-channel logout %q: %w", id, err)
	}
	return nil
}

// RetryBackchannelLogout gives up the claim lease on a logout whose attempt
// failed, recording why, and makes it due again after delay (zero: at
// once). It is ErrNotFound when the claim no longer holds.
func (s *Store) RetryBackchannelLogout(ctx context.Context, id, lease string, delay time.Duration, reason string) error {
	if lease == "" {
		return fmt.Errorf("retry back-channel logout %q: %w", id, ErrNotFound)
	}
	if len(reason) > maxLastError {
		reason = reason[:maxLastError]
	}
	if err := s.execOne(ctx, `UPDATE backchannel_logouts SET lease = '', due_at = ?, last_error = ? WHERE id = ? AND lease = ?`,
		utc(s.now().Add(max(delay, 0))), reason, id, lease); err != nil {
		return fmt.Errorf("retry back-channel logout %q: %w", id, err)
	}
	return nil
}

// ListBackchannelLogouts returns the queued logouts, due first, for
// operators and tests.
func (s *Store) ListBackchannelLogouts(ctx context.Context) ([]*BackchannelLogout, error) {
	var rows []backchannelLogoutRow
	if err := s.selectAll(ctx, &rows, `SELECT `+backchannelLogoutColumns+` FROM backchannel_logouts ORDER BY due_at, id`); err != nil {
		return nil, fmt.Errorf("list back-channel logouts: %w", err)
	}
	out := make([]*BackchannelLogout, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.logout())
	}
	return out, nil
}

// randomLogoutID returns 128 random bits, URL-safe: a jti or a lease.
func randomLogoutID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}
