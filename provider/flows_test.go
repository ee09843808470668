package provider_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
)

func webClient(e *env, extra func(*store.Client)) *store.Client {
	c := &store.Client{
		GrantTypes:    []string{"authorization_code", "refresh_token", "implicit"},
		ResponseTypes: []string{"code", "id_token", "id_token token", "code id_token", "code token", "code id_token token"},
		Scope:         "openid profile email address phone offline_access",
	}
	if extra != nil {
		extra(c)
	}
	return e.createClient(c, testSecret)
}

func TestHybridAndImplicitResponseTypes(t *testing.T) {
	e := newEnv(t)
	c := webClient(e, nil)
	cases := []struct {
		responseType string
		mode         string // requested response_mode, "" for the default
		wantMode     string
		want         []string
	}{
		{"code", "", "query", []string{"code", "state", "iss"}},
		{"code", "form_post", "form_post", []string{"code", "state", "iss"}},
		{"code", "fragment", "fragment", []string{"code", "state", "iss"}},
		{"id_token", "", "fragment", []string{"id_token", "state"}},
		{"id_token", "form_post", "form_post", []string{"id_token", "state"}},
		{"id_token token", "", "fragment", []string{"id_token", "access_token", "token_type", "state"}},
		{"id_token token", "form_post", "form_post", []string{"id_token", "access_token"}},
		{"code id_token", "", "fragment", []string{"code", "id_token"}},
		{"code token", "", "fragment", []string{"code", "access_token"}},
		{"code id_token token", "", "fragment", []string{"code", "id_token", "access_token"}},
		{"code id_token token", "form_post", "form_post", []string{"code", "id_token", "access_token"}},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.responseType, " ", "+")+"/"+tc.wantMode, func(t *testing.T) {
			params := codeParams(c.ID)
			params.Set("response_type", tc.responseType)
			if tc.mode != "" {
				params.Set("response_mode", tc.mode)
			}
			res := newBrowser(t).authorize(e.issuer(), params)
			if res.Mode != tc.wantMode {
				t.Fatalf("mode %q, want %q: %d %v %.300s", res.Mode, tc.wantMode, res.Status, res.Params, res.Body)
			}
			for _, name := range tc.want {
				if res.Params.Get(name) == "" {
					t.Errorf("response lacks %s: %v", name, res.Params)
				}
			}
			if res.Params.Get("error") != "" {
				t.Fatalf("error: %v", res.Params)
			}
			if raw := res.Params.Get("id_token"); raw != "" {
				claims, _ := e.idTokenClaims(raw)
				if claims["nonce"] != "nonce-0123456789" || claims["sub"] != alice.subject {
					t.Errorf("claims %v", claims)
				}
				if at := res.Params.Get("access_token"); at != "" && claims["at_hash"] != halfHash(at) {
					t.Errorf("at_hash %v, want %s", claims["at_hash"], halfHash(at))
				}
				if code := res.Params.Get("code"); code != "" && claims["c_hash"] != halfHash(code) {
					t.Errorf("c_hash %v, want %s", claims["c_hash"], halfHash(code))
				}
				// With no access token, the scope's claims go into the
				// ID token itself (Core §5.4).
				if tc.responseType == "id_token" && claims["email"] != "alice@example.test" {
					t.Errorf("id_token-only response lacks the email claim: %v", claims)
				}
			}
			if code := res.Params.Get("code"); code != "" {
				tr := e.exchange(c.ID, testSecret, code)
				if tr.Status != http.StatusOK || tr.IDToken == "" {
					t.Fatalf("exchange: %+v", tr)
				}
			}
		})
	}
}

func TestInsecureResponseModeRefused(t *testing.T) {
	e := newEnv(t)
	c := webClient(e, nil)
	params := codeParams(c.ID)
	params.Set("response_type", "id_token token")
	params.Set("response_mode", "query")
	res := newBrowser(t).authorize(e.issuer(), params)
	if res.Params.Get("error") != "unsupported_response_mode" && res.Params.Get("error") != "invalid_request" {
		t.Fatalf("query mode for a token response: %d %v", res.Status, res.Params)
	}
	if res.Params.Get("access_token") != "" {
		t.Fatal("an access token went into a query string")
	}
}

func TestInvalidClientOrRedirectNeverRedirects(t *testing.T) {
	e := newEnv(t)
	c := webClient(e, nil)
	cases := map[string]func(url.Values){
		"unknown client":          func(p url.Values) { p.Set("client_id", "nobody") },
		"unregistered redirect":   func(p url.Values) { p.Set("redirect_uri", "https://evil.example.test/cb") },
		"redirect with fragment":  func(p url.Values) { p.Set("redirect_uri", rpRedirect+"#x") },
		"redirect prefix attack":  func(p url.Values) { p.Set("redirect_uri", rpRedirect+"/../evil") },
		"redirect different case": func(p url.Values) { p.Set("redirect_uri", strings.ToUpper(rpRedirect)) },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			p := codeParams(c.ID)
			mutate(p)
			res := newBrowser(t).authorize(e.issuer(), p)
			if res.Mode != "" || res.Status/100 != 4 || !strings.Contains(res.Body, "<html") {
				t.Fatalf("got %d mode %q %v: %.200s", res.Status, res.Mode, res.Params, res.Body)
			}
		})
	}
}

func TestPromptAndMaxAge(t *testing.T) {
	e := newEnv(t)
	c := webClient(e, nil)
	b := newBrowser(t)
	e.login.consent = func(v provider.ChallengeView) any {
		return provider.ConsentAccept{GrantScope: v.RequestedScope, Remember: true, Session: provider.ConsentSession{Claims: alice.claims}}
	}

	p := codeParams(c.ID)
	p.Set("prompt", "none")
	if res := b.authorize(e.issuer(), p); res.Params.Get("error") != "login_required" || res.Params.Get("state") == "" || res.Params.Get("iss") != e.issuer() {
		t.Fatalf("prompt=none without a session: %v", res.Params)
	}
	mustCode(t, b.authorize(e.issuer(), codeParams(c.ID)))
	logins := func() int {
		return len(slices.DeleteFunc(e.login.seenKinds(), func(k string) bool { return k != "login" }))
	}
	if n := logins(); n != 1 {
		t.Fatalf("%d logins so far", n)
	}

	// Signed in: prompt=none succeeds without the login app.
	mustCode(t, b.authorize(e.issuer(), p))
	if n := logins(); n != 1 {
		t.Errorf("prompt=none showed the login app")
	}
	// SSO: a plain request does not ask again.
	mustCode(t, b.authorize(e.issuer(), codeParams(c.ID)))
	if n := logins(); n != 1 {
		t.Errorf("a signed-in user was asked to sign in again")
	}
	for _, force := range []url.Values{{"prompt": {"login"}}, {"max_age": {"0"}}} {
		p := codeParams(c.ID)
		for k, v := range force {
			p[k] = v
		}
		before := logins()
		code := mustCode(t, b.authorize(e.issuer(), p))
		if logins() != before+1 {
			t.Errorf("%v did not make the user sign in again", force)
		}
		tr := e.exchange(c.ID, testSecret, code)
		if tr.Status != http.StatusOK {
			t.Fatalf("%v: exchange %+v", force, tr)
		}
	}
	// The login app sees what it needs to act on.
	p = codeParams(c.ID)
	p.Set("prompt", "login")
	p.Set("login_hint", "alice@example.test")
	p.Set("ui_locales", "de en")
	p.Set("acr_values", "urn:mfa")
	mustCode(t, b.authorize(e.issuer(), p))
	v := e.login.lastSeen("login")
	if v.OIDCContext == nil || v.OIDCContext.LoginHint != "alice@example.test" || !slices.Equal(v.OIDCContext.UILocales, []string{"de", "en"}) || !slices.Equal(v.OIDCContext.ACRValues, []string{"urn:mfa"}) {
		t.Errorf("login challenge context = %+v", v.OIDCContext)
	}
}

func TestConsentRememberedAndRequired(t *testing.T) {
	e := newEnv(t)
	c := webClient(e, nil)
	b := newBrowser(t)
	e.login.consent = func(v provider.ChallengeView) any {
		return provider.ConsentAccept{GrantScope: v.RequestedScope, Remember: true, Session: provider.ConsentSession{Claims: alice.claims}}
	}
	mustCode(t, b.authorize(e.issuer(), codeParams(c.ID)))
	if v := e.login.lastSeen("consent"); v.Skip {
		t.Fatal("first consent marked skippable")
	}
	mustCode(t, b.authorize(e.issuer(), codeParams(c.ID)))
	if v := e.login.lastSeen("consent"); !v.Skip {
		t.Error("remembered consent not marked skippable")
	}
	p := codeParams(c.ID)
	p.Set("prompt", "consent")
	mustCode(t, b.authorize(e.issuer(), p))
	if v := e.login.lastSeen("consent"); v.Skip {
		t.Error("prompt=consent marked skippable")
	}
	// More scopes than remembered, with prompt=none: consent_required.
	d := webClient(e, func(c *store.Client) { c.ID = "second-client" })
	p = codeParams(d.ID)
	p.Set("prompt", "none")
	if res := b.authorize(e.issuer(), p); res.Params.Get("error") != "consent_required" {
		t.Errorf("prompt=none without consent: %v", res.Params)
	}
}

func TestRejectionsReachTheClient(t *testing.T) {
	e := newEnv(t)
	c := webClient(e, nil)
	e.login.login = func(provider.ChallengeView) any {
		return provider.Rejection{Error: "access_denied", ErrorDescription: "The user cancelled."}
	}
	res := newBrowser(t).authorize(e.issuer(), codeParams(c.ID))
	if res.Params.Get("error") != "access_denied" || res.Params.Get("state") != "state-0123456789" {
		t.Fatalf("login rejection: %v", res.Params)
	}
	e.login.login = func(provider.ChallengeView) any { return provider.LoginAccept{Subject: alice.subject} }
	e.login.consent = func(provider.ChallengeView) any { return provider.Rejection{} }
	res = newBrowser(t).authorize(e.issuer(), codeParams(c.ID))
	if res.Params.Get("error") != "access_denied" {
		t.Fatalf("consent rejection: %v", res.Params)
	}
}

func TestPKCERules(t *testing.T) {
	e := newEnv(t)
	public := e.createClient(&store.Client{ID: "public-app", GrantTypes: []string{"authorization_code"}, Scope: "openid"}, "")
	plain := e.createClient(&store.Client{ID: "plain-app", GrantTypes: []string{"authorization_code"}, Scope: "openid", PKCEPlainAllowed: true}, "")
	b := newBrowser(t)

	p := codeParams(public.ID)
	p.Set("scope", "openid")
	p.Del("code_challenge")
	p.Del("code_challenge_method")
	if res := b.authorize(e.issuer(), p); res.Params.Get("error") != "invalid_request" {
		t.Errorf("public client without PKCE: %v", res.Params)
	}
	p.Set("code_challenge", "plain-verifier-0123456789-0123456789-0123456789")
	p.Set("code_challenge_method", "plain")
	if res := b.authorize(e.issuer(), p); res.Params.Get("error") != "invalid_request" {
		t.Errorf("plain PKCE without opt-in: %v", res.Params)
	}
	p.Set("client_id", plain.ID)
	code := mustCode(t, b.authorize(e.issuer(), p))
	tr := e.postToken(plain.ID, "", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect},
		"code_verifier": {"plain-verifier-0123456789-0123456789-0123456789"}})
	if tr.Status != http.StatusOK {
		t.Errorf("plain PKCE for an opted-in client: %+v", tr)
	}
	// state is optional with PKCE.
	p = codeParams(public.ID)
	p.Set("scope", "openid")
	p.Del("state")
	p.Del("nonce")
	code = mustCode(t, b.authorize(e.issuer(), p))
	if tr := e.exchange(public.ID, "", code); tr.Status != http.StatusOK {
		t.Errorf("public client code exchange: %+v", tr)
	}
	// A wrong verifier fails.
	p = codeParams(public.ID)
	p.Set("scope", "openid")
	code = mustCode(t, b.authorize(e.issuer(), p))
	tr = e.postToken(public.ID, "", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect},
		"code_verifier": {"wrong-verifier-0123456789-0123456789-0123456789-0123"}})
	if tr.Error != "invalid_grant" {
		t.Errorf("wrong verifier: %+v", tr)
	}
}

func TestFlowMustFinishInItsBrowser(t *testing.T) {
	e := newEnv(t)
	c := webClient(e, nil)
	// The victim's login app decision is replayed by another browser.
	var next string
	e.login.consent = func(v provider.ChallengeView) any {
		next = e.issuer() + "/oauth2/auth/continue?consent_verifier=" + url.QueryEscape(v.Challenge)
		return provider.Rejection{}
	}
	newBrowser(t).authorize(e.issuer(), codeParams(c.ID))
	if next == "" {
		t.Fatal("no consent challenge")
	}
	res := newBrowser(t).get(next)
	if res.Status != http.StatusForbidden && res.Status != http.StatusBadRequest {
		t.Fatalf("another browser resumed the flow: %d %v", res.Status, res.Params)
	}
	if res.Mode != "" {
		t.Fatal("redirected to the client")
	}
}
