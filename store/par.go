package store

import (
	"context"
	"fmt"
	"time"

	"github.com/ory/fosite"
)

var _ fosite.PARStorage = (*Store)(nil)

// CreatePARSession stores a pushed authorization request under the SHA-256
// of its request_uri until the expiry fosite set on its session.
func (s *Store) CreatePARSession(ctx context.Context, requestURI string, req fosite.AuthorizeRequester) error {
	exp := expiry(req, fosite.PushedAuthorizeRequestContext, s.now().Add(defaultPARLifetime))
	return s.createToken(ctx, kindPAR, hashKey(requestURI), "", req, exp)
}

// defaultPARLifetime applies when fosite set no expiry; RFC 9126 suggests
// a short one.
const defaultPARLifetime = 90 * time.Second

// GetPARSession returns a pushed authorization request that has not
// expired. fosite does not check the expiry itself, so an expired request is
// not found.
func (s *Store) GetPARSession(ctx context.Context, requestURI string) (fosite.AuthorizeRequester, error) {
	row, err := s.loadToken(ctx, kindPAR, hashKey(requestURI), false)
	if err != nil {
		return nil, err
	}
	if !row.ExpiresAt.After(s.now()) {
		return nil, fmt.Errorf("pushed authorization request expired: %w", fosite.ErrNotFound)
	}
	return s.decodeAuthorizeRequest(ctx, []byte(row.Data), nil)
}

// DeletePARSession removes a pushed authorization request: a request_uri is
// used once.
func (s *Store) DeletePARSession(ctx context.Context, requestURI string) error {
	return s.deleteToken(ctx, kindPAR, hashKey(requestURI))
}
