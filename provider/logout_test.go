package provider_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/ory/fosite/token/jwt"
	"golang.org/x/oauth2"

	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
)

// loggedOut is the post_logout_redirect_uri test clients register. It
// starts with rpRedirect, so the test browser stops there and reads its
// query.
const loggedOut = rpRedirect + "/logged-out"

// rpClient registers a confidential code-flow client with loggedOut.
func (e *env) rpClient() *store.Client {
	e.t.Helper()
	return e.createClient(&store.Client{
		GrantTypes:             []string{"authorization_code"},
		ResponseTypes:          []string{"code"},
		Scope:                  "openid profile",
		PostLogoutRedirectURIs: []string{loggedOut},
	}, testSecret)
}

// signIn runs a code flow in b for c and returns the ID token.
func (e *env) signIn(b *browser, c *store.Client) string {
	e.t.Helper()
	raw, _ := e.signInTokens(b, c).Extra("id_token").(string)
	return raw
}

// signInTokens runs a code flow in b for c and returns the token response,
// which has an ID token.
func (e *env) signInTokens(b *browser, c *store.Client) *oauth2.Token {
	e.t.Helper()
	conf := e.oauth2Config(c.ID, testSecret, oauth2.AuthStyleInHeader, oidc.ScopeOpenID)
	res := b.get(conf.AuthCodeURL("state-1234567890", oidc.Nonce("nonce-1234567890")))
	if res.Params.Get("code") == "" {
		e.t.Fatalf("authorization: %d %v %s", res.Status, res.Params, res.Body)
	}
	tok, err := conf.Exchange(context.Background(), res.Params.Get("code"))
	if err != nil {
		e.t.Fatalf("exchange: %v", err)
	}
	if raw, _ := tok.Extra("id_token").(string); raw == "" {
		e.t.Fatal("no ID token")
	}
	return tok
}

// signedIn reports whether b's SSO session still satisfies an
// authorization: it runs one and checks whether the login app was asked
// for a sign-in.
func (e *env) signedIn(b *browser, c *store.Client) bool {
	e.t.Helper()
	before := countKind(e.login.seenKinds(), "login")
	e.signIn(b, c)
	return countKind(e.login.seenKinds(), "login") == before
}

func countKind(kinds []string, kind string) int {
	n := 0
	for _, k := range kinds {
		if k == kind {
			n++
		}
	}
	return n
}

func (e *env) logoutURL(params url.Values) string {
	return e.issuer() + "/oauth2/logout?" + params.Encode()
}

// sessionCookie returns b's SSO cookie for the provider, or "".
func (e *env) sessionCookie(b *browser) string {
	u, _ := url.Parse(e.issuer())
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == "latchkey_session" {
			return c.Value
		}
	}
	return ""
}

// mintIDToken signs claims with the keys of env k, as an ID token of e.
func (e *env) mintIDToken(k *env, claims jwt.MapClaims) string {
	e.t.Helper()
	tok, _, err := k.p.Keys().Generate(context.Background(), claims, &jwt.Headers{})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// TestLogoutRedirectsWithState signs out with id_token_hint and returns to
// the registered post_logout_redirect_uri with state; the login app may
// skip asking, and the next authorization needs a new sign-in.
func TestLogoutRedirectsWithState(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			e := newEnv(t)
			c := e.rpClient()
			b := newBrowser(t)
			hint := e.signIn(b, c)
			params := url.Values{
				"id_token_hint":            {hint},
				"post_logout_redirect_uri": {loggedOut},
				"state":                    {"logout-state-1"},
				"ui_locales":               {"fr en"},
			}
			var res *authResult
			if method == http.MethodGet {
				res = b.get(e.logoutURL(params))
			} else {
				res = b.postForm(e.issuer()+"/oauth2/logout", params)
			}
			if res.Mode != "query" || res.Params.Get("state") != "logout-state-1" {
				t.Fatalf("logout: %d %v %s", res.Status, res.Params, res.Body)
			}
			v := e.login.lastSeen("logout")
			if !v.Skip || !v.RPInitiated || v.Subject != alice.subject || v.SessionID == "" ||
				v.Client == nil || v.Client.ID != c.ID || v.PostLogoutRedirectURI != loggedOut {
				t.Errorf("logout view = %+v", v)
			}
			if v.OIDCContext == nil || strings.Join(v.OIDCContext.UILocales, " ") != "fr en" {
				t.Errorf("ui_locales: %+v", v.OIDCContext)
			}
			if got := e.sessionCookie(b); got != "" {
				t.Errorf("the session cookie is still set: %q", got)
			}
			if e.signedIn(b, c) {
				t.Error("still signed in after logout")
			}
		})
	}
}

// TestLogoutWithoutHint lets the login app ask the user, and ends on the
// provider's own page.
func TestLogoutWithoutHint(t *testing.T) {
	e := newEnv(t)
	c := e.rpClient()
	b := newBrowser(t)
	e.signIn(b, c)
	res := b.get(e.issuer() + "/oauth2/logout")
	if res.Status != http.StatusOK || !strings.Contains(res.Body, "You are signed out") {
		t.Fatalf("logout: %d %s", res.Status, res.Body)
	}
	v := e.login.lastSeen("logout")
	if v.Skip || v.RPInitiated || v.Subject != alice.subject || v.SessionID == "" || v.Client != nil {
		t.Errorf("logout view = %+v", v)
	}
	if e.signedIn(b, c) {
		t.Error("still signed in after logout")
	}
}

// TestLogoutExpiredHint accepts an expired ID token as id_token_hint: its
// signature still proves whom it named.
func TestLogoutExpiredHint(t *testing.T) {
	e := newEnv(t)
	c := e.rpClient()
	b := newBrowser(t)
	e.signIn(b, c)
	past := time.Now().Add(-2 * time.Hour)
	hint := e.mintIDToken(e, jwt.MapClaims{
		"iss": e.issuer(), "sub": alice.subject, "aud": []string{c.ID},
		"iat": past.Unix(), "exp": past.Add(time.Hour).Unix(),
	})
	res := b.get(e.logoutURL(url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {loggedOut}}))
	if res.Mode != "query" || res.Params.Has("state") {
		t.Fatalf("logout: %d %v %s", res.Status, res.Params, res.Body)
	}
	if v := e.login.lastSeen("logout"); !v.Skip {
		t.Errorf("the expired hint did not match the session: %+v", v)
	}
}

// TestLogoutBadRequests answers every bad end-session request with an
// error page and never redirects.
func TestLogoutBadRequests(t *testing.T) {
	e := newEnv(t)
	c := e.rpClient()
	other := e.createClient(&store.Client{ID: "other", PostLogoutRedirectURIs: []string{loggedOut}}, testSecret)
	hint := e.signIn(newBrowser(t), c)
	stranger := newEnv(t)
	forged := e.mintIDToken(stranger, jwt.MapClaims{
		"iss": e.issuer(), "sub": alice.subject, "aud": []string{c.ID},
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	})
	foreign := e.mintIDToken(e, jwt.MapClaims{
		"iss": "https://elsewhere.example.test", "sub": alice.subject, "aud": []string{c.ID},
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	})
	tests := []struct {
		name   string
		params url.Values
		want   string
	}{
		{"unregistered post_logout_redirect_uri", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://evil.example.test/"}}, "not one the client registered"},
		{"a redirect_uri is no post_logout_redirect_uri", url.Values{"client_id": {c.ID}, "post_logout_redirect_uri": {rpRedirect}}, "not one the client registered"},
		{"post_logout_redirect_uri without client", url.Values{"post_logout_redirect_uri": {loggedOut}}, "needs an id_token_hint or a client_id"},
		{"client_id not the hint's audience", url.Values{"id_token_hint": {hint}, "client_id": {other.ID}, "post_logout_redirect_uri": {loggedOut}}, "not the audience"},
		{"unknown client_id", url.Values{"client_id": {"nobody"}}, "not registered"},
		{"hint signed by another key", url.Values{"id_token_hint": {forged}, "post_logout_redirect_uri": {loggedOut}}, "not an ID token this provider issued"},
		{"hint from another issuer", url.Values{"id_token_hint": {foreign}}, "not an ID token this provider issued"},
		{"hint not a JWT", url.Values{"id_token_hint": {"not-a-jwt"}}, "not an ID token this provider issued"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := newBrowser(t).get(e.logoutURL(tt.params))
			if res.Status != http.StatusBadRequest || res.Mode != "" || !strings.Contains(res.Body, tt.want) {
				t.Errorf("got %d %q %s", res.Status, res.Mode, res.Body)
			}
		})
	}
	if n := countKind(e.login.seenKinds(), "logout"); n != 0 {
		t.Errorf("the login app was shown %d logout challenges", n)
	}
}

// TestLogoutRejected keeps the session when the login app (the user)
// declines, and still returns to the registered URI with state.
func TestLogoutRejected(t *testing.T) {
	e := newEnv(t)
	c := e.rpClient()
	b := newBrowser(t)
	hint := e.signIn(b, c)
	e.login.logout = func(provider.ChallengeView) any { return provider.Rejection{} }
	res := b.get(e.logoutURL(url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {loggedOut}, "state": {"s1"}}))
	if res.Mode != "query" || res.Params.Get("state") != "s1" {
		t.Fatalf("rejected logout: %d %v %s", res.Status, res.Params, res.Body)
	}
	if !e.signedIn(b, c) {
		t.Error("signed out although the logout was rejected")
	}
	res = b.get(e.issuer() + "/oauth2/logout")
	if res.Status != http.StatusOK || !strings.Contains(res.Body, "still signed in") {
		t.Errorf("rejected logout without redirect: %d %s", res.Status, res.Body)
	}
	if !e.signedIn(b, c) {
		t.Error("signed out although the logout was rejected")
	}
}

// TestLogoutOtherBrowser refuses to finish a logout in another browser than
// the one that started it, and refuses a used continue link.
func TestLogoutOtherBrowser(t *testing.T) {
	e := newEnv(t)
	c := e.rpClient()
	b := newBrowser(t)
	e.signIn(b, c)
	resp, err := noFollow(b.client.Jar).Get(e.issuer() + "/oauth2/logout")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	id := loc.Query().Get("logout_challenge")
	if resp.StatusCode != http.StatusSeeOther || id == "" {
		t.Fatalf("logout: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	status, out, _ := e.adminCall(http.MethodPut, "/admin/logout/accept?challenge="+url.QueryEscape(id), nil)
	next, _ := out["redirect_to"].(string)
	if status != http.StatusOK || !strings.HasPrefix(next, e.issuer()+"/oauth2/logout/continue?logout_verifier=") {
		t.Fatalf("accept: %d %v", status, out)
	}
	if res := newBrowser(t).get(next); res.Status != http.StatusForbidden {
		t.Errorf("continue in another browser: %d %s", res.Status, res.Body)
	}
	if !e.signedIn(b, c) {
		t.Error("signed out through another browser")
	}
	// The refused attempt did not use the link up: its own browser
	// finishes the logout, and only then is the link spent.
	if res := b.get(next); res.Status != http.StatusOK {
		t.Errorf("continue in the right browser: %d %s", res.Status, res.Body)
	}
	if res := b.get(next); res.Status != http.StatusBadRequest {
		t.Errorf("used continue link: %d %s", res.Status, res.Body)
	}
	if res := b.get(e.issuer() + "/oauth2/logout/continue"); res.Status != http.StatusBadRequest {
		t.Errorf("continue without verifier: %d", res.Status)
	}
}

// postForm posts a form in b, as an RP's logout form does, and follows the
// redirects like get; only a query redirect to the RP is read.
func (b *browser) postForm(u string, form url.Values) *authResult {
	b.t.Helper()
	resp, err := b.client.PostForm(u, form)
	if err != nil {
		b.t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	res := &authResult{Status: resp.StatusCode, Body: string(body)}
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && strings.HasPrefix(loc, rpRedirect) {
		lu, err := url.Parse(loc)
		if err != nil {
			b.t.Fatalf("redirect %q: %v", loc, err)
		}
		res.Mode, res.Params = "query", lu.Query()
	}
	return res
}
