package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

	"github.com/latchkey-oidc/latchkey/store"
)

var _ = register(
	test{"AuthorizeCodeLifecycle", testAuthorizeCodeLifecycle},
	test{"AccessTokenLifecycle", testAccessTokenLifecycle},
	test{"RefreshTokenLifecycle", testRefreshTokenLifecycle},
	test{"PKCEAndOpenIDConnectSessions", testPKCEAndOIDCSessions},
	test{"TokensOfDeletedClientAreGone", testTokensOfDeletedClient},
	test{"TimezoneSupport", testTimezoneSupport},
	test{"TransactionRollback", testTransactionRollback},
	test{"CodeExchangeThroughFosite", testCodeExchangeThroughFosite},
	test{"CodeReuseRevokesTokens", testCodeReuseRevokes},
	test{"ConcurrentCodeExchange", testConcurrentCodeExchange},
	test{"RefreshRotationAndReuse", testRefreshRotationAndReuse},
	test{"ConcurrentRefreshStrict", testConcurrentRefreshStrict},
	test{"RefreshGracePeriod", testRefreshGracePeriod},
	test{"ConcurrentAccessTokens", testConcurrentAccessTokens},
)

// request builds a stored-request fixture for client c.
func request(c *store.Client, id string, exp map[fosite.TokenType]time.Time) *fosite.Request {
	sess := openid.NewDefaultSession()
	sess.Subject = "alice"
	sess.Claims.Subject = "alice"
	sess.Claims.Extra = map[string]any{"sid": "session-1"}
	for k, v := range exp {
		sess.SetExpiresAt(k, v)
	}
	r := fosite.NewRequest()
	r.ID = id
	r.RequestedAt = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	r.Client = c
	r.RequestedScope = fosite.Arguments{"openid", "offline_access"}
	r.GrantedScope = fosite.Arguments{"openid"}
	r.RequestedAudience = fosite.Arguments{"api"}
	r.GrantedAudience = fosite.Arguments{"api"}
	r.Form = url.Values{"scope": {"openid offline_access"}}
	r.Session = sess
	return r
}

func newClient(t *testing.T, s *store.Store) *store.Client {
	t.Helper()
	c := exampleClient()
	if err := s.CreateClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c
}

func checkRequest(t *testing.T, got fosite.Requester, want *fosite.Request) {
	t.Helper()
	if got.GetID() != want.ID || got.GetClient().GetID() != want.Client.GetID() ||
		!got.GetRequestedAt().Equal(want.RequestedAt) ||
		!got.GetGrantedScopes().Has("openid") || got.GetGrantedScopes().Has("offline_access") ||
		!got.GetRequestedScopes().Has("offline_access") || !got.GetGrantedAudience().Has("api") ||
		got.GetRequestForm().Get("scope") != "openid offline_access" {
		t.Fatalf("stored request came back as %+v", got)
	}
	sess, ok := got.GetSession().(*openid.DefaultSession)
	if !ok {
		t.Fatalf("session type %T", got.GetSession())
	}
	if sess.Subject != "alice" || sess.Claims.Subject != "alice" || sess.Claims.Extra["sid"] != "session-1" {
		t.Fatalf("session came back as %+v / %+v", sess, sess.Claims)
	}
}

func testAuthorizeCodeLifecycle(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	s := open(t, store.Options{Now: clock.Now})
	c := newClient(t, s)
	req := request(c, "req-code", map[fosite.TokenType]time.Time{fosite.AuthorizeCode: clock.Now().Add(5 * time.Minute)})

	if _, err := s.GetAuthorizeCodeSession(ctx, "sig-code", openid.NewDefaultSession()); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("unknown code: got %v", err)
	}
	if err := s.CreateAuthorizeCodeSession(ctx, "sig-code", req); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := s.CreateAuthorizeCodeSession(ctx, "sig-code", req); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("create twice: got %v", err)
	}
	got, err := s.GetAuthorizeCodeSession(ctx, "sig-code", openid.NewDefaultSession())
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	checkRequest(t, got, req)
	if err := s.InvalidateAuthorizeCodeSession(ctx, "sig-code"); err != nil {
		t.Fatalf("invalidate: %v", err)
	}
	got, err = s.GetAuthorizeCodeSession(ctx, "sig-code", openid.NewDefaultSession())
	if !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) || got == nil {
		t.Fatalf("get used code: got %v, %v; want the request and ErrInvalidatedAuthorizeCode", got, err)
	}
	checkRequest(t, got, req)
	if err := s.InvalidateAuthorizeCodeSession(ctx, "sig-code"); !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
		t.Fatalf("invalidate twice: got %v", err)
	}
	if err := s.InvalidateAuthorizeCodeSession(ctx, "sig-missing"); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("invalidate unknown: got %v", err)
	}

	// The used code is kept for the reuse window past its own expiry, then
	// the janitor removes it.
	clock.Add(20 * time.Minute)
	if _, err := s.Janitor(ctx, store.JanitorOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAuthorizeCodeSession(ctx, "sig-code", openid.NewDefaultSession()); !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
		t.Fatalf("used code within reuse window: got %v", err)
	}
	clock.Add(20 * time.Minute)
	removed, err := s.Janitor(ctx, store.JanitorOptions{BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if removed["oauth2_tokens"] != 1 {
		t.Fatalf("janitor removed %v, want the one code", removed)
	}
	if _, err := s.GetAuthorizeCodeSession(ctx, "sig-code", openid.NewDefaultSession()); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("code after janitor: got %v", err)
	}
}

func testAccessTokenLifecycle(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	s := open(t, store.Options{Now: clock.Now})
	c := newClient(t, s)
	req := request(c, "req-at", map[fosite.TokenType]time.Time{fosite.AccessToken: clock.Now().Add(time.Hour)})
	if err := s.CreateAccessTokenSession(ctx, "sig-at", req); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccessTokenSession(ctx, "sig-at-2", request(c, "req-at", nil)); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAccessTokenSession(ctx, "sig-at", openid.NewDefaultSession())
	if err != nil {
		t.Fatal(err)
	}
	checkRequest(t, got, req)
	// The revocation handler passes no session; the request still has one.
	got, err = s.GetAccessTokenSession(ctx, "sig-at", nil)
	if err != nil || got.GetSession() == nil || got.GetSession().GetSubject() != "alice" {
		t.Fatalf("get with nil session: %v, %v", got, err)
	}
	if err := s.DeleteAccessTokenSession(ctx, "sig-at"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAccessTokenSession(ctx, "sig-at", nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := s.DeleteAccessTokenSession(ctx, "sig-at"); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if err := s.RevokeAccessToken(ctx, "req-at"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAccessTokenSession(ctx, "sig-at-2", nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("after revoke by request: %v", err)
	}
	// Expired tokens are returned (fosite checks expiry) until the janitor runs.
	if err := s.CreateAccessTokenSession(ctx, "sig-at-3", request(c, "req-3", map[fosite.TokenType]time.Time{fosite.AccessToken: clock.Now().Add(time.Minute)})); err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * time.Minute)
	if _, err := s.GetAccessTokenSession(ctx, "sig-at-3", nil); err != nil {
		t.Fatalf("expired token before janitor: %v", err)
	}
	if _, err := s.Janitor(ctx, store.JanitorOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAccessTokenSession(ctx, "sig-at-3", nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("expired token after janitor: %v", err)
	}
}

func testRefreshTokenLifecycle(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	c := newClient(t, s)
	req := request(c, "req-rt", nil)
	if err := s.CreateAccessTokenSession(ctx, "sig-at", req); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRefreshTokenSession(ctx, "sig-rt", "sig-at", req); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetRefreshTokenSession(ctx, "sig-rt", openid.NewDefaultSession())
	if err != nil {
		t.Fatal(err)
	}
	checkRequest(t, got, req)
	if err := s.RotateRefreshToken(ctx, "req-rt", "sig-rt"); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	// Rotation retires the token (kept, inactive) and drops its access token.
	got, err = s.GetRefreshTokenSession(ctx, "sig-rt", nil)
	if !errors.Is(err, fosite.ErrInactiveToken) || got == nil || got.GetID() != "req-rt" {
		t.Fatalf("rotated token: got %v, %v; want the request and ErrInactiveToken", got, err)
	}
	if _, err := s.GetAccessTokenSession(ctx, "sig-at", nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("access token of rotated refresh token: %v", err)
	}
	if err := s.RotateRefreshToken(ctx, "req-rt", "sig-rt"); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("rotate twice: got %v, want ErrNotFound (fosite: retry)", err)
	}
	if err := s.RotateRefreshToken(ctx, "other-request", "sig-missing"); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("rotate unknown: got %v", err)
	}
	if err := s.CreateRefreshTokenSession(ctx, "sig-rt-2", "", req); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeRefreshToken(ctx, "req-rt"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRefreshTokenSession(ctx, "sig-rt-2", nil); !errors.Is(err, fosite.ErrInactiveToken) {
		t.Fatalf("revoked family member: got %v", err)
	}
	if err := s.DeleteRefreshTokenSession(ctx, "sig-rt-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRefreshTokenSession(ctx, "sig-rt-2", nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("deleted: got %v", err)
	}
}

func testPKCEAndOIDCSessions(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	c := newClient(t, s)
	req := request(c, "req-pkce", nil)
	req.Form.Set("code_challenge", "challenge")
	if err := s.CreatePKCERequestSession(ctx, "sig-code", req); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetPKCERequestSession(ctx, "sig-code", openid.NewDefaultSession())
	if err != nil || got.GetRequestForm().Get("code_challenge") != "challenge" {
		t.Fatalf("pkce get: %v, %v", got, err)
	}
	if err := s.DeletePKCERequestSession(ctx, "sig-code"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetPKCERequestSession(ctx, "sig-code", nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("pkce after delete: %v", err)
	}

	// fosite keys OpenID Connect sessions by the raw code; the store keeps
	// only its signature, and finds it by either form.
	const rawCode = "ory_ac_secretkeypart.signaturepart"
	if err := s.CreateOpenIDConnectSession(ctx, rawCode, req); err != nil {
		t.Fatal(err)
	}
	into := fosite.NewRequest()
	into.Session = openid.NewDefaultSession()
	got, err = s.GetOpenIDConnectSession(ctx, rawCode, into)
	if err != nil {
		t.Fatal(err)
	}
	checkRequest(t, got, req)
	if into.Session.(*openid.DefaultSession).Subject != "alice" {
		t.Fatal("OpenID Connect session was not decoded into the caller's session")
	}
	if _, err := s.GetOpenIDConnectSession(ctx, "signaturepart", into); err != nil {
		t.Fatalf("get by signature: %v", err)
	}
	if err := s.DeleteOpenIDConnectSession(ctx, rawCode); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetOpenIDConnectSession(ctx, rawCode, into); !errors.Is(err, openid.ErrNoSessionFound) || !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("after delete: got %v, want ErrNoSessionFound", err)
	}

	// Device flow: fosite creates with the device code signature and deletes
	// with the raw device code; both reach the same row.
	if err := s.CreateOpenIDConnectSession(ctx, "devicesig", req); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteOpenIDConnectSession(ctx, "ory_dc_devicekey.devicesig"); err != nil {
		t.Fatalf("delete device session by raw code: %v", err)
	}
	if _, err := s.GetOpenIDConnectSession(ctx, "devicesig", into); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("device session leaked: %v", err)
	}
}

func testTokensOfDeletedClient(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	c := newClient(t, s)
	if err := s.CreateAccessTokenSession(ctx, "sig-at", request(c, "req", nil)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteClient(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAccessTokenSession(ctx, "sig-at", nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("token of deleted client: got %v, want ErrNotFound", err)
	}
}

func testTimezoneSupport(t *testing.T, open Opener) {
	ctx := context.Background()
	zone := time.FixedZone("UTC+13", 13*3600)
	now := time.Date(2026, 6, 1, 1, 30, 0, 123456000, zone) // 2026-05-31 12:30 UTC
	clock := NewClock(now)
	s := open(t, store.Options{Now: clock.Now})
	c := newClient(t, s)
	req := request(c, "req-tz", map[fosite.TokenType]time.Time{fosite.AccessToken: now.Add(time.Hour)})
	req.RequestedAt = now
	if err := s.CreateAccessTokenSession(ctx, "sig-tz", req); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAccessTokenSession(ctx, "sig-tz", openid.NewDefaultSession())
	if err != nil {
		t.Fatal(err)
	}
	if !got.GetRequestedAt().Equal(now) {
		t.Fatalf("requested_at %v, want instant %v", got.GetRequestedAt(), now)
	}
	if exp := got.GetSession().GetExpiresAt(fosite.AccessToken); !exp.Equal(now.Add(time.Hour)) {
		t.Fatalf("expires_at %v, want instant %v", exp, now.Add(time.Hour))
	}
	created, err := s.LoadClient(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !created.CreatedAt.Equal(now.Truncate(time.Microsecond)) || created.CreatedAt.Location() != time.UTC {
		t.Fatalf("client created_at %v, want %v in UTC", created.CreatedAt, now)
	}
	// The janitor compares instants, not wall clocks: the clock moves to a
	// zone 24 hours behind, 30 minutes later, and the token stays; past its
	// expiry it goes.
	clock.Add(30 * time.Minute)
	clock.In(time.FixedZone("UTC-11", -11*3600))
	if removed, err := s.Janitor(ctx, store.JanitorOptions{}); err != nil || removed["oauth2_tokens"] != 0 {
		t.Fatalf("janitor before expiry removed %v (%v)", removed, err)
	}
	clock.Add(31 * time.Minute)
	if removed, err := s.Janitor(ctx, store.JanitorOptions{}); err != nil || removed["oauth2_tokens"] != 1 {
		t.Fatalf("janitor after expiry removed %v (%v), want the token", removed, err)
	}
}

func testTransactionRollback(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	c := newClient(t, s)
	txCtx, err := s.BeginTX(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A nested BeginTX joins; its Commit and Rollback leave the outer alone.
	inner, err := s.BeginTX(txCtx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccessTokenSession(inner, "sig-tx", request(c, "req-tx", nil)); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(inner); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAccessTokenSession(txCtx, "sig-tx", nil); err != nil {
		t.Fatalf("inside the transaction: %v", err)
	}
	if err := s.Rollback(txCtx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAccessTokenSession(ctx, "sig-tx", nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("after rollback: got %v, want ErrNotFound", err)
	}
	if err := s.Commit(ctx); err == nil {
		t.Fatal("commit without a transaction succeeded")
	}
	// InTx commits on success.
	if err := s.InTx(ctx, func(ctx context.Context) error {
		return s.CreateAccessTokenSession(ctx, "sig-tx-2", request(c, "req-tx-2", nil))
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAccessTokenSession(ctx, "sig-tx-2", nil); err != nil {
		t.Fatalf("after InTx: %v", err)
	}
}

func testCodeExchangeThroughFosite(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	p := newProvider(t, s)
	code, _ := p.authorize(t)
	if _, rfcErr := p.exchange(ctx, code, "wrong-verifier-wrong-verifier-wrong-verifier-1234"); rfcErr == nil || rfcErr.ErrorField != "invalid_grant" {
		t.Fatalf("wrong PKCE verifier: got %v, want invalid_grant", rfcErr)
	}
	code, verifier := p.authorize(t)
	resp, rfcErr := p.exchange(ctx, code, verifier)
	if rfcErr != nil {
		t.Fatalf("exchange: %s: %s", rfcErr.ErrorField, rfcErr.GetDescription())
	}
	if resp.GetAccessToken() == "" || refreshTokenOf(resp) == "" || resp.GetExtra("id_token") == nil {
		t.Fatalf("exchange returned %+v", resp.ToMap())
	}
	if !p.active(t, resp.GetAccessToken()) {
		t.Fatal("issued access token does not introspect as active")
	}
}

func testCodeReuseRevokes(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	p := newProvider(t, s)
	code, verifier := p.authorize(t)
	resp, rfcErr := p.exchange(ctx, code, verifier)
	if rfcErr != nil {
		t.Fatalf("exchange: %s", rfcErr.GetDescription())
	}
	if _, rfcErr := p.exchange(ctx, code, verifier); rfcErr == nil || rfcErr.ErrorField != "invalid_grant" {
		t.Fatalf("second exchange: got %v, want invalid_grant", rfcErr)
	}
	if p.active(t, resp.GetAccessToken()) {
		t.Fatal("access token still active after its code was replayed")
	}
	if _, rfcErr := p.refresh(ctx, refreshTokenOf(resp)); rfcErr == nil {
		t.Fatal("refresh token still works after its code was replayed")
	}
}

func testConcurrentCodeExchange(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	p := newProvider(t, s)
	code, verifier := p.authorize(t)
	const n = 8
	winners := make([]fosite.AccessResponder, n)
	errs := inParallel(n, func(i int) error {
		// As the provider's token endpoint does, run the exchange in one
		// transaction.
		return s.InTx(ctx, func(ctx context.Context) error {
			r, rfcErr := p.exchange(ctx, code, verifier)
			if rfcErr != nil {
				return rfcErr
			}
			winners[i] = r
			return nil
		})
	})
	winners = succeeded(winners, errs)
	if len(winners) != 1 {
		t.Fatalf("%d of %d concurrent exchanges of one code succeeded, want exactly 1", len(winners), n)
	}
	if !p.active(t, winners[0].GetAccessToken()) {
		t.Fatal("the winner's access token is not active")
	}
}

func testRefreshRotationAndReuse(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	p := newProvider(t, s)
	first := p.grant(t)
	second, rfcErr := p.refresh(ctx, refreshTokenOf(first))
	if rfcErr != nil {
		t.Fatalf("refresh: %s", rfcErr.GetDescription())
	}
	if p.active(t, first.GetAccessToken()) {
		t.Fatal("access token of the rotated refresh token is still active")
	}
	third, rfcErr := p.refresh(ctx, refreshTokenOf(second))
	if rfcErr != nil {
		t.Fatalf("second refresh: %s", rfcErr.GetDescription())
	}
	// Reusing a rotated refresh token revokes the whole family.
	if _, rfcErr := p.refresh(ctx, refreshTokenOf(first)); rfcErr == nil || rfcErr.ErrorField != "invalid_grant" {
		t.Fatalf("reuse: got %v, want invalid_grant", rfcErr)
	}
	if p.active(t, third.GetAccessToken()) {
		t.Fatal("newest access token survived refresh token reuse")
	}
	if _, rfcErr := p.refresh(ctx, refreshTokenOf(third)); rfcErr == nil {
		t.Fatal("newest refresh token survived refresh token reuse")
	}
}

func testConcurrentRefreshStrict(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	p := newProvider(t, s)
	first := p.grant(t)
	const n = 8
	ok := make([]fosite.AccessResponder, n)
	errs := inParallel(n, func(i int) error {
		resp, rfcErr := p.refresh(ctx, refreshTokenOf(first))
		if rfcErr != nil {
			return rfcErr
		}
		ok[i] = resp
		return nil
	})
	ok = succeeded(ok, errs)
	// Without a grace period one refresh wins; a concurrent one that already
	// loaded the token gets "retry", a later one is reuse and revokes the
	// family, so the winner's tokens may be revoked too — never more than one
	// new pair is issued.
	if len(ok) > 1 {
		t.Fatalf("%d concurrent refreshes of one token succeeded, want at most 1", len(ok))
	}
	if len(ok) == 0 {
		t.Fatal("no concurrent refresh succeeded")
	}
}

func testRefreshGracePeriod(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(time.Now().UTC())
	s := open(t, store.Options{RefreshGracePeriod: 10 * time.Second, Now: clock.Now})
	p := newProvider(t, s)
	first := p.grant(t)
	// Concurrent refreshes within the grace period all succeed.
	for i, err := range inParallel(4, func(int) error {
		if _, rfcErr := p.refresh(ctx, refreshTokenOf(first)); rfcErr != nil {
			return rfcErr
		}
		return nil
	}) {
		if err != nil {
			t.Errorf("refresh %d within grace period failed: %v", i, err)
		}
	}
	second, rfcErr := p.refresh(ctx, refreshTokenOf(first))
	if rfcErr != nil {
		t.Fatalf("refresh within grace: %s", rfcErr.GetDescription())
	}
	// After the grace period, reuse revokes the family.
	clock.Add(11 * time.Second)
	if _, rfcErr := p.refresh(ctx, refreshTokenOf(first)); rfcErr == nil || rfcErr.ErrorField != "invalid_grant" {
		t.Fatalf("reuse after grace: got %v, want invalid_grant", rfcErr)
	}
	if _, rfcErr := p.refresh(ctx, refreshTokenOf(second)); rfcErr == nil {
		t.Fatal("family member survived reuse after the grace period")
	}
}

// succeeded keeps the responses whose call returned no error.
func succeeded(resps []fosite.AccessResponder, errs []error) []fosite.AccessResponder {
	var out []fosite.AccessResponder
	for i, err := range errs {
		if err == nil {
			out = append(out, resps[i])
		}
	}
	return out
}

// testConcurrentAccessTokens stores access tokens from many requests at
// once, as client_credentials traffic does (the store writes them in
// shared multi-row INSERTs): every token is stored and readable, and of two
// requests with the same signature exactly one succeeds.
func testConcurrentAccessTokens(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	c := newClient(t, s)
	exp := map[fosite.TokenType]time.Time{fosite.AccessToken: time.Now().Add(time.Hour)}
	const n = 150
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		sig := fmt.Sprintf("sig-%d", i)
		if i == n-1 {
			sig = "sig-0" // the same signature as the first
		}
		wg.Go(func() { errs[i] = s.CreateAccessTokenSession(ctx, sig, request(c, fmt.Sprintf("req-%d", i), exp)) })
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[n-1] == nil) {
		t.Fatalf("two inserts of one signature: %v and %v; want exactly one to fail", errs[0], errs[n-1])
	}
	for _, err := range []error{errs[0], errs[n-1]} {
		if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			t.Errorf("the duplicate failed with %v, want ErrAlreadyExists", err)
		}
	}
	for i := 1; i < n-1; i++ {
		if errs[i] != nil {
			t.Fatalf("insert %d: %v", i, errs[i])
		}
		got, err := s.GetAccessTokenSession(ctx, fmt.Sprintf("sig-%d", i), openid.NewDefaultSession())
		if err != nil {
			t.Fatalf("read token %d: %v", i, err)
		}
		if got.GetID() != fmt.Sprintf("req-%d", i) {
			t.Fatalf("token %d came back as request %s", i, got.GetID())
		}
	}
}
