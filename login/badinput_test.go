package login_test

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
)

// The login app's bad-input battery, in the spirit of errors_test.go but
// over every route: wrong methods, forms without their CSRF token or from
// another site, stale and junk challenge IDs, fields that are not UTF-8,
// forms over the 64 KiB bound, and post-sign-in destinations that would
// leave the app. Each answer is the app's HTML page with the right status
// (the provider's password check answers JSON), never a server error,
// and no redirect leaves the app except to the provider.

// Texts of the app's pages the battery looks for.
const (
	saysNotAllowed     = "That request is not allowed here."
	saysFormUnreadable = "The form could not be read."
	saysNoProgress     = "Your sign-in took too long or was interrupted."
	saysNoPasskeys     = "Passkeys are not available on this server."
	saysNoUpstream     = "There is no such way to sign in."
	saysCrossOrigin    = "cross-origin request"
)

// loginCase is one request of the battery and the answer it must get.
type loginCase struct {
	name   string
	method string
	// path is under the app's base path, with any query.
	path string
	// form is sent form-encoded; with csrf set, the browser's CSRF cookie
	// and token go with it. body is sent as it is when form is nil.
	form   url.Values
	csrf   bool
	body   string
	header http.Header
	// prepare, when set, completes the case just before it is sent (a
	// live challenge, a sign-in in progress).
	prepare func(t *testing.T, c *loginCase)

	status int
	// page is text the HTML page shows; jsonError the error code of a
	// JSON answer; location the start of a redirect's target. asset marks
	// an answer of the static file server, which is not a page.
	page      string
	jsonError string
	location  string
	asset     bool
}

// csrfPair is a browser's CSRF cookie and the token its forms carry.
type csrfPair struct{ cookie, token string }

func newCSRFPair(t *testing.T, e *env) csrfPair {
	t.Helper()
	b := newBrowser(t)
	b.get(e.app.PublicURL() + "/login")
	_, fields := b.form("password-form")
	p := csrfPair{cookie: appCookie(e, b, "latchkey_csrf"), token: fields.Get("csrf")}
	if p.cookie == "" || p.token == "" {
		t.Fatalf("no CSRF cookie or token on the sign-in page: %+v", p)
	}
	return p
}

func (c *loginCase) request(e *env, p csrfPair) *http.Request {
	body := c.body
	form := c.form
	if c.csrf {
		form = url.Values{}
		for k, v := range c.form {
			form[k] = v
		}
		form.Set("csrf", p.token)
	}
	if form != nil {
		body = form.Encode()
	}
	req := httptest.NewRequest(c.method, e.app.PublicURL()+c.path, strings.NewReader(body))
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.method != http.MethodGet && c.method != http.MethodHead {
		// What a browser sends with a form of the app's own pages.
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	for k, v := range c.header {
		if k != "Cookie" {
			req.Header[k] = v
		}
	}
	if c.csrf {
		req.AddCookie(&http.Cookie{Name: "latchkey_csrf", Value: p.cookie})
	}
	for _, v := range c.header["Cookie"] {
		req.Header.Add("Cookie", v)
	}
	return req
}

func (c *loginCase) verify(t *testing.T, e *env, rec *httptest.ResponseRecorder) {
	t.Helper()
	body := rec.Body.String()
	what := fmt.Sprintf("%s %s", c.method, c.path)
	if rec.Code != c.status {
		t.Fatalf("%s: status %d, want %d: %v %.600q", what, rec.Code, c.status, rec.Header(), body)
	}
	// Relative redirects are resolved as a browser would.
	loc := rec.Header().Get("Location")
	if loc != "" {
		u, err := url.Parse(e.app.PublicURL())
		if err != nil {
			t.Fatal(err)
		}
		target, err := u.Parse(loc)
		if err != nil || target.Host != u.Host || target.User != nil {
			t.Fatalf("%s: redirect to %q, which leaves the app and its provider", what, loc)
		}
		loc = target.String()
	}
	ct := rec.Header().Get("Content-Type")
	switch {
	case c.location != "":
		if !strings.HasPrefix(loc, e.app.PublicURL()+c.location) {
			t.Errorf("%s: Location %q, want %s%s…", what, loc, e.app.PublicURL(), c.location)
		}
	case c.asset:
	case c.jsonError != "":
		var out struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Error != c.jsonError || !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: %s %q, want a JSON error %s", what, ct, body, c.jsonError)
		}
	default:
		if !strings.HasPrefix(ct, "text/html") || !strings.Contains(html.UnescapeString(body), c.page) {
			t.Errorf("%s: %s %.600q, want an HTML page saying %q", what, ct, body, c.page)
		}
	}
}

// fillRouteVars fills a route template's variables.
func fillRouteVars(tmpl string) string {
	return strings.NewReplacer("{name}", "nope").Replace(tmpl)
}

// TestBadInputBattery sends every route of the login app requests it must
// refuse, and checks each route had its cases.
func TestBadInputBattery(t *testing.T) {
	e := newEnv(t)
	e.createUser("alice", "a long enough passphrase")
	p := newCSRFPair(t, e)
	router := e.app.Router()
	cases := append(loginBadCases(t, router), liveBadCases(e)...)
	h := e.public.Config.Handler
	for _, c := range cases {
		path, _, _ := strings.Cut(c.path, "?")
		t.Run(c.method+" "+path+" "+c.name, func(t *testing.T) {
			if c.prepare != nil {
				c.prepare(t, &c)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, c.request(e, p))
			c.verify(t, e, rec)
		})
	}
	t.Run("every route has cases", func(t *testing.T) {
		routes := 0
		err := latchkeytest.WalkRoutes(router, func(tmpl string, methods []string, rt *mux.Route) {
			routes++
			var reached, wrongMethod bool
			for _, c := range cases {
				var m mux.RouteMatch
				path, _, _ := strings.Cut(c.path, "?")
				if rt.Match(httptest.NewRequest(c.method, "http://login.test"+path, nil), &m) {
					reached = reached || m.MatchErr == nil
				} else if m.MatchErr == mux.ErrMethodMismatch {
					wrongMethod = true
				}
			}
			if !reached {
				t.Errorf("route %v %s has no bad-input case", methods, tmpl)
			}
			if !wrongMethod {
				t.Errorf("route %s has no wrong-method case", tmpl)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if routes < 20 {
			t.Fatalf("only %d routes were found", routes)
		}
	})
}

// loginBadCases are the battery: some made from the route table for every
// route, the rest written out.
func loginBadCases(t *testing.T, r *mux.Router) []loginCase {
	var cases []loginCase
	big := strings.Repeat("x", 70<<10)
	seen := map[string]bool{}
	err := latchkeytest.WalkRoutes(r, func(tmpl string, methods []string, _ *mux.Route) {
		path := fillRouteVars(tmpl)
		if !seen[tmpl] {
			seen[tmpl] = true
			for _, m := range []string{http.MethodPatch, http.MethodDelete} {
				cases = append(cases, loginCase{name: "wrong method", method: m, path: path, form: url.Values{},
					status: http.StatusMethodNotAllowed, page: saysNotAllowed})
			}
		}
		if methods[0] != http.MethodPost {
			return
		}
		// Every form: its CSRF token is checked, its size bounded and
		// its fields must be UTF-8, before anything else.
		refused := func(name string, c loginCase) {
			c.name, c.method, c.path = name, http.MethodPost, path
			switch {
			case tmpl == "/internal/password":
				return // JSON, written out below
			case tmpl == "/login/passkey" || tmpl == "/login/webauthn":
				// Passkeys are off on an IP-address host; that is
				// said first.
				c.status, c.page = http.StatusNotFound, saysNoPasskeys
			}
			cases = append(cases, c)
		}
		refused("no CSRF token", loginCase{form: url.Values{"username": {"alice"}}, status: http.StatusForbidden, page: csrfRefused})
		refused("a made-up CSRF token", loginCase{form: url.Values{"csrf": {"made-up"}},
			header: http.Header{"Cookie": {"latchkey_csrf=" + strings.Repeat("a", 43)}}, status: http.StatusForbidden, page: csrfRefused})
		refused("form over 64 KiB", loginCase{form: url.Values{"pad": {big}}, csrf: true, status: http.StatusBadRequest, page: saysFormUnreadable})
		refused("body not a form", loginCase{body: "csrf=%zz&username=alice", header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			status: http.StatusBadRequest, page: saysFormUnreadable})
		// A form posted from another site is refused before it is read.
		c := loginCase{name: "cross-site", method: http.MethodPost, path: path, form: url.Values{}, csrf: true,
			header: http.Header{"Sec-Fetch-Site": {"cross-site"}}, status: http.StatusForbidden, page: saysCrossOrigin}
		if tmpl != "/internal/password" {
			cases = append(cases, c)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	gone := func(name, method, path string, form url.Values) loginCase {
		return loginCase{name: name, method: method, path: path, form: form, csrf: method == http.MethodPost,
			status: http.StatusNotFound, page: challengeGone}
	}
	for _, id := range []string{"", "no-such-challenge", "\xff\xfe", "\x00<script>", strings.Repeat("x", 5000)} {
		label := fmt.Sprintf("challenge %.12q", id)
		q := url.QueryEscape(id)
		cases = append(cases,
			gone(label, http.MethodGet, "/login?login_challenge=x"+q, nil),
			gone(label, http.MethodGet, "/consent?consent_challenge="+q, nil),
			gone(label, http.MethodGet, "/device?device_challenge="+q, nil),
			gone(label, http.MethodGet, "/logout?logout_challenge="+q, nil),
			gone(label, http.MethodPost, "/login", url.Values{"login_challenge": {"x" + id}, "username": {"alice"}, "password": {"a long enough passphrase"}}),
			gone(label, http.MethodPost, "/consent", url.Values{"consent_challenge": {id}, "decision": {"allow"}}),
			gone(label, http.MethodPost, "/consent", url.Values{"consent_challenge": {id}, "decision": {"deny"}}),
			gone(label, http.MethodPost, "/device", url.Values{"device_challenge": {id}, "user_code": {"BBBB-CCCC"}}),
			gone(label, http.MethodPost, "/logout", url.Values{"logout_challenge": {id}, "decision": {"logout"}}),
			gone(label, http.MethodPost, "/logout", url.Values{"logout_challenge": {id}, "decision": {"stay"}}),
		)
	}
	// The second step of a sign-in without its first.
	for _, path := range []string{"/login/second-factor", "/login/setup-totp"} {
		cases = append(cases, loginCase{name: "without a first factor", method: http.MethodGet, path: path,
			status: http.StatusBadRequest, page: saysNoProgress})
	}
	for _, path := range []string{"/login/totp", "/login/email", "/login/email/send", "/login/recovery", "/login/setup-totp"} {
		cases = append(cases, loginCase{name: "without a first factor", method: http.MethodPost, path: path,
			form: url.Values{"code": {"123456"}}, csrf: true, status: http.StatusBadRequest, page: saysNoProgress})
		cases = append(cases, loginCase{name: "with a forged sign-in cookie", method: http.MethodPost, path: path,
			form: url.Values{"code": {"123456"}}, csrf: true, header: http.Header{"Cookie": {"latchkey_signin=forged.value"}},
			status: http.StatusBadRequest, page: saysNoProgress})
	}
	// Account pages without an account session send the browser to sign
	// in; their forms do too.
	for _, path := range []string{"/account", "/account/totp"} {
		cases = append(cases, loginCase{name: "without a session", method: http.MethodGet, path: path,
			status: http.StatusFound, location: "/login?next=" + path})
	}
	for _, path := range []string{"/account/password", "/account/totp", "/account/totp/remove", "/account/passkeys",
		"/account/passkeys/remove", "/account/recovery-codes", "/account/unlink"} {
		cases = append(cases, loginCase{name: "without a session", method: http.MethodPost, path: path,
			form: url.Values{}, csrf: true, status: http.StatusSeeOther, location: "/login?next=/account"})
	}
	// Where a sign-in goes afterwards is one of the account pages, never
	// a place the request names elsewhere.
	for _, next := range []string{"https://evil.example.test/account", "//evil.example.test/account", "/account/../../evil",
		"/account//evil.example.test", "/\\evil.example.test", "javascript:alert(1)", "/account\xff"} {
		cases = append(cases, loginCase{name: fmt.Sprintf("sign-in with next %q", next), method: http.MethodPost, path: "/login",
			form: url.Values{"username": {"alice"}, "password": {"a long enough passphrase"}, "next": {next}}, csrf: true,
			status: http.StatusSeeOther, location: "/account"})
		cases = append(cases, loginCase{name: fmt.Sprintf("sign-in page with next %q", next), method: http.MethodGet,
			path: "/login?next=" + url.QueryEscape(next), status: http.StatusOK, page: "Sign in"})
	}
	cases = append(cases,
		gone("challenge twice", http.MethodGet, "/consent?consent_challenge=a&consent_challenge=b", nil),
		// Assets are served from their own directory only.
		loginCase{name: "unknown asset", method: http.MethodGet, path: "/static/nope.css", status: http.StatusNotFound, asset: true},
		loginCase{name: "a template by a dotted path", method: http.MethodGet, path: "/static/%2e%2e/templates/error.html", status: http.StatusNotFound, asset: true},
		loginCase{name: "a dotted path", method: http.MethodGet, path: "/account/%2e%2e/account", status: http.StatusNotFound, page: "There is no such page."},
		loginCase{name: "a doubled slash", method: http.MethodGet, path: "//account", status: http.StatusTemporaryRedirect, location: "/account"},
		loginCase{name: "unknown upstream", method: http.MethodGet, path: "/login/upstream/nope", status: http.StatusNotFound, page: saysNoUpstream},
		loginCase{name: "unknown upstream", method: http.MethodGet, path: "/login/upstream/nope/callback?state=x&code=y", status: http.StatusNotFound, page: saysNoUpstream},
		loginCase{name: "passkey page, passkeys off", method: http.MethodGet, path: "/account/passkeys/new", status: http.StatusNotFound, page: saysNoPasskeys},
		loginCase{name: "root", method: http.MethodGet, path: "/", status: http.StatusFound, location: "/account"},
		loginCase{name: "unknown page", method: http.MethodGet, path: "/nowhere", status: http.StatusNotFound, page: "There is no such page."},
		// The password check is the provider's, authenticated by the
		// admin token, and answers JSON.
		loginCase{name: "no token", method: http.MethodPost, path: "/internal/password", body: `{"username":"alice","password":"x"}`,
			status: http.StatusUnauthorized, jsonError: "invalid_token"},
		loginCase{name: "wrong token", method: http.MethodPost, path: "/internal/password", body: `{"username":"alice","password":"x"}`,
			header: http.Header{"Authorization": {"Bearer wrong-token"}}, status: http.StatusUnauthorized, jsonError: "invalid_token"},
	)
	withToken := http.Header{"Authorization": {"Bearer " + adminToken}, "Content-Type": {"application/json"}}
	for _, body := range []string{``, `{`, `[]`, `{"username":1}`, `{"username":"alice","password":"x"} {}`, `username=alice&password=x`,
		`{"username":"alice","password":"` + strings.Repeat("x", 20<<10) + `"}`} {
		cases = append(cases, loginCase{name: fmt.Sprintf("body %.20q", body), method: http.MethodPost, path: "/internal/password", body: body,
			header: withToken, status: http.StatusBadRequest, jsonError: "invalid_request"})
	}
	cases = append(cases, loginCase{name: "username not UTF-8", method: http.MethodPost, path: "/internal/password",
		body: "{\"username\":\"alice\xff\",\"password\":\"a long enough passphrase\"}", header: withToken,
		status: http.StatusUnauthorized, jsonError: "invalid_credentials"})
	return cases
}

// liveBadCases send fields that are not UTF-8 where they reach something:
// a sign-in, a device's user code, a second factor. Each is answered as a
// wrong value is, on the page that asked for it.
func liveBadCases(e *env) []loginCase {
	bob := e.createUser("bob", "another long passphrase")
	e.enrolTOTP(bob)
	dev := newDeviceClient(e)
	signIn := func(username, password string) loginCase {
		return loginCase{name: fmt.Sprintf("sign-in as %q", username), method: http.MethodPost, path: "/login",
			form: url.Values{"username": {username}, "password": {password}}, csrf: true,
			status: http.StatusUnauthorized, page: "Invalid username or password."}
	}
	return []loginCase{
		signIn("alice\xff", "a long enough passphrase"),
		signIn("alice", "a long enough passphrase\xff"),
		signIn("\xff\xfe", "\xff"),
		{name: "user code not UTF-8", method: http.MethodPost, path: "/device", csrf: true,
			prepare: func(t *testing.T, c *loginCase) {
				b := newBrowser(t)
				b.get(dev.start(t).VerificationURIComplete)
				_, fields := b.form("device-form")
				c.form = url.Values{"device_challenge": {fields.Get("device_challenge")}, "user_code": {"BB\xffCC-DD\xfeFF"}}
			},
			status: http.StatusBadRequest, page: "That code is not right"},
		{name: "second factor not UTF-8", method: http.MethodPost, path: "/login/totp", csrf: true,
			prepare: func(t *testing.T, c *loginCase) {
				b := newBrowser(t)
				b.get(e.app.PublicURL() + "/login")
				b.signIn("bob", "another long passphrase")
				if progress := appCookie(e, b, "latchkey_signin"); progress == "" {
					t.Fatalf("no sign-in in progress after the password: %d at %s", b.code, b.url)
				} else {
					c.header = http.Header{"Cookie": {"latchkey_signin=" + progress}}
				}
				c.form = url.Values{"code": {"12\xfe456"}}
			},
			status: http.StatusUnauthorized, page: "That code is not right"},
	}
}
