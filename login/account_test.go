package login_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/login/totp"
	"github.com/latchkey-oidc/latchkey/store"
)

// accountSignIn signs b in to the account page, with the TOTP code of
// secret when the user has one.
func accountSignIn(t *testing.T, e *env, b *browser, username, pw string, secret []byte) {
	t.Helper()
	b.get(e.app.PublicURL() + "/login?next=/account")
	b.signIn(username, pw)
	if secret != nil {
		b.submit("totp-form", map[string]string{"code": currentCode(t, secret, time.Now())})
	}
	if b.code != http.StatusOK || b.url != e.app.PublicURL()+"/account" {
		t.Fatalf("expected the account page, got %d at %s:\n%s", b.code, b.url, b.body)
	}
}

// submitTo posts the form on the current page whose action ends with path
// (the account page's smaller forms have no id), with its hidden fields.
func submitTo(b *browser, path string, values map[string]string) string {
	b.t.Helper()
	for _, f := range formRe.FindAllString(b.body, -1) {
		attrs := attributes(f[:strings.Index(f, ">")+1])
		if !strings.HasSuffix(attrs["action"], path) {
			continue
		}
		fields := url.Values{}
		for _, in := range hiddenRe.FindAllString(f, -1) {
			a := attributes(in)
			fields.Set(a["name"], a["value"])
		}
		for k, v := range values {
			fields.Set(k, v)
		}
		return b.post(attrs["action"], fields)
	}
	b.t.Fatalf("no form posting to %s on %s (status %d):\n%s", path, b.url, b.code, b.body)
	return ""
}

// atSignIn reports whether b was sent to the sign-in page on its way to next.
func atSignIn(e *env, b *browser, next string) bool {
	return b.url == e.app.PublicURL()+"/login?next="+next && b.has("Sign in")
}

var (
	manualKeyRe = regexp.MustCompile(`<code id="totp-secret">([A-Z2-7]+)</code>`)
	qrCodeRe    = regexp.MustCompile(`<img class="qr" src="([^"]*)"`)
	imgTagRe    = regexp.MustCompile(`<img[^>]*>`)
)

// imgTag is the first image tag of a page, for messages.
func imgTag(body string) string { return imgTagRe.FindString(body) }

// manualKey reads the TOTP seed from a set-up page, as a person types it.
func manualKey(t *testing.T, b *browser) []byte {
	t.Helper()
	m := manualKeyRe.FindStringSubmatch(b.body)
	if m == nil {
		t.Fatalf("no manual key on %s (status %d):\n%s", b.url, b.code, b.body)
	}
	secret, err := totp.ParseSecret(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// TestAccountPage signs in to the account page and uses all of it that
// works without a passkey: password change, authenticator set-up and
// removal, sign-out.
func TestAccountPage(t *testing.T) {
	e := newEnv(t)
	erin := e.createUser("erin", "the first long passphrase")
	ctx := context.Background()
	app := e.app.PublicURL()
	b := newBrowser(t)

	b.get(app + "/account")
	if !atSignIn(e, b, "/account") {
		t.Fatalf("the account page without sign-in: %d at %s:\n%s", b.code, b.url, b.body)
	}
	if _, f := b.form("password-form"); f.Get("next") != "/account" {
		t.Errorf("the sign-in form goes on to %q", f.Get("next"))
	}
	b.signIn("erin", "the first long passphrase")
	if b.url != app+"/account" || !strings.Contains(b.body, `<strong id="account-username">erin</strong>`) || !b.has("Erin Example") {
		t.Fatalf("expected erin's account page, got %d at %s:\n%s", b.code, b.url, b.body)
	}
	// Another browser's sign-in, which the password change must end.
	other := newBrowser(t)
	accountSignIn(t, e, other, "erin", "the first long passphrase", nil)

	t.Run("change password", func(t *testing.T) {
		for _, tc := range []struct {
			name, current, new, confirm string
			status                      int
			want                        string
		}{
			{"wrong current password", "not my password", "the second long passphrase", "the second long passphrase", http.StatusUnauthorized, "Your current password is not right."},
			{"common password", "the first long passphrase", "password1234", "password1234", http.StatusBadRequest, "one of the most common passwords"},
			{"too short", "the first long passphrase", "short", "short", http.StatusBadRequest, "at least 10 characters"},
			{"confirmation differs", "the first long passphrase", "the second long passphrase", "the second long passfrase", http.StatusBadRequest, "The new passwords do not match."},
		} {
			b.get(app + "/account")
			b.submit("password-change-form", map[string]string{"current": tc.current, "new": tc.new, "confirm": tc.confirm})
			if b.code != tc.status || !b.has(tc.want) {
				t.Errorf("%s: got %d, want %d saying %q:\n%s", tc.name, b.code, tc.status, tc.want, b.body)
			}
		}
		b.get(app + "/account")
		b.submit("password-change-form", map[string]string{"current": "the first long passphrase", "new": "the second long passphrase", "confirm": "the second long passphrase"})
		if b.code != http.StatusOK || !b.has("Your password was changed. Other sign-ins to your account were ended.") {
			t.Fatalf("change: got %d at %s:\n%s", b.code, b.url, b.body)
		}
		other.get(app + "/account")
		if !atSignIn(e, other, "/account") {
			t.Errorf("the other browser's session survived the change: %d at %s", other.code, other.url)
		}
		old := newBrowser(t)
		old.get(app + "/login")
		old.signIn("erin", "the first long passphrase")
		if old.code != http.StatusUnauthorized || !old.has("Invalid username or password.") {
			t.Errorf("the old password: %d\n%s", old.code, old.body)
		}
		accountSignIn(t, e, newBrowser(t), "erin", "the second long passphrase", nil)
	})

	t.Run("authenticator app", func(t *testing.T) {
		b.get(app + "/account")
		if !strings.Contains(b.body, `id="totp-status">Not set up.`) {
			t.Fatalf("TOTP status before set-up:\n%s", b.body)
		}
		b.get(app + "/account/totp")
		if b.code != http.StatusOK || !b.has("Set up an authenticator app") {
			t.Fatalf("expected the set-up page, got %d at %s:\n%s", b.code, b.url, b.body)
		}
		// html/template turns a data: URL held in a plain string into
		// "#ZgotmplZ"; the QR code must survive as an image.
		if !isPNGDataURL(qrCodeRe.FindStringSubmatch(b.body)) {
			t.Errorf("the set-up page shows no QR code image: %s", imgTag(b.body))
		}
		first := manualKey(t, b)
		b.submit("totp-setup-form", map[string]string{"code": "000000"})
		if b.code != http.StatusBadRequest || !b.has("That code is not right") {
			t.Fatalf("a wrong first code: %d\n%s", b.code, b.body)
		}
		// A wrong code starts again with a new key.
		secret := manualKey(t, b)
		if string(secret) == string(first) {
			t.Error("the key did not change after a wrong code")
		}
		b.submit("totp-setup-form", map[string]string{"code": currentCode(t, secret, time.Now())})
		if b.url != app+"/account?done=totp" || !b.has("Your authenticator app is set up.") || !strings.Contains(b.body, `id="totp-status">Turned on.`) {
			t.Fatalf("confirm: %d at %s:\n%s", b.code, b.url, b.body)
		}
		enr, err := e.store.GetTOTPEnrolment(ctx, erin.ID)
		if err != nil || !enr.Confirmed || string(enr.Secret) != string(secret) {
			t.Fatalf("stored enrolment: %+v, %v", enr, err)
		}

		submitTo(b, "/account/totp/remove", nil)
		if b.url != app+"/account?done=totp-removed" || !b.has("Your authenticator app was removed.") || !strings.Contains(b.body, `id="totp-status">Not set up.`) {
			t.Fatalf("remove: %d at %s:\n%s", b.code, b.url, b.body)
		}
		if _, err := e.store.GetTOTPEnrolment(ctx, erin.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the enrolment is still stored: %v", err)
		}
	})

	t.Run("sign out", func(t *testing.T) {
		b.get(app + "/account")
		submitTo(b, "/account/signout", nil)
		if b.code != http.StatusOK || !b.has("You are signed out of your account page.") {
			t.Fatalf("sign out: %d:\n%s", b.code, b.body)
		}
		if got := appCookie(e, b, "latchkey_account"); got != "" {
			t.Errorf("the account cookie is still set: %q", got)
		}
		b.get(app + "/account")
		if !atSignIn(e, b, "/account") {
			t.Errorf("the account page after sign-out: %d at %s", b.code, b.url)
		}
	})
}

// TestAccountNextStaysOnSite ignores a next parameter that leads anywhere
// but the account pages: the user lands on the account page.
func TestAccountNextStaysOnSite(t *testing.T) {
	e := newEnv(t)
	e.createUser("erin", "the first long passphrase")
	app := e.app.PublicURL()
	for _, next := range []string{
		"https://evil.example",
		"//evil.example/account",
		"/account/../../evil",
		"/consent",
		`/\evil.example`,
		"javascript:alert(1)",
	} {
		t.Run(next, func(t *testing.T) {
			b := newBrowser(t)
			b.get(app + "/login?next=" + url.QueryEscape(next))
			if _, f := b.form("password-form"); f.Get("next") != "" {
				t.Errorf("the sign-in form keeps next %q", f.Get("next"))
			}
			// A forged form post is held to the same rule.
			action, f := b.form("password-form")
			f.Set("next", next)
			f.Set("username", "erin")
			f.Set("password", "the first long passphrase")
			b.post(action, f)
			if b.code != http.StatusOK || b.url != app+"/account" {
				t.Fatalf("after sign-in: %d at %s", b.code, b.url)
			}
		})
	}
}

// TestAccountFormAfterSessionEnded submits an account form in a browser
// whose account session was ended meanwhile (here by a password change in
// another browser; a sign-in older than recentAuth does the same for the
// forms that need a fresh one). The app sends the user to sign in; after
// signing in the user must land on a page that works, not on a GET of the
// form's POST-only action.
func TestAccountFormAfterSessionEnded(t *testing.T) {
	e := newEnv(t)
	e.createUser("erin", "the first long passphrase")
	app := e.app.PublicURL()
	b := newBrowser(t)
	accountSignIn(t, e, b, "erin", "the first long passphrase", nil)
	elsewhere := newBrowser(t)
	accountSignIn(t, e, elsewhere, "erin", "the first long passphrase", nil)
	elsewhere.submit("password-change-form", map[string]string{"current": "the first long passphrase", "new": "the second long passphrase", "confirm": "the second long passphrase"})
	if !elsewhere.has("Your password was changed.") {
		t.Fatalf("password change: %d\n%s", elsewhere.code, elsewhere.body)
	}

	submitTo(b, "/account/recovery-codes", nil)
	if !b.has("Sign in") {
		t.Fatalf("expected the sign-in page, got %d at %s:\n%s", b.code, b.url, b.body)
	}
	b.signIn("erin", "the second long passphrase")
	if b.code != http.StatusOK || !strings.HasPrefix(b.url, app+"/account") {
		t.Fatalf("after signing in again: %d at %s:\n%s", b.code, b.url, b.body)
	}
}

// isPNGDataURL reports whether the matched src attribute is a data: URL of
// a PNG image, as a browser reads it.
func isPNGDataURL(m []string) bool {
	if m == nil {
		return false
	}
	b64, ok := strings.CutPrefix(html.UnescapeString(m[1]), "data:image/png;base64,")
	if !ok {
		return false
	}
	img, err := base64.StdEncoding.DecodeString(b64)
	return err == nil && bytes.HasPrefix(img, []byte("\x89PNG\r\n\x1a\n"))
}
