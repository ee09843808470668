package login_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/latchkey-oidc/latchkey/store"
)

// loggedOut is the post_logout_redirect_uri test clients register. It
// starts with rpRedirect, so the browser stops there and the test reads it.
const loggedOut = rpRedirect + "/logged-out"

const deviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// deviceClient is a registered public client of the device grant.
type deviceClient struct {
	*rp
	e *env
}

func newDeviceClient(e *env) *deviceClient {
	e.t.Helper()
	c := e.createClient(map[string]any{
		"client_name":                "Test TV",
		"grant_types":                []string{deviceGrantType, "refresh_token"},
		"response_types":             []string{},
		"redirect_uris":              []string{},
		"token_endpoint_auth_method": "none",
	})
	c.oauth.Endpoint = oauth2.Endpoint{
		DeviceAuthURL: e.issuer() + "/oauth2/device/auth",
		TokenURL:      e.issuer() + "/oauth2/token",
		AuthStyle:     oauth2.AuthStyleInParams,
	}
	return &deviceClient{rp: c, e: e}
}

// start is the device asking for a user code.
func (d *deviceClient) start(t *testing.T) *oauth2.DeviceAuthResponse {
	t.Helper()
	da, err := d.oauth.DeviceAuth(context.Background())
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	return da
}

// poll is one token request of the device; it returns the status and the
// JSON answer.
func (d *deviceClient) poll(t *testing.T, deviceCode string) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(d.e.issuer()+"/oauth2/token", url.Values{
		"grant_type": {deviceGrantType}, "device_code": {deviceCode}, "client_id": {d.ID},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("token answer: %d, %v", resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

func logoutURL(e *env, params url.Values) string {
	return e.issuer() + "/oauth2/logout?" + params.Encode()
}

// TestDeviceFlowThroughTheLoginApp runs RFC 8628 as a person does: the
// verification link opens the login app's device page with the code filled
// in; a wrong code is refused and the page asks again; the right one leads
// to sign-in and consent, and the device's next poll gets tokens.
func TestDeviceFlowThroughTheLoginApp(t *testing.T) {
	e := newEnv(t)
	alice := e.createUser("alice", "a long enough passphrase")
	dev := newDeviceClient(e)
	da := dev.start(t)

	b := newBrowser(t)
	b.get(da.VerificationURIComplete)
	if b.code != http.StatusOK || !strings.HasPrefix(b.url, e.app.PublicURL()+"/device?") {
		t.Fatalf("expected the login app's device page, got %d at %s:\n%s", b.code, b.url, b.body)
	}
	if !strings.Contains(b.body, `value="`+da.UserCode+`"`) {
		t.Errorf("the device page does not pre-fill %s:\n%s", da.UserCode, b.body)
	}
	b.submit("device-form", map[string]string{"user_code": "BCDF-GHJK"})
	if b.code != http.StatusBadRequest || !b.has("That code is not right") {
		t.Fatalf("a wrong code: %d\n%s", b.code, b.body)
	}
	// Users type codes with spaces, dashes and in lower case.
	typed := strings.ToLower(da.UserCode[:4] + " - " + da.UserCode[4:])
	b.submit("device-form", map[string]string{"user_code": typed})
	if !b.has("Sign in") || !b.has("Test TV") {
		t.Fatalf("expected the sign-in page naming the device's client, got %d at %s:\n%s", b.code, b.url, b.body)
	}
	b.signIn("alice", "a long enough passphrase")
	if !b.has("Test TV") || !b.has("wants to") {
		t.Fatalf("expected the consent page, got %d at %s:\n%s", b.code, b.url, b.body)
	}
	b.submit("consent-form", map[string]string{"decision": "allow"})
	if b.code != http.StatusOK || !b.has("Device connected") {
		t.Fatalf("expected the provider's confirmation, got %d at %s:\n%s", b.code, b.url, b.body)
	}

	status, out := dev.poll(t, da.DeviceCode)
	access, _ := out["access_token"].(string)
	raw, _ := out["id_token"].(string)
	if status != http.StatusOK || access == "" || raw == "" {
		t.Fatalf("poll after approval: %d %v", status, out)
	}
	idt, err := dev.verifier.Verify(context.Background(), raw)
	if err != nil || idt.Subject != alice.ID {
		t.Fatalf("ID token: %v, %+v", err, idt)
	}
	if info := e.userinfo(access); info["sub"] != alice.ID {
		t.Errorf("userinfo: %v", info)
	}
}

// TestDeviceTooManyWrongCodes: the fifth wrong code ends the device
// challenge, and the login app sends the user to the provider's page saying
// so, not to "wait a minute" on a challenge that is gone.
func TestDeviceTooManyWrongCodes(t *testing.T) {
	e := newEnv(t)
	dev := newDeviceClient(e)
	da := dev.start(t)
	b := newBrowser(t)
	b.get(da.VerificationURIComplete)
	for i := 1; i <= 5; i++ {
		b.submit("device-form", map[string]string{"user_code": "BCDF-GHJK"})
		if i < 5 && (b.code != http.StatusBadRequest || !b.has("That code is not right")) {
			t.Fatalf("wrong code %d: %d\n%s", i, b.code, b.body)
		}
	}
	if b.code != http.StatusForbidden || !b.has("Too many wrong codes were entered. Start again from your device") ||
		!strings.HasPrefix(b.url, e.issuer()+"/oauth2/device/") {
		t.Fatalf("the fifth wrong code: %d at %s\n%s", b.code, b.url, b.body)
	}
	// Wrong codes name no device: the device's own request is untouched.
	if status, out := dev.poll(t, da.DeviceCode); status != http.StatusBadRequest || out["error"] != "authorization_pending" {
		t.Errorf("the device's poll after the challenge ended: %d %v, want 400 authorization_pending", status, out)
	}
}

// TestLogoutAsksWithoutHint signs out through RP-initiated logout with only
// a client_id: the login app asks; staying keeps every session and returns
// to the client; signing out ends the SSO session and the account session
// and returns to the client with its state.
func TestLogoutAsksWithoutHint(t *testing.T) {
	e := newEnv(t)
	e.createUser("alice", "a long enough passphrase")
	c := e.createClient(map[string]any{"post_logout_redirect_uris": []string{loggedOut}})
	b := newBrowser(t)
	state, verifier := b.authorize(c)
	b.signIn("alice", "a long enough passphrase")
	b.submit("consent-form", map[string]string{"decision": "allow", "remember": "1"})
	b.tokens(c, state, verifier)
	account := appCookie(e, b, "latchkey_account")
	if account == "" {
		t.Fatal("no account session after sign-in")
	}
	logout := func(st string) {
		t.Helper()
		b.get(logoutURL(e, url.Values{"client_id": {c.ID}, "post_logout_redirect_uri": {loggedOut}, "state": {st}}))
		if b.code != http.StatusOK || !strings.HasPrefix(b.url, e.app.PublicURL()+"/logout?") || !b.has("Test App") || !b.has("asks to sign you out") {
			t.Fatalf("expected the login app's confirmation, got %d at %s:\n%s", b.code, b.url, b.body)
		}
	}
	atLoggedOut := func(st string) {
		t.Helper()
		u, err := url.Parse(b.url)
		if err != nil || !strings.HasPrefix(b.url, loggedOut) || u.Query().Get("state") != st {
			t.Fatalf("expected %s with state %s, got %d at %s:\n%s", loggedOut, st, b.code, b.url, b.body)
		}
	}

	logout("stay-1")
	b.submit("logout-form", map[string]string{"decision": "stay"})
	atLoggedOut("stay-1")
	if appCookie(e, b, "latchkey_account") != account {
		t.Error("staying signed in changed the account session")
	}
	// Still signed in: the next flow needs no page at all.
	state, verifier = b.authorize(c)
	b.tokens(c, state, verifier)

	logout("bye-2")
	b.submit("logout-form", map[string]string{"decision": "logout"})
	atLoggedOut("bye-2")
	if got := appCookie(e, b, "latchkey_account"); got != "" {
		t.Errorf("the account cookie is still set: %q", got)
	}
	if _, err := e.store.GetAccountSession(context.Background(), account); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the account session is still in the store: %v", err)
	}
	b.authorize(c)
	if !b.has("Sign in") {
		t.Fatalf("expected the sign-in page after logout, got %d at %s:\n%s", b.code, b.url, b.body)
	}
	b.form("password-form")
	b.get(e.app.PublicURL() + "/account")
	if !strings.Contains(b.url, "/login/login?next=/account") {
		t.Errorf("the account page is still open after logout: %d at %s", b.code, b.url)
	}
}

// TestLogoutWithHintSkipsTheQuestion signs out with a valid id_token_hint:
// the request proves it comes from the session's client, so no page is
// shown, and the sessions end.
func TestLogoutWithHintSkipsTheQuestion(t *testing.T) {
	e := newEnv(t)
	e.createUser("alice", "a long enough passphrase")
	c := e.createClient(map[string]any{"post_logout_redirect_uris": []string{loggedOut}})
	b := newBrowser(t)
	log := &responseLog{next: http.DefaultTransport}
	b.client.Transport = log
	state, verifier := b.authorize(c)
	b.signIn("alice", "a long enough passphrase")
	b.submit("consent-form", map[string]string{"decision": "allow", "remember": "1"})
	tok, _ := b.tokens(c, state, verifier)
	hint, _ := tok.Extra("id_token").(string)

	seen := len(log.seen)
	b.get(logoutURL(e, url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {loggedOut}, "state": {"s-1"}}))
	if !strings.HasPrefix(b.url, loggedOut) || !strings.Contains(b.url, "state=s-1") {
		t.Fatalf("expected %s with state, got %d at %s:\n%s", loggedOut, b.code, b.url, b.body)
	}
	var path []string
	for _, r := range log.seen[seen:] {
		path = append(path, r.Request.URL.Path)
		if r.StatusCode == http.StatusOK {
			t.Errorf("a page was shown on the way: %s", r.Request.URL)
		}
	}
	if !slices.Contains(path, "/login/logout") {
		t.Errorf("the logout did not go through the login app: %v", path)
	}
	if got := appCookie(e, b, "latchkey_account"); got != "" {
		t.Errorf("the account cookie is still set: %q", got)
	}
	b.authorize(c)
	if !b.has("Sign in") {
		t.Fatalf("expected the sign-in page after logout, got %d at %s:\n%s", b.code, b.url, b.body)
	}
}
