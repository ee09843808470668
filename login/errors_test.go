package login_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/store"
)

// The login app's answers to requests that must not succeed: forged or
// cross-site forms, stale challenges, unknown routes, oversized bodies;
// and the headers and cookies every answer carries.

// csrfRefused is what the app says when a form lacks its browser's token.
const csrfRefused = "did not come from this site"

// challengeGone is what the app says about an unknown, expired or used
// challenge.
const challengeGone = "This sign-in request expired or was already used"

// sendRaw sends one request with b's cookies and exactly the headers given
// (the browser's own POSTs always claim to be same-origin) and does not
// follow a redirect. It leaves b's current page alone.
func sendRaw(b *browser, method, target string, form url.Values, header http.Header) (int, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// appCookie returns the value of the login app's cookie name in b, or "".
func appCookie(e *env, b *browser, name string) string {
	u, _ := url.Parse(e.app.PublicURL() + "/account")
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// formPage is a page of the login app with a form that decides something,
// reached in a fresh browser.
type formPage struct {
	b      *browser
	form   string
	values map[string]string
	// decided checks the browser's page after the form was submitted.
	decided func(t *testing.T, b *browser)
}

// formPages reach each of the app's forms that decide a challenge.
func formPages(e *env) map[string]func(t *testing.T) formPage {
	e.createUser("alice", "a long enough passphrase")
	c := e.createClient(map[string]any{"post_logout_redirect_uris": []string{loggedOut}})
	dev := newDeviceClient(e)
	atClient := func(t *testing.T, b *browser) {
		t.Helper()
		if !strings.HasPrefix(b.url, rpRedirect) {
			t.Fatalf("expected a redirect to the client, got %d at %s:\n%s", b.code, b.url, b.body)
		}
	}
	return map[string]func(t *testing.T) formPage{
		"sign-in": func(t *testing.T) formPage {
			b := newBrowser(t)
			b.authorize(c)
			return formPage{b, "password-form", map[string]string{"username": "alice", "password": "a long enough passphrase"},
				func(t *testing.T, b *browser) {
					if !b.has("wants to") {
						t.Fatalf("expected the consent page, got %d at %s:\n%s", b.code, b.url, b.body)
					}
				}}
		},
		"consent": func(t *testing.T) formPage {
			b := newBrowser(t)
			b.authorize(c)
			b.signIn("alice", "a long enough passphrase")
			return formPage{b, "consent-form", map[string]string{"decision": "allow"}, atClient}
		},
		"device": func(t *testing.T) formPage {
			da := dev.start(t)
			b := newBrowser(t)
			b.get(da.VerificationURIComplete)
			return formPage{b, "device-form", map[string]string{"user_code": da.UserCode},
				func(t *testing.T, b *browser) {
					if !b.has("Sign in") {
						t.Fatalf("expected the sign-in page, got %d at %s:\n%s", b.code, b.url, b.body)
					}
					b.form("password-form")
				}}
		},
		"logout": func(t *testing.T) formPage {
			b := newBrowser(t)
			state, verifier := b.authorize(c)
			b.signIn("alice", "a long enough passphrase")
			b.submit("consent-form", map[string]string{"decision": "allow"})
			b.tokens(c, state, verifier)
			b.get(logoutURL(e, url.Values{"client_id": {c.ID}, "post_logout_redirect_uri": {loggedOut}, "state": {"bye"}}))
			return formPage{b, "logout-form", map[string]string{"decision": "logout"},
				func(t *testing.T, b *browser) {
					if !strings.HasPrefix(b.url, loggedOut) || !strings.Contains(b.url, "state=bye") {
						t.Fatalf("expected the post-logout redirect, got %d at %s:\n%s", b.code, b.url, b.body)
					}
				}}
		},
	}
}

// TestFormsRefuseForgedRequests posts every deciding form without its
// token, with another browser's token, and cross-site: each is refused
// with 403 and decides nothing, so the real form still works afterwards.
func TestFormsRefuseForgedRequests(t *testing.T) {
	e := newEnv(t)
	pages := formPages(e)
	// Another browser's token is valid, for that browser's cookie only.
	other := newBrowser(t)
	other.get(e.issuer() + "/login/login")
	_, otherFields := other.form("password-form")

	sameOrigin := http.Header{"Sec-Fetch-Site": {"same-origin"}}
	for _, name := range []string{"sign-in", "consent", "device", "logout"} {
		t.Run(name, func(t *testing.T) {
			p := pages[name](t)
			action, fields := p.b.form(p.form)
			for k, v := range p.values {
				fields.Set(k, v)
			}
			without := func(k string) url.Values {
				f := url.Values{}
				for name, v := range fields {
					if name != k {
						f[name] = v
					}
				}
				return f
			}
			withToken := without("csrf")
			withToken.Set("csrf", otherFields.Get("csrf"))
			for _, tc := range []struct {
				name   string
				form   url.Values
				header http.Header
				want   string
			}{
				{"no token", without("csrf"), sameOrigin, csrfRefused},
				{"another browser's token", withToken, sameOrigin, csrfRefused},
				{"cross-site fetch", fields, http.Header{"Sec-Fetch-Site": {"cross-site"}}, "cross-origin request"},
				{"foreign origin", fields, http.Header{"Origin": {"https://evil.example"}}, "cross-origin request"},
			} {
				status, body := sendRaw(p.b, http.MethodPost, action, tc.form, tc.header)
				if status != http.StatusForbidden || !strings.Contains(body, tc.want) {
					t.Errorf("%s: got %d, want 403 saying %q:\n%s", tc.name, status, tc.want, body)
				}
			}
			p.b.submit(p.form, p.values)
			p.decided(t, p.b)
		})
	}
	if got := e.metric("latchkey_login_signins_total", map[string]string{"method": "password", "result": "failure"}); got != 0 {
		t.Errorf("refused forms were counted as %v failed sign-ins", got)
	}
}

// TestStaleChallenges shows a clear 404 page for challenges the provider
// does not know, and for a form submitted again after it was decided.
func TestStaleChallenges(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{
		"/login?login_challenge=bogus",
		"/consent?consent_challenge=bogus",
		"/consent",
		"/device?device_challenge=bogus",
		"/logout?logout_challenge=bogus",
	} {
		t.Run(path, func(t *testing.T) {
			b := newBrowser(t)
			b.get(e.app.PublicURL() + path)
			if b.code != http.StatusNotFound || !b.has(challengeGone) {
				t.Fatalf("got %d:\n%s", b.code, b.body)
			}
		})
	}

	e.createUser("alice", "a long enough passphrase")
	c := e.createClient(nil)
	for _, tc := range []struct {
		name, form string
		values     map[string]string
		// reach goes from the sign-in page to the form.
		reach func(b *browser)
	}{
		{"sign-in", "password-form", map[string]string{"username": "alice", "password": "a long enough passphrase"}, func(*browser) {}},
		{"consent", "consent-form", map[string]string{"decision": "allow"}, func(b *browser) { b.signIn("alice", "a long enough passphrase") }},
	} {
		t.Run(tc.name+" twice", func(t *testing.T) {
			b := newBrowser(t)
			b.authorize(c)
			tc.reach(b)
			action, fields := b.form(tc.form)
			for k, v := range tc.values {
				fields.Set(k, v)
			}
			b.submit(tc.form, tc.values)
			if b.code >= 400 {
				t.Fatalf("first submission: %d at %s:\n%s", b.code, b.url, b.body)
			}
			b.post(action, fields)
			if b.code != http.StatusNotFound || !b.has(challengeGone) {
				t.Fatalf("second submission: got %d:\n%s", b.code, b.body)
			}
		})
	}
}

// responseLog records every answer a browser gets, to check what all of
// them carry.
type responseLog struct {
	mu   sync.Mutex
	seen []*http.Response // bodies already closed
	next http.RoundTripper
}

func (l *responseLog) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(req)
	if err == nil {
		l.mu.Lock()
		l.seen = append(l.seen, &http.Response{Request: req, StatusCode: resp.StatusCode, Header: resp.Header.Clone()})
		l.mu.Unlock()
	}
	return resp, err
}

// TestSecurityHeadersAndCookies walks through every kind of page the app
// shows (pages, redirects, errors, refusals, static files) and checks each
// answer's headers and every cookie it sets.
func TestSecurityHeadersAndCookies(t *testing.T) {
	e := newEnv(t)
	bob := e.createUser("bob", "a long enough passphrase")
	secret := e.enrolTOTP(bob)
	c := e.createClient(map[string]any{"post_logout_redirect_uris": []string{loggedOut}})
	dev := newDeviceClient(e)
	b := newBrowser(t)
	log := &responseLog{next: http.DefaultTransport}
	b.client.Transport = log
	app := e.app.PublicURL()

	// Sign-in with a second factor, consent, the account page.
	state, verifier := b.authorize(c)
	b.signIn("bob", "a long enough passphrase")
	b.submit("totp-form", map[string]string{"code": "000000"})
	b.submit("totp-form", map[string]string{"code": currentCode(t, secret, time.Now())})
	b.submit("consent-form", map[string]string{"decision": "allow", "remember": "1"})
	b.tokens(c, state, verifier)
	b.get(app + "/account")
	b.get(app + "/account/totp")
	// The device and logout pages.
	b.get(dev.start(t).VerificationURIComplete)
	b.get(logoutURL(e, url.Values{"client_id": {c.ID}, "post_logout_redirect_uri": {loggedOut}}))
	b.submit("logout-form", map[string]string{"decision": "logout"})
	// Errors and refusals.
	b.get(app + "/nowhere")
	b.get(app + "/login?login_challenge=bogus")
	b.get(app + "/")
	sendRaw(b, http.MethodPost, app+"/account/password", url.Values{}, http.Header{"Sec-Fetch-Site": {"cross-site"}})
	sendRaw(b, http.MethodPost, app+"/account/password", url.Values{}, http.Header{"Sec-Fetch-Site": {"same-origin"}})
	sendRaw(b, http.MethodGet, app+"/static/style.css", nil, nil)

	checked, cookies := 0, map[string]bool{}
	for _, resp := range log.seen {
		path := resp.Request.URL.Path
		if !strings.HasPrefix(path, "/login/") {
			continue // the provider's
		}
		checked++
		where := resp.Request.Method + " " + path
		h := resp.Header
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: Content-Security-Policy %q", where, csp)
		}
		if got := h.Get("X-Frame-Options"); got != "DENY" {
			t.Errorf("%s: X-Frame-Options %q", where, got)
		}
		if got := h.Get("Referrer-Policy"); got != "no-referrer" {
			t.Errorf("%s: Referrer-Policy %q", where, got)
		}
		if got := h.Get("Cache-Control"); got != "no-store" && !strings.HasPrefix(path, "/login/static/") {
			t.Errorf("%s: Cache-Control %q", where, got)
		}
		for _, ck := range resp.Cookies() {
			cookies[ck.Name] = true
			if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure || ck.Path != "/login/" {
				t.Errorf("%s: cookie %s: HttpOnly %v SameSite %v Secure %v Path %q; want HttpOnly, Lax, not Secure on http, /login/",
					where, ck.Name, ck.HttpOnly, ck.SameSite, ck.Secure, ck.Path)
			}
		}
	}
	if checked < 15 {
		t.Errorf("only %d answers of the app were checked", checked)
	}
	for _, name := range []string{"latchkey_csrf", "latchkey_signin", "latchkey_account"} {
		if !cookies[name] {
			t.Errorf("the walk never saw cookie %s set; saw %v", name, cookies)
		}
	}
}

// TestBadRequests answers unknown routes, wrong methods and oversized
// forms with the app's own error pages, never a 500.
func TestBadRequests(t *testing.T) {
	e := newEnv(t)
	app := e.app.PublicURL()
	b := newBrowser(t)
	b.get(app + "/login")
	_, fields := b.form("password-form")
	big := url.Values{"csrf": {fields.Get("csrf")}, "username": {"alice"}, "password": {strings.Repeat("x", 70<<10)}}
	sameOrigin := http.Header{"Sec-Fetch-Site": {"same-origin"}}
	for _, tc := range []struct {
		name, method, path string
		form               url.Values
		status             int
		want               string
	}{
		{"unknown route", http.MethodGet, "/no/such/page", nil, http.StatusNotFound, "There is no such page."},
		{"GET of a form action", http.MethodGet, "/account/password", nil, http.StatusMethodNotAllowed, "That request is not allowed here."},
		{"PUT of a page", http.MethodPut, "/login", url.Values{}, http.StatusMethodNotAllowed, "That request is not allowed here."},
		{"oversized sign-in form", http.MethodPost, "/login", big, http.StatusBadRequest, "The form could not be read."},
		{"oversized account form", http.MethodPost, "/account/password", big, http.StatusBadRequest, "The form could not be read."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, app+tc.path, nil)
			if tc.form != nil {
				req.Body = io.NopCloser(strings.NewReader(tc.form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			req.Header["Sec-Fetch-Site"] = sameOrigin["Sec-Fetch-Site"]
			resp, err := b.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			data, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(data), tc.want) {
				t.Fatalf("got %d, want %d saying %q:\n%s", resp.StatusCode, tc.status, tc.want, data)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type %q, want an HTML page", ct)
			}
		})
	}
}

// TestSignInRenewsAccountSession plants an account session cookie before
// sign-in, as an attacker fixing a session would: sign-in replaces it, and
// the planted value names no session afterwards.
func TestSignInRenewsAccountSession(t *testing.T) {
	e := newEnv(t)
	alice := e.createUser("alice", "a long enough passphrase")
	e.createUser("mallory", "mallory's own passphrase")
	c := e.createClient(nil)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T) string
	}{
		{"made-up value", func(*testing.T) string { return "planted-0123456789-0123456789-0123456789-01" }},
		{"the attacker's live session", func(t *testing.T) string {
			m := newBrowser(t)
			accountSignIn(t, e, m, "mallory", "mallory's own passphrase", nil)
			return appCookie(e, m, "latchkey_account")
		}},
	} {
		for _, via := range []string{"account page", "client"} {
			t.Run(tc.name+" via "+via, func(t *testing.T) {
				planted := tc.plant(t)
				b := newBrowser(t)
				u, _ := url.Parse(e.app.PublicURL() + "/")
				b.client.Jar.SetCookies(u, []*http.Cookie{{Name: "latchkey_account", Value: planted, Path: "/login/"}})
				if via == "client" {
					b.authorize(c)
					b.signIn("alice", "a long enough passphrase")
					if !b.has("wants to") {
						t.Fatalf("expected the consent page, got %d at %s:\n%s", b.code, b.url, b.body)
					}
				} else {
					accountSignIn(t, e, b, "alice", "a long enough passphrase", nil)
				}
				got := appCookie(e, b, "latchkey_account")
				if got == "" || got == planted {
					t.Fatalf("account cookie after sign-in = %q, planted %q", got, planted)
				}
				if _, err := e.store.GetAccountSession(ctx, planted); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("the planted value still names a session: %v", err)
				}
				sess, err := e.store.GetAccountSession(ctx, got)
				if err != nil || sess.UserID != alice.ID {
					t.Fatalf("new session: %+v, %v", sess, err)
				}
			})
		}
	}
}
