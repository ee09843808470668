package store

import (
	"context"
	"fmt"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
)

var _ oauth2.ResourceOwnerPasswordCredentialsGrantStorage = (*Store)(nil)

// Authenticate checks resource-owner credentials for the password grant
// through Options.PasswordChecker: the login side owns users, so the store
// only passes the question on. Without a checker no credentials are valid.
func (s *Store) Authenticate(ctx context.Context, username, password string) (string, error) {
	if s.opts.PasswordChecker == nil {
		return "", fmt.Errorf("password grant: no password checker configured: %w", fosite.ErrNotFound)
	}
	return s.opts.PasswordChecker.CheckPassword(ctx, username, password)
}
