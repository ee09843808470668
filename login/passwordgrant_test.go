package login_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// passwordCheck calls the login app's password check as the provider
// does, with token as the bearer token ("" for none).
func passwordCheck(t *testing.T, e *env, token, username, password string) (int, map[string]string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": username, "password": password})
	req, _ := http.NewRequest(http.MethodPost, e.app.PublicURL()+"/internal/password", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("password check: %d %q, not JSON: %v", resp.StatusCode, resp.Header.Get("Content-Type"), err)
	}
	return resp.StatusCode, out
}

// grantError is the OAuth error code of a failed token request.
func grantError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

// TestPasswordGrant runs the resource owner password grant through the
// provider, which asks the login app: the right password gets tokens for
// the user's ID; everything else is invalid_grant, including users with a
// second factor, which the grant cannot ask for.
func TestPasswordGrant(t *testing.T) {
	e := newEnv(t)
	alice := e.createUser("alice", "a long enough passphrase")
	bob := e.createUser("bob", "another long passphrase")
	e.enrolTOTP(bob)
	c := e.createClient(map[string]any{
		"grant_types":    []string{"password", "refresh_token"},
		"response_types": []string{},
		"redirect_uris":  []string{},
	})
	ctx := context.Background()

	tok, err := c.oauth.PasswordCredentialsToken(ctx, "alice", "a long enough passphrase")
	if err != nil {
		t.Fatalf("password grant: %v", err)
	}
	if info := e.userinfo(tok.AccessToken); info["sub"] != alice.ID {
		t.Errorf("userinfo sub = %v, want %s", info["sub"], alice.ID)
	}
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		idt, err := c.verifier.Verify(ctx, raw)
		if err != nil || idt.Subject != alice.ID {
			t.Errorf("ID token: %v %+v", err, idt)
		}
	}
	if got := e.metric("latchkey_login_signins_total", map[string]string{"method": "password", "result": "success"}); got != 0 {
		t.Errorf("the grant counted as %v browser sign-ins", got)
	}

	for _, tc := range []struct{ name, username, password string }{
		{"wrong password", "alice", "not the passphrase"},
		{"unknown user", "mallory", "not the passphrase"},
		{"user with a second factor", "bob", "another long passphrase"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := c.oauth.PasswordCredentialsToken(ctx, tc.username, tc.password)
			if got := grantError(err); got != "invalid_grant" {
				t.Fatalf("got %v, token %+v; want invalid_grant", err, tok)
			}
		})
	}
}

// TestPasswordCheckEndpoint calls the login app's side of the grant
// directly: only the provider (with the admin token) may ask, and the
// account lockout of browser sign-ins applies.
func TestPasswordCheckEndpoint(t *testing.T) {
	e := newEnv(t)
	alice := e.createUser("alice", "a long enough passphrase")
	bob := e.createUser("bob", "another long passphrase")
	e.enrolTOTP(bob)

	for _, token := range []string{"", "not-the-admin-token"} {
		status, out := passwordCheck(t, e, token, "alice", "a long enough passphrase")
		if status != http.StatusUnauthorized || out["error"] != "invalid_token" || out["subject"] != "" {
			t.Errorf("token %q: %d %v", token, status, out)
		}
	}
	if status, out := passwordCheck(t, e, adminToken, "alice", "a long enough passphrase"); status != http.StatusOK || out["subject"] != alice.ID {
		t.Fatalf("right password: %d %v", status, out)
	}
	if status, out := passwordCheck(t, e, adminToken, "bob", "another long passphrase"); status != http.StatusForbidden || out["error"] != "mfa_required" {
		t.Errorf("user with a second factor: %d %v", status, out)
	}

	// Five wrong passwords (the default first tier) lock the account, for
	// the grant as for the browser.
	for i := range 5 {
		if status, out := passwordCheck(t, e, adminToken, "alice", "not the passphrase"); status != http.StatusUnauthorized || out["error"] != "invalid_credentials" {
			t.Fatalf("wrong password %d: %d %v", i+1, status, out)
		}
	}
	status, out := passwordCheck(t, e, adminToken, "alice", "a long enough passphrase")
	if status != http.StatusTooManyRequests || out["error"] != "too_many_attempts" || out["subject"] != "" {
		t.Fatalf("locked account, right password: %d %v", status, out)
	}
	b := newBrowser(t)
	b.get(e.app.PublicURL() + "/login")
	b.signIn("alice", "a long enough passphrase")
	if b.code != http.StatusTooManyRequests || !b.has("Too many attempts") {
		t.Errorf("browser sign-in during the lock: %d\n%s", b.code, b.body)
	}
	if got := e.metric("latchkey_login_lockouts_total", map[string]string{"kind": "password"}); got != 1 {
		t.Errorf("password lockouts counted %v, want 1", got)
	}
}
