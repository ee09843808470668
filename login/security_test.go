package login_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
	"github.com/latchkey-oidc/latchkey/login"
	"github.com/latchkey-oidc/latchkey/login/password"
	"github.com/latchkey-oidc/latchkey/store"
	"github.com/latchkey-oidc/latchkey/store/storetest"
)

// The controls of deploy/SECURITY.md that no other test of the login app
// proves. Each test here is cited there.

// postRoute matches a POST route of the app's route table (routes.go).
var postRoute = regexp.MustCompile(`\{"POST", "([^"]+)"`)

// TestEveryFormChecksCSRF reads the app's route table and posts to every
// POST route, as a browser holding the app's CSRF cookie would: without the
// form's token, and cross-site with it. Each is refused with 403 before it
// does anything (RFC 9700 §4.7 for the login app's own forms). The one
// route without a form, the provider's password check, takes the admin
// token instead of cookies and refuses a request without it.
func TestEveryFormChecksCSRF(t *testing.T) {
	src, err := os.ReadFile("routes.go")
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	for _, m := range postRoute.FindAllStringSubmatch(string(src), -1) {
		routes = append(routes, m[1])
	}
	if len(routes) < 15 {
		t.Fatalf("found %d POST routes in routes.go: %v; has the table's form changed?", len(routes), routes)
	}
	e := newEnv(t, onLocalhost) // passkeys on, so their routes answer
	e.createUser("alice", "a long enough passphrase")
	app := e.app.PublicURL()
	b := newBrowser(t)
	b.get(app + "/login")
	_, fields := b.form("password-form")
	token := fields.Get("csrf")
	if token == "" || appCookie(e, b, "latchkey_csrf") == "" {
		t.Fatalf("no CSRF token and cookie from the sign-in page: %q", token)
	}
	sameOrigin := http.Header{"Sec-Fetch-Site": {"same-origin"}}
	crossSite := http.Header{"Sec-Fetch-Site": {"cross-site"}}
	form := func(csrf string) url.Values {
		v := url.Values{"username": {"alice"}, "password": {"a long enough passphrase"}, "decision": {"allow"}, "code": {"123456"}}
		if csrf != "" {
			v.Set("csrf", csrf)
		}
		return v
	}
	for _, route := range routes {
		t.Run(strings.TrimPrefix(route, "/"), func(t *testing.T) {
			if route == "/internal/password" {
				status, body := sendRaw(b, http.MethodPost, app+route, form(""), crossSite)
				if status != http.StatusUnauthorized {
					t.Errorf("without the admin token: %d %s", status, body)
				}
				return
			}
			for _, tc := range []struct {
				name   string
				form   url.Values
				header http.Header
				want   string
			}{
				{"no token", form(""), sameOrigin, csrfRefused},
				{"wrong token", form(token + "x"), sameOrigin, csrfRefused},
				{"cross-site with the token", form(token), crossSite, "cross-origin request"},
			} {
				status, body := sendRaw(b, http.MethodPost, app+route, tc.form, tc.header)
				if status != http.StatusForbidden || !strings.Contains(body, tc.want) {
					t.Errorf("%s: %d, want 403 saying %q:\n%.300s", tc.name, status, tc.want, body)
				}
			}
		})
	}
	if got := e.metric("latchkey_login_signins_total", map[string]string{"method": "password"}); got != 0 {
		t.Errorf("refused forms were counted as %v sign-ins", got)
	}
}

// TestCookiesSecureOverHTTPS runs the app at an https public URL, behind a
// stand-in for a TLS-terminating proxy, and signs in to the account page:
// every cookie it sets is Secure, HttpOnly, SameSite=Lax and scoped to the
// app's path. (TestSecurityHeadersAndCookies checks the same flags, but
// Secure, on plain http.)
func TestCookiesSecureOverHTTPS(t *testing.T) {
	const host = "id.example.test"
	ctx := context.Background()
	st := storetest.OpenURL(t, storetest.FreshSQLite(t), store.Options{})
	hasher := &password.Hasher{MemoryKiB: 64, Time: 1, Threads: 1}
	hash, err := hasher.Hash(ctx, "a long enough passphrase")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(ctx, &store.User{Username: "alice", PasswordHash: hash}); err != nil {
		t.Fatal(err)
	}
	app, err := login.New(ctx, st, login.Config{
		PublicURL:  "https://" + host + "/login",
		Issuer:     "https://" + host,
		AdminURL:   "http://127.0.0.1:9", // not reached: no challenge
		AdminToken: adminToken,
		Secret:     storetest.TestSecret,
		Passwords:  hasher,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app.Mount(http.NotFoundHandler()))
	t.Cleanup(srv.Close)
	target, _ := url.Parse(srv.URL)
	b := newBrowser(t)
	log := &responseLog{next: latchkeytest.HTTPSFront{Host: host, Target: target}}
	b.client.Transport = log

	b.get("https://" + host + "/login/login?next=/account")
	b.signIn("alice", "a long enough passphrase")
	if b.code != http.StatusOK || b.url != "https://"+host+"/login/account" {
		t.Fatalf("expected the account page, got %d at %s:\n%s", b.code, b.url, b.body)
	}
	cookies := map[string]bool{}
	for _, resp := range log.seen {
		for _, ck := range resp.Cookies() {
			cookies[ck.Name] = true
			if !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/login/" {
				t.Errorf("%s %s: cookie %s: Secure %v HttpOnly %v SameSite %v Path %q; want Secure, HttpOnly, Lax, /login/",
					resp.Request.Method, resp.Request.URL.Path, ck.Name, ck.Secure, ck.HttpOnly, ck.SameSite, ck.Path)
			}
		}
	}
	for _, name := range []string{"latchkey_csrf", "latchkey_account"} {
		if !cookies[name] {
			t.Errorf("the sign-in never set cookie %s; saw %v", name, cookies)
		}
	}
}

// TestCredentialPostsRedirectWith303: after a form that carries a password
// or a decision, the app redirects with 303 See Other, never 307 or 308,
// which would make the browser post the credentials again to the next site
// (RFC 9700 §4.12).
func TestCredentialPostsRedirectWith303(t *testing.T) {
	e := newEnv(t)
	e.createUser("alice", "a long enough passphrase")
	c := e.createClient(nil)
	b := newBrowser(t)
	b.authorize(c)
	post := func(formID string, values map[string]string) string {
		t.Helper()
		action, fields := b.form(formID)
		for k, v := range values {
			fields.Set(k, v)
		}
		req, err := http.NewRequest(http.MethodPost, action, strings.NewReader(fields.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		resp, err := b.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("%s answered %d, want 303 See Other", formID, resp.StatusCode)
		}
		loc, err := req.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		return loc.String()
	}
	b.get(post("password-form", map[string]string{"username": "alice", "password": "a long enough passphrase"}))
	if !b.has("wants to") {
		t.Fatalf("expected the consent page, got %d at %s:\n%s", b.code, b.url, b.body)
	}
	b.get(post("consent-form", map[string]string{"decision": "allow"}))
	if !strings.HasPrefix(b.url, rpRedirect) {
		t.Fatalf("expected the client, got %d at %s", b.code, b.url)
	}
}

// TestPasswordThrottlePerSource: wrong passwords from one address count
// against that address whichever usernames they name, existing or not, so
// guessing across many accounts is throttled too; then even a right
// password from there waits (the per-account limit is far away here).
func TestPasswordThrottlePerSource(t *testing.T) {
	const threshold = 3
	e := newEnv(t, withLimits(func(l *login.Limits) {
		l.PasswordPerAccount = []login.Tier{{Threshold: 100, Window: time.Hour, LockFor: time.Hour}}
		l.PasswordPerSource = []login.Tier{{Threshold: threshold, Window: time.Hour, LockFor: time.Hour}}
	}))
	for _, u := range []string{"alice", "bob", "carol"} {
		e.createUser(u, "a long enough passphrase")
	}
	c := e.createClient(nil)
	b := newBrowser(t)
	for _, u := range []string{"alice", "bob", "nobody"} {
		b.authorize(c)
		b.signIn(u, "not the passphrase")
		if b.code != http.StatusUnauthorized || !b.has("Invalid username or password.") {
			t.Fatalf("wrong password for %s: %d\n%s", u, b.code, b.body)
		}
	}
	b.authorize(c)
	b.signIn("carol", "a long enough passphrase")
	if b.code != http.StatusTooManyRequests || !b.has("Too many attempts") {
		t.Fatalf("a right password from a throttled address: %d\n%s", b.code, b.body)
	}
	if got := e.metric("latchkey_login_lockouts_total", map[string]string{"kind": "password_source"}); got != 1 {
		t.Errorf("source lockouts counted %v, want 1", got)
	}
}
