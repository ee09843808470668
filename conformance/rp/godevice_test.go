package rp_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
	"github.com/latchkey-oidc/latchkey/provider"
)

// TestGoDeviceFlow runs the device authorization grant (RFC 8628) as a Go
// command-line tool does: oauth2.Config.DeviceAuth, then DeviceAccessToken
// polling while the user opens verification_uri_complete in a browser,
// confirms the code, signs in with TOTP and consents.
func TestGoDeviceFlow(t *testing.T) {
	r := startGoRP(t, latchkeytest.Options{Provider: func(c *provider.Config) {
		// The shortest interval the device is told, so that the poll
		// after the user's consent comes soon.
		c.DevicePollInterval = time.Second
	}})
	c := r.register(t, map[string]any{
		"client_name":                "Go RP (device)",
		"grant_types":                []string{"urn:ietf:params:oauth:grant-type:device_code"},
		"scope":                      "openid email",
		"token_endpoint_auth_method": "none",
	})
	ctx, cancel := context.WithCancel(t.Context())
	// Stops the polling if the test fails before the tokens come.
	defer cancel()

	da, err := c.oauth.DeviceAuth(ctx)
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	if da.DeviceCode == "" || da.UserCode == "" || da.VerificationURI == "" || da.VerificationURIComplete == "" {
		t.Fatalf("device authorization response lacks a member: %+v", da)
	}

	type polled struct {
		tok *oauth2.Token
		err error
	}
	result := make(chan polled, 1)
	go func() {
		tok, err := c.oauth.DeviceAccessToken(ctx, da)
		result <- polled{tok, err}
	}()

	page, seen := r.browse(t, r.browser(), da.VerificationURIComplete)
	if !seen.Device || !seen.SignIn || !seen.SecondFactor || !seen.Consent {
		t.Errorf("the user answered %+v, want the device code, sign-in, TOTP and consent", seen)
	}
	if page.Redirect || page.Status != http.StatusOK || !page.Has("Device connected") {
		t.Errorf("the browser ended at %s (status %d), want the device-connected page: %.500s", page.URL.Redacted(), page.Status, page.Body)
	}

	res := <-result
	if res.err != nil {
		t.Fatalf("device access token: %v", res.err)
	}
	if res.tok.AccessToken == "" {
		t.Fatal("no access token")
	}
	idt := c.verify(t, rawIDToken(t, res.tok))
	if idt.Subject != r.subject {
		t.Errorf("ID token sub %q, want %q", idt.Subject, r.subject)
	}
	checkMFA(t, idt)
	ui, err := r.op.UserInfo(ctx, oauth2.StaticTokenSource(res.tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	if ui.Subject != r.subject || ui.Email != r.email {
		t.Errorf("userinfo sub %q email %q, want %q %q", ui.Subject, ui.Email, r.subject, r.email)
	}
}
