package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ory/fosite/handler/openid"
)

// RevokeTokensBySubject ends everything a subject holds, for one client or,
// with clientID "", for every client: it deletes the subject's access
// tokens and deactivates its refresh tokens and unused authorization codes.
// Refresh token rows stay, inactive and out of their rotation grace period,
// so a later use is recognised as reuse; a deactivated code is refused like
// a used one. It returns how many tokens and codes it revoked.
//
// Device codes the user approved but the device has not exchanged yet are
// not covered: they are not filed by subject.
func (s *Store) RevokeTokensBySubject(ctx context.Context, subject, clientID string) (int64, error) {
	if strings.TrimSpace(subject) == "" {
		return 0, errors.New("revoke tokens: subject is empty")
	}
	where := ` WHERE subject = ? AND kind = ?`
	scope := func(kind tokenKind) []any { return []any{subject, kind} }
	if clientID != "" {
		where += ` AND client_id = ?`
		scope = func(kind tokenKind) []any { return []any{subject, kind, clientID} }
	}
	var total int64
	err := s.InTx(ctx, func(ctx context.Context) error {
		var err error
		total, err = s.revokeTokens(ctx, where, scope)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("revoke tokens of %q: %w", subject, err)
	}
	return total, nil
}

// revokeTokens deletes the access tokens and deactivates the refresh
// tokens and unused authorization codes that where selects (a WHERE clause
// whose placeholders take the arguments scope gives for a kind), and
// returns how many it revoked. Run it in a transaction.
func (s *Store) revokeTokens(ctx context.Context, where string, scope func(kind tokenKind) []any) (int64, error) {
	steps := []struct {
		what  string
		query string
		args  []any
	}{
		{"delete access tokens", `DELETE FROM oauth2_tokens` + where,
			scope(kindAccess)},
		// A rotated token still in its grace period works; clearing
		// rotated_at ends that too.
		{"deactivate refresh tokens", `UPDATE oauth2_tokens SET active = ?, rotated_at = NULL` + where + ` AND (active OR rotated_at IS NOT NULL)`,
			append([]any{false}, scope(kindRefresh)...)},
		{"deactivate authorization codes", `UPDATE oauth2_tokens SET active = ?` + where + ` AND active`,
			append([]any{false}, scope(kindCode)...)},
	}
	var total int64
	for _, st := range steps {
		res, err := s.exec(ctx, st.query, st.args...)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", st.what, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("%s: %w", st.what, err)
		}
		total += n
	}
	return total, nil
}

// RevokeTokensBySessions revokes what a subject was issued in the SSO
// sessions sids, for every client: each grant (authorization code, access
// tokens, refresh tokens) whose session names one of those sids in its ID
// token claims is revoked as RevokeTokensBySubject revokes it, including
// every token refreshed from that grant since (they share its request ID).
// Grants issued without a browser session (client credentials, the password
// grant) name no sid and are not touched. It returns how many tokens and
// codes it revoked.
//
// The sid is inside each row's stored session, so this reads the subject's
// live rows (access tokens, unused codes, refresh tokens that still work)
// and decodes them: a subject holds few, and the subject index finds them.
func (s *Store) RevokeTokensBySessions(ctx context.Context, subject string, sids []string) (int64, error) {
	if strings.TrimSpace(subject) == "" {
		return 0, errors.New("revoke tokens: subject is empty")
	}
	if len(sids) == 0 {
		return 0, nil
	}
	var total int64
	err := s.InTx(ctx, func(ctx context.Context) error {
		requests, err := s.requestsInSessions(ctx, subject, sids)
		if err != nil {
			return err
		}
		total = 0
		for _, id := range requests {
			n, err := s.revokeTokens(ctx, ` WHERE request_id = ? AND kind = ?`, func(kind tokenKind) []any { return []any{id, kind} })
			if err != nil {
				return err
			}
			total += n
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("revoke tokens of %q in sessions %q: %w", subject, sids, err)
	}
	return total, nil
}

// requestsInSessions returns the request IDs of the subject's live codes
// and tokens issued in one of the sessions sids, sorted.
func (s *Store) requestsInSessions(ctx context.Context, subject string, sids []string) ([]string, error) {
	var rows []struct {
		RequestID string `db:"request_id"`
		Data      string `db:"data"`
	}
	// A rotated refresh token in its grace period still works, so its
	// grant is live too.
	graceStart := s.now().Add(-max(s.opts.RefreshGracePeriod, 0))
	if err := s.selectAll(ctx, &rows, `SELECT request_id, data FROM oauth2_tokens
		WHERE subject = ? AND (kind = ? OR (kind = ? AND active) OR (kind = ? AND (active OR rotated_at >= ?)))`,
		subject, kindAccess, kindCode, kindRefresh, graceStart); err != nil {
		return nil, fmt.Errorf("find tokens: %w", err)
	}
	var ids []string
	for _, r := range rows {
		if slices.Contains(ids, r.RequestID) {
			continue
		}
		sid, err := s.sidOf([]byte(r.Data))
		if err != nil {
			return nil, fmt.Errorf("request %q: %w", r.RequestID, err)
		}
		if sid != "" && slices.Contains(sids, sid) {
			ids = append(ids, r.RequestID)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// sidOf returns the sid claim of the ID token claims in a stored request's
// session: the SSO session the request was made in, "" for none.
func (s *Store) sidOf(data []byte) (string, error) {
	var rec requestRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return "", fmt.Errorf("decode stored request: %w", err)
	}
	if len(rec.Session) == 0 {
		return "", nil
	}
	sess := s.opts.NewSession()
	if err := json.Unmarshal(rec.Session, sess); err != nil {
		return "", fmt.Errorf("decode stored session: %w", err)
	}
	oidc, ok := sess.(openid.Session)
	if !ok || oidc.IDTokenClaims() == nil {
		return "", nil
	}
	sid, _ := oidc.IDTokenClaims().Extra["sid"].(string)
	return sid, nil
}
