package storetest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/openid"

	"github.com/latchkey-oidc/latchkey/store"
)

var _ = register(
	test{"ClientCredentialsCostsOneStatement", testClientCredentialsCost},
	test{"RefreshRoundTrips", testRefreshRoundTrips},
)

// ClientCredentialsProvider composes fosite's client credentials grant on s
// and registers a confidential client; it returns the provider and a
// function that runs one token request. Benchmarks use it too.
func ClientCredentialsProvider(t testing.TB, s *store.Store) (fosite.OAuth2Provider, func(ctx context.Context) error) {
	t.Helper()
	// Low bcrypt cost keeps the test about storage, not hashing.
	hasher := &fosite.BCrypt{Config: &fosite.Config{HashCost: 4}}
	cfg := &fosite.Config{
		AccessTokenLifespan: time.Hour,
		ScopeStrategy:       fosite.ExactScopeStrategy,
		ClientSecretsHasher: hasher,
	}
	p := composeOn(t, s, cfg, compose.OAuth2ClientCredentialsGrantFactory)
	hash, err := hasher.Hash(context.Background(), []byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	c := &store.Client{
		ID:                      randomID("machine"),
		GrantTypes:              []string{"client_credentials"},
		Scope:                   "api:read",
		TokenEndpointAuthMethod: "client_secret_basic",
		SecretHash:              string(hash),
	}
	if err := s.CreateClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}.Encode()
	issue := func(ctx context.Context) error {
		r := httptest.NewRequest(http.MethodPost, "https://op.example.test/oauth2/token", strings.NewReader(form))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth(c.ID, "s3cret")
		ar, err := p.NewAccessRequest(ctx, r, openid.NewDefaultSession())
		if err != nil {
			return err
		}
		ar.GrantScope("api:read")
		_, err = p.NewAccessResponse(ctx, ar)
		return err
	}
	return p, issue
}

// testClientCredentialsCost proves the performance contract of DESIGN.md: a
// client_credentials token costs one write and no reads once the client is
// cached.
func testClientCredentialsCost(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	_, issue := ClientCredentialsProvider(t, s)
	if err := issue(ctx); err != nil { // warms the client cache
		t.Fatal(fosite.ErrorToRFC6749Error(err).WithExposeDebug(true).GetDescription())
	}
	before := s.Statements()
	const n = 5
	for range n {
		if err := issue(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Statements() - before; got != n {
		t.Fatalf("%d client_credentials tokens cost %d statements, want %d (one INSERT each)", n, got, n)
	}
}

// testRefreshRoundTrips counts a refresh's statements besides BEGIN and
// COMMIT: the refresh token's SELECT, its rotation (on PostgreSQL together
// with its access token's DELETE; SQLite has no writing WITH clauses), and
// one INSERT of the new access and refresh tokens.
func testRefreshRoundTrips(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	p := newProvider(t, s)
	first := p.grant(t)
	want := int64(3)
	if s.Dialect() == "sqlite" {
		want = 4
	}
	before := s.Statements()
	next, rfcErr := p.refresh(ctx, refreshTokenOf(first))
	if rfcErr != nil {
		t.Fatalf("refresh: %s", rfcErr.GetDescription())
	}
	if got := s.Statements() - before; got != want {
		t.Fatalf("a refresh cost %d statements, want %d", got, want)
	}
	if p.active(t, first.GetAccessToken()) || !p.active(t, next.GetAccessToken()) {
		t.Fatal("after the refresh the old access token is active or the new one is not")
	}
}
