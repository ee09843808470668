package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

	"github.com/latchkey-oidc/latchkey/store"
)

var _ = register(
	test{"RevokeTokensBySubject", testRevokeTokensBySubject},
	test{"RevokeTokensBySubjectThroughFosite", testRevokeTokensBySubjectThroughFosite},
	test{"RevokeTokensBySessions", testRevokeTokensBySessions},
)

// subjectTokens stores an authorization code, an access token and a
// refresh token of subject for client c, named after prefix.
func subjectTokens(t *testing.T, s *store.Store, c *store.Client, subject, prefix string, now time.Time) {
	t.Helper()
	ctx := context.Background()
	req := request(c, prefix+"-req", map[fosite.TokenType]time.Time{
		fosite.AuthorizeCode: now.Add(5 * time.Minute),
		fosite.AccessToken:   now.Add(time.Hour),
		fosite.RefreshToken:  now.Add(24 * time.Hour),
	})
	sess := req.Session.(*openid.DefaultSession)
	sess.Subject, sess.Claims.Subject = subject, subject
	if err := s.CreateAuthorizeCodeSession(ctx, prefix+"-code", req); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccessTokenSession(ctx, prefix+"-at", req); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRefreshTokenSession(ctx, prefix+"-rt", prefix+"-at", req); err != nil {
		t.Fatal(err)
	}
}

// checkTokens fails t unless the tokens subjectTokens stored under prefix
// are all live (revoked false) or all revoked.
func checkTokens(t *testing.T, s *store.Store, prefix string, revoked bool) {
	t.Helper()
	ctx := context.Background()
	_, codeErr := s.GetAuthorizeCodeSession(ctx, prefix+"-code", openid.NewDefaultSession())
	_, atErr := s.GetAccessTokenSession(ctx, prefix+"-at", openid.NewDefaultSession())
	_, rtErr := s.GetRefreshTokenSession(ctx, prefix+"-rt", openid.NewDefaultSession())
	if !revoked {
		if codeErr != nil || atErr != nil || rtErr != nil {
			t.Fatalf("%s: want live tokens, got code %v, access %v, refresh %v", prefix, codeErr, atErr, rtErr)
		}
		return
	}
	if !errors.Is(codeErr, fosite.ErrInvalidatedAuthorizeCode) {
		t.Errorf("%s: revoked code: got %v, want ErrInvalidatedAuthorizeCode", prefix, codeErr)
	}
	if !errors.Is(atErr, store.ErrNotFound) {
		t.Errorf("%s: revoked access token: got %v, want ErrNotFound", prefix, atErr)
	}
	if !errors.Is(rtErr, fosite.ErrInactiveToken) {
		t.Errorf("%s: revoked refresh token: got %v, want ErrInactiveToken", prefix, rtErr)
	}
}

func testRevokeTokensBySubject(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	s := open(t, store.Options{Now: clock.Now})
	app, other := newClient(t, s), newClient(t, s)
	subjectTokens(t, s, app, "alice", "alice-app", clock.Now())
	subjectTokens(t, s, other, "alice", "alice-other", clock.Now())
	subjectTokens(t, s, app, "bob", "bob-app", clock.Now())

	if _, err := s.RevokeTokensBySubject(ctx, " ", ""); err == nil {
		t.Fatal("revoking the empty subject succeeded")
	}
	if n, err := s.RevokeTokensBySubject(ctx, "nobody", ""); err != nil || n != 0 {
		t.Fatalf("revoke unknown subject: %d, %v", n, err)
	}

	// One client only.
	n, err := s.RevokeTokensBySubject(ctx, "alice", app.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("revoked %d, want 3 (code, access, refresh)", n)
	}
	checkTokens(t, s, "alice-app", true)
	checkTokens(t, s, "alice-other", false)
	checkTokens(t, s, "bob-app", false)

	// Every client; what was revoked already is not counted again.
	if n, err = s.RevokeTokensBySubject(ctx, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("revoked %d, want 3", n)
	}
	checkTokens(t, s, "alice-other", true)
	checkTokens(t, s, "bob-app", false)
	if n, err = s.RevokeTokensBySubject(ctx, "alice", ""); err != nil || n != 0 {
		t.Errorf("revoke again: %d, %v; want 0", n, err)
	}
}

// testRevokeTokensBySubjectThroughFosite checks that revoked tokens fail
// where fosite uses them, including a rotated refresh token still inside
// its grace period.
func testRevokeTokensBySubjectThroughFosite(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{RefreshGracePeriod: time.Minute})
	p := newProvider(t, s)
	first := p.grant(t)
	second, rfcErr := p.refresh(ctx, refreshTokenOf(first))
	if rfcErr != nil {
		t.Fatalf("refresh: %s", rfcErr.GetDescription())
	}
	unused, verifier := p.authorize(t)
	if !p.active(t, second.GetAccessToken()) {
		t.Fatal("fresh access token is not active")
	}

	n, err := s.RevokeTokensBySubject(ctx, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	// The second access token, both refresh tokens (the first is in its
	// grace period) and the unused code; the first access token went with
	// the rotation.
	if n != 4 {
		t.Errorf("revoked %d, want 4", n)
	}
	if p.active(t, second.GetAccessToken()) {
		t.Error("access token still active after revocation")
	}
	for name, rt := range map[string]string{"current": refreshTokenOf(second), "in grace": refreshTokenOf(first)} {
		if _, rfcErr := p.refresh(ctx, rt); rfcErr == nil || rfcErr.ErrorField != "invalid_grant" {
			t.Errorf("%s refresh token after revocation: got %v, want invalid_grant", name, rfcErr)
		}
	}
	if _, rfcErr := p.exchange(ctx, unused, verifier); rfcErr == nil || rfcErr.ErrorField != "invalid_grant" {
		t.Errorf("code after revocation: got %v, want invalid_grant", rfcErr)
	}
}

// testRevokeTokensBySessions revokes what was issued in one SSO session:
// the grant's code, access token and whole refresh family (the rotated
// token in its grace period too), and nothing of another session, of a
// grant without a session, or of another subject.
func testRevokeTokensBySessions(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{RefreshGracePeriod: time.Minute})
	p := newProvider(t, s)
	first := p.grantIn(t, "sid-a")
	second, rfcErr := p.refresh(ctx, refreshTokenOf(first))
	if rfcErr != nil {
		t.Fatalf("refresh: %s", rfcErr.GetDescription())
	}
	unused, verifier := p.authorizeIn(t, "sid-a")
	other := p.grantIn(t, "sid-b")
	plain := p.grant(t)

	if _, err := s.RevokeTokensBySessions(ctx, " ", []string{"sid-a"}); err == nil {
		t.Fatal("revoking for the empty subject succeeded")
	}
	for _, tc := range []struct {
		subject string
		sids    []string
	}{{"alice", nil}, {"alice", []string{"sid-unknown"}}, {"bob", []string{"sid-a", "sid-b"}}} {
		if n, err := s.RevokeTokensBySessions(ctx, tc.subject, tc.sids); err != nil || n != 0 {
			t.Fatalf("revoke %s's sessions %q: %d, %v; want nothing", tc.subject, tc.sids, n, err)
		}
	}
	if !p.active(t, second.GetAccessToken()) {
		t.Fatal("a revocation of nothing revoked the access token")
	}

	n, err := s.RevokeTokensBySessions(ctx, "alice", []string{"sid-a", "sid-unknown"})
	if err != nil {
		t.Fatal(err)
	}
	// As in testRevokeTokensBySubjectThroughFosite: the second access
	// token, both refresh tokens and the unused code.
	if n != 4 {
		t.Errorf("revoked %d, want 4", n)
	}
	if p.active(t, second.GetAccessToken()) {
		t.Error("the session's access token is still active")
	}
	for name, rt := range map[string]string{"current": refreshTokenOf(second), "in grace": refreshTokenOf(first)} {
		if _, rfcErr := p.refresh(ctx, rt); rfcErr == nil || rfcErr.ErrorField != "invalid_grant" {
			t.Errorf("%s refresh token of the session: got %v, want invalid_grant", name, rfcErr)
		}
	}
	if _, rfcErr := p.exchange(ctx, unused, verifier); rfcErr == nil || rfcErr.ErrorField != "invalid_grant" {
		t.Errorf("the session's unused code: got %v, want invalid_grant", rfcErr)
	}
	for name, resp := range map[string]fosite.AccessResponder{"another session": other, "no session": plain} {
		if !p.active(t, resp.GetAccessToken()) {
			t.Errorf("the access token of %s was revoked", name)
		}
		if _, rfcErr := p.refresh(ctx, refreshTokenOf(resp)); rfcErr != nil {
			t.Errorf("the refresh token of %s: %s", name, rfcErr.GetDescription())
		}
	}
	if n, err := s.RevokeTokensBySessions(ctx, "alice", []string{"sid-a"}); err != nil || n != 0 {
		t.Errorf("revoke again: %d, %v; want 0", n, err)
	}
}
