package login_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey-oidc/latchkey/conformance/chromium"
	"github.com/latchkey-oidc/latchkey/login/mail"
)

const browserPassword = "a long enough passphrase"

// wantSignIn checks who an ID token names and how they signed in: the amr
// list, and the acr it implies.
func wantSignIn(t *testing.T, idt *oidc.IDToken, sub string, amr ...string) {
	t.Helper()
	claims := claimsOf(t, idt)
	acr := "urn:latchkey:acr:pwd"
	if slices.Contains(amr, "mfa") {
		acr = "urn:latchkey:acr:mfa"
	}
	if idt.Subject != sub {
		t.Errorf("sub = %q, want %q", idt.Subject, sub)
	}
	if got := amrOf(t, claims); !slices.Equal(got, amr) || claims["acr"] != acr {
		t.Errorf("amr %v acr %v; want %v and %s", got, claims["acr"], amr, acr)
	}
}

// TestBrowserPasswordTOTPConsent signs in through the pages in Chromium:
// password, then the code of an authenticator app, then consent; the
// relying party gets an ID token that says two factors were used.
func TestBrowserPasswordTOTPConsent(t *testing.T) {
	e := newEnv(t, onLocalhost)
	bob := e.createUser("bob", browserPassword)
	secret := e.enrolTOTP(bob)
	c, client := e.browserClient(nil)
	b := newTab(t)

	ar := c.start(b)
	b.SignIn("bob", browserPassword)
	b.At("#totp-form")
	b.Fill("totp-code", currentCode(t, secret, time.Now()))
	b.Click("#totp-form button[type=submit]")
	b.At("#consent-form")
	if got := b.Text("#client-name"); got != "Test App" {
		t.Errorf("consent names the client %q", got)
	}
	b.Click("#allow")

	_, idt := c.redeem(t, client.wait(b), ar)
	wantSignIn(t, idt, bob.ID, "pwd", "otp", "mfa")
}

// TestBrowserPasskey registers a passkey from the account page with
// Chromium's virtual authenticator and webauthn.js, signs in with it alone,
// and uses it as the second factor after a password.
func TestBrowserPasskey(t *testing.T) {
	e := newEnv(t, onLocalhost)
	carol := e.createUser("carol", browserPassword)
	c, client := e.browserClient(nil)
	b := newTab(t)
	authenticator := b.AddAuthenticator()

	// The account page asks for a sign-in first; adding a passkey needs a
	// recent one.
	b.Open(e.app.PublicURL() + "/account")
	b.SignIn("carol", browserPassword)
	b.At("#account-username")
	b.Click("#passkey-add")
	b.At("#passkey-name")
	b.Fill("passkey-name", "Test laptop")
	b.Click("#passkey-button")
	b.At("#passkeys")
	if got := b.Text("#notice"); got != "Your passkey was added." {
		t.Errorf("notice %q", got)
	}
	if got := b.Text("#passkeys"); !strings.Contains(got, "Test laptop") {
		t.Errorf("the account page lists %q", got)
	}
	creds, err := e.store.ListWebAuthnCredentials(context.Background(), carol.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 1 || creds[0].Name != "Test laptop" {
		t.Fatalf("stored passkeys: %+v", creds)
	}
	held := b.Credentials(authenticator)
	if len(held) != 1 || !held[0].IsResidentCredential || string(held[0].UserHandle) != carol.ID {
		t.Fatalf("the authenticator holds %+v, want one discoverable credential for %s", held, carol.ID)
	}

	// Signing in with the passkey alone.
	ar := c.start(b)
	b.At(`form[action$="/login/passkey"]`)
	b.Click("#passkey-button")
	b.At("#consent-form")
	b.Click("#allow")
	_, idt := c.redeem(t, client.wait(b), ar)
	// The virtual authenticator's credentials are not backed up (a
	// device-bound key), and it verified the user.
	wantSignIn(t, idt, carol.ID, "hwk", "mfa")

	// The passkey as the second factor after a password, in a browser
	// without sessions but with the same authenticator.
	b.ClearCookies()
	ar = c.start(b)
	b.SignIn("carol", browserPassword)
	b.At(`form[action$="/login/webauthn"]`)
	b.Click("#passkey-button")
	// The consent given above was remembered ("Remember this decision"
	// is checked by default), so the browser goes straight back.
	_, idt = c.redeem(t, client.wait(b), ar)
	wantSignIn(t, idt, carol.ID, "pwd", "hwk", "mfa")
}

// mailedCode finds a sign-in code in an email.
var mailedCode = regexp.MustCompile(`\b[0-9]{6}\b`)

// TestBrowserEmailCode meets a client's demand for a second factor with a
// code sent by email, for a user who set up nothing else.
func TestBrowserEmailCode(t *testing.T) {
	e := newEnv(t, onLocalhost)
	dave := e.createUser("dave", browserPassword)
	c, client := e.browserClient(map[string]any{"latchkey_require_mfa": true})
	b := newTab(t)

	ar := c.start(b)
	b.SignIn("dave", browserPassword)
	b.At("#email-send-form")
	b.Click("#email-send-form button[type=submit]")
	b.At("#email-form")
	if got := b.Text("#notice"); got != "We sent a code to d•••@example.test." {
		t.Errorf("notice %q", got)
	}
	msgs, err := mail.ReadOutbox(e.outbox)
	if err != nil {
		t.Fatal(err)
	}
	var code string
	for _, m := range msgs {
		if m.To == dave.Email {
			code = mailedCode.FindString(m.Text)
		}
	}
	if code == "" {
		t.Fatalf("no code mailed to %s in %+v", dave.Email, msgs)
	}
	b.Fill("email-code", code)
	b.Click("#email-form button[type=submit]")
	b.At("#consent-form")
	b.Click("#allow")

	_, idt := c.redeem(t, client.wait(b), ar)
	wantSignIn(t, idt, dave.ID, "pwd", "otp", "mfa")
}

// TestBrowserDeviceFlow approves a device (RFC 8628) in Chromium: the
// device asks for a code, the person opens the verification link, which
// carries the code, signs in and consents, and the device's polling gets
// tokens.
func TestBrowserDeviceFlow(t *testing.T) {
	e := newEnv(t, onLocalhost)
	erin := e.createUser("erin", browserPassword)
	c := e.createClient(map[string]any{
		"grant_types":                []string{deviceGrantType, "refresh_token"},
		"response_types":             []string{},
		"token_endpoint_auth_method": "none",
	})
	ctx := context.Background()
	op, err := oidc.NewProvider(ctx, e.issuer())
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint"`
	}
	if err := op.Claims(&meta); err != nil || meta.DeviceAuthorizationEndpoint == "" {
		t.Fatalf("discovery has no device_authorization_endpoint: %v", err)
	}
	device := &oauth2.Config{
		ClientID: c.ID,
		Endpoint: oauth2.Endpoint{DeviceAuthURL: meta.DeviceAuthorizationEndpoint, TokenURL: op.Endpoint().TokenURL, AuthStyle: oauth2.AuthStyleInParams},
		Scopes:   []string{oidc.ScopeOpenID},
	}
	da, err := device.DeviceAuth(ctx)
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	if da.VerificationURIComplete == "" || da.UserCode == "" {
		t.Fatalf("device authorization: %+v", da)
	}

	b := newTab(t)
	b.Open(da.VerificationURIComplete)
	b.At("#device-form")
	if got := b.Value("user-code"); got != da.UserCode {
		t.Errorf("the code field holds %q, want %q", got, da.UserCode)
	}
	b.Click("#device-form button[type=submit]")
	b.SignIn("erin", browserPassword)
	b.At("#consent-form")
	b.Click("#allow")
	b.WaitText("h1", "Device connected")

	tok := pollDevice(t, b, device, da)
	raw, _ := tok["id_token"].(string)
	idt, err := c.verifier.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verify ID token: %v", err)
	}
	wantSignIn(t, idt, erin.ID, "pwd")
	if at, _ := tok["access_token"].(string); e.userinfo(at)["sub"] != erin.ID {
		t.Errorf("the access token is not erin's")
	}
}

// pollDevice polls the token endpoint as a device does, at the interval it
// was given, until it gets tokens or the test's deadline passes.
func pollDevice(t *testing.T, b *chromium.Tab, conf *oauth2.Config, da *oauth2.DeviceAuthResponse) map[string]any {
	t.Helper()
	interval := time.Duration(max(da.Interval, 1)) * time.Second
	for {
		form := url.Values{"grant_type": {deviceGrantType}, "device_code": {da.DeviceCode}, "client_id": {conf.ClientID}}
		resp, err := http.PostForm(conf.Endpoint.TokenURL, form)
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("token endpoint: %d, not JSON: %v", resp.StatusCode, err)
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			return out
		case out["error"] == "authorization_pending":
		case out["error"] == "slow_down":
			interval += 5 * time.Second
		default:
			t.Fatalf("token endpoint: %d %v", resp.StatusCode, out)
		}
		select {
		case <-b.Ctx.Done():
			t.Fatalf("no tokens before the deadline; last answer %v", out)
		case <-time.After(interval):
		}
	}
}
