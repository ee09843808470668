package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
)

var (
	_ oauth2.CoreStorage                   = (*Store)(nil)
	_ oauth2.AuthorizeCodeStorage          = (*Store)(nil)
	_ oauth2.AccessTokenStorage            = (*Store)(nil)
	_ oauth2.RefreshTokenStorage           = (*Store)(nil)
	_ oauth2.TokenRevocationStorage        = (*Store)(nil)
	_ oauth2.ClientCredentialsGrantStorage = (*Store)(nil)
	_ openid.OpenIDConnectRequestStorage   = (*Store)(nil)
	_ pkce.PKCERequestStorage              = (*Store)(nil)
	_ fosite.Storage                       = (*Store)(nil)
)

// tokenKind tells apart the rows of oauth2_tokens.
type tokenKind int16

const (
	kindCode    tokenKind = 1
	kindAccess  tokenKind = 2
	kindRefresh tokenKind = 3
	kindPKCE    tokenKind = 4
	kindOIDC    tokenKind = 5
	kindPAR     tokenKind = 6
)

func (k tokenKind) String() string {
	switch k {
	case kindCode:
		return "authorization code"
	case kindAccess:
		return "access token"
	case kindRefresh:
		return "refresh token"
	case kindPKCE:
		return "PKCE request"
	case kindOIDC:
		return "OpenID Connect session"
	case kindPAR:
		return "pushed authorization request"
	}
	return "token"
}

// defaultRowLifetime bounds rows whose session names no expiry, so the
// janitor can still remove them.
const defaultRowLifetime = 24 * time.Hour

type tokenRow struct {
	Active          bool       `db:"active"`
	RequestID       string     `db:"request_id"`
	AccessSignature string     `db:"access_signature"`
	RotatedAt       *time.Time `db:"rotated_at"`
	ExpiresAt       time.Time  `db:"expires_at"`
	Data            string     `db:"data"`
}

func (s *Store) createToken(ctx context.Context, kind tokenKind, signature, accessSignature string, req fosite.Requester, expiresAt time.Time) error {
	data, err := encodeRequest(req)
	if err != nil {
		return fmt.Errorf("store %s: %w", kind, err)
	}
	clientID := ""
	if c := req.GetClient(); c != nil {
		clientID = c.GetID()
	}
	args := []any{kind, signature, req.GetID(), clientID, subjectOf(req), true, accessSignature,
		utc(req.GetRequestedAt()), expiresAt, string(data)}
	// Inside a transaction the row goes with the transaction's next
	// statement; outside one it joins whatever other requests are writing
	// at the same moment.
	if deferTokenRow(ctx, args) {
		return nil
	}
	if err := s.tokens.insert(ctx, args...); err != nil {
		return fmt.Errorf("store %s: %w", kind, err)
	}
	return nil
}

const tokenSelect = `SELECT active, request_id, access_signature, rotated_at, expires_at, data FROM oauth2_tokens WHERE signature = ? AND kind = ?`

func (s *Store) loadToken(ctx context.Context, kind tokenKind, signature string, forUpdate bool) (tokenRow, error) {
	q := tokenSelect
	if forUpdate && s.dialect == postgres && txFrom(ctx) != nil {
		// Inside the provider's token transaction, hold the row so a
		// concurrent exchange of the same code waits and then sees it used.
		q += ` FOR UPDATE`
	}
	var row tokenRow
	if err := s.get(ctx, &row, q, signature, kind); err != nil {
		return row, fmt.Errorf("load %s: %w", kind, err)
	}
	return row, nil
}

// loadRequest loads a row and decodes its request, with the session decoded
// into session (a fresh one when nil).
func (s *Store) loadRequest(ctx context.Context, kind tokenKind, signature string, session fosite.Session, forUpdate bool) (*fosite.Request, tokenRow, error) {
	row, err := s.loadToken(ctx, kind, signature, forUpdate)
	if err != nil {
		return nil, row, err
	}
	req, _, err := s.decodeRequest(ctx, []byte(row.Data), session)
	return req, row, err
}

func (s *Store) deleteToken(ctx context.Context, kind tokenKind, signature string) error {
	if err := s.execOne(ctx, `DELETE FROM oauth2_tokens WHERE signature = ? AND kind = ?`, signature, kind); err != nil {
		return fmt.Errorf("delete %s: %w", kind, err)
	}
	return nil
}

// CreateAuthorizeCodeSession stores an authorization code.
func (s *Store) CreateAuthorizeCodeSession(ctx context.Context, signature string, req fosite.Requester) error {
	return s.createToken(ctx, kindCode, signature, "", req, expiry(req, fosite.AuthorizeCode, s.now().Add(defaultRowLifetime)))
}

// GetAuthorizeCodeSession returns the code's request. For a code already
// exchanged it returns the request together with
// fosite.ErrInvalidatedAuthorizeCode, so fosite can revoke what it issued.
func (s *Store) GetAuthorizeCodeSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, row, err := s.loadRequest(ctx, kindCode, signature, session, true)
	if err != nil {
		return nil, err
	}
	if !row.Active {
		return req, fosite.ErrInvalidatedAuthorizeCode
	}
	return req, nil
}

// InvalidateAuthorizeCodeSession marks a code used and keeps it for the
// reuse window. It changes the row only if the code is still active, so of
// two concurrent exchanges exactly one gets past this point; the other gets
// fosite.ErrInvalidatedAuthorizeCode.
func (s *Store) InvalidateAuthorizeCodeSession(ctx context.Context, signature string) error {
	keep := s.now().Add(s.opts.CodeReuseWindow)
	res, err := s.exec(ctx, `UPDATE oauth2_tokens SET active = ?,
		expires_at = CASE WHEN expires_at < ? THEN ? ELSE expires_at END
		WHERE signature = ? AND kind = ? AND active`, false, keep, keep, signature, kindCode)
	if err != nil {
		return fmt.Errorf("invalidate authorization code: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("invalidate authorization code: %w", err)
	}
	if n == 0 {
		if _, err := s.loadToken(ctx, kindCode, signature, false); err != nil {
			return err
		}
		return fmt.Errorf("invalidate authorization code: %w", fosite.ErrInvalidatedAuthorizeCode)
	}
	return nil
}

// CreateAccessTokenSession stores an access token.
func (s *Store) CreateAccessTokenSession(ctx context.Context, signature string, req fosite.Requester) error {
	return s.createToken(ctx, kindAccess, signature, "", req, expiry(req, fosite.AccessToken, s.now().Add(defaultRowLifetime)))
}

// GetAccessTokenSession returns an access token's request. session may be
// nil (the revocation handler passes none).
func (s *Store) GetAccessTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, row, err := s.loadRequest(ctx, kindAccess, signature, session, false)
	if err != nil {
		return nil, err
	}
	if !row.Active {
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

// DeleteAccessTokenSession removes an access token.
func (s *Store) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	return s.deleteToken(ctx, kindAccess, signature)
}

// CreateRefreshTokenSession stores a refresh token and the signature of the
// access token issued with it.
func (s *Store) CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, req fosite.Requester) error {
	return s.createToken(ctx, kindRefresh, signature, accessSignature, req, expiry(req, fosite.RefreshToken, farFuture))
}

// GetRefreshTokenSession returns a refresh token's request. A rotated token
// still works during the grace period; after it, and for a revoked token,
// the request comes back with fosite.ErrInactiveToken so that fosite revokes
// the whole family.
func (s *Store) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, row, err := s.loadRequest(ctx, kindRefresh, signature, session, false)
	if err != nil {
		return nil, err
	}
	if !row.Active && !s.inGrace(row) {
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

func (s *Store) inGrace(row tokenRow) bool {
	return row.RotatedAt != nil && s.opts.RefreshGracePeriod > 0 &&
		s.now().Sub(*row.RotatedAt) <= s.opts.RefreshGracePeriod
}

// DeleteRefreshTokenSession removes a refresh token.
func (s *Store) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	return s.deleteToken(ctx, kindRefresh, signature)
}

// RotateRefreshToken retires a refresh token that is being exchanged and
// deletes the access token issued with it. The row is kept, inactive, so a
// later reuse is detected. Rotating a token a concurrent request already
// rotated is allowed inside the grace period and otherwise reported as
// fosite.ErrNotFound, which fosite answers with "retry".
func (s *Store) RotateRefreshToken(ctx context.Context, requestID, signature string) error {
	q := `UPDATE oauth2_tokens SET active = ?, rotated_at = ?
		WHERE signature = ? AND kind = ? AND request_id = ? AND active RETURNING access_signature`
	args := []any{false, s.now(), signature, kindRefresh, requestID}
	if s.dialect == postgres {
		// One round trip instead of two: the access token goes in the
		// same statement. (SQLite has no writing WITH clauses.)
		q = `WITH rotated AS (` + q + `),
			gone AS (DELETE FROM oauth2_tokens WHERE kind = ? AND signature IN (SELECT access_signature FROM rotated))
			SELECT access_signature FROM rotated`
		args = append(args, kindAccess)
	}
	var accessSig string
	err := s.getWrite(ctx, &accessSig, q, args...)
	if errors.Is(err, fosite.ErrNotFound) {
		row, lerr := s.loadToken(ctx, kindRefresh, signature, false)
		if lerr != nil {
			return lerr
		}
		if row.RequestID == requestID && s.inGrace(row) {
			return nil
		}
		return fmt.Errorf("rotate refresh token: already rotated: %w", fosite.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("rotate refresh token: %w", err)
	}
	if accessSig != "" && s.dialect != postgres {
		if _, err := s.exec(ctx, `DELETE FROM oauth2_tokens WHERE signature = ? AND kind = ?`, accessSig, kindAccess); err != nil {
			return fmt.Errorf("rotate refresh token: delete its access token: %w", err)
		}
	}
	return nil
}

// RevokeRefreshToken deactivates every refresh token of a request family
// (all tokens ever refreshed from one grant share its request ID). The rows
// stay, so a later use is recognised as reuse.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	if _, err := s.exec(ctx, `UPDATE oauth2_tokens SET active = ?, rotated_at = NULL WHERE request_id = ? AND kind = ?`,
		false, requestID, kindRefresh); err != nil {
		return fmt.Errorf("revoke refresh tokens: %w", err)
	}
	return nil
}

// RevokeAccessToken deletes every access token of a request family.
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	if _, err := s.exec(ctx, `DELETE FROM oauth2_tokens WHERE request_id = ? AND kind = ?`, requestID, kindAccess); err != nil {
		return fmt.Errorf("revoke access tokens: %w", err)
	}
	return nil
}

// CreatePKCERequestSession stores the PKCE challenge of a code.
func (s *Store) CreatePKCERequestSession(ctx context.Context, signature string, req fosite.Requester) error {
	return s.createToken(ctx, kindPKCE, signature, "", req, expiry(req, fosite.AuthorizeCode, s.now().Add(defaultRowLifetime)))
}

// GetPKCERequestSession returns the PKCE request stored for a code.
func (s *Store) GetPKCERequestSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, _, err := s.loadRequest(ctx, kindPKCE, signature, session, false)
	if err != nil {
		return nil, err
	}
	return req, nil
}

// DeletePKCERequestSession removes the PKCE request of a code.
func (s *Store) DeletePKCERequestSession(ctx context.Context, signature string) error {
	return s.deleteToken(ctx, kindPKCE, signature)
}

// CreateOpenIDConnectSession stores the OpenID Connect request of a code or
// device code. key is the raw code or its signature; see codeKey.
func (s *Store) CreateOpenIDConnectSession(ctx context.Context, key string, req fosite.Requester) error {
	return s.createToken(ctx, kindOIDC, codeKey(key), "", req, expiry(req, fosite.AuthorizeCode, s.now().Add(defaultRowLifetime)))
}

// GetOpenIDConnectSession returns the stored OpenID Connect request; its
// session is decoded into req's session, as fosite expects.
func (s *Store) GetOpenIDConnectSession(ctx context.Context, key string, req fosite.Requester) (fosite.Requester, error) {
	var sess fosite.Session
	if req != nil {
		sess = req.GetSession()
	}
	stored, _, err := s.loadRequest(ctx, kindOIDC, codeKey(key), sess, false)
	if errors.Is(err, fosite.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", openid.ErrNoSessionFound, err)
	}
	if err != nil {
		return nil, err
	}
	return stored, nil
}

// DeleteOpenIDConnectSession removes the OpenID Connect request of a code.
func (s *Store) DeleteOpenIDConnectSession(ctx context.Context, key string) error {
	return s.deleteToken(ctx, kindOIDC, codeKey(key))
}
