package provider_test

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"
	josejwt "github.com/go-jose/go-jose/v3/jwt"
	"golang.org/x/oauth2"

	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
)

// introspect asks the introspection endpoint about token as auth.
func introspect(t *testing.T, e *env, auth clientAuth, token string, extra ...string) httpAnswer {
	t.Helper()
	form := url.Values{"token": {token}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	return postClientForm(t, e.issuer()+"/oauth2/introspect", auth, form)
}

// assertInactive checks the answer is exactly {"active": false}: nothing
// tells the caller whether the token exists.
func assertInactive(t *testing.T, a httpAnswer) {
	t.Helper()
	if a.Status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", a.Status, a.Body)
	}
	got := a.JSON(t)
	if len(got) != 1 || got["active"] != false {
		t.Errorf("answer %s, want exactly {\"active\":false}", a.Body)
	}
}

// assertActive checks the token is active and returns the answer.
func assertActive(t *testing.T, a httpAnswer) map[string]any {
	t.Helper()
	if a.Status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", a.Status, a.Body)
	}
	got := a.JSON(t)
	if got["active"] != true {
		t.Fatalf("token inactive: %s", a.Body)
	}
	return got
}

func TestIntrospectOwnTokens(t *testing.T) {
	e := newEnv(t)
	c := userClient(e, "rp", "openid profile offline_access")
	e.login.consent = func(v provider.ChallengeView) any {
		return provider.ConsentAccept{GrantScope: v.RequestedScope, GrantAudience: v.RequestedAudience,
			Session: provider.ConsentSession{Claims: alice.claims,
				// The login app cannot overwrite what introspection says.
				AccessToken: map[string]any{"department": "maths", "active": false, "sub": "mallory", "token_type": "x"}}}
	}
	start := time.Now()
	tok := codeFlowTokens(t, e, c, testSecret, []string{"openid", "profile", "offline_access"})
	auth := clientAuth{id: c.ID, secret: testSecret, basic: true}

	at := assertActive(t, introspect(t, e, auth, tok.AccessToken))
	want := map[string]any{
		"sub": alice.subject, "client_id": c.ID, "scope": "openid profile offline_access",
		"token_type": "Bearer", "iss": e.issuer(), "department": "maths",
	}
	for k, v := range want {
		if at[k] != v {
			t.Errorf("access token %s = %v, want %v", k, at[k], v)
		}
	}
	atExp := unixField(t, at, "exp")
	if d := time.Until(atExp); d < 50*time.Minute || d > 61*time.Minute {
		t.Errorf("access token exp in %v, want about an hour", d)
	}
	if iat := unixField(t, at, "iat"); iat.Before(start.Add(-2*time.Second)) || iat.After(time.Now().Add(time.Second)) {
		t.Errorf("iat %v outside the test", iat)
	}

	for _, hint := range []string{"refresh_token", "", "access_token"} {
		rt := assertActive(t, introspect(t, e, auth, tok.RefreshToken, "token_type_hint", hint))
		if rt["sub"] != alice.subject || rt["client_id"] != c.ID || rt["scope"] != "openid profile offline_access" {
			t.Errorf("refresh token (hint %q): %v", hint, rt)
		}
		if _, ok := rt["token_type"]; ok {
			t.Errorf("refresh token has token_type %v; it is not an access token", rt["token_type"])
		}
		// A refresh token outlives its access token.
		if exp := unixField(t, rt, "exp"); exp.Sub(atExp) < 24*time.Hour {
			t.Errorf("refresh token exp %v, access token exp %v: the refresh token's own expiry is not reported", exp, atExp)
		}
	}
	// The hint is only a hint.
	assertActive(t, introspect(t, e, auth, tok.AccessToken, "token_type_hint", "refresh_token"))

	// Unknown tokens are simply inactive.
	assertInactive(t, introspect(t, e, auth, "ory_at_unknown.token"))
	assertInactive(t, introspect(t, e, auth, "x"))
}

func unixField(t *testing.T, m map[string]any, name string) time.Time {
	t.Helper()
	f, ok := m[name].(float64)
	if !ok {
		t.Fatalf("%s = %v, want a number", name, m[name])
	}
	return time.Unix(int64(f), 0)
}

// TestIntrospectVisibility checks a client learns only about its own
// tokens and access tokens issued for it as an audience.
func TestIntrospectVisibility(t *testing.T) {
	e := newEnv(t)
	const api = "https://api.example.test"
	rp := e.createClient(&store.Client{
		ID:            "rp",
		GrantTypes:    []string{"authorization_code", "refresh_token"},
		ResponseTypes: []string{"code"},
		Scope:         "openid offline_access",
		Audience:      []string{api},
	}, testSecret)
	rs := e.createClient(&store.Client{ID: api, GrantTypes: []string{"client_credentials"}}, testSecret)
	other := e.createClient(&store.Client{ID: "other", GrantTypes: []string{"client_credentials"}}, testSecret)

	tok := codeFlowTokens(t, e, rp, testSecret, []string{"openid", "offline_access"}, oauth2.SetAuthURLParam("audience", api))
	got := assertActive(t, introspect(t, e, clientAuth{id: rs.ID, secret: testSecret, basic: true}, tok.AccessToken))
	if aud, _ := got["aud"].([]any); len(aud) != 1 || aud[0] != api {
		t.Errorf("aud = %v, want [%s]", got["aud"], api)
	}
	if got["client_id"] != rp.ID || got["sub"] != alice.subject {
		t.Errorf("resource server sees %v", got)
	}
	// A refresh token is for its client alone, whatever its audience.
	assertInactive(t, introspect(t, e, clientAuth{id: rs.ID, secret: testSecret, basic: true}, tok.RefreshToken))

	// A client that is neither the token's client nor its audience learns
	// nothing, exactly as for a token that does not exist.
	otherAuth := clientAuth{id: other.ID, secret: testSecret, basic: true}
	assertInactive(t, introspect(t, e, otherAuth, tok.AccessToken))
	assertInactive(t, introspect(t, e, otherAuth, tok.RefreshToken, "token_type_hint", "refresh_token"))

	// A client_credentials token is visible to the client that got it.
	cc := clientCredentialsToken(t, e, other, testSecret, nil, nil)
	if got := assertActive(t, introspect(t, e, otherAuth, cc.AccessToken)); got["sub"] != other.ID || got["client_id"] != other.ID {
		t.Errorf("client_credentials token: %v", got)
	}
	assertInactive(t, introspect(t, e, clientAuth{id: rp.ID, secret: testSecret, basic: true}, cc.AccessToken))
}

func TestIntrospectClientAuthentication(t *testing.T) {
	e := newEnv(t)
	c := userClient(e, "rp", "openid")
	tok := codeFlowTokens(t, e, c, testSecret, []string{"openid"})
	post := e.createClient(&store.Client{ID: "post", GrantTypes: []string{"client_credentials"},
		TokenEndpointAuthMethod: "client_secret_post"}, testSecret)
	public := e.createClient(&store.Client{ID: "public", GrantTypes: []string{"authorization_code"}}, "")

	tests := []struct {
		name   string
		auth   clientAuth
		status int
	}{
		{"no authentication", clientAuth{}, 401},
		{"wrong secret", clientAuth{id: c.ID, secret: "wrong-secret", basic: true}, 401},
		{"unknown client", clientAuth{id: "nobody", secret: testSecret, basic: true}, 401},
		{"public client", clientAuth{id: public.ID}, 401},
		{"public client with Basic", clientAuth{id: public.ID, basic: true}, 401},
		{"basic client in the body", clientAuth{id: c.ID, secret: testSecret}, 401},
		{"post client with Basic", clientAuth{id: post.ID, secret: testSecret, basic: true}, 401},
		{"client_secret_basic", clientAuth{id: c.ID, secret: testSecret, basic: true}, 200},
		{"client_secret_post", clientAuth{id: post.ID, secret: testSecret}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := introspect(t, e, tt.auth, tok.AccessToken)
			if a.Status != tt.status {
				t.Fatalf("status %d, want %d: %s", a.Status, tt.status, a.Body)
			}
			if tt.status == 200 {
				return
			}
			if got := a.JSON(t)["error"]; got != "invalid_client" {
				t.Errorf("error = %v, want invalid_client", got)
			}
			if ch := a.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Basic") {
				t.Errorf("WWW-Authenticate = %q", ch)
			}
		})
	}

	auth := clientAuth{id: c.ID, secret: testSecret, basic: true}
	if a := postClientForm(t, e.issuer()+"/oauth2/introspect", auth, url.Values{"token_type_hint": {"access_token"}}); a.Status != 400 || a.JSON(t)["error"] != "invalid_request" {
		t.Errorf("missing token: %d %s", a.Status, a.Body)
	}
	req, err := http.NewRequest(http.MethodPost, e.issuer()+"/oauth2/introspect", strings.NewReader("%zz"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(c.ID, testSecret)
	if a := do(t, req); a.Status != 400 || a.JSON(t)["error"] != "invalid_request" {
		t.Errorf("malformed body: %d %s", a.Status, a.Body)
	}
	if a := do(t, mustRequest(t, http.MethodGet, e.issuer()+"/oauth2/introspect")); a.Status != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d %s", a.Status, a.Body)
	}
}

func mustRequest(t *testing.T, method, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestIntrospectPrivateKeyJWT authenticates a resource server with a
// signed client assertion (RFC 7523 §2.2) whose audience is the
// introspection endpoint; a replayed assertion is refused.
func TestIntrospectPrivateKeyJWT(t *testing.T) {
	e := newEnv(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	c := e.createClient(&store.Client{
		ID:                      "jwt-client",
		GrantTypes:              []string{"client_credentials"},
		TokenEndpointAuthMethod: "private_key_jwt",
		JWKS: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: key.Public(), KeyID: "k1", Algorithm: "RS256", Use: "sig"},
		}},
	}, "")
	owner := e.createClient(&store.Client{ID: "owner", GrantTypes: []string{"client_credentials"}}, testSecret)
	tok := clientCredentialsToken(t, e, owner, testSecret, nil, nil)

	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	assertion, err := josejwt.Signed(signer).Claims(josejwt.Claims{
		Issuer: c.ID, Subject: c.ID, Audience: josejwt.Audience{e.issuer() + "/oauth2/introspect"},
		ID: "jti-1", IssuedAt: josejwt.NewNumericDate(time.Now()), Expiry: josejwt.NewNumericDate(time.Now().Add(time.Minute)),
	}).CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{
		"token":                 {tok.AccessToken},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
	// Authenticated, but the token is another client's.
	assertInactive(t, postClientForm(t, e.issuer()+"/oauth2/introspect", clientAuth{}, form))
	a := postClientForm(t, e.issuer()+"/oauth2/introspect", clientAuth{}, form)
	if a.Status != http.StatusUnauthorized || a.JSON(t)["error"] != "invalid_client" {
		t.Errorf("replayed assertion: %d %s", a.Status, a.Body)
	}
}

func TestIntrospectExpiredAndRevoked(t *testing.T) {
	e := newEnv(t, func(c *provider.Config) { c.AccessTokenLifespan = time.Second })
	c := userClient(e, "rp", "openid offline_access")
	auth := clientAuth{id: c.ID, secret: testSecret, basic: true}

	tok := codeFlowTokens(t, e, c, testSecret, []string{"openid", "offline_access"})
	exp := unixField(t, assertActive(t, introspect(t, e, auth, tok.AccessToken)), "exp")
	// exp is in whole seconds; the token is expired once the second
	// after it has begun.
	time.Sleep(time.Until(exp) + 1100*time.Millisecond)
	assertInactive(t, introspect(t, e, auth, tok.AccessToken))
	assertActive(t, introspect(t, e, auth, tok.RefreshToken))

	if a := postClientForm(t, e.issuer()+"/oauth2/revoke", auth, url.Values{"token": {tok.RefreshToken}}); a.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", a.Status, a.Body)
	}
	assertInactive(t, introspect(t, e, auth, tok.RefreshToken))
}
