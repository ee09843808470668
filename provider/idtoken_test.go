package provider_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
)

// Unsigned ID tokens (id_token_signed_response_alg "none"), which OpenID
// Connect Core §2 allows only to clients that get no ID token from the
// authorization endpoint.

// unsignedIDToken checks that raw is an unsigned JWT exactly as RFC 7519 §6
// has it — header {"alg":"none","typ":"JWT"} without kid, an empty
// signature — that the provider itself refuses as a signed token, and
// returns its claims.
func (e *env) unsignedIDToken(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("ID token %q has %d parts, want 3", raw, len(parts))
	}
	if parts[2] != "" {
		t.Errorf("the unsigned ID token has a signature part %q", parts[2])
	}
	decode := func(part, what string) map[string]any {
		b, err := base64.RawURLEncoding.DecodeString(part)
		if err != nil {
			t.Fatalf("ID token %s: %v", what, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("ID token %s %q: %v", what, b, err)
		}
		return m
	}
	if h := decode(parts[0], "header"); !maps.Equal(h, map[string]any{"alg": "none", "typ": "JWT"}) {
		t.Errorf("header %v, want exactly alg none and typ JWT", h)
	}
	if _, err := e.p.Keys().Decode(context.Background(), raw); err == nil {
		t.Error("the key ring accepts the unsigned ID token as a signed one")
	}
	return decode(parts[1], "payload")
}

// checkIDTokenClaims checks the claims every ID token of a code flow of
// clientID for alice has, at_hash that of accessToken.
func (e *env) checkIDTokenClaims(t *testing.T, claims map[string]any, clientID, accessToken string) {
	t.Helper()
	aud, _ := claims["aud"].([]any)
	exp, _ := claims["exp"].(float64)
	switch {
	case claims["iss"] != e.issuer():
		t.Errorf("iss %v, want %s", claims["iss"], e.issuer())
	case claims["sub"] != alice.subject:
		t.Errorf("sub %v, want %s", claims["sub"], alice.subject)
	case !slices.Contains(aud, any(clientID)):
		t.Errorf("aud %v does not contain %s", claims["aud"], clientID)
	case claims["azp"] != clientID:
		t.Errorf("azp %v, want %s", claims["azp"], clientID)
	case time.Unix(int64(exp), 0).Before(time.Now()):
		t.Errorf("exp %v is not in the future", claims["exp"])
	case claims["at_hash"] != halfHash(accessToken):
		// alg none names no hash, so at_hash is SHA-256's left half.
		t.Errorf("at_hash %v, want %s", claims["at_hash"], halfHash(accessToken))
	}
}

// TestUnsignedIDTokens registers a code-flow client with
// id_token_signed_response_alg none through the admin API and runs it
// from authorization to logout: the token endpoint's ID tokens, first and
// refreshed, are unsigned with the right claims, while everything else the
// provider signs for the client (signed userinfo, the logout token) stays
// signed. Latchkey's access tokens are opaque (fosite's HMAC strategy):
// there is no JWT access token to check.
func TestUnsignedIDTokens(t *testing.T) {
	e := newEnv(t, fastLogouts(prometheus.NewRegistry()), loopbackRPs)
	rc := newLogoutReceiver(t)
	a := adminCall(t, e, http.MethodPost, "/admin/clients", map[string]any{
		"client_id":                           "unsigned-rp",
		"redirect_uris":                       []string{rpRedirect},
		"grant_types":                         []string{"authorization_code", "refresh_token"},
		"scope":                               "openid profile email offline_access",
		"id_token_signed_response_alg":        "none",
		"userinfo_signed_response_alg":        "RS256",
		"post_logout_redirect_uris":           []string{loggedOut},
		"backchannel_logout_uri":              rc.uri(),
		"backchannel_logout_session_required": true,
	})
	var c adminClient
	adminDecode(t, a, http.StatusCreated, &c)
	if c.IDTokenSignedResponseAlg != "none" || !slices.Equal(c.ResponseTypes, []string{"code"}) || c.ClientSecret == "" {
		t.Fatalf("created client: alg %q, response_types %v", c.IDTokenSignedResponseAlg, c.ResponseTypes)
	}

	b := newBrowser(t)
	tr := e.exchange(c.ID, c.ClientSecret, mustCode(t, b.authorize(e.issuer(), codeParams(c.ID))))
	if tr.Status != http.StatusOK || tr.IDToken == "" || tr.RefreshToken == "" {
		t.Fatalf("exchange: %+v", tr)
	}
	claims := e.unsignedIDToken(t, tr.IDToken)
	e.checkIDTokenClaims(t, claims, c.ID, tr.AccessToken)
	if claims["nonce"] != "nonce-0123456789" || claims["email"] != nil {
		t.Errorf("nonce %v, email %v: want the request's nonce and no email (userinfo has it)", claims["nonce"], claims["email"])
	}
	sid, _ := claims["sid"].(string)
	if sid == "" {
		t.Fatalf("no sid: %v", claims)
	}

	// A refresh issues an unsigned ID token again, for the new access token.
	rt := e.postToken(c.ID, c.ClientSecret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}})
	if rt.Status != http.StatusOK || rt.IDToken == "" {
		t.Fatalf("refresh: %+v", rt)
	}
	refreshed := e.unsignedIDToken(t, rt.IDToken)
	e.checkIDTokenClaims(t, refreshed, c.ID, rt.AccessToken)
	if refreshed["sid"] != sid {
		t.Errorf("refreshed sid %v, want %s", refreshed["sid"], sid)
	}

	// Userinfo, signed as the client registered, is signed.
	ctx := context.Background()
	ui := userinfoGET(t, e, rt.AccessToken)
	if ui.Status != http.StatusOK || ui.Header.Get("Content-Type") != "application/jwt" {
		t.Fatalf("userinfo: %d %s %s", ui.Status, ui.Header.Get("Content-Type"), ui.Body)
	}
	if h := jwtHeader(t, string(ui.Body)); h["alg"] != "RS256" || h["kid"] == nil {
		t.Errorf("userinfo header %v, want RS256 with a kid", h)
	}
	if _, err := oidc.NewRemoteKeySet(ctx, e.issuer()+"/.well-known/jwks.json").VerifySignature(ctx, string(ui.Body)); err != nil {
		t.Errorf("userinfo JWT does not verify against the JWKS: %v", err)
	}

	// The client's own unsigned ID token is no id_token_hint: the
	// end-session endpoint refuses it as it refuses a forged one.
	before := countKind(e.login.seenKinds(), "logout")
	res := b.get(e.logoutURL(url.Values{"id_token_hint": {rt.IDToken}, "post_logout_redirect_uri": {loggedOut}}))
	if res.Status != http.StatusBadRequest || res.Mode != "" || !strings.Contains(res.Body, "not an ID token this provider issued") {
		t.Fatalf("logout with the unsigned ID token as hint: %d %q %.300s", res.Status, res.Mode, res.Body)
	}
	if countKind(e.login.seenKinds(), "logout") != before {
		t.Fatal("the login app was asked to log out on an unsigned hint")
	}

	// Logging out by client_id asks the user, and the client's logout
	// token is signed, with the default algorithm.
	res = b.get(e.logoutURL(url.Values{"client_id": {c.ID}, "post_logout_redirect_uri": {loggedOut}}))
	if res.Mode != "query" {
		t.Fatalf("logout by client_id: %d %v %.300s", res.Status, res.Params, res.Body)
	}
	if v := e.login.lastSeen("logout"); v.Skip {
		t.Error("a logout without id_token_hint was marked skippable")
	}
	e.run()
	waitFor(t, "the logout token is delivered", func() bool { return len(rc.requests()) > 0 })
	got := rc.requests()[0]
	checkLogoutRequest(t, e, publishedKeys(t, e), got, c.ID, sid)
	if h := jwtHeader(t, got.form.Get("logout_token")); h["alg"] != "RS256" {
		t.Errorf("logout token header %v, want RS256", h)
	}
}

// TestUnsignedIDTokensNeverFromAuthorizationEndpoint stores, bypassing the
// metadata checks, a client with alg none that may also ask for ID tokens
// from the authorization endpoint: the provider answers those requests
// with server_error and issues nothing, rather than an unsigned token (or a
// signed one the client did not register for). Its code flow still gets
// its unsigned ID token from the token endpoint.
func TestUnsignedIDTokensNeverFromAuthorizationEndpoint(t *testing.T) {
	e := newEnv(t)
	c := webClient(e, func(c *store.Client) { c.IDTokenSignedResponseAlg = "none" })
	for _, rt := range []string{"code id_token", "id_token", "id_token token", "code id_token token"} {
		t.Run(strings.ReplaceAll(rt, " ", "+"), func(t *testing.T) {
			p := codeParams(c.ID)
			p.Set("response_type", rt)
			res := newBrowser(t).authorize(e.issuer(), p)
			if res.Params.Get("error") != "server_error" || res.Params.Get("state") != "state-0123456789" {
				t.Fatalf("got %d %q %v %.300s", res.Status, res.Mode, res.Params, res.Body)
			}
			for _, name := range []string{"id_token", "code", "access_token"} {
				if res.Params.Has(name) {
					t.Errorf("the error response carries %s: %v", name, res.Params)
				}
			}
		})
	}
	tr := e.exchange(c.ID, testSecret, mustCode(t, newBrowser(t).authorize(e.issuer(), codeParams(c.ID))))
	if tr.Status != http.StatusOK {
		t.Fatalf("exchange: %+v", tr)
	}
	e.checkIDTokenClaims(t, e.unsignedIDToken(t, tr.IDToken), c.ID, tr.AccessToken)
}

// TestUnsignedIDTokenHintRefused re-encodes a genuine ID token with alg none
// and no signature (the OpenID Foundation's ChangeIdTokenToAlgNone): the
// authorization endpoint treats it as no ID token of the provider's, and
// the end-session endpoint does not honour it.
func TestUnsignedIDTokenHintRefused(t *testing.T) {
	e := newEnv(t)
	c := e.rpClient()
	e.login.consent = func(v provider.ChallengeView) any {
		return provider.ConsentAccept{GrantScope: v.RequestedScope, Remember: true, Session: provider.ConsentSession{Claims: alice.claims}}
	}
	b := newBrowser(t)
	hint := e.signIn(b, c)
	claims, _ := e.idTokenClaims(hint)
	_, payload, _ := strings.Cut(hint, ".")
	payload, _, _ = strings.Cut(payload, ".")
	enc := func(h string) string { return base64.RawURLEncoding.EncodeToString([]byte(h)) }
	kid, _ := jwtHeader(t, hint)["kid"].(string)
	forged := map[string]string{
		"alg none":          enc(`{"alg":"none","typ":"JWT"}`) + "." + payload + ".",
		"alg none with kid": enc(`{"alg":"none","kid":"`+kid+`"}`) + "." + payload + ".",
	}

	params := func(hint string) url.Values {
		p := codeParams(c.ID)
		p.Set("scope", "openid")
		p.Set("prompt", "none")
		p.Set("id_token_hint", hint)
		return p
	}
	// The genuine hint names the signed-in user: prompt=none succeeds.
	mustCode(t, b.authorize(e.issuer(), params(hint)))
	for name, tok := range forged {
		t.Run("authorize/"+name, func(t *testing.T) {
			res := b.authorize(e.issuer(), params(tok))
			if res.Params.Get("error") != "login_required" || res.Params.Has("code") {
				t.Fatalf("prompt=none with an unsigned hint: %d %v", res.Status, res.Params)
			}
		})
		t.Run("end session/"+name, func(t *testing.T) {
			res := b.get(e.logoutURL(url.Values{"id_token_hint": {tok}, "post_logout_redirect_uri": {loggedOut}, "state": {"s"}}))
			if res.Status != http.StatusBadRequest || res.Mode != "" || !strings.Contains(res.Body, "not an ID token this provider issued") {
				t.Fatalf("logout with an unsigned hint: %d %q %.300s", res.Status, res.Mode, res.Body)
			}
		})
	}
	if n := countKind(e.login.seenKinds(), "logout"); n != 0 {
		t.Fatalf("the login app was shown %d logout challenges", n)
	}
	if !e.signedIn(b, c) {
		t.Fatal("an unsigned hint ended the session")
	}
	// The genuine hint is honoured: the logout may skip the question.
	res := b.get(e.logoutURL(url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {loggedOut}}))
	if res.Mode != "query" {
		t.Fatalf("logout with the genuine hint: %d %.300s", res.Status, res.Body)
	}
	if v := e.login.lastSeen("logout"); !v.Skip || v.Subject != claims["sub"] {
		t.Errorf("the genuine hint was not honoured: %+v", v)
	}
}

// TestUnsignedIDTokenClientMetadata: registration and the admin API accept
// id_token_signed_response_alg none for a client without a response type
// that returns an ID token from the authorization endpoint, and refuse it,
// naming the rule, for one with such a response type, on creation and on
// update.
func TestUnsignedIDTokenClientMetadata(t *testing.T) {
	e := registrationEnv(t, provider.RegistrationOpen, nil)
	reg := e.register(t, map[string]any{"redirect_uris": []string{rpRedirect}, "id_token_signed_response_alg": "none"})
	if reg["id_token_signed_response_alg"] != "none" || !sameJSON(t, reg["response_types"], []string{"code"}) {
		t.Errorf("registered %v", reg)
	}
	var created adminClient
	adminDecode(t, adminCall(t, e, http.MethodPost, "/admin/clients", map[string]any{
		"client_id": "device-app", "grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code"},
		"token_endpoint_auth_method": "none", "id_token_signed_response_alg": "none",
	}), http.StatusCreated, &created)
	if created.IDTokenSignedResponseAlg != "none" {
		t.Errorf("created %+v", created.Client)
	}

	hybrid := map[string]any{
		"redirect_uris": []string{rpRedirect}, "id_token_signed_response_alg": "none",
		"grant_types": []string{"authorization_code", "implicit"}, "response_types": []string{"code", "code id_token"},
	}
	refused := func(t *testing.T, a httpAnswer) {
		t.Helper()
		wantOAuthError(t, a, http.StatusBadRequest, "invalid_client_metadata")
		d, _ := a.JSON(t)["error_description"].(string)
		if !strings.Contains(d, "id_token_signed_response_alg none") || !strings.Contains(d, "authorization endpoint") || !strings.Contains(d, `"code id_token"`) {
			t.Errorf("error_description %q does not say which rule refused", d)
		}
	}
	t.Run("registration", func(t *testing.T) {
		refused(t, regCall(t, http.MethodPost, e.issuer()+"/oauth2/register", "", hybrid))
		// Updating the registered client to such a response type.
		update := maps.Clone(hybrid)
		update["client_id"] = reg["client_id"]
		refused(t, regCall(t, http.MethodPut, reg["registration_client_uri"].(string), "Bearer "+reg["registration_access_token"].(string), update))
	})
	t.Run("admin", func(t *testing.T) {
		refused(t, adminCall(t, e, http.MethodPost, "/admin/clients", hybrid))
		refused(t, adminCall(t, e, http.MethodPut, "/admin/clients/"+url.PathEscape(reg["client_id"].(string)), hybrid))
	})
	cs, err := e.store.ListClients(context.Background(), "", 10)
	if err != nil || len(cs) != 2 {
		t.Fatalf("%d clients (%v), want the two accepted", len(cs), err)
	}
	for _, c := range cs {
		if c.IDTokenSignedResponseAlg != "none" || slices.ContainsFunc(c.ResponseTypes, func(rt string) bool { return strings.Contains(rt, "id_token") }) {
			t.Errorf("stored %s: alg %q, response_types %v", c.ID, c.IDTokenSignedResponseAlg, c.ResponseTypes)
		}
	}
}
