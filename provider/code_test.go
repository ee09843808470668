package provider_test

import (
	"context"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey-oidc/latchkey/store"
)

// TestCodeFlowWithPKCE runs the authorization code flow with PKCE the way
// a Go relying party does it, with golang.org/x/oauth2 and go-oidc
// verifying the ID token against the provider's discovery and JWKS.
func TestCodeFlowWithPKCE(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.createClient(&store.Client{
		GrantTypes:    []string{"authorization_code", "refresh_token"},
		ResponseTypes: []string{"code"},
		Scope:         "openid profile email offline_access",
	}, testSecret)

	op, err := oidc.NewProvider(ctx, e.issuer())
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	conf := &oauth2.Config{
		ClientID:     c.ID,
		ClientSecret: testSecret,
		Endpoint:     op.Endpoint(),
		RedirectURL:  rpRedirect,
		Scopes:       []string{oidc.ScopeOpenID, "profile", "email", "offline_access"},
	}
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("state-1234567890", oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-1234567890"))

	res := newBrowser(t).get(authURL)
	if res.Mode != "query" || res.Params.Get("code") == "" {
		t.Fatalf("authorization did not return a code: %d %v %s", res.Status, res.Params, res.Body)
	}
	if got := res.Params.Get("state"); got != "state-1234567890" {
		t.Errorf("state = %q", got)
	}
	if got := res.Params.Get("iss"); got != e.issuer() {
		t.Errorf("iss = %q, want %q", got, e.issuer())
	}
	tok, err := conf.Exchange(ctx, res.Params.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := op.Verifier(&oidc.Config{ClientID: c.ID}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verify ID token: %v", err)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idt.Subject != alice.subject || idt.Nonce != "nonce-1234567890" {
		t.Errorf("sub %q nonce %q", idt.Subject, idt.Nonce)
	}
	if claims["azp"] != c.ID {
		t.Errorf("azp = %v, want %s", claims["azp"], c.ID)
	}
	for _, name := range []string{"auth_time", "sid", "at_hash", "acr", "amr"} {
		if claims[name] == nil {
			t.Errorf("ID token lacks %s: %v", name, claims)
		}
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Errorf("at_hash: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token for offline_access")
	}
	ui, err := op.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	if ui.Subject != alice.subject || ui.Email != "alice@example.test" {
		t.Errorf("userinfo = %+v", ui)
	}

	// x/oauth2 refreshes an expired token with the refresh token, which
	// rotates.
	expired := *tok
	expired.Expiry = time.Now().Add(-time.Minute)
	fresh, err := conf.TokenSource(ctx, &expired).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == "" || fresh.RefreshToken == tok.RefreshToken {
		t.Errorf("refresh did not rotate: %+v", fresh)
	}

	// The code is single-use.
	if _, err := conf.Exchange(ctx, res.Params.Get("code"), oauth2.VerifierOption(verifier)); err == nil {
		t.Error("a code was exchanged twice")
	}
}
