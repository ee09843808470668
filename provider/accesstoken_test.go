package provider_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
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

// verifyAccessJWT checks raw is an RFC 9068 access token signed with alg by
// a key in the provider's JWKS, as a resource server would, and returns its
// claims.
func verifyAccessJWT(t *testing.T, e *env, raw, alg string) map[string]any {
	t.Helper()
	tok, err := josejwt.ParseSigned(raw)
	if err != nil {
		t.Fatalf("access token %q is not a JWS: %v", raw, err)
	}
	h := tok.Headers[0]
	if h.Algorithm != alg {
		t.Errorf("access token alg %s, want %s", h.Algorithm, alg)
	}
	if typ := h.ExtraHeaders[jose.HeaderType]; typ != "at+jwt" {
		t.Errorf("access token typ %v, want at+jwt (RFC 9068 §2.1)", typ)
	}
	var jwks jose.JSONWebKeySet
	a := do(t, mustRequest(t, http.MethodGet, e.issuer()+"/.well-known/jwks.json"))
	if err := json.Unmarshal(a.Body, &jwks); err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	keys := jwks.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q: %d keys in the JWKS", h.KeyID, len(keys))
	}
	var claims map[string]any
	if err := tok.Claims(keys[0].Public(), &claims); err != nil {
		t.Fatalf("verify access token with the JWKS: %v", err)
	}
	return claims
}

func jwtClient(e *env, id, format, alg string, c *store.Client) *store.Client {
	c.ID = id
	c.AccessTokenFormat = format
	c.AccessTokenSigningAlg = alg
	return e.createClient(c, testSecret)
}

func TestJWTAccessTokenClientCredentials(t *testing.T) {
	e := newEnv(t)
	c := jwtClient(e, "api-caller", provider.AccessTokenJWT, "ES256", &store.Client{
		GrantTypes: []string{"client_credentials"}, Scope: "read write", Audience: []string{"https://api.example.test"},
	})
	before := time.Now().Add(-time.Second)
	tok := clientCredentialsToken(t, e, c, testSecret, []string{"read"}, url.Values{"audience": {"https://api.example.test"}})
	if tok.TokenType != "bearer" && tok.TokenType != "Bearer" {
		t.Errorf("token_type %q", tok.TokenType)
	}
	claims := verifyAccessJWT(t, e, tok.AccessToken, "ES256")
	want := map[string]any{
		"iss": e.issuer(), "sub": c.ID, "client_id": c.ID, "scope": "read",
	}
	for k, v := range want {
		if claims[k] != v {
			t.Errorf("claim %s = %v, want %v", k, claims[k], v)
		}
	}
	if aud, _ := claims["aud"].([]any); len(aud) != 1 || aud[0] != "https://api.example.test" {
		t.Errorf("aud %v, want the granted audience", claims["aud"])
	}
	if jti, _ := claims["jti"].(string); len(jti) < 16 {
		t.Errorf("jti %q, want a unique ID", jti)
	}
	iat, exp := unixField(t, claims, "iat"), unixField(t, claims, "exp")
	if iat.Before(before.Truncate(time.Second)) || iat.After(time.Now()) {
		t.Errorf("iat %v, want about now", iat)
	}
	if d := exp.Sub(iat); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("exp - iat = %v, want the access token lifespan of 1h", d)
	}
	for _, k := range []string{"auth_time", "acr", "amr"} {
		if _, ok := claims[k]; ok {
			t.Errorf("client credentials token has %s", k)
		}
	}

	// The JWT is stored like an opaque token: introspection agrees with
	// it, and revocation ends it.
	auth := clientAuth{id: c.ID, secret: testSecret, basic: true}
	in := assertActive(t, introspect(t, e, auth, tok.AccessToken))
	if in["sub"] != c.ID || in["exp"] != claims["exp"] {
		t.Errorf("introspection %v disagrees with the JWT %v", in, claims)
	}
	if a := postClientForm(t, e.issuer()+"/oauth2/revoke", auth, url.Values{"token": {tok.AccessToken}}); a.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", a.Status, a.Body)
	}
	assertInactive(t, introspect(t, e, auth, tok.AccessToken))

	// Without a granted audience, aud is the userinfo endpoint, the one
	// resource the provider serves to every token (RFC 9068 §3 requires
	// an aud).
	tok = clientCredentialsToken(t, e, c, testSecret, nil, nil)
	claims = verifyAccessJWT(t, e, tok.AccessToken, "ES256")
	if aud, _ := claims["aud"].([]any); len(aud) != 1 || aud[0] != e.issuer()+"/userinfo" {
		t.Errorf("aud %v, want the userinfo endpoint", claims["aud"])
	}
	if _, ok := claims["scope"]; ok {
		t.Errorf("scope %v for a token granted none", claims["scope"])
	}
}

func TestJWTAccessTokenCodeFlow(t *testing.T) {
	e := newEnv(t)
	e.login.consent = func(v provider.ChallengeView) any {
		return provider.ConsentAccept{GrantScope: v.RequestedScope, GrantAudience: v.RequestedAudience,
			Session: provider.ConsentSession{Claims: alice.claims,
				// Extra claims come along but never replace the token's own.
				AccessToken: map[string]any{"department": "maths", "sub": "mallory", "client_id": "other", "scope": "admin"}}}
	}
	c := jwtClient(e, "pairwise-rp", provider.AccessTokenJWT, "", &store.Client{
		GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
		Scope: "openid profile offline_access", SubjectType: "pairwise",
	})
	tok := codeFlowTokens(t, e, c, testSecret, []string{"openid", "profile", "offline_access"})
	// The default algorithm signs when the client names none.
	claims := verifyAccessJWT(t, e, tok.AccessToken, "RS256")
	idToken, _ := tok.Extra("id_token").(string)
	sub := pairwiseSub(t, e, rpHost, alice.subject)
	if e.subOf(idToken) != sub {
		t.Fatalf("ID token sub is not the pairwise one")
	}
	want := map[string]any{
		"sub": sub, "client_id": c.ID, "scope": "openid profile offline_access", "acr": "1", "department": "maths",
	}
	for k, v := range want {
		if claims[k] != v {
			t.Errorf("claim %s = %v, want %v", k, claims[k], v)
		}
	}
	if amr, _ := claims["amr"].([]any); len(amr) != 1 || amr[0] != "pwd" {
		t.Errorf("amr %v, want [pwd]", claims["amr"])
	}
	if at := unixField(t, claims, "auth_time"); time.Since(at) > time.Minute {
		t.Errorf("auth_time %v, want the sign-in just now", at)
	}
	// at_hash binds the ID token to the JWT as to an opaque token.
	idClaims, _ := e.idTokenClaims(idToken)
	if idClaims["at_hash"] != halfHash(tok.AccessToken) {
		t.Errorf("at_hash %v does not match the JWT access token", idClaims["at_hash"])
	}

	if a := userinfoGET(t, e, tok.AccessToken); a.Status != http.StatusOK || a.JSON(t)["sub"] != sub {
		t.Fatalf("userinfo with the JWT: %d %s", a.Status, a.Body)
	}

	// A refresh issues a new JWT and ends the old one.
	refreshed := e.postToken(c.ID, testSecret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
	if refreshed.Status != http.StatusOK {
		t.Fatalf("refresh: %d %s %s", refreshed.Status, refreshed.Error, refreshed.Description)
	}
	newAT := refreshed.AccessToken
	newClaims := verifyAccessJWT(t, e, newAT, "RS256")
	if newClaims["sub"] != sub || newClaims["jti"] == claims["jti"] {
		t.Errorf("refreshed token claims %v", newClaims)
	}
	if a := userinfoGET(t, e, tok.AccessToken); a.Status != http.StatusUnauthorized {
		t.Errorf("userinfo with the replaced JWT: %d %s, want 401", a.Status, a.Body)
	}
	if a := userinfoGET(t, e, newAT); a.Status != http.StatusOK {
		t.Errorf("userinfo with the refreshed JWT: %d %s", a.Status, a.Body)
	}

	// Neither the ID token (signed with the same keys, typ JWT) nor a JWT
	// with one claim changed is an access token.
	auth := clientAuth{id: c.ID, secret: testSecret, basic: true}
	for name, bad := range map[string]string{
		"ID token":       idToken,
		"altered claims": alterClaim(t, newAT, "scope", "openid profile offline_access admin"),
	} {
		if a := userinfoGET(t, e, bad); a.Status != http.StatusUnauthorized {
			t.Errorf("userinfo with the %s: %d %s, want 401", name, a.Status, a.Body)
		}
		assertInactive(t, introspect(t, e, auth, bad))
	}
}

// alterClaim returns raw with one payload claim replaced and the signature
// kept.
func alterClaim(t *testing.T, raw, name string, value any) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims[name] = value
	payload, err = json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

// TestJWTAccessTokenEveryGrant: every grant that issues an access token
// issues a JWT to a client that chose them, and the JWT works at userinfo.
func TestJWTAccessTokenEveryGrant(t *testing.T) {
	e := newEnv(t)
	web := webClient(e, func(c *store.Client) { c.AccessTokenFormat = provider.AccessTokenJWT })
	ropc := jwtClient(e, "legacy", provider.AccessTokenJWT, "ES256", &store.Client{GrantTypes: []string{"password"}, Scope: "openid"})
	device := e.createClient(&store.Client{ID: "tv", GrantTypes: []string{deviceGrant}, Scope: "openid", AccessTokenFormat: provider.AccessTokenJWT}, "")

	tokens := map[string]string{}
	for _, rt := range []string{"id_token token", "code token"} {
		params := codeParams(web.ID)
		params.Set("response_type", rt)
		res := newBrowser(t).authorize(e.issuer(), params)
		tokens[rt] = res.Params.Get("access_token")
	}
	tr := e.postToken(ropc.ID, testSecret, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alice.password}, "scope": {"openid"}})
	tokens["password"] = tr.AccessToken

	conf := e.oauth2Config(device.ID, "", oauth2.AuthStyleInParams, "openid")
	da, err := conf.DeviceAuth(context.Background())
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	if res := newBrowser(t).get(da.VerificationURIComplete); res.Status != http.StatusOK {
		t.Fatalf("device verification: %d %.300s", res.Status, res.Body)
	}
	status, out := e.poll(device.ID, da.DeviceCode)
	if status != http.StatusOK {
		t.Fatalf("device token: %d %v", status, out)
	}
	tokens["device_code"], _ = out["access_token"].(string)

	for grant, at := range tokens {
		alg := "RS256"
		if grant == "password" {
			alg = "ES256"
		}
		claims := verifyAccessJWT(t, e, at, alg)
		if claims["sub"] != alice.subject {
			t.Errorf("%s: sub %v, want %s", grant, claims["sub"], alice.subject)
		}
		if a := userinfoGET(t, e, at); a.Status != http.StatusOK {
			t.Errorf("%s: userinfo with the JWT: %d %s", grant, a.Status, a.Body)
		}
	}
}

func TestJWTAccessTokenExpires(t *testing.T) {
	e := newEnv(t, func(c *provider.Config) { c.AccessTokenLifespan = time.Second })
	c := jwtClient(e, "short", provider.AccessTokenJWT, "EdDSA", &store.Client{GrantTypes: []string{"client_credentials"}})
	tok := clientCredentialsToken(t, e, c, testSecret, nil, nil)
	exp := unixField(t, verifyAccessJWT(t, e, tok.AccessToken, "EdDSA"), "exp")
	auth := clientAuth{id: c.ID, secret: testSecret, basic: true}
	assertActive(t, introspect(t, e, auth, tok.AccessToken))
	time.Sleep(time.Until(exp) + 1100*time.Millisecond)
	assertInactive(t, introspect(t, e, auth, tok.AccessToken))
}

// TestAccessTokenFormatDefault: the operator's default applies to clients
// that choose none, and a client's own choice wins.
func TestAccessTokenFormatDefault(t *testing.T) {
	e := newEnv(t, func(c *provider.Config) { c.AccessTokenFormat = provider.AccessTokenJWT })
	for _, tc := range []struct {
		format string
		jwt    bool
	}{{"", true}, {provider.AccessTokenJWT, true}, {provider.AccessTokenOpaque, false}} {
		c := jwtClient(e, "client-"+tc.format, tc.format, "", &store.Client{GrantTypes: []string{"client_credentials"}})
		tok := clientCredentialsToken(t, e, c, testSecret, nil, nil)
		if got := strings.Count(tok.AccessToken, ".") == 2; got != tc.jwt {
			t.Errorf("format %q: token %q, want JWT %v", tc.format, tok.AccessToken, tc.jwt)
		}
		assertActive(t, introspect(t, e, clientAuth{id: c.ID, secret: testSecret, basic: true}, tok.AccessToken))
	}

	if _, err := provider.New(t.Context(), e.store, provider.Config{
		Issuer: e.issuer(), SystemSecret: e.cfg.SystemSecret, AdminToken: adminToken, AccessTokenFormat: "jwe",
	}); err == nil || !strings.Contains(err.Error(), "access token format") {
		t.Errorf("an unknown default format: %v, want an error naming it", err)
	}
}

// TestAccessTokenFormatMetadata: the admin API refuses formats and
// algorithms the provider does not have, in the registration error shape.
func TestAccessTokenFormatMetadata(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"latchkey_access_token_format": "jwe"}, "latchkey_access_token_format"},
		{map[string]any{"latchkey_access_token_format": "jwt", "latchkey_access_token_signing_alg": "HS256"}, "latchkey_access_token_signing_alg"},
		{map[string]any{"latchkey_access_token_format": "jwt", "latchkey_access_token_signing_alg": "none"}, "latchkey_access_token_signing_alg"},
	} {
		tc.body["grant_types"] = []string{"client_credentials"}
		status, out, _ := e.adminCall(http.MethodPost, "/admin/clients", tc.body)
		desc, _ := out["error_description"].(string)
		if status != http.StatusBadRequest || out["error"] != "invalid_client_metadata" || !strings.Contains(desc, tc.field) {
			t.Errorf("%v: %d %v, want 400 invalid_client_metadata naming %s", tc.body, status, out, tc.field)
		}
	}
	body := map[string]any{"grant_types": []string{"client_credentials"}, "latchkey_access_token_format": "jwt", "latchkey_access_token_signing_alg": "ES256"}
	status, out, _ := e.adminCall(http.MethodPost, "/admin/clients", body)
	if status != http.StatusCreated {
		t.Fatalf("create a JWT client: %d %v", status, out)
	}
	if out["latchkey_access_token_format"] != "jwt" || out["latchkey_access_token_signing_alg"] != "ES256" {
		t.Errorf("stored client %v lost its access token settings", out)
	}
}
