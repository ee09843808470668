package provider_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/latchkey-oidc/latchkey/store"
)

// revoke asks the revocation endpoint to revoke token as auth.
func revoke(t *testing.T, e *env, auth clientAuth, token string, extra ...string) httpAnswer {
	t.Helper()
	form := url.Values{"token": {token}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	return postClientForm(t, e.issuer()+"/oauth2/revoke", auth, form)
}

func assertRevoked200(t *testing.T, a httpAnswer) {
	t.Helper()
	if a.Status != http.StatusOK {
		t.Fatalf("revocation answered %d, want 200: %s", a.Status, a.Body)
	}
}

// refreshFails checks the refresh token no longer works at the token
// endpoint.
func refreshFails(t *testing.T, e *env, c *store.Client, secret string, tok *oauth2.Token) {
	t.Helper()
	conf := &oauth2.Config{ClientID: c.ID, ClientSecret: secret,
		Endpoint: oauth2.Endpoint{TokenURL: e.issuer() + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}}
	old := &oauth2.Token{RefreshToken: tok.RefreshToken}
	if _, err := conf.TokenSource(context.Background(), old).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("refresh with a revoked refresh token: %v, want invalid_grant", err)
	}
}

func TestRevokeAccessToken(t *testing.T) {
	e := newEnv(t)
	c := userClient(e, "rp", "openid profile offline_access")
	auth := clientAuth{id: c.ID, secret: testSecret, basic: true}
	tok := codeFlowTokens(t, e, c, testSecret, []string{"openid", "profile", "offline_access"})
	keep := codeFlowTokens(t, e, c, testSecret, []string{"openid", "profile", "offline_access"})

	assertRevoked200(t, revoke(t, e, auth, tok.AccessToken, "token_type_hint", "access_token"))
	assertInactive(t, introspect(t, e, auth, tok.AccessToken))
	if a := userinfoGET(t, e, tok.AccessToken); a.Status != http.StatusUnauthorized {
		t.Errorf("userinfo with a revoked token: %d %s", a.Status, a.Body)
	}
	// fosite revokes the whole grant, which RFC 7009 §2.1 allows: the
	// refresh token issued with the access token goes too.
	assertInactive(t, introspect(t, e, auth, tok.RefreshToken))
	refreshFails(t, e, c, testSecret, tok)

	// Other grants of the same client and user are untouched.
	assertActive(t, introspect(t, e, auth, keep.AccessToken))
	assertActive(t, introspect(t, e, auth, keep.RefreshToken))
	// Revoking again is fine.
	assertRevoked200(t, revoke(t, e, auth, tok.AccessToken))
}

func TestRevokeRefreshTokenRevokesFamily(t *testing.T) {
	e := newEnv(t)
	c := userClient(e, "rp", "openid offline_access")
	auth := clientAuth{id: c.ID, secret: testSecret, basic: true}
	first := codeFlowTokens(t, e, c, testSecret, []string{"openid", "offline_access"})

	// Refresh once, so the family has a rotated refresh token and a
	// second access token.
	conf := &oauth2.Config{ClientID: c.ID, ClientSecret: testSecret,
		Endpoint: oauth2.Endpoint{TokenURL: e.issuer() + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}}
	second, err := conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: first.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	assertActive(t, introspect(t, e, auth, second.AccessToken))

	assertRevoked200(t, revoke(t, e, auth, second.RefreshToken, "token_type_hint", "refresh_token"))
	for name, token := range map[string]string{
		"refresh token": second.RefreshToken, "its access token": second.AccessToken,
		"first access token": first.AccessToken, "rotated refresh token": first.RefreshToken,
	} {
		if a := introspect(t, e, auth, token); a.JSON(t)["active"] != false {
			t.Errorf("%s still active after its family was revoked: %s", name, a.Body)
		}
	}
	refreshFails(t, e, c, testSecret, second)
}

func TestRevokeOtherClientsToken(t *testing.T) {
	e := newEnv(t)
	c := userClient(e, "rp", "openid offline_access")
	other := e.createClient(&store.Client{ID: "other", GrantTypes: []string{"client_credentials"}}, testSecret)
	tok := codeFlowTokens(t, e, c, testSecret, []string{"openid", "offline_access"})

	otherAuth := clientAuth{id: other.ID, secret: testSecret, basic: true}
	assertRevoked200(t, revoke(t, e, otherAuth, tok.AccessToken))
	assertRevoked200(t, revoke(t, e, otherAuth, tok.RefreshToken))
	// Nothing happened.
	auth := clientAuth{id: c.ID, secret: testSecret, basic: true}
	assertActive(t, introspect(t, e, auth, tok.AccessToken))
	assertActive(t, introspect(t, e, auth, tok.RefreshToken))
}

func TestRevokeUnknownToken(t *testing.T) {
	e := newEnv(t)
	c := userClient(e, "rp", "openid")
	auth := clientAuth{id: c.ID, secret: testSecret, basic: true}
	for _, token := range []string{"ory_at_unknown.token", "ory_rt_unknown.token", "garbage"} {
		assertRevoked200(t, revoke(t, e, auth, token))
		assertRevoked200(t, revoke(t, e, auth, token, "token_type_hint", "refresh_token"))
		assertRevoked200(t, revoke(t, e, auth, token, "token_type_hint", "something_else"))
	}
}

func TestRevokePublicClient(t *testing.T) {
	e := newEnv(t)
	c := e.createClient(&store.Client{
		ID:            "spa",
		GrantTypes:    []string{"authorization_code", "refresh_token"},
		ResponseTypes: []string{"code"},
		Scope:         "openid offline_access",
	}, "")
	tok := codeFlowTokens(t, e, c, "", []string{"openid", "offline_access"})
	if a := userinfoGET(t, e, tok.AccessToken); a.Status != http.StatusOK {
		t.Fatalf("userinfo before revocation: %d %s", a.Status, a.Body)
	}
	assertRevoked200(t, revoke(t, e, clientAuth{id: c.ID}, tok.RefreshToken))
	if a := userinfoGET(t, e, tok.AccessToken); a.Status != http.StatusUnauthorized {
		t.Errorf("userinfo after the public client revoked its grant: %d %s", a.Status, a.Body)
	}
	refreshFails(t, e, c, "", tok)
}

func TestRevokeClientAuthentication(t *testing.T) {
	e := newEnv(t)
	c := userClient(e, "rp", "openid")
	tok := codeFlowTokens(t, e, c, testSecret, []string{"openid"})
	auth := clientAuth{id: c.ID, secret: testSecret, basic: true}

	tests := []struct {
		name   string
		auth   clientAuth
		form   url.Values
		status int
		err    string
	}{
		{"no authentication", clientAuth{}, url.Values{"token": {tok.AccessToken}}, 401, "invalid_client"},
		{"wrong secret", clientAuth{id: c.ID, secret: "wrong-secret", basic: true}, url.Values{"token": {tok.AccessToken}}, 401, "invalid_client"},
		{"confidential client without secret", clientAuth{id: c.ID}, url.Values{"token": {tok.AccessToken}}, 401, "invalid_client"},
		{"unknown client", clientAuth{id: "nobody", secret: "x", basic: true}, url.Values{"token": {tok.AccessToken}}, 401, "invalid_client"},
		{"missing token", auth, url.Values{"token_type_hint": {"access_token"}}, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := postClientForm(t, e.issuer()+"/oauth2/revoke", tt.auth, tt.form)
			if a.Status != tt.status {
				t.Fatalf("status %d, want %d: %s", a.Status, tt.status, a.Body)
			}
			if got := a.JSON(t)["error"]; got != tt.err {
				t.Errorf("error = %v, want %s", got, tt.err)
			}
			if tt.status == 401 && !strings.HasPrefix(a.Header.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("WWW-Authenticate = %q", a.Header.Get("WWW-Authenticate"))
			}
		})
	}
	// None of that touched the token.
	assertActive(t, introspect(t, e, auth, tok.AccessToken))
}
