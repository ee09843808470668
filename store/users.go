package store

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"
)

// User is an account of the login app. The store keeps it; the login app
// owns what the fields mean (it hashes passwords, decides who may sign in).
type User struct {
	// ID is the stable subject put in tokens. CreateUser generates one
	// (a random UUID) when it is empty.
	ID string
	// Username is kept trimmed and lower-cased, so lookups ignore case.
	Username      string
	Email         string
	EmailVerified bool
	// PasswordHash is the caller's encoded hash (argon2id); empty for users
	// who only sign in through an upstream provider.
	PasswordHash string
	// Profile is a JSON object of standard claims (name, given_name, …).
	Profile   json.RawMessage
	Disabled  bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

type userRow struct {
	ID            string    `db:"id"`
	Username      string    `db:"username"`
	Email         string    `db:"email"`
	EmailVerified bool      `db:"email_verified"`
	PasswordHash  string    `db:"password_hash"`
	Profile       string    `db:"profile"`
	Disabled      bool      `db:"disabled"`
	CreatedAt     time.Time `db:"created_at"`
	UpdatedAt     time.Time `db:"updated_at"`
}

func (r userRow) user() *User {
	return &User{
		ID:            r.ID,
		Username:      r.Username,
		Email:         r.Email,
		EmailVerified: r.EmailVerified,
		PasswordHash:  r.PasswordHash,
		Profile:       json.RawMessage(r.Profile),
		Disabled:      r.Disabled,
		CreatedAt:     r.CreatedAt.UTC(),
		UpdatedAt:     r.UpdatedAt.UTC(),
	}
}

const userColumns = `id, username, email, email_verified, password_hash, profile, disabled, created_at, updated_at`

// NormalizeUsername is the form usernames are stored and looked up in.
func NormalizeUsername(username string) string {
	return strings.ToLower(strings.TrimSpace(username))
}

// profileText checks that a profile is a JSON object; empty means {}.
func profileText(p json.RawMessage) (string, error) {
	if len(strings.TrimSpace(string(p))) == 0 {
		return "{}", nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(p, &obj); err != nil || obj == nil {
		return "", errors.New("profile must be a JSON object")
	}
	return string(p), nil
}

// CreateUser stores a new user, filling in its ID (when empty), normalised
// username and timestamps. A taken username or ID gives ErrAlreadyExists.
func (s *Store) CreateUser(ctx context.Context, u *User) error {
	username := NormalizeUsername(u.Username)
	if username == "" {
		return errors.New("create user: username is empty")
	}
	profile, err := profileText(u.Profile)
	if err != nil {
		return fmt.Errorf("create user %q: %w", username, err)
	}
	if u.ID == "" {
		u.ID = randomUUID()
	}
	now := s.now()
	if _, err := s.exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, username, u.Email, u.EmailVerified, u.PasswordHash, profile, u.Disabled, now, now); err != nil {
		return fmt.Errorf("create user %q: %w", username, err)
	}
	u.Username, u.Profile, u.CreatedAt, u.UpdatedAt = username, json.RawMessage(profile), now, now
	return nil
}

// GetUser returns the user with that ID.
func (s *Store) GetUser(ctx context.Context, id string) (*User, error) {
	var row userRow
	if err := s.get(ctx, &row, `SELECT `+userColumns+` FROM users WHERE id = ?`, id); err != nil {
		return nil, fmt.Errorf("load user %q: %w", id, err)
	}
	return row.user(), nil
}

// GetUserByUsername returns the user with that username, ignoring case and
// surrounding space.
func (s *Store) GetUserByUsername(ctx context.Context, username string) (*User, error) {
	var row userRow
	if err := s.get(ctx, &row, `SELECT `+userColumns+` FROM users WHERE username = ?`, NormalizeUsername(username)); err != nil {
		return nil, fmt.Errorf("load user %q: %w", username, err)
	}
	return row.user(), nil
}

// ListUsers returns users ordered by username, after the given (normalised)
// username, at most limit (1000 when limit is not positive or larger).
func (s *Store) ListUsers(ctx context.Context, after string, limit int) ([]*User, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	var rows []userRow
	if err := s.selectAll(ctx, &rows, `SELECT `+userColumns+` FROM users WHERE username > ? ORDER BY username LIMIT ?`,
		NormalizeUsername(after), limit); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	out := make([]*User, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.user())
	}
	return out, nil
}

// UpdateUser saves a user's username, email, email_verified, profile and
// disabled flag, found by ID, and sets UpdatedAt. The password hash is left
// alone (see SetPasswordHash), so a profile edit cannot undo a concurrent
// password change. A username taken by another user gives ErrAlreadyExists.
func (s *Store) UpdateUser(ctx context.Context, u *User) error {
	username := NormalizeUsername(u.Username)
	if username == "" {
		return fmt.Errorf("update user %q: username is empty", u.ID)
	}
	profile, err := profileText(u.Profile)
	if err != nil {
		return fmt.Errorf("update user %q: %w", u.ID, err)
	}
	now := s.now()
	if err := s.execOne(ctx, `UPDATE users SET username = ?, email = ?, email_verified = ?, profile = ?, disabled = ?, updated_at = ? WHERE id = ?`,
		username, u.Email, u.EmailVerified, profile, u.Disabled, now, u.ID); err != nil {
		return fmt.Errorf("update user %q: %w", u.ID, err)
	}
	u.Username, u.Profile, u.UpdatedAt = username, json.RawMessage(profile), now
	return nil
}

// SetPasswordHash replaces a user's password hash.
func (s *Store) SetPasswordHash(ctx context.Context, userID, hash string) error {
	if err := s.execOne(ctx, `UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?`, hash, s.now(), userID); err != nil {
		return fmt.Errorf("set password of user %q: %w", userID, err)
	}
	return nil
}

// DeleteUser removes a user together with their federated identities, MFA
// enrolments, recovery codes and one-time codes (the foreign keys cascade).
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	if err := s.execOne(ctx, `DELETE FROM users WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete user %q: %w", id, err)
	}
	return nil
}

// lockUser checks that a user exists and, on PostgreSQL, locks the row until
// the transaction in ctx ends, so writers of one user's rows queue behind
// each other (SQLite transactions already run one at a time). FOR NO KEY
// UPDATE does not block inserts that merely reference the user.
func (s *Store) lockUser(ctx context.Context, userID string) error {
	q := `SELECT id FROM users WHERE id = ?`
	if s.dialect == postgres {
		q += ` FOR NO KEY UPDATE`
	}
	var id string
	if err := s.get(ctx, &id, q, userID); err != nil {
		return fmt.Errorf("user %q: %w", userID, err)
	}
	return nil
}

// FederatedIdentity links an account at an upstream OpenID provider to a user.
type FederatedIdentity struct {
	Provider        string    `db:"provider"`
	UpstreamSubject string    `db:"upstream_subject"`
	UserID          string    `db:"user_id"`
	CreatedAt       time.Time `db:"created_at"`
}

// LinkFederatedIdentity links the upstream account (provider, upstreamSubject)
// to a user. An upstream account already linked (to anyone) gives
// ErrAlreadyExists; a missing user gives ErrNotFound.
func (s *Store) LinkFederatedIdentity(ctx context.Context, provider, upstreamSubject, userID string) error {
	if _, err := s.exec(ctx, `INSERT INTO federated_identities (provider, upstream_subject, user_id, created_at) VALUES (?, ?, ?, ?)`,
		provider, upstreamSubject, userID, s.now()); err != nil {
		return fmt.Errorf("link %s account %q to user %q: %w", provider, upstreamSubject, userID, userRefErr(err))
	}
	return nil
}

// GetUserByFederatedIdentity returns the user an upstream account is linked to.
func (s *Store) GetUserByFederatedIdentity(ctx context.Context, provider, upstreamSubject string) (*User, error) {
	var row userRow
	if err := s.get(ctx, &row, `SELECT u.id, u.username, u.email, u.email_verified, u.password_hash, u.profile, u.disabled, u.created_at, u.updated_at
		FROM federated_identities f JOIN users u ON u.id = f.user_id WHERE f.provider = ? AND f.upstream_subject = ?`,
		provider, upstreamSubject); err != nil {
		return nil, fmt.Errorf("load user of %s account %q: %w", provider, upstreamSubject, err)
	}
	return row.user(), nil
}

// ListFederatedIdentities returns a user's linked upstream accounts, oldest first.
func (s *Store) ListFederatedIdentities(ctx context.Context, userID string) ([]FederatedIdentity, error) {
	var ids []FederatedIdentity
	if err := s.selectAll(ctx, &ids, `SELECT provider, upstream_subject, user_id, created_at FROM federated_identities
		WHERE user_id = ? ORDER BY created_at, provider, upstream_subject`, userID); err != nil {
		return nil, fmt.Errorf("list federated identities of user %q: %w", userID, err)
	}
	for i := range ids {
		ids[i].CreatedAt = ids[i].CreatedAt.UTC()
	}
	return ids, nil
}

// UnlinkFederatedIdentity removes the link between a user and an upstream
// account; a link that does not exist, or belongs to another user, gives
// ErrNotFound.
func (s *Store) UnlinkFederatedIdentity(ctx context.Context, userID, provider, upstreamSubject string) error {
	if err := s.execOne(ctx, `DELETE FROM federated_identities WHERE provider = ? AND upstream_subject = ? AND user_id = ?`,
		provider, upstreamSubject, userID); err != nil {
		return fmt.Errorf("unlink %s account %q from user %q: %w", provider, upstreamSubject, userID, err)
	}
	return nil
}

// userRefErr reports a foreign key violation — a row written for a user
// that does not exist — as ErrNotFound; other errors pass unchanged.
func userRefErr(err error) error {
	var pqErr *pq.Error
	if (errors.As(err, &pqErr) && pqErr.Code == "23503") || strings.Contains(err.Error(), "FOREIGN KEY constraint failed") {
		return errors.Join(ErrNotFound, err)
	}
	return err
}

// randomUUID returns a random (version 4) UUID.
func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// GetUsersByEmail returns the users whose email address equals email,
// ignoring case, oldest first; more than one means the address cannot
// identify a user.
func (s *Store) GetUsersByEmail(ctx context.Context, email string) ([]*User, error) {
	var rows []userRow
	if err := s.selectAll(ctx, &rows, `SELECT `+userColumns+` FROM users WHERE lower(email) = lower(?) AND email <> '' ORDER BY created_at, id`,
		strings.TrimSpace(email)); err != nil {
		return nil, fmt.Errorf("find users by email: %w", err)
	}
	out := make([]*User, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.user())
	}
	return out, nil
}
