package storetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"

	"github.com/latchkey-oidc/latchkey/store"
)

// provider is a fosite provider composed on a store, so the suite checks the
// store through the calls fosite really makes, not only method by method.
type provider struct {
	fosite.OAuth2Provider
	store  *store.Store
	client *store.Client
}

const testRedirect = "https://app.example.test/callback"

func newProvider(t *testing.T, s *store.Store) *provider {
	t.Helper()
	cfg := &fosite.Config{
		IDTokenIssuer:               "https://op.example.test",
		AccessTokenLifespan:         time.Hour,
		RefreshTokenLifespan:        24 * time.Hour,
		AuthorizeCodeLifespan:       5 * time.Minute,
		EnforcePKCEForPublicClients: true,
		RefreshTokenScopes:          []string{"offline_access"},
		ScopeStrategy:               fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:    fosite.DefaultAudienceMatchingStrategy,
	}
	p := composeOn(t, s, cfg,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OpenIDConnectExplicitFactory,
		compose.OpenIDConnectRefreshFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
		compose.OAuth2PKCEFactory,
	)
	c := &store.Client{
		ID:                      randomID("app"),
		RedirectURIs:            []string{testRedirect},
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		ResponseTypes:           []string{"code"},
		Scope:                   "openid offline_access profile",
		TokenEndpointAuthMethod: "none",
	}
	if err := s.CreateClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return &provider{OAuth2Provider: p, store: s, client: c}
}

// composeOn composes fosite with factories on s, with an HMAC token
// strategy and a fresh P-256 key for ID tokens.
func composeOn(t testing.TB, s *store.Store, cfg *fosite.Config, factories ...compose.Factory) fosite.OAuth2Provider {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg.GlobalSecret = []byte("storetest-global-secret-at-least-32-bytes")
	getKey := func(context.Context) (interface{}, error) { return key, nil }
	strategy := &compose.CommonStrategy{
		CoreStrategy:               compose.NewOAuth2HMACStrategy(cfg),
		OpenIDConnectTokenStrategy: compose.NewOpenIDConnectStrategy(getKey, cfg),
		Signer:                     &jwt.DefaultSigner{GetPrivateKey: getKey},
	}
	return compose.Compose(cfg, s, strategy, factories...)
}

// authorize runs an authorization request for alice, as the provider's
// authorize endpoint would after login and consent, and returns the code and
// PKCE verifier.
func (p *provider) authorize(t *testing.T) (code, verifier string) {
	t.Helper()
	return p.authorizeIn(t, "")
}

// authorizeIn is authorize in the SSO session sid (the sid claim of the ID
// token, as the provider sets it); "" for none.
func (p *provider) authorizeIn(t *testing.T, sid string) (code, verifier string) {
	t.Helper()
	ctx := context.Background()
	verifier = randomID("verifier-verifier-verifier-verifier")
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {p.client.ID},
		"redirect_uri":          {testRedirect},
		"scope":                 {"openid offline_access"},
		"state":                 {"state-0123456789"},
		"nonce":                 {"nonce-0123456789"},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	r := httptest.NewRequest(http.MethodGet, "https://op.example.test/oauth2/auth?"+q.Encode(), nil)
	ar, err := p.NewAuthorizeRequest(ctx, r)
	if err != nil {
		t.Fatalf("authorize request: %v", fosite.ErrorToRFC6749Error(err).WithExposeDebug(true).GetDescription())
	}
	ar.GrantScope("openid")
	ar.GrantScope("offline_access")
	sess := openid.NewDefaultSession()
	sess.Subject = "alice"
	sess.Claims.Subject = "alice"
	sess.Claims.AuthTime = time.Now().UTC()
	if sid != "" {
		sess.Claims.Extra = map[string]any{"sid": sid}
	}
	resp, err := p.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		t.Fatalf("authorize response: %v", fosite.ErrorToRFC6749Error(err).WithExposeDebug(true).GetDescription())
	}
	return resp.GetParameters().Get("code"), verifier
}

// grant authorizes and exchanges a code, failing t on any error, and
// returns the token response.
func (p *provider) grant(t *testing.T) fosite.AccessResponder {
	t.Helper()
	return p.grantIn(t, "")
}

// grantIn is grant in the SSO session sid; see authorizeIn.
func (p *provider) grantIn(t *testing.T, sid string) fosite.AccessResponder {
	t.Helper()
	code, verifier := p.authorizeIn(t, sid)
	resp, rfcErr := p.exchange(context.Background(), code, verifier)
	if rfcErr != nil {
		t.Fatalf("exchange: %s: %s", rfcErr.ErrorField, rfcErr.GetDescription())
	}
	return resp
}

// token runs a token request and returns the response or the OAuth error.
func (p *provider) token(ctx context.Context, form url.Values) (fosite.AccessResponder, *fosite.RFC6749Error) {
	form.Set("client_id", p.client.ID)
	r := httptest.NewRequest(http.MethodPost, "https://op.example.test/oauth2/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	ar, err := p.NewAccessRequest(ctx, r, openid.NewDefaultSession())
	if err != nil {
		return nil, fosite.ErrorToRFC6749Error(err).WithExposeDebug(true)
	}
	resp, err := p.NewAccessResponse(ctx, ar)
	if err != nil {
		return nil, fosite.ErrorToRFC6749Error(err).WithExposeDebug(true)
	}
	return resp, nil
}

func (p *provider) exchange(ctx context.Context, code, verifier string) (fosite.AccessResponder, *fosite.RFC6749Error) {
	return p.token(ctx, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {testRedirect},
		"code_verifier": {verifier},
	})
}

func (p *provider) refresh(ctx context.Context, refreshToken string) (fosite.AccessResponder, *fosite.RFC6749Error) {
	return p.token(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
}

// active reports whether an access token introspects as active.
func (p *provider) active(t *testing.T, accessToken string) bool {
	t.Helper()
	_, _, err := p.IntrospectToken(context.Background(), accessToken, fosite.AccessToken, openid.NewDefaultSession())
	return err == nil
}

func refreshTokenOf(resp fosite.AccessResponder) string {
	rt, _ := resp.GetExtra("refresh_token").(string)
	return rt
}
