package useragent_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
	"github.com/latchkey-oidc/latchkey/conformance/useragent"
)

const redirect = "http://127.0.0.1:9/cb"

// TestSignInWithTOTPAndConsent walks a code flow through the login app's
// sign-in, TOTP and consent pages and stops at the client's redirect.
func TestSignInWithTOTPAndConsent(t *testing.T) {
	srv := latchkeytest.Start(t, latchkeytest.Options{})
	seed := []byte("0123456789abcdefghij")
	srv.CreateUser("ua-user", "correct horse battery", seed)
	c := srv.CreateClient(map[string]any{
		"client_name": "UA", "redirect_uris": []string{redirect},
		"grant_types": []string{"authorization_code"}, "response_types": []string{"code"}, "scope": "openid",
	})
	user := &useragent.User{Username: "ua-user", Password: "correct horse battery", Authenticator: useragent.NewAuthenticator(seed)}
	ctx := context.Background()

	authorize := func(a *useragent.Agent) (*useragent.Page, useragent.Seen) {
		q := url.Values{"client_id": {c.ID}, "response_type": {"code"}, "scope": {"openid"},
			"redirect_uri": {redirect}, "state": {"state-123456"}, "nonce": {"nonce-123456"}}
		if _, err := a.Get(ctx, srv.Issuer+"/oauth2/auth?"+q.Encode()); err != nil {
			t.Fatal(err)
		}
		p, seen, err := a.Continue(ctx, useragent.Interaction{User: user, Remember: true})
		if err != nil {
			t.Fatal(err)
		}
		if !p.Redirect || p.URL.Query().Get("code") == "" || p.URL.Query().Get("state") != "state-123456" {
			t.Fatalf("stopped at %s (status %d), want a code at the client", p.URL, p.Status)
		}
		return p, seen
	}
	a := useragent.New(nil, redirect)
	if _, seen := authorize(a); !seen.SignIn || !seen.SecondFactor || !seen.Consent {
		t.Errorf("first flow saw %+v, want sign-in, second factor and consent", seen)
	}
	// The session and the remembered consent answer the second request.
	if _, seen := authorize(a); seen != (useragent.Seen{}) {
		t.Errorf("second flow saw %+v, want no page", seen)
	}
	// A new browser signs in again with a new time step.
	if _, seen := authorize(useragent.New(nil, redirect)); !seen.SecondFactor {
		t.Errorf("third flow saw %+v, want the second factor", seen)
	}
}

// TestWrongPasswordIsReported checks that a refused sign-in ends the walk
// with an error instead of a loop.
func TestWrongPasswordIsReported(t *testing.T) {
	srv := latchkeytest.Start(t, latchkeytest.Options{})
	srv.CreateUser("ua-user", "correct horse battery", nil)
	c := srv.CreateClient(map[string]any{
		"redirect_uris": []string{redirect}, "grant_types": []string{"authorization_code"},
		"response_types": []string{"code"}, "scope": "openid",
	})
	a := useragent.New(nil, redirect)
	ctx := context.Background()
	q := url.Values{"client_id": {c.ID}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {redirect}, "state": {"s-12345678"}}
	if _, err := a.Get(ctx, srv.Issuer+"/oauth2/auth?"+q.Encode()); err != nil {
		t.Fatal(err)
	}
	_, _, err := a.Continue(ctx, useragent.Interaction{User: &useragent.User{Username: "ua-user", Password: "wrong password!"}})
	if err == nil {
		t.Fatal("a wrong password was not reported")
	}
}
