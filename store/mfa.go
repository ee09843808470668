package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The login app's second factors: a TOTP enrolment, WebAuthn credentials and
// recovery codes per user. The login app verifies codes and runs WebAuthn
// ceremonies; the store keeps the data and makes each use count once.

// ErrTOTPStepUsed reports a TOTP code whose time step was already used (or
// is older than one that was): a replay.
var ErrTOTPStepUsed = errors.New("TOTP code already used")

// ErrSignCountNotIncreased reports a WebAuthn assertion whose signature
// counter did not grow, a sign that the authenticator was cloned.
var ErrSignCountNotIncreased = errors.New("WebAuthn signature counter did not increase")

// TOTPEnrolment is a user's TOTP seed and its replay guard.
type TOTPEnrolment struct {
	UserID string
	// Secret is the raw seed, opened from its sealed form.
	Secret []byte
	// Confirmed is set once the user proved they hold the seed.
	Confirmed bool
	// LastStep is the highest time step accepted so far.
	LastStep  int64
	CreatedAt time.Time
}

// SaveTOTPEnrolment stores a new, unconfirmed TOTP seed for a user, sealed
// under the system secret. It replaces an unconfirmed enrolment (the user
// started over) but not a confirmed one, which gives ErrAlreadyExists:
// delete it first. Without a system secret it returns ErrNoSystemSecret.
func (s *Store) SaveTOTPEnrolment(ctx context.Context, userID string, secret []byte) error {
	if s.totpSeal == nil {
		return fmt.Errorf("save TOTP enrolment of user %q: %w", userID, ErrNoSystemSecret)
	}
	if len(secret) == 0 {
		return fmt.Errorf("save TOTP enrolment of user %q: secret is empty", userID)
	}
	sealed, err := s.totpSeal.Seal(secret, []byte(userID))
	if err != nil {
		return fmt.Errorf("save TOTP enrolment of user %q: %w", userID, err)
	}
	res, err := s.exec(ctx, `INSERT INTO totp_enrolments (user_id, secret, confirmed, last_step, created_at) VALUES (?, ?, ?, 0, ?)
		ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, confirmed = excluded.confirmed, last_step = 0, created_at = excluded.created_at
		WHERE NOT totp_enrolments.confirmed`,
		userID, sealed, false, s.now())
	if err != nil {
		return fmt.Errorf("save TOTP enrolment of user %q: %w", userID, userRefErr(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("save TOTP enrolment of user %q: %w", userID, err)
	} else if n == 0 {
		return fmt.Errorf("save TOTP enrolment of user %q: a confirmed enrolment exists: %w", userID, ErrAlreadyExists)
	}
	return nil
}

// ConfirmTOTP marks a user's pending enrolment confirmed and records step,
// the time step of the code that confirmed it, so that code cannot be used
// again to sign in. Without a pending enrolment it returns ErrNotFound.
func (s *Store) ConfirmTOTP(ctx context.Context, userID string, step int64) error {
	if err := s.execOne(ctx, `UPDATE totp_enrolments SET confirmed = ?, last_step = ? WHERE user_id = ? AND NOT confirmed`,
		true, step, userID); err != nil {
		return fmt.Errorf("confirm TOTP enrolment of user %q: %w", userID, err)
	}
	return nil
}

type totpRow struct {
	Secret    []byte    `db:"secret"`
	Confirmed bool      `db:"confirmed"`
	LastStep  int64     `db:"last_step"`
	CreatedAt time.Time `db:"created_at"`
}

// GetTOTPEnrolment returns a user's enrolment with the seed opened. Without
// a system secret it returns ErrNoSystemSecret.
func (s *Store) GetTOTPEnrolment(ctx context.Context, userID string) (*TOTPEnrolment, error) {
	if s.totpSeal == nil {
		return nil, fmt.Errorf("load TOTP enrolment of user %q: %w", userID, ErrNoSystemSecret)
	}
	var row totpRow
	if err := s.get(ctx, &row, `SELECT secret, confirmed, last_step, created_at FROM totp_enrolments WHERE user_id = ?`, userID); err != nil {
		return nil, fmt.Errorf("load TOTP enrolment of user %q: %w", userID, err)
	}
	secret, err := s.totpSeal.Open(row.Secret, []byte(userID))
	if err != nil {
		return nil, fmt.Errorf("load TOTP enrolment of user %q: %w", userID, err)
	}
	return &TOTPEnrolment{
		UserID:    userID,
		Secret:    secret,
		Confirmed: row.Confirmed,
		LastStep:  row.LastStep,
		CreatedAt: row.CreatedAt.UTC(),
	}, nil
}

// DeleteTOTPEnrolment removes a user's TOTP enrolment.
func (s *Store) DeleteTOTPEnrolment(ctx context.Context, userID string) error {
	if err := s.execOne(ctx, `DELETE FROM totp_enrolments WHERE user_id = ?`, userID); err != nil {
		return fmt.Errorf("delete TOTP enrolment of user %q: %w", userID, err)
	}
	return nil
}

// UseTOTPStep records that a code of time step step was accepted for a
// confirmed enrolment. It is one conditional update that succeeds only if
// step is later than every step used before, so a code cannot be replayed,
// not even by concurrent requests: all but one get ErrTOTPStepUsed. Without
// a confirmed enrolment it returns ErrNotFound.
func (s *Store) UseTOTPStep(ctx context.Context, userID string, step int64) error {
	err := s.execOne(ctx, `UPDATE totp_enrolments SET last_step = ? WHERE user_id = ? AND confirmed AND last_step < ?`,
		step, userID, step)
	if errors.Is(err, ErrNotFound) {
		var confirmed bool
		if lerr := s.get(ctx, &confirmed, `SELECT confirmed FROM totp_enrolments WHERE user_id = ?`, userID); lerr == nil && confirmed {
			err = ErrTOTPStepUsed
		}
	}
	if err != nil {
		return fmt.Errorf("use TOTP step of user %q: %w", userID, err)
	}
	return nil
}

// WebAuthnCredential is a passkey or security key registered by a user.
type WebAuthnCredential struct {
	// ID is the credential ID as the caller encodes it (e.g. base64url).
	ID     string
	UserID string
	Name   string
	// Credential is the caller's JSON (go-webauthn's Credential); the store
	// does not look inside.
	Credential json.RawMessage
	SignCount  uint32
	CreatedAt  time.Time
	// LastUsedAt is zero until the credential is first used to sign in.
	LastUsedAt time.Time
}

type webAuthnRow struct {
	ID         string     `db:"id"`
	UserID     string     `db:"user_id"`
	Name       string     `db:"name"`
	Credential string     `db:"credential"`
	SignCount  int64      `db:"sign_count"`
	CreatedAt  time.Time  `db:"created_at"`
	LastUsedAt *time.Time `db:"last_used_at"`
}

func (r webAuthnRow) credential() WebAuthnCredential {
	c := WebAuthnCredential{
		ID:         r.ID,
		UserID:     r.UserID,
		Name:       r.Name,
		Credential: json.RawMessage(r.Credential),
		SignCount:  uint32(r.SignCount),
		CreatedAt:  r.CreatedAt.UTC(),
	}
	if r.LastUsedAt != nil {
		c.LastUsedAt = r.LastUsedAt.UTC()
	}
	return c
}

const webAuthnColumns = `id, user_id, name, credential, sign_count, created_at, last_used_at`

// AddWebAuthnCredential registers a credential for a user. A credential ID
// already registered (by anyone) gives ErrAlreadyExists; a missing user
// gives ErrNotFound.
func (s *Store) AddWebAuthnCredential(ctx context.Context, userID, id, name string, credential json.RawMessage, signCount uint32) error {
	if id == "" {
		return fmt.Errorf("add WebAuthn credential of user %q: credential ID is empty", userID)
	}
	if !json.Valid(credential) {
		return fmt.Errorf("add WebAuthn credential of user %q: credential is not JSON", userID)
	}
	if _, err := s.exec(ctx, `INSERT INTO webauthn_credentials (id, user_id, name, credential, sign_count, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		id, userID, name, string(credential), int64(signCount), s.now()); err != nil {
		return fmt.Errorf("add WebAuthn credential %q of user %q: %w", id, userID, userRefErr(err))
	}
	return nil
}

// ListWebAuthnCredentials returns a user's credentials, oldest first.
func (s *Store) ListWebAuthnCredentials(ctx context.Context, userID string) ([]WebAuthnCredential, error) {
	var rows []webAuthnRow
	if err := s.selectAll(ctx, &rows, `SELECT `+webAuthnColumns+` FROM webauthn_credentials WHERE user_id = ? ORDER BY created_at, id`, userID); err != nil {
		return nil, fmt.Errorf("list WebAuthn credentials of user %q: %w", userID, err)
	}
	out := make([]WebAuthnCredential, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.credential())
	}
	return out, nil
}

// GetWebAuthnCredential returns a credential by ID, with the user it belongs
// to, for passwordless sign-in with a discoverable credential.
func (s *Store) GetWebAuthnCredential(ctx context.Context, id string) (*WebAuthnCredential, error) {
	var row webAuthnRow
	if err := s.get(ctx, &row, `SELECT `+webAuthnColumns+` FROM webauthn_credentials WHERE id = ?`, id); err != nil {
		return nil, fmt.Errorf("load WebAuthn credential %q: %w", id, err)
	}
	c := row.credential()
	return &c, nil
}

// UpdateWebAuthnSignCount records a successful assertion: the new signature
// counter, the caller's updated credential JSON and the time of use. A
// counter that does not increase gives ErrSignCountNotIncreased (a cloned
// authenticator, or a concurrent use of the same assertion), except that
// authenticators without a counter may keep reporting zero.
func (s *Store) UpdateWebAuthnSignCount(ctx context.Context, id string, signCount uint32, credential json.RawMessage) error {
	if !json.Valid(credential) {
		return fmt.Errorf("update WebAuthn credential %q: credential is not JSON", id)
	}
	err := s.execOne(ctx, `UPDATE webauthn_credentials SET sign_count = ?, credential = ?, last_used_at = ?
		WHERE id = ? AND (sign_count < ? OR (sign_count = 0 AND ?))`,
		int64(signCount), string(credential), s.now(), id, int64(signCount), signCount == 0)
	if errors.Is(err, ErrNotFound) {
		var n int64
		if lerr := s.get(ctx, &n, `SELECT sign_count FROM webauthn_credentials WHERE id = ?`, id); lerr == nil {
			err = fmt.Errorf("stored %d, presented %d: %w", n, signCount, ErrSignCountNotIncreased)
		}
	}
	if err != nil {
		return fmt.Errorf("update WebAuthn credential %q: %w", id, err)
	}
	return nil
}

// RenameWebAuthnCredential changes the name a user gave a credential.
func (s *Store) RenameWebAuthnCredential(ctx context.Context, userID, id, name string) error {
	if err := s.execOne(ctx, `UPDATE webauthn_credentials SET name = ? WHERE id = ? AND user_id = ?`, name, id, userID); err != nil {
		return fmt.Errorf("rename WebAuthn credential %q of user %q: %w", id, userID, err)
	}
	return nil
}

// DeleteWebAuthnCredential removes a user's credential; a credential of
// another user gives ErrNotFound.
func (s *Store) DeleteWebAuthnCredential(ctx context.Context, userID, id string) error {
	if err := s.execOne(ctx, `DELETE FROM webauthn_credentials WHERE id = ? AND user_id = ?`, id, userID); err != nil {
		return fmt.Errorf("delete WebAuthn credential %q of user %q: %w", id, userID, err)
	}
	return nil
}

// ReplaceRecoveryCodes gives a user a new set of recovery codes, dropping
// the old ones, in one transaction. hashes are the caller's deterministic
// hashes of the codes (UseRecoveryCode looks them up by hash). A missing
// user gives ErrNotFound; a repeated hash gives ErrAlreadyExists.
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []string) error {
	err := s.InTx(ctx, func(ctx context.Context) error {
		if err := s.lockUser(ctx, userID); err != nil {
			return err
		}
		if _, err := s.exec(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, userID); err != nil {
			return err
		}
		now := s.now()
		for _, h := range hashes {
			if h == "" {
				return errors.New("empty code hash")
			}
			if _, err := s.exec(ctx, `INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES (?, ?, ?)`, userID, h, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replace recovery codes of user %q: %w", userID, err)
	}
	return nil
}

// UseRecoveryCode spends one of a user's recovery codes. It is one
// conditional update, so of concurrent uses of a code exactly one succeeds;
// an unknown or spent code gives ErrNotFound.
func (s *Store) UseRecoveryCode(ctx context.Context, userID, hash string) error {
	if err := s.execOne(ctx, `UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL`,
		s.now(), userID, hash); err != nil {
		return fmt.Errorf("use recovery code of user %q: %w", userID, err)
	}
	return nil
}

// CountUnusedRecoveryCodes returns how many recovery codes a user has left.
func (s *Store) CountUnusedRecoveryCodes(ctx context.Context, userID string) (int, error) {
	var n int
	if err := s.get(ctx, &n, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL`, userID); err != nil {
		return 0, fmt.Errorf("count recovery codes of user %q: %w", userID, err)
	}
	return n, nil
}

// ResetMFA removes a user's TOTP enrolment, WebAuthn credentials and
// recovery codes in one transaction, for an administrator helping a user
// who lost their devices. A missing user gives ErrNotFound.
func (s *Store) ResetMFA(ctx context.Context, userID string) error {
	err := s.InTx(ctx, func(ctx context.Context) error {
		if err := s.lockUser(ctx, userID); err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM totp_enrolments WHERE user_id = ?`,
			`DELETE FROM webauthn_credentials WHERE user_id = ?`,
			`DELETE FROM recovery_codes WHERE user_id = ?`,
		} {
			if _, err := s.exec(ctx, q, userID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reset MFA of user %q: %w", userID, err)
	}
	return nil
}
