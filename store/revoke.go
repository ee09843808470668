package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
		total = 0
		for _, st := range steps {
			res, err := s.exec(ctx, st.query, st.args...)
			if err != nil {
				return fmt.Errorf("%s: %w", st.what, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("%s: %w", st.what, err)
			}
			total += n
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("revoke tokens of %q: %w", subject, err)
	}
	return total, nil
}
