package login_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/latchkey-oidc/latchkey/login"
	"github.com/latchkey-oidc/latchkey/login/mail"
	"github.com/latchkey-oidc/latchkey/store"
)

const mfaPassword = "a long enough passphrase"

var sixDigitsRe = regexp.MustCompile(`\b(\d{6})\b`)

// emailCodes returns the sign-in codes mailed to address, oldest first.
func emailCodes(t *testing.T, e *env, address string) []string {
	t.Helper()
	msgs, err := mail.ReadOutbox(e.outbox)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, m := range msgs {
		if m.To != address {
			continue
		}
		c := sixDigitsRe.FindStringSubmatch(m.Text)
		if c == nil {
			t.Fatalf("no code in the mail to %s: %q", address, m.Text)
		}
		codes = append(codes, c[1])
	}
	return codes
}

// wrongCode is a six-digit code that is not code.
func wrongCode(code string) string {
	if code == "123456" {
		return "654321"
	}
	return "123456"
}

// withLimits changes the login app's limits from the defaults.
func withLimits(edit func(*login.Limits)) func(*envOptions) {
	return func(o *envOptions) {
		o.login = func(c *login.Config) {
			c.Limits = login.DefaultLimits()
			edit(&c.Limits)
		}
	}
}

// emailStep signs in for a client that requires MFA and sends a code; b is
// then on the page that asks for it.
func emailStep(t *testing.T, b *browser, c *rp, username string) (state, verifier string) {
	t.Helper()
	state, verifier = b.authorize(c)
	b.signIn(username, mfaPassword)
	masked := username[:1] + "•••@example.test"
	if !b.has("Confirm it is you") || !b.has("Email a code to "+masked) {
		t.Fatalf("expected the second-factor page offering email, got %d at %s:\n%s", b.code, b.url, b.body)
	}
	b.submit("email-send-form", nil)
	if !b.has("We sent a code to " + masked) {
		t.Fatalf("expected the code form, got %d at %s:\n%s", b.code, b.url, b.body)
	}
	b.form("email-form")
	return state, verifier
}

// TestEmailCode gives a client that requires MFA a user without an
// authenticator: the code goes by mail, a wrong one is refused, the right
// one signs in with amr otp and mfa.
func TestEmailCode(t *testing.T) {
	e := newEnv(t)
	carol := e.createUser("carol", mfaPassword)
	c := e.createClient(map[string]any{"latchkey_require_mfa": true})
	b := newBrowser(t)

	state, verifier := emailStep(t, b, c, "carol")
	codes := emailCodes(t, e, "carol@example.test")
	if len(codes) != 1 {
		t.Fatalf("mailed codes %v, want one", codes)
	}
	action, fields := b.form("email-form")
	fields.Set("code", wrongCode(codes[0]))
	b.post(action, fields)
	if b.code != http.StatusUnauthorized || !b.has("That code is not right") {
		t.Fatalf("a wrong code: %d\n%s", b.code, b.body)
	}
	fields.Set("code", codes[0])
	b.post(action, fields)
	if !b.has("wants to") {
		t.Fatalf("expected the consent page, got %d at %s:\n%s", b.code, b.url, b.body)
	}
	b.submit("consent-form", map[string]string{"decision": "allow"})
	_, idt := b.tokens(c, state, verifier)
	claims := claimsOf(t, idt)
	if got := amrOf(t, claims); idt.Subject != carol.ID || !slices.Equal(got, []string{"pwd", "otp", "mfa"}) || claims["acr"] != "urn:latchkey:acr:mfa" {
		t.Fatalf("sub %q amr %v acr %v; want carol, [pwd otp mfa], the MFA acr", idt.Subject, got, claims["acr"])
	}
	for result, want := range map[string]float64{"sent": 1, "failure": 1, "success": 1} {
		if got := e.metric("latchkey_login_mfa_challenges_total", map[string]string{"method": "email", "result": result}); got != want {
			t.Errorf("email %s counted %v, want %v", result, got, want)
		}
	}
}

// TestEmailCodeCanBeRetyped enters a wrong email code: the page says to
// try again, so it must still ask for the code. Without the form, the only
// way on is to send another code, which spends the resend limit and
// voids the code already in the user's mailbox.
func TestEmailCodeCanBeRetyped(t *testing.T) {
	e := newEnv(t)
	e.createUser("carol", mfaPassword)
	c := e.createClient(map[string]any{"latchkey_require_mfa": true})
	b := newBrowser(t)
	emailStep(t, b, c, "carol")
	code := emailCodes(t, e, "carol@example.test")[0]
	b.submit("email-form", map[string]string{"code": wrongCode(code)})
	if b.code != http.StatusUnauthorized || !b.has("try again") {
		t.Fatalf("a wrong code: %d\n%s", b.code, b.body)
	}
	if !strings.Contains(b.body, `id="email-form"`) {
		t.Fatalf("after a wrong code the page says to try again but has no code form:\n%s", b.body)
	}
	b.submit("email-form", map[string]string{"code": code})
	if !b.has("wants to") {
		t.Fatalf("expected the consent page, got %d at %s:\n%s", b.code, b.url, b.body)
	}
}

// TestEmailCodeLimits: at most EmailCodesPerWindow codes are sent per
// window, and a code takes EmailCodeAttempts wrong tries, after which even
// the right code is refused.
func TestEmailCodeLimits(t *testing.T) {
	t.Run("resend", func(t *testing.T) {
		e := newEnv(t)
		e.createUser("carol", mfaPassword)
		c := e.createClient(map[string]any{"latchkey_require_mfa": true})
		b := newBrowser(t)
		emailStep(t, b, c, "carol")
		for range 2 {
			b.submit("email-send-form", nil)
			if b.code != http.StatusOK || !b.has("We sent a code") {
				t.Fatalf("a resend within the limit: %d\n%s", b.code, b.body)
			}
		}
		b.submit("email-send-form", nil)
		if b.code != http.StatusTooManyRequests || !b.has("You were sent as many codes as allowed") || !b.has("15 minutes") {
			t.Fatalf("the 4th code: %d\n%s", b.code, b.body)
		}
		codes := emailCodes(t, e, "carol@example.test")
		if len(codes) != 3 {
			t.Errorf("mailed %d codes, want 3", len(codes))
		}
		if got := e.metric("latchkey_login_mfa_challenges_total", map[string]string{"method": "email", "result": "throttled"}); got != 1 {
			t.Errorf("throttled sends counted %v, want 1", got)
		}
		// Only the newest code works.
		b.post(e.app.PublicURL()+"/login/email", csrfForm(b, "code", codes[1]))
		if b.code != http.StatusUnauthorized || !b.has("That code is not right") {
			t.Errorf("a superseded code: %d\n%s", b.code, b.body)
		}
		b.post(e.app.PublicURL()+"/login/email", csrfForm(b, "code", codes[2]))
		if !b.has("wants to") {
			t.Fatalf("the newest code: %d at %s:\n%s", b.code, b.url, b.body)
		}
	})

	t.Run("attempts per code", func(t *testing.T) {
		// The account's code throttle is raised so that the code's own
		// limit is what stops the guesses.
		e := newEnv(t, withLimits(func(l *login.Limits) {
			l.CodePerAccount = []login.Tier{{Threshold: 50, Window: 15 * time.Minute, LockFor: 2 * time.Minute}}
		}))
		e.createUser("carol", mfaPassword)
		c := e.createClient(map[string]any{"latchkey_require_mfa": true})
		b := newBrowser(t)
		emailStep(t, b, c, "carol")
		code := emailCodes(t, e, "carol@example.test")[0]
		verify := e.app.PublicURL() + "/login/email"
		for i := 1; i <= 5; i++ {
			b.post(verify, csrfForm(b, "code", wrongCode(code)))
			want := "That code is not right"
			if i == 5 {
				want = "entered wrongly too many times"
			}
			if b.code != http.StatusUnauthorized || !b.has(want) {
				t.Fatalf("wrong code %d: %d, want %q:\n%s", i, b.code, want, b.body)
			}
		}
		b.post(verify, csrfForm(b, "code", code))
		if b.code != http.StatusUnauthorized || !b.has("entered wrongly too many times") {
			t.Fatalf("the right code after too many wrong ones: %d\n%s", b.code, b.body)
		}
	})
}

// csrfForm is a form of the current page's CSRF token and one field, for
// posting to an action the page does not show.
func csrfForm(b *browser, name, value string) url.Values {
	b.t.Helper()
	m := csrfTokenRe.FindStringSubmatch(b.body)
	if m == nil {
		b.t.Fatalf("no CSRF token on %s:\n%s", b.url, b.body)
	}
	return url.Values{"csrf": {m[1]}, name: {value}}
}

var csrfTokenRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

var recoveryCodeRe = regexp.MustCompile(`<li><code>([a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4})</code></li>`)

// TestRecoveryCodes makes recovery codes on the account page and signs in
// with one in place of the authenticator; each works once.
func TestRecoveryCodes(t *testing.T) {
	e := newEnv(t)
	dave := e.createUser("dave", mfaPassword)
	secret := e.enrolTOTP(dave)
	c := e.createClient(nil)
	app := e.app.PublicURL()

	acct := newBrowser(t)
	accountSignIn(t, e, acct, "dave", mfaPassword, secret)
	if !strings.Contains(acct.body, `id="recovery-count">0 unused.`) {
		t.Errorf("recovery codes before any were made:\n%s", acct.body)
	}
	submitTo(acct, "/account/recovery-codes", nil)
	if acct.code != http.StatusOK || !acct.has("Your new recovery codes") {
		t.Fatalf("make codes: %d\n%s", acct.code, acct.body)
	}
	var codes []string
	for _, m := range recoveryCodeRe.FindAllStringSubmatch(acct.body, -1) {
		if !slices.Contains(codes, m[1]) {
			codes = append(codes, m[1])
		}
	}
	if len(codes) != 10 {
		t.Fatalf("got %d distinct codes %v, want 10", len(codes), codes)
	}

	signInWith := func(code string) (*browser, string, string) {
		b := newBrowser(t)
		state, verifier := b.authorize(c)
		b.signIn("dave", mfaPassword)
		b.form("totp-form")
		b.submit("recovery-form", map[string]string{"code": code})
		return b, state, verifier
	}
	b, state, verifier := signInWith(codes[0])
	if !b.has("wants to") {
		t.Fatalf("expected the consent page, got %d at %s:\n%s", b.code, b.url, b.body)
	}
	b.submit("consent-form", map[string]string{"decision": "allow"})
	_, idt := b.tokens(c, state, verifier)
	claims := claimsOf(t, idt)
	if got := amrOf(t, claims); idt.Subject != dave.ID || !slices.Contains(got, "mfa") || claims["acr"] != "urn:latchkey:acr:mfa" {
		t.Fatalf("sub %q amr %v acr %v", idt.Subject, got, claims["acr"])
	}

	b, _, _ = signInWith(codes[0])
	if b.code != http.StatusUnauthorized || !b.has("That recovery code is not right, or was already used.") {
		t.Fatalf("a used recovery code: %d\n%s", b.code, b.body)
	}
	// Codes are read without regard to case, spaces and dashes.
	b, _, _ = signInWith(strings.ToUpper(strings.ReplaceAll(codes[1], "-", " ")))
	if !b.has("wants to") {
		t.Fatalf("a recovery code typed differently: %d at %s:\n%s", b.code, b.url, b.body)
	}

	acct.get(app + "/account")
	if !strings.Contains(acct.body, `id="recovery-count">8 unused.`) {
		t.Errorf("recovery codes after two were used:\n%s", acct.body)
	}
	if got := e.metric("latchkey_login_mfa_challenges_total", map[string]string{"method": "recovery", "result": "failure"}); got != 1 {
		t.Errorf("refused recovery codes counted %v, want 1", got)
	}
}

// TestMFARequestedWithoutFactors asks for MFA (acr_values) for a user with
// no second factor and no email address: sign-in goes on to set up an
// authenticator app, whose first code is the second factor.
func TestMFARequestedWithoutFactors(t *testing.T) {
	e := newEnv(t)
	frank := e.createUser("frank", mfaPassword, func(u *store.User) { u.Email, u.EmailVerified = "", false })
	c := e.createClient(nil)
	b := newBrowser(t)

	state, verifier := b.authorize(c, oauth2.SetAuthURLParam("acr_values", "urn:latchkey:acr:mfa"))
	b.signIn("frank", mfaPassword)
	if b.url != e.app.PublicURL()+"/login/setup-totp" || !b.has("Set up an authenticator app") {
		t.Fatalf("expected the TOTP set-up page, got %d at %s:\n%s", b.code, b.url, b.body)
	}
	secret := manualKey(t, b)
	b.submit("totp-setup-form", map[string]string{"code": currentCode(t, secret, time.Now())})
	if !b.has("wants to") {
		t.Fatalf("expected the consent page, got %d at %s:\n%s", b.code, b.url, b.body)
	}
	b.submit("consent-form", map[string]string{"decision": "allow"})
	_, idt := b.tokens(c, state, verifier)
	claims := claimsOf(t, idt)
	if got := amrOf(t, claims); idt.Subject != frank.ID || !slices.Equal(got, []string{"pwd", "otp", "mfa"}) || claims["acr"] != "urn:latchkey:acr:mfa" {
		t.Fatalf("sub %q amr %v acr %v", idt.Subject, got, claims["acr"])
	}
	enr, err := e.store.GetTOTPEnrolment(context.Background(), frank.ID)
	if err != nil || !enr.Confirmed || string(enr.Secret) != string(secret) {
		t.Fatalf("stored enrolment: %+v, %v", enr, err)
	}
}

// TestCodeThrottle locks the account's second-factor step after
// CodePerAccount wrong codes: even the right code is then refused.
func TestCodeThrottle(t *testing.T) {
	e := newEnv(t, withLimits(func(l *login.Limits) {
		l.CodePerAccount = []login.Tier{{Threshold: 3, Window: 15 * time.Minute, LockFor: 2 * time.Minute}}
	}))
	bob := e.createUser("bob", mfaPassword)
	secret := e.enrolTOTP(bob)
	c := e.createClient(nil)
	b := newBrowser(t)
	b.authorize(c)
	b.signIn("bob", mfaPassword)
	for i := range 3 {
		b.submit("totp-form", map[string]string{"code": wrongCode(currentCode(t, secret, time.Now()))})
		if b.code != http.StatusUnauthorized || !b.has("That code is not right") {
			t.Fatalf("wrong code %d: %d\n%s", i+1, b.code, b.body)
		}
	}
	b.submit("totp-form", map[string]string{"code": currentCode(t, secret, time.Now())})
	if b.code != http.StatusTooManyRequests || !b.has("Too many attempts") {
		t.Fatalf("the 4th attempt: %d\n%s", b.code, b.body)
	}
	if got := e.metric("latchkey_login_mfa_challenges_total", map[string]string{"method": "totp", "result": "throttled"}); got < 1 {
		t.Errorf("throttled attempts counted %v", got)
	}
	if got := e.metric("latchkey_login_lockouts_total", map[string]string{"kind": "code"}); got != 1 {
		t.Errorf("code lockouts counted %v, want 1", got)
	}
	// The lock holds for the account, not the browser.
	other := newBrowser(t)
	other.authorize(c)
	other.signIn("bob", mfaPassword)
	other.submit("totp-form", map[string]string{"code": currentCode(t, secret, time.Now())})
	if other.code != http.StatusTooManyRequests {
		t.Errorf("another browser during the lock: %d\n%s", other.code, other.body)
	}
}
