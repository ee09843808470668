package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"

	"github.com/latchkey-oidc/latchkey/conformance/useragent"
)

// refreshSource hands out refresh tokens, each from its own authorization
// code flow (its own token family). Its flows share one browser, which
// signs in once and then rides the SSO session, so a user with TOTP needs
// one code for the whole set-up.
type refreshSource struct {
	flow *codeFlow
	user *useragent.User

	mu    sync.Mutex
	agent *useragent.Agent
}

func (s *refreshSource) next(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ta, err := s.flow.run(ctx, s.agent, useragent.Interaction{User: s.user, Remember: true})
	if err != nil {
		return "", err
	}
	if ta.RefreshToken == "" {
		return "", errors.New("the code exchange answered without a refresh_token; the client needs the refresh_token grant and the offline_access scope")
	}
	return ta.RefreshToken, nil
}

// refreshWorker refreshes in a loop, each time with the refresh token the
// previous answer returned (rotation).
type refreshWorker struct {
	t     *target
	c     client
	src   *refreshSource
	token string
}

// prepare starts a new token family after a failed refresh: the failed
// request may have rotated the token without the answer arriving, and
// sending the old one again would be reuse, which revokes the family.
func (w *refreshWorker) prepare(ctx context.Context) error {
	if w.token != "" {
		return nil
	}
	tok, err := w.src.next(ctx)
	if err != nil {
		return fmt.Errorf("get a new refresh token: %w", err)
	}
	w.token = tok
	return nil
}

func (w *refreshWorker) do(ctx context.Context) (string, error) {
	ta, err := w.t.token(ctx, w.c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {w.token}})
	w.token = ""
	if err != nil {
		return "", err
	}
	if ta.RefreshToken == "" {
		return "", &failure{kind: kindBadAnswer, detail: "the refresh answered without a new refresh_token"}
	}
	w.token = ta.RefreshToken
	return "", nil
}

// setUpRefresh gets each worker its own refresh token through an
// authorization code flow with scope openid offline_access.
func setUpRefresh(ctx context.Context, e *env, n int) ([]worker, error) {
	if err := e.needUser(); err != nil {
		return nil, err
	}
	if e.t.meta.AuthorizationEndpoint == "" {
		return nil, errors.New("the discovery document has no authorization_endpoint")
	}
	c, err := e.clientFor(ctx, codeClientMeta("refresh", e.redirectURI))
	if err != nil {
		return nil, err
	}
	src := &refreshSource{
		flow:  &codeFlow{t: e.t, c: c, redirectURI: e.redirectURI, scope: "openid offline_access"},
		user:  e.users[0],
		agent: useragent.New(e.t.http, e.redirectURI),
	}
	ws, err := prepareAll(ctx, n, func() *refreshWorker { return &refreshWorker{t: e.t, c: c, src: src} })
	if err != nil && kindOf(err) == "second_factor" {
		return nil, fmt.Errorf("%w for user %q: give its seed with --totp-secret (the set-up signs in once)", errSecondFactor, e.users[0].Username)
	}
	return ws, err
}
