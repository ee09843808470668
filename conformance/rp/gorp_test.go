package rp_test

// The Go relying party: golang.org/x/oauth2 (and its clientcredentials
// package) for the OAuth flows, and github.com/coreos/go-oidc/v3 for
// discovery, ID token verification and userinfo, used the way a Go web
// application uses them. Every endpoint comes from discovery. The browser
// is the scripted user agent; nothing listens at the redirect URIs, because
// the agent stops at a redirect to them and the test reads the response
// from it.
//
// The identifiers of these files start with "go" (goRP, TestGo…) because
// the Node relying party's tests share the package.

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey-oidc/latchkey/conformance"
	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
	"github.com/latchkey-oidc/latchkey/conformance/useragent"
)

const (
	// goRPOrigin is the relying party's origin: a loopback port nothing
	// listens on. The browser stops at any redirect into it.
	goRPOrigin = "http://127.0.0.1:9/"
	// goCallback is the registered redirect URI.
	goCallback = goRPOrigin + "go/callback"
	// goLoggedOut is the registered post_logout_redirect_uri.
	goLoggedOut = goRPOrigin + "go/logged-out"
)

// goRP is a running Latchkey as a Go relying party sees it, and a user who
// signs in to it with a password and TOTP.
type goRP struct {
	srv *latchkeytest.Server
	op  *oidc.Provider
	// endpoints are the discovery members go-oidc does not model.
	endpoints goEndpoints

	user *useragent.User
	// subject and email are what tokens and userinfo must say of the user.
	subject, email string
}

// goEndpoints are read from the discovery document with
// oidc.Provider.Claims.
type goEndpoints struct {
	Introspection string `json:"introspection_endpoint"`
	Revocation    string `json:"revocation_endpoint"`
	EndSession    string `json:"end_session_endpoint"`
}

// startGoRP starts a Latchkey, creates the user and discovers the provider.
func startGoRP(t *testing.T, opts latchkeytest.Options) *goRP {
	t.Helper()
	srv := latchkeytest.Start(t, opts)
	seed := make([]byte, 20)
	_, _ = rand.Read(seed) // never fails (crypto/rand)
	const username, password = "alice", "correct horse battery staple"
	u := srv.CreateUser(username, password, seed)

	op, err := oidc.NewProvider(t.Context(), srv.Issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	var ep goEndpoints
	if err := op.Claims(&ep); err != nil {
		t.Fatalf("discovery document: %v", err)
	}
	return &goRP{
		srv: srv, op: op, endpoints: ep,
		user:    &useragent.User{Username: username, Password: password, Authenticator: useragent.NewAuthenticator(seed)},
		subject: u.ID, email: u.Email,
	}
}

// goClient is a registered client as the relying party configures the
// libraries for it.
type goClient struct {
	latchkeytest.Client
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier
}

// register registers a client with meta (RFC 7591 names) and configures
// x/oauth2 and go-oidc for it. The client asks for every scope it is
// registered for. The oauth2 auth style follows token_endpoint_auth_method,
// as a relying party sets it from its registration: Latchkey accepts the
// secret only where the client registered it (and a public client sends
// only its client_id, in the body).
func (r *goRP) register(t *testing.T, meta map[string]any) goClient {
	t.Helper()
	c := r.srv.CreateClient(meta)
	ep := r.op.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInHeader
	if m := meta["token_endpoint_auth_method"]; m == "client_secret_post" || m == "none" {
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	scope, _ := meta["scope"].(string)
	return goClient{
		Client: c,
		oauth: &oauth2.Config{
			ClientID: c.ID, ClientSecret: c.Secret, Endpoint: ep,
			RedirectURL: goCallback, Scopes: strings.Fields(scope),
		},
		verifier: r.op.Verifier(&oidc.Config{ClientID: c.ID}),
	}
}

// browser returns a new browser, with no session, that stops at the
// relying party.
func (r *goRP) browser() *useragent.Agent { return useragent.New(nil, goRPOrigin) }

// browse opens u in the browser and answers the login app's pages as the
// user, ticking "keep me signed in", until the browser leaves the login
// app: at a redirect to the relying party, a form_post page or a page of
// the provider's own. It returns that page and the pages answered.
func (r *goRP) browse(t *testing.T, a *useragent.Agent, u string) (*useragent.Page, useragent.Seen) {
	t.Helper()
	if _, err := a.Get(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	p, seen, err := a.Continue(t.Context(), useragent.Interaction{User: r.user, Remember: true})
	if err != nil {
		t.Fatalf("answer the login app's pages: %v", err)
	}
	return p, seen
}

// goCodeFlow is what a finished authorization code flow gave the relying
// party.
type goCodeFlow struct {
	// Params is the authorization response at the redirect URI.
	Params url.Values
	// Seen are the login app pages the user answered.
	Seen useragent.Seen
	// Verifier is the PKCE code verifier the code was exchanged with.
	Verifier   string
	Token      *oauth2.Token
	RawIDToken string
	IDToken    *oidc.IDToken
}

// codeFlow runs the authorization code flow with PKCE (S256) and a nonce in
// browser a, exchanges the code and verifies the ID token, checking state
// and nonce as a relying party must.
func (r *goRP) codeFlow(t *testing.T, a *useragent.Agent, c goClient) goCodeFlow {
	t.Helper()
	verifier, state, nonce := oauth2.GenerateVerifier(), rand.Text(), rand.Text()
	page, seen := r.browse(t, a, c.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)))
	params := callbackParams(t, page, false)
	if params.Get("state") != state {
		t.Fatalf("state %q at the redirect URI, want %q", params.Get("state"), state)
	}
	tok, err := c.oauth.Exchange(t.Context(), params.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange the code: %v", err)
	}
	raw := rawIDToken(t, tok)
	idt := c.verify(t, raw)
	// go-oidc leaves the nonce to the caller (Core §3.1.3.7 step 11).
	if idt.Nonce != nonce {
		t.Errorf("ID token nonce %q, want %q", idt.Nonce, nonce)
	}
	return goCodeFlow{Params: params, Seen: seen, Verifier: verifier, Token: tok, RawIDToken: raw, IDToken: idt}
}

// callbackParams returns the successful response the browser brought to
// the redirect URI: from the fragment when fragment is set, else from the
// query.
func callbackParams(t *testing.T, p *useragent.Page, fragment bool) url.Values {
	t.Helper()
	v := redirectParams(t, p, goCallback, fragment)
	if v.Get("error") != "" {
		t.Fatalf("authorization error: %s: %s", v.Get("error"), v.Get("error_description"))
	}
	return v
}

// redirectParams checks that the browser stopped at a redirect to target
// and returns the parameters the redirect carries, in the fragment when
// fragment is set, else in the query. The other part must be empty, so
// that a response never leaks into the part of the URL its response mode
// does not use.
func redirectParams(t *testing.T, p *useragent.Page, target string, fragment bool) url.Values {
	t.Helper()
	if !p.Redirect {
		t.Fatalf("the browser stopped at %s (status %d), not at %s: %.500s", p.URL.Redacted(), p.Status, target, p.Body)
	}
	u := *p.URL
	query, frag := u.RawQuery, u.Fragment
	u.RawQuery, u.Fragment = "", ""
	if u.String() != target {
		t.Fatalf("redirected to %s, want %s", p.URL.Redacted(), target)
	}
	raw, other := query, frag
	if fragment {
		raw, other = frag, query
	}
	if other != "" {
		t.Fatalf("parameters in the wrong part of %s", p.URL.Redacted())
	}
	v, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatalf("parameters %q: %v", raw, err)
	}
	return v
}

// rawIDToken returns the ID token of a token response.
func rawIDToken(t *testing.T, tok *oauth2.Token) string {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("the token response has no ID token")
	}
	return raw
}

// verify checks an ID token as go-oidc does for the client: signature by
// a key of the provider's JWKS, issuer, audience and expiry.
func (c goClient) verify(t *testing.T, raw string) *oidc.IDToken {
	t.Helper()
	idt, err := c.verifier.Verify(t.Context(), raw)
	if err != nil {
		t.Fatalf("verify the ID token: %v", err)
	}
	return idt
}

// goClaims are the ID token and userinfo claims the tests read beyond
// what go-oidc parses.
type goClaims struct {
	AMR   []string `json:"amr"`
	Email string   `json:"email"`
	CHash string   `json:"c_hash"`
}

func claimsOf(t *testing.T, idt *oidc.IDToken) goClaims {
	t.Helper()
	var c goClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// checkMFA checks that an ID token says the user signed in with a one-time
// password as a second factor (RFC 8176 "otp" and "mfa").
func checkMFA(t *testing.T, idt *oidc.IDToken) {
	t.Helper()
	amr := claimsOf(t, idt).AMR
	if !slices.Contains(amr, "otp") || !slices.Contains(amr, "mfa") {
		t.Errorf("amr %q, want otp and mfa for a sign-in with TOTP", amr)
	}
}

// leftHalfHash is the c_hash (or at_hash) of value for an ID token (Core
// §3.3.2.11). go-oidc checks at_hash (IDToken.VerifyAccessToken) but has
// no check for c_hash. Call it only on a verified ID token, whose header
// is then trustworthy.
func leftHalfHash(t *testing.T, rawIDToken, value string) string {
	t.Helper()
	enc, _, _ := strings.Cut(rawIDToken, ".")
	b, err := base64.RawURLEncoding.DecodeString(enc)
	var header struct {
		Alg string `json:"alg"`
	}
	if err == nil {
		err = json.Unmarshal(b, &header)
	}
	if err != nil {
		t.Fatalf("ID token header: %v", err)
	}
	h, ok := conformance.LeftHalfHash(header.Alg, value)
	if !ok {
		t.Fatalf("ID token signed with %q, which has no hash for c_hash", header.Alg)
	}
	return h
}

// oauthError is the OAuth error code (RFC 6749 §5.2) of a failed token
// request made with x/oauth2, or "" when err is not one.
func oauthError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

// TestGoCodeFlowWithPKCE runs the authorization code flow with PKCE
// (RFC 7636, S256) and a nonce, for a confidential and for a public client:
// x/oauth2 builds the request and exchanges the code, go-oidc verifies the
// ID token and calls userinfo. The user signs in with a password and TOTP,
// which the ID token's amr must say.
func TestGoCodeFlowWithPKCE(t *testing.T) {
	r := startGoRP(t, latchkeytest.Options{})
	codeClient := func(authMethod string) goClient {
		return r.register(t, map[string]any{
			"client_name":                "Go RP (" + authMethod + ")",
			"redirect_uris":              []string{goCallback},
			"grant_types":                []string{"authorization_code"},
			"response_types":             []string{"code"},
			"scope":                      "openid profile email",
			"token_endpoint_auth_method": authMethod,
		})
	}
	cases := []struct {
		name   string
		client goClient
	}{
		{"confidential client", codeClient("client_secret_basic")},
		{"public client", codeClient("none")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, ctx := tc.client, t.Context()
			// A new browser each, so that each flow signs in with TOTP.
			a := r.browser()
			f := r.codeFlow(t, a, c)
			if !f.Seen.SignIn || !f.Seen.SecondFactor || !f.Seen.Consent {
				t.Errorf("the user answered %+v, want sign-in, TOTP and consent", f.Seen)
			}
			// RFC 9207: the issuer in the response lets a client of
			// several providers tell which one answered.
			if got := f.Params.Get("iss"); got != r.srv.Issuer {
				t.Errorf("iss %q in the authorization response, want %q", got, r.srv.Issuer)
			}
			if f.IDToken.Subject != r.subject {
				t.Errorf("ID token sub %q, want the user's ID %q", f.IDToken.Subject, r.subject)
			}
			checkMFA(t, f.IDToken)

			ui, err := r.op.UserInfo(ctx, oauth2.StaticTokenSource(f.Token))
			if err != nil {
				t.Fatalf("userinfo: %v", err)
			}
			if ui.Subject != f.IDToken.Subject || ui.Email != r.email || !ui.EmailVerified {
				t.Errorf("userinfo sub %q email %q verified %v, want %q %q true", ui.Subject, ui.Email, ui.EmailVerified, f.IDToken.Subject, r.email)
			}

			// A code is single-use, and a replayed code revokes the tokens
			// it gave (RFC 6749 §4.1.2, §10.5).
			_, err = c.oauth.Exchange(ctx, f.Params.Get("code"), oauth2.VerifierOption(f.Verifier))
			if oauthError(err) != "invalid_grant" {
				t.Errorf("replayed code: %v, want invalid_grant", err)
			}
			if _, err := r.op.UserInfo(ctx, oauth2.StaticTokenSource(f.Token)); err == nil {
				t.Error("userinfo still accepts the access token of a replayed code")
			}

			// The code is bound to its challenge: exchanged with another
			// verifier it is refused. The browser's session gives a second
			// code without a sign-in.
			state := rand.Text()
			page, seen := r.browse(t, a, c.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
			if seen.SignIn || seen.SecondFactor {
				t.Errorf("the second flow asked the user to sign in again: %+v", seen)
			}
			params := callbackParams(t, page, false)
			if params.Get("state") != state {
				t.Fatalf("state %q at the redirect URI, want %q", params.Get("state"), state)
			}
			_, err = c.oauth.Exchange(ctx, params.Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier()))
			if oauthError(err) != "invalid_grant" {
				t.Errorf("code exchanged with the wrong PKCE verifier: %v, want invalid_grant", err)
			}
		})
	}
}

// TestGoRefreshTokenRotation refreshes through an oauth2.TokenSource whose
// access token has expired: the refresh token rotates, a new ID token names
// the same user, the spent refresh token is refused, and replaying it
// revokes its successor too (reuse detection, RFC 9700 §4.14.2).
func TestGoRefreshTokenRotation(t *testing.T) {
	r := startGoRP(t, latchkeytest.Options{})
	c := r.register(t, map[string]any{
		"client_name":    "Go RP (refresh)",
		"redirect_uris":  []string{goCallback},
		"grant_types":    []string{"authorization_code", "refresh_token"},
		"response_types": []string{"code"},
		"scope":          "openid email offline_access",
	})
	ctx := t.Context()
	f := r.codeFlow(t, r.browser(), c)
	first := f.Token
	if first.RefreshToken == "" {
		t.Fatal("no refresh token although offline_access was granted")
	}

	// The token source refreshes because the access token has expired, as
	// it would an hour later.
	expired := *first
	expired.Expiry = time.Now().Add(-time.Minute)
	second, err := c.oauth.TokenSource(ctx, &expired).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if second.AccessToken == "" || second.AccessToken == first.AccessToken {
		t.Errorf("refresh gave access token %q, want a new one", second.AccessToken)
	}
	if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
		t.Fatalf("refresh gave refresh token %q, want a new one (rotation)", second.RefreshToken)
	}
	// Core §12.2: a refreshed ID token has the original iss and sub.
	if idt := c.verify(t, rawIDToken(t, second)); idt.Subject != f.IDToken.Subject {
		t.Errorf("refreshed ID token sub %q, want %q", idt.Subject, f.IDToken.Subject)
	}
	if ui, err := r.op.UserInfo(ctx, oauth2.StaticTokenSource(second)); err != nil || ui.Subject != r.subject {
		t.Errorf("userinfo with the refreshed access token: %v %+v", err, ui)
	}

	refresh := func(refreshToken string) error {
		// No access token: the source must refresh.
		_, err := c.oauth.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
		return err
	}
	if err := refresh(first.RefreshToken); oauthError(err) != "invalid_grant" {
		t.Errorf("the rotated-out refresh token: %v, want invalid_grant", err)
	}
	if err := refresh(second.RefreshToken); oauthError(err) != "invalid_grant" {
		t.Errorf("after a replay, its successor: %v, want invalid_grant (the family is revoked)", err)
	}
}
