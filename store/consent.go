package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
)

// ConsentGrant is a remembered consent decision: what a user allowed a
// client, so the consent screen is not shown again until it expires or is
// revoked. A nil ExpiresAt never expires.
type ConsentGrant struct {
	Subject   string
	ClientID  string
	Scopes    []string
	Audience  []string
	Claims    json.RawMessage // granted claims requests, e.g. OIDC "claims"
	GrantedAt time.Time
	ExpiresAt *time.Time
}

type consentRow struct {
	Subject   string     `db:"subject"`
	ClientID  string     `db:"client_id"`
	Scopes    string     `db:"scopes"`
	Audience  string     `db:"audience"`
	Claims    string     `db:"claims"`
	GrantedAt time.Time  `db:"granted_at"`
	ExpiresAt *time.Time `db:"expires_at"`
}

const consentColumns = `subject, client_id, scopes, audience, claims, granted_at, expires_at`

func (r consentRow) grant() *ConsentGrant {
	return &ConsentGrant{
		Subject:   r.Subject,
		ClientID:  r.ClientID,
		Scopes:    strings.Fields(r.Scopes),
		Audience:  strings.Fields(r.Audience),
		Claims:    json.RawMessage(r.Claims),
		GrantedAt: r.GrantedAt.UTC(),
		ExpiresAt: optUTC(r.ExpiresAt),
	}
}

// joinTokens joins scope or audience values with spaces, as OAuth writes
// them; a value that contains whitespace could not be split back.
func joinTokens(what string, vs []string) (string, error) {
	for _, v := range vs {
		if v == "" || strings.ContainsFunc(v, unicode.IsSpace) {
			return "", fmt.Errorf("%s value %q is empty or contains whitespace", what, v)
		}
	}
	return strings.Join(vs, " "), nil
}

// SaveConsentGrant stores a consent decision, replacing the one the subject
// gave the client before. GrantedAt is set to now.
func (s *Store) SaveConsentGrant(ctx context.Context, g *ConsentGrant) error {
	if g.Subject == "" || g.ClientID == "" {
		return errors.New("save consent: subject and client ID are required")
	}
	scopes, err := joinTokens("scope", g.Scopes)
	if err != nil {
		return fmt.Errorf("save consent: %w", err)
	}
	aud, err := joinTokens("audience", g.Audience)
	if err != nil {
		return fmt.Errorf("save consent: %w", err)
	}
	claims, err := jsonOrEmptyObject(g.Claims)
	if err != nil {
		return fmt.Errorf("save consent: claims: %w", err)
	}
	now := s.now()
	exp := optUTC(g.ExpiresAt)
	if _, err := s.exec(ctx, `INSERT INTO consent_grants (`+consentColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (subject, client_id) DO UPDATE SET scopes = excluded.scopes, audience = excluded.audience,
		claims = excluded.claims, granted_at = excluded.granted_at, expires_at = excluded.expires_at`,
		g.Subject, g.ClientID, scopes, aud, claims, now, exp); err != nil {
		return fmt.Errorf("save consent of %q for client %q: %w", g.Subject, g.ClientID, err)
	}
	g.Claims, g.GrantedAt, g.ExpiresAt = json.RawMessage(claims), now, exp
	return nil
}

// GetConsentGrant returns what a subject granted a client. An expired grant
// is ErrNotFound.
func (s *Store) GetConsentGrant(ctx context.Context, subject, clientID string) (*ConsentGrant, error) {
	var row consentRow
	if err := s.get(ctx, &row, `SELECT `+consentColumns+` FROM consent_grants
		WHERE subject = ? AND client_id = ? AND (expires_at IS NULL OR expires_at > ?)`,
		subject, clientID, s.now()); err != nil {
		return nil, fmt.Errorf("load consent of %q for client %q: %w", subject, clientID, err)
	}
	return row.grant(), nil
}

// ListConsentGrants returns a subject's grants that have not expired,
// ordered by client ID.
func (s *Store) ListConsentGrants(ctx context.Context, subject string) ([]*ConsentGrant, error) {
	var rows []consentRow
	if err := s.selectAll(ctx, &rows, `SELECT `+consentColumns+` FROM consent_grants
		WHERE subject = ? AND (expires_at IS NULL OR expires_at > ?)`, subject, s.now()); err != nil {
		return nil, fmt.Errorf("list consents of %q: %w", subject, err)
	}
	out := make([]*ConsentGrant, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.grant())
	}
	slices.SortFunc(out, func(a, b *ConsentGrant) int { return strings.Compare(a.ClientID, b.ClientID) })
	return out, nil
}

// DeleteConsentGrant revokes what a subject granted a client, so the next
// authorization asks again. A missing grant is ErrNotFound.
func (s *Store) DeleteConsentGrant(ctx context.Context, subject, clientID string) error {
	if err := s.execOne(ctx, `DELETE FROM consent_grants WHERE subject = ? AND client_id = ?`, subject, clientID); err != nil {
		return fmt.Errorf("delete consent of %q for client %q: %w", subject, clientID, err)
	}
	return nil
}

// DeleteConsentGrantsBySubject revokes every grant of a subject; having
// none is not an error.
func (s *Store) DeleteConsentGrantsBySubject(ctx context.Context, subject string) error {
	if _, err := s.exec(ctx, `DELETE FROM consent_grants WHERE subject = ?`, subject); err != nil {
		return fmt.Errorf("delete consents of %q: %w", subject, err)
	}
	return nil
}
