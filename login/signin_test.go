package login_test

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

func amrOf(t *testing.T, claims map[string]any) []string {
	t.Helper()
	raw, _ := claims["amr"].([]any)
	var out []string
	for _, v := range raw {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

func TestPasswordSignInAndConsent(t *testing.T) {
	e := newEnv(t)
	alice := e.createUser("alice", "a long enough passphrase")
	c := e.createClient(nil)
	b := newBrowser(t)

	state, verifier := b.authorize(c)
	if !b.has("Sign in") || !b.has("Test App") {
		t.Fatalf("expected the sign-in page naming the client, got %d at %s:\n%s", b.code, b.url, b.body)
	}
	b.signIn("Alice", "a long enough passphrase")
	if !b.has("wants to") || !b.has("See your email address") {
		t.Fatalf("expected the consent page, got %d at %s:\n%s", b.code, b.url, b.body)
	}
	b.submit("consent-form", map[string]string{"decision": "allow", "remember": "1"})
	tok, idt := b.tokens(c, state, verifier)
	claims := claimsOf(t, idt)
	if idt.Subject != alice.ID || claims["acr"] != "urn:latchkey:acr:pwd" || !slices.Equal(amrOf(t, claims), []string{"pwd"}) {
		t.Fatalf("ID token: sub %q, claims %v", idt.Subject, claims)
	}
	info := e.userinfo(tok.AccessToken)
	if info["sub"] != alice.ID || info["email"] != "alice@example.test" || info["name"] != "Alice Example" || info["preferred_username"] != "alice" {
		t.Fatalf("userinfo lacks the user's claims: %v", info)
	}
	if got := e.metric("latchkey_login_signins_total", map[string]string{"method": "password", "result": "success"}); got != 1 {
		t.Fatalf("sign-in successes counted %v, want 1", got)
	}

	// The remembered consent and the SSO session skip both pages next time.
	state, verifier = b.authorize(c)
	_, idt = b.tokens(c, state, verifier)
	if idt.Subject != alice.ID {
		t.Fatalf("second flow signed in %q", idt.Subject)
	}
}

func TestWrongPasswordAndUnknownUserLookTheSame(t *testing.T) {
	e := newEnv(t)
	e.createUser("alice", "a long enough passphrase")
	c := e.createClient(nil)
	for _, tc := range []struct{ name, username, pw string }{
		{"wrong password", "alice", "not the passphrase"},
		{"unknown user", "mallory", "not the passphrase"},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t)
			b.authorize(c)
			b.signIn(tc.username, tc.pw)
			if b.code != http.StatusUnauthorized || !b.has("Invalid username or password.") {
				t.Fatalf("got %d:\n%s", b.code, b.body)
			}
			// The page is ready for another try.
			b.form("password-form")
		})
	}
	if got := e.metric("latchkey_login_signins_total", map[string]string{"method": "password", "result": "failure"}); got != 3 {
		t.Fatalf("failures counted %v, want 3", got)
	}
}

func TestTOTPSecondFactor(t *testing.T) {
	e := newEnv(t)
	bob := e.createUser("bob", "a long enough passphrase")
	secret := e.enrolTOTP(bob)
	c := e.createClient(nil)
	b := newBrowser(t)

	state, verifier := b.authorize(c)
	b.signIn("bob", "a long enough passphrase")
	if !b.has("Code from your authenticator app") {
		t.Fatalf("expected the second-factor page, got %d at %s:\n%s", b.code, b.url, b.body)
	}
	b.submit("totp-form", map[string]string{"code": "000000"})
	if b.code != http.StatusUnauthorized || !b.has("That code is not right") {
		t.Fatalf("a wrong code: %d\n%s", b.code, b.body)
	}
	code := currentCode(t, secret, time.Now())
	b.submit("totp-form", map[string]string{"code": code})
	b.submit("consent-form", map[string]string{"decision": "allow", "remember": "1"})
	_, idt := b.tokens(c, state, verifier)
	claims := claimsOf(t, idt)
	if got := amrOf(t, claims); !slices.Equal(got, []string{"pwd", "otp", "mfa"}) || claims["acr"] != "urn:latchkey:acr:mfa" {
		t.Fatalf("amr %v acr %v; want [pwd otp mfa] and the MFA acr", got, claims["acr"])
	}

	// The same code cannot sign in again, in another browser.
	other := newBrowser(t)
	other.authorize(c)
	other.signIn("bob", "a long enough passphrase")
	other.submit("totp-form", map[string]string{"code": code})
	if other.code != http.StatusUnauthorized || !other.has("already used") {
		t.Fatalf("a replayed code: %d\n%s", other.code, other.body)
	}
}
