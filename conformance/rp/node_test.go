package rp_test

// Real Node relying parties against a running Latchkey: openid-client (the
// library most Node applications use) and oauth4webapi (the strict
// protocol layer under it, used directly for its response checks). Node
// plays the application (node/rp.mjs); the test plays the person's
// browser with useragent and checks what the libraries accepted.

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
	"github.com/latchkey-oidc/latchkey/conformance/useragent"
	"github.com/latchkey-oidc/latchkey/provider"
)

const (
	nodeOpenIDClient = "openid-client"
	nodeOAuth4WebAPI = "oauth4webapi"
)

// TestNodeOpenIDClientCodeFlow signs in with the authorization code flow,
// PKCE S256, a nonce and max_age, answered in the query and with
// form_post; openid-client validates state, the ID token (signature,
// issuer, audience, nonce, auth_time) and the userinfo subject.
func TestNodeOpenIDClientCodeFlow(t *testing.T) {
	e := newNodeEnv(t, true, latchkeytest.Options{})
	c := e.webClient()

	t.Run("query", func(t *testing.T) {
		n := e.rp(t, c, nodeOpenIDClient, "code")
		u := nodeAuthorizeURL(t, n, map[string]any{"scope": "openid profile email", "max_age": 600})
		q := nodeQuery(t, u)
		if q.Get("response_type") != "code" || q.Get("client_id") != c.ID || q.Get("code_challenge_method") != "S256" ||
			q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" {
			t.Fatalf("openid-client's authorization request lacks a parameter: %s", u)
		}
		p, seen := e.signIn(t, u)
		if !seen.SignIn || !seen.SecondFactor || !seen.Consent {
			t.Errorf("the browser saw %+v, want sign-in, second factor and consent", seen)
		}
		if !p.Redirect || p.URL.Query().Get("iss") != e.srv.Issuer {
			t.Fatalf("the browser stopped at %s, want a redirect with iss=%s", p.URL, e.srv.Issuer)
		}
		callback := nodeCallbackArgs(t, p)

		// A response whose state is not the one the application sent is
		// refused before the code is spent.
		if err := n.mustFail("callback", nodeWithParam(callback, "state", "forged-state")); !strings.Contains(err.Message, "state") {
			t.Errorf("forged state: %v, want a state error", err)
		}

		var tok nodeTokens
		n.must("callback", callback, &tok)
		nodeCheckIDToken(t, e, c, tok.Claims)
		if _, ok := tok.Claims["auth_time"].(float64); !ok {
			t.Errorf("auth_time = %v, want a number (max_age was sent)", tok.Claims["auth_time"])
		}
		if tok.AccessToken == "" || !strings.EqualFold(tok.TokenType, "bearer") || tok.ExpiresIn <= 0 {
			t.Errorf("token response %+v, want a bearer access token with expires_in", tok)
		}

		var info map[string]any
		n.must("userinfo", map[string]any{"access_token": tok.AccessToken, "sub": e.subject}, &info)
		if info["sub"] != e.subject || info["email"] != "nora@example.test" || info["name"] != "Test nora" {
			t.Errorf("userinfo %v, want nora's sub, email and name", info)
		}
		// openid-client checks the subject: the same answer for someone
		// else is refused.
		if err := n.mustFail("userinfo", map[string]any{"access_token": tok.AccessToken, "sub": "someone-else"}); !strings.Contains(err.Message, "sub") {
			t.Errorf("userinfo for another subject: %v, want a sub mismatch", err)
		}

		// The code was spent: the same response again is refused by the
		// provider.
		if err := n.mustFail("callback", callback); err.OAuthError != "invalid_grant" {
			t.Errorf("replayed code: %v, want invalid_grant", err)
		}
	})

	t.Run("form_post", func(t *testing.T) {
		n := e.rp(t, c, nodeOpenIDClient, "code")
		u := nodeAuthorizeURL(t, n, map[string]any{"scope": "openid email", "response_mode": "form_post"})
		p, _ := e.signIn(t, u)
		callback := nodeCallbackArgs(t, p)
		form, _ := callback["form"].(map[string]string)
		if form == nil || form["code"] == "" || form["iss"] != e.srv.Issuer {
			t.Fatalf("the form_post page holds %v, want code and iss", callback)
		}
		var tok nodeTokens
		n.must("callback", callback, &tok)
		nodeCheckIDToken(t, e, c, tok.Claims)
	})
}

// TestNodeOpenIDClientHybrid runs response_type=code id_token, in the
// fragment and with form_post: openid-client validates the front-channel
// ID token (signature, nonce, c_hash) before it redeems the code.
func TestNodeOpenIDClientHybrid(t *testing.T) {
	e := newNodeEnv(t, false, latchkeytest.Options{})
	c := e.webClient()
	for _, mode := range []string{"fragment", "form_post"} {
		t.Run(mode, func(t *testing.T) {
			n := e.rp(t, c, nodeOpenIDClient, "code id_token")
			args := map[string]any{"scope": "openid profile"}
			if mode == "form_post" {
				args["response_mode"] = mode
			}
			u := nodeAuthorizeURL(t, n, args)
			if q := nodeQuery(t, u); q.Get("response_type") != "code id_token" || q.Get("code_challenge_method") != "S256" {
				t.Fatalf("openid-client's hybrid request: %s", u)
			}
			p, _ := e.signIn(t, u)
			callback := nodeCallbackArgs(t, p)
			params := nodeResponseParams(t, callback)
			if params.Get("code") == "" || params.Get("id_token") == "" || params.Get("iss") != e.srv.Issuer {
				t.Fatalf("hybrid response %v, want code, id_token and iss", params)
			}
			if mode == "fragment" && p.URL.RawQuery != "" {
				t.Errorf("hybrid response in the query %q, want it only in the fragment", p.URL.RawQuery)
			}

			// A code that does not match the ID token's c_hash is refused.
			swapped := nodeWithParam(callback, "code", params.Get("code")+"x")
			if err := n.mustFail("callback", swapped); !strings.Contains(err.Message, "c_hash") {
				t.Errorf("swapped code: %v, want a c_hash error", err)
			}

			var tok nodeTokens
			n.must("callback", callback, &tok)
			nodeCheckIDToken(t, e, c, tok.Claims)
			if tok.AccessToken == "" {
				t.Errorf("no access token for the hybrid code: %+v", tok)
			}
		})
	}
}

// TestNodeOpenIDClientImplicit runs response_type=id_token, in the fragment
// and with form_post, through openid-client's implicitAuthentication.
func TestNodeOpenIDClientImplicit(t *testing.T) {
	e := newNodeEnv(t, false, latchkeytest.Options{})
	c := e.webClient()
	for _, mode := range []string{"fragment", "form_post"} {
		t.Run(mode, func(t *testing.T) {
			n := e.rp(t, c, nodeOpenIDClient, "id_token")
			args := map[string]any{"scope": "openid email"}
			if mode == "form_post" {
				args["response_mode"] = mode
			}
			u := nodeAuthorizeURL(t, n, args)
			if q := nodeQuery(t, u); q.Get("response_type") != "id_token" || q.Get("nonce") == "" {
				t.Fatalf("openid-client's implicit request: %s", u)
			}
			p, _ := e.signIn(t, u)
			callback := nodeCallbackArgs(t, p)
			params := nodeResponseParams(t, callback)
			if params.Get("id_token") == "" || params.Get("iss") != e.srv.Issuer || params.Get("access_token") != "" || params.Get("code") != "" {
				t.Errorf("response_type=id_token answered %v, want an ID token and iss only", params)
			}
			var out struct {
				Claims map[string]any `json:"claims"`
			}
			n.must("callback", callback, &out)
			nodeCheckIDToken(t, e, c, out.Claims)
			// No access token, so the scope's claims are in the ID token
			// (Core §5.4).
			if out.Claims["email"] != "nora@example.test" {
				t.Errorf("ID token claims %v, want nora's email", out.Claims)
			}
		})
	}
}

// TestNodeOpenIDClientRefreshRotation redeems a refresh token with
// refreshTokenGrant: the provider rotates it, refuses the old one, and the
// reuse revokes the rotated one too.
func TestNodeOpenIDClientRefreshRotation(t *testing.T) {
	e := newNodeEnv(t, false, latchkeytest.Options{})
	c := e.webClient()
	n := e.rp(t, c, nodeOpenIDClient, "code")
	first := e.codeFlow(t, n, c, map[string]any{"scope": "openid offline_access"})
	if first.RefreshToken == "" {
		t.Fatalf("no refresh token for offline_access: %+v", first)
	}

	var second nodeTokens
	n.must("refresh", map[string]any{"refresh_token": first.RefreshToken}, &second)
	if second.AccessToken == "" || second.AccessToken == first.AccessToken {
		t.Errorf("refresh gave access token %q, want a new one", second.AccessToken)
	}
	if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
		t.Fatalf("refresh gave refresh token %q, want a rotated one", second.RefreshToken)
	}
	if second.IDToken != "" && second.Claims["sub"] != e.subject {
		t.Errorf("refreshed ID token claims %v, want sub %s", second.Claims, e.subject)
	}

	if err := n.mustFail("refresh", map[string]any{"refresh_token": first.RefreshToken}); err.OAuthError != "invalid_grant" {
		t.Errorf("the old refresh token again: %v, want invalid_grant", err)
	}
	// Reuse means the token leaked: the whole family is revoked.
	if err := n.mustFail("refresh", map[string]any{"refresh_token": second.RefreshToken}); err.OAuthError != "invalid_grant" {
		t.Errorf("the rotated refresh token after reuse of the old one: %v, want invalid_grant", err)
	}
}

// TestNodeOpenIDClientDeviceFlow runs the device authorization grant: the
// Node device polls with pollDeviceAuthorizationGrant while the person
// opens verification_uri_complete, signs in and approves.
func TestNodeOpenIDClientDeviceFlow(t *testing.T) {
	e := newNodeEnv(t, false, latchkeytest.Options{
		// The shortest interval RFC 8628 can say, so the device does not
		// wait the default 5s before each poll.
		Provider: func(cfg *provider.Config) { cfg.DevicePollInterval = time.Second },
	})
	c := e.srv.CreateClient(map[string]any{
		"client_name":                "Node TV",
		"grant_types":                []string{nodeDeviceGrant, "refresh_token"},
		"response_types":             []string{},
		"redirect_uris":              []string{},
		"scope":                      "openid profile offline_access",
		"token_endpoint_auth_method": "none",
	})
	n := e.rp(t, c, nodeOpenIDClient, "code")

	var da struct {
		UserCode                string `json:"user_code"`
		VerificationURI         string `json:"verification_uri"`
		VerificationURIComplete string `json:"verification_uri_complete"`
	}
	n.must("device_start", map[string]any{"scope": "openid profile offline_access"}, &da)
	if da.UserCode == "" || !strings.HasPrefix(da.VerificationURIComplete, e.srv.Issuer) {
		t.Fatalf("device authorization %+v, want a user code and a verification link at the issuer", da)
	}

	n.send("device_poll", nil)
	ctx := context.Background()
	if _, err := e.browser.Get(ctx, da.VerificationURIComplete); err != nil {
		t.Fatal(err)
	}
	p, seen, err := e.browser.Continue(ctx, useragent.Interaction{User: e.user, UserCode: da.UserCode})
	if err != nil {
		t.Fatalf("the person's browser: %v", err)
	}
	if !seen.Device || !seen.SignIn || !seen.Consent || p.Status != 200 {
		t.Fatalf("the person saw %+v and ended at %s (status %d), want the device, sign-in and consent pages and a confirmation",
			seen, p.URL.Redacted(), p.Status)
	}

	var tok nodeTokens
	if err := n.receive(&tok); err != nil {
		t.Fatalf("device_poll: %v", err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.Claims["sub"] != e.subject || tok.Claims["aud"] == nil {
		t.Fatalf("device tokens %+v, want access and refresh tokens and an ID token for %s", tok, e.subject)
	}
	var info map[string]any
	n.must("userinfo", map[string]any{"access_token": tok.AccessToken, "sub": e.subject}, &info)
	if info["preferred_username"] != "nora" {
		t.Errorf("userinfo %v, want nora's profile", info)
	}
}

// TestNodeOpenIDClientClientCredentials gets a token for a service with
// clientCredentialsGrant, introspects it and revokes it.
func TestNodeOpenIDClientClientCredentials(t *testing.T) {
	e := newNodeEnv(t, false, latchkeytest.Options{})
	c := e.srv.CreateClient(map[string]any{
		"client_name":    "Node report service",
		"grant_types":    []string{"client_credentials"},
		"response_types": []string{},
		"redirect_uris":  []string{},
		"scope":          "reports.read reports.write",
	})
	n := e.rp(t, c, nodeOpenIDClient, "code")

	var tok nodeTokens
	n.must("client_credentials", map[string]any{"scope": "reports.read"}, &tok)
	if tok.AccessToken == "" || !strings.EqualFold(tok.TokenType, "bearer") || tok.RefreshToken != "" || tok.IDToken != "" {
		t.Fatalf("client credentials answer %+v, want a bearer access token only", tok)
	}
	if tok.Scope != "" && tok.Scope != "reports.read" {
		t.Errorf("scope %q, want reports.read", tok.Scope)
	}

	var active map[string]any
	n.must("introspect", map[string]any{"token": tok.AccessToken}, &active)
	if active["active"] != true || active["client_id"] != c.ID || active["scope"] != "reports.read" {
		t.Errorf("introspection %v, want an active reports.read token of %s", active, c.ID)
	}

	n.must("revoke", map[string]any{"token": tok.AccessToken}, nil)
	var inactive map[string]any
	n.must("introspect", map[string]any{"token": tok.AccessToken}, &inactive)
	if inactive["active"] != false {
		t.Errorf("introspection after revocation %v, want inactive", inactive)
	}
}

// TestNodeOpenIDClientIntrospectionAndRevocation introspects a person's
// tokens with tokenIntrospection and revokes them with tokenRevocation.
func TestNodeOpenIDClientIntrospectionAndRevocation(t *testing.T) {
	e := newNodeEnv(t, false, latchkeytest.Options{})
	c := e.webClient()

	t.Run("access token", func(t *testing.T) {
		n := e.rp(t, c, nodeOpenIDClient, "code")
		tok := e.codeFlow(t, n, c, map[string]any{"scope": "openid email offline_access"})
		var got map[string]any
		n.must("introspect", map[string]any{"token": tok.AccessToken, "token_type_hint": "access_token"}, &got)
		scope, _ := got["scope"].(string)
		if got["active"] != true || got["sub"] != e.subject || got["client_id"] != c.ID || got["iss"] != e.srv.Issuer ||
			!slices.Contains(strings.Fields(scope), "openid") {
			t.Errorf("introspection %v, want nora's active token of %s with scope openid", got, c.ID)
		}
		n.must("revoke", map[string]any{"token": tok.AccessToken, "token_type_hint": "access_token"}, nil)
		got = nil
		n.must("introspect", map[string]any{"token": tok.AccessToken}, &got)
		if got["active"] != false {
			t.Errorf("introspection after revocation %v, want inactive", got)
		}
	})

	t.Run("refresh token", func(t *testing.T) {
		n := e.rp(t, c, nodeOpenIDClient, "code")
		tok := e.codeFlow(t, n, c, map[string]any{"scope": "openid offline_access"})
		var got map[string]any
		n.must("introspect", map[string]any{"token": tok.RefreshToken, "token_type_hint": "refresh_token"}, &got)
		if got["active"] != true || got["sub"] != e.subject {
			t.Errorf("refresh token introspection %v, want active for nora", got)
		}
		n.must("revoke", map[string]any{"token": tok.RefreshToken, "token_type_hint": "refresh_token"}, nil)
		for name, token := range map[string]string{"refresh token": tok.RefreshToken, "access token of the same grant": tok.AccessToken} {
			got = nil
			n.must("introspect", map[string]any{"token": token}, &got)
			if got["active"] != false {
				t.Errorf("%s after revoking the refresh token: %v, want inactive (RFC 7009 §2.1)", name, got)
			}
		}
		if err := n.mustFail("refresh", map[string]any{"refresh_token": tok.RefreshToken}); err.OAuthError != "invalid_grant" {
			t.Errorf("a revoked refresh token: %v, want invalid_grant", err)
		}
	})
}

// TestNodeOpenIDClientLogout signs out with RP-initiated logout built by
// buildEndSessionUrl: the browser ends at the registered
// post_logout_redirect_uri with the application's state, and the SSO
// session is gone, so a prompt=none request gets login_required.
func TestNodeOpenIDClientLogout(t *testing.T) {
	e := newNodeEnv(t, false, latchkeytest.Options{})
	c := e.webClient()
	n := e.rp(t, c, nodeOpenIDClient, "code")
	tok := e.codeFlow(t, n, c, map[string]any{"scope": "openid"})

	// While the session lasts, prompt=none signs in without a page.
	p, seen := e.signIn(t, nodeAuthorizeURL(t, n, map[string]any{"scope": "openid", "prompt": "none"}))
	if seen != (useragent.Seen{}) {
		t.Errorf("prompt=none showed %+v, want no page", seen)
	}
	var silent nodeTokens
	n.must("callback", nodeCallbackArgs(t, p), &silent)
	if silent.Claims["sub"] != e.subject {
		t.Fatalf("prompt=none during the session: %+v", silent)
	}

	var out struct {
		URL string `json:"url"`
	}
	const state = "node-logout-state-42"
	n.must("end_session", map[string]any{"id_token_hint": tok.IDToken, "post_logout_redirect_uri": nodeLoggedOut, "state": state}, &out)
	q := nodeQuery(t, out.URL)
	if q.Get("id_token_hint") != tok.IDToken || q.Get("client_id") != c.ID {
		t.Errorf("end session URL %s, want id_token_hint and client_id", out.URL)
	}
	p, _ = e.signIn(t, out.URL)
	if !p.Redirect || !strings.HasPrefix(p.URL.String(), nodeLoggedOut) || p.URL.Query().Get("state") != state {
		t.Fatalf("logout ended at %s (status %d), want %s with state %s", p.URL.Redacted(), p.Status, nodeLoggedOut, state)
	}

	ctx := context.Background()
	if _, err := e.browser.Get(ctx, nodeAuthorizeURL(t, n, map[string]any{"scope": "openid", "prompt": "none"})); err != nil {
		t.Fatal(err)
	}
	// No user: prompt=none must not show the sign-in page.
	p, _, err := e.browser.Continue(ctx, useragent.Interaction{})
	if err != nil {
		t.Fatalf("prompt=none after logout: %v", err)
	}
	if err := n.mustFail("callback", nodeCallbackArgs(t, p)); err.OAuthError != "login_required" {
		t.Errorf("prompt=none after logout: %v, want login_required", err)
	}
}

// TestNodeOAuth4WebAPI signs in with oauth4webapi's own checks:
// validateAuthResponse (state and the RFC 9207 iss parameter, on success
// and error responses), processAuthorizationCodeResponse with a nonce and
// the ID token signature, processUserInfoResponse,
// processIntrospectionResponse, processRefreshTokenResponse and
// processRevocationResponse.
func TestNodeOAuth4WebAPI(t *testing.T) {
	e := newNodeEnv(t, false, latchkeytest.Options{})
	c := e.webClient()
	n := startNodeRP(t)
	var meta struct {
		Issuer    string `json:"issuer"`
		IssParam  bool   `json:"authorization_response_iss_parameter_supported"`
		Authorize string `json:"authorization_endpoint"`
	}
	n.must("discover", map[string]any{
		"issuer": e.srv.Issuer, "client_id": c.ID, "client_secret": c.Secret,
		"redirect_uri": nodeRedirectURI, "lib": nodeOAuth4WebAPI,
	}, &meta)
	if meta.Issuer != e.srv.Issuer || !meta.IssParam {
		t.Fatalf("discovery %+v, want issuer %s and authorization_response_iss_parameter_supported", meta, e.srv.Issuer)
	}

	// An error response is checked like a success: iss first.
	ctx := context.Background()
	if _, err := e.browser.Get(ctx, nodeAuthorizeURL(t, n, map[string]any{"scope": "openid", "prompt": "none"})); err != nil {
		t.Fatal(err)
	}
	if err := n.mustFail("callback", nodeCallbackArgs(t, e.browser.Page)); err.OAuthError != "login_required" {
		t.Errorf("prompt=none without a session: %v, want login_required", err)
	}

	u := nodeAuthorizeURL(t, n, map[string]any{"scope": "openid profile email offline_access"})
	if q := nodeQuery(t, u); q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" {
		t.Fatalf("authorization request %s, want PKCE S256 and a nonce", u)
	}
	p, _ := e.signIn(t, u)
	callback := nodeCallbackArgs(t, p)

	// Without iss, or with another issuer's, the response is refused
	// before the code is spent.
	for name, iss := range map[string]string{"missing": "", "wrong": "https://attacker.example.test"} {
		changed := nodeWithParam(callback, "iss", iss)
		if err := n.mustFail("callback", changed); !strings.Contains(err.Message, `"iss"`) {
			t.Errorf("%s iss: %v, want an iss error", name, err)
		}
	}

	var tok nodeTokens
	n.must("callback", callback, &tok)
	nodeCheckIDToken(t, e, c, tok.Claims)
	if tok.RefreshToken == "" {
		t.Fatalf("no refresh token for offline_access: %+v", tok)
	}

	var info map[string]any
	n.must("userinfo", map[string]any{"access_token": tok.AccessToken, "sub": e.subject}, &info)
	if info["email"] != "nora@example.test" || info["email_verified"] != true {
		t.Errorf("userinfo %v, want nora's verified email", info)
	}

	var intro map[string]any
	n.must("introspect", map[string]any{"token": tok.AccessToken}, &intro)
	if intro["active"] != true || intro["sub"] != e.subject || intro["client_id"] != c.ID {
		t.Errorf("introspection %v, want nora's active token of %s", intro, c.ID)
	}

	var refreshed nodeTokens
	n.must("refresh", map[string]any{"refresh_token": tok.RefreshToken}, &refreshed)
	if refreshed.AccessToken == "" || refreshed.RefreshToken == tok.RefreshToken {
		t.Errorf("refresh %+v, want a new access token and a rotated refresh token", refreshed)
	}

	n.must("revoke", map[string]any{"token": refreshed.AccessToken}, nil)
	intro = nil
	n.must("introspect", map[string]any{"token": refreshed.AccessToken}, &intro)
	if intro["active"] != false {
		t.Errorf("introspection after revocation %v, want inactive", intro)
	}
}
