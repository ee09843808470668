package provider_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
)

// The bad-input battery: every public endpoint and every admin API route
// gets requests it must refuse (wrong methods, missing and repeated
// parameters, invalid UTF-8, wrong content types, malformed JSON and JWTs,
// unknown clients, open-redirect attempts, PKCE verifiers of the wrong
// form, replayed codes, tokens of another client), and each answer must be
// the protocol's own: the exact status and error code, in the endpoint's
// error shape, never a server error, and never a redirect anywhere but a
// redirect URI the client registered (or the login app).
//
// Oversized bodies and headers are refused before any handler by the
// serving middleware (observe.Options.MaxBodyBytes answers 413 in the
// OAuth error shape, the server's MaxHeaderBytes 431), which the test
// provider is not built with: provider/observe TestBodyLimit and
// cmd/latchkey TestServeRequestLimits test those. The handlers' own bounds
// (1 MiB forms at introspection and revocation, 64 KiB registration
// documents) are in the battery.

// errorShape is how an endpoint answers a request it refuses.
type errorShape int

const (
	// shapeJSON is an error object, {"error": code, "error_description": …}.
	shapeJSON errorShape = iota
	// shapePage is the provider's HTML error page, showing code.
	shapePage
	// shapeRedirect is a redirect to the client's registered redirect URI
	// with error=code, the request's state and iss (RFC 9207).
	shapeRedirect
	// shapeBare is a 401 with WWW-Authenticate: Bearer and no error
	// code, the answer to a request without credentials (RFC 6750 §3.1).
	shapeBare
	// shapeLogin is not an error: the request was good enough to hand
	// the user to the login app, which shows its own pages.
	shapeLogin
	// shapeAnswered is a success the protocol gives even to a bad request
	// ({"active":false}, a revocation's 200); check says what it must be.
	shapeAnswered
)

// badCase is one request of the battery and the answer it must get.
type badCase struct {
	name   string
	method string
	// target is the path and query, under the issuer for the public
	// endpoints and on the admin listener for the admin API.
	target string
	header http.Header
	body   string
	// prepare, when set, completes the request just before it is sent
	// (a fresh authorization code, say).
	prepare func(t *testing.T, c *badCase)

	status int
	shape  errorShape
	code   string
	// check adds to what shape checks.
	check func(t *testing.T, a httpAnswer)
	// skip names a known bug in a file this battery may not change; the
	// case asserts the correct behaviour and is skipped until it is fixed.
	skip string
}

// Request headers of the cases.
var (
	formCT = http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	jsonCT = http.Header{"Content-Type": {"application/json"}}
	textCT = http.Header{"Content-Type": {"text/plain"}}
)

// withBasic returns h with a Basic authorization for id and secret, as RFC
// 6749 §2.3.1 encodes them.
func withBasic(h http.Header, id, secret string) http.Header {
	return withHeader(h, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret))))
}

// withHeader returns h with name set to value.
func withHeader(h http.Header, name, value string) http.Header {
	out := h.Clone()
	if out == nil {
		out = http.Header{}
	}
	out.Set(name, value)
	return out
}

func (c *badCase) request(base string) *http.Request {
	req := httptest.NewRequest(c.method, base+c.target, strings.NewReader(c.body))
	for k, v := range c.header {
		req.Header[k] = v
	}
	return req
}

// runBattery sends each case to h, whose URLs start with base, and checks the
// answer.
func runBattery(t *testing.T, e *env, h http.Handler, base string, cases []badCase) {
	t.Helper()
	for _, c := range cases {
		path, _, _ := strings.Cut(c.target, "?")
		t.Run(c.method+" "+path+" "+c.name, func(t *testing.T) {
			if c.skip != "" {
				t.Skip("known bug: " + c.skip)
			}
			if c.prepare != nil {
				c.prepare(t, &c)
			}
			rec := serve(h, c.request(base))
			c.verify(t, e, rec)
		})
	}
}

// verify checks an answer against the case's expectation.
func (c *badCase) verify(t *testing.T, e *env, rec *httptest.ResponseRecorder) {
	t.Helper()
	a := httpAnswer{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
	what := fmt.Sprintf("%s %s %.200q", c.method, c.target, c.body)
	if a.Status != c.status {
		t.Fatalf("%s: status %d, want %d: %v %.800q", what, a.Status, c.status, a.Header, a.Body)
	}
	loc := a.Header.Get("Location")
	checkRedirectTarget(t, e, loc)
	switch c.shape {
	case shapeJSON:
		jsonAnswer{errors: []int{c.status}}.check(t, what, rec)
		body := a.JSON(t)
		if body["error"] != c.code {
			t.Errorf("%s: error %v, want %s: %s", what, body["error"], c.code, a.Body)
		}
		if d, _ := body["error_description"].(string); d == "" {
			t.Errorf("%s: no error_description: %s", what, a.Body)
		}
		if ct := a.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: Content-Type %q", what, ct)
		}
	case shapePage:
		if ct := a.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("%s: Content-Type %q, want the HTML error page: %.300s", what, ct, a.Body)
		}
		if !strings.Contains(string(a.Body), "<code>"+c.code+"</code>") {
			t.Errorf("%s: the page does not show error %s: %.800q", what, c.code, a.Body)
		}
		if loc != "" {
			t.Errorf("%s: an error page with Location %q", what, loc)
		}
	case shapeRedirect:
		u, err := url.Parse(loc)
		if err != nil {
			t.Fatalf("%s: Location %q: %v", what, loc, err)
		}
		params := u.Query()
		if u.Fragment != "" {
			params, _ = url.ParseQuery(u.Fragment)
		}
		if params.Get("error") != c.code || params.Get("iss") != e.issuer() {
			t.Errorf("%s: redirect to %s, want error=%s and iss", what, loc, c.code)
		}
		if state := requestState(c); state != "" && params.Get("state") != state {
			t.Errorf("%s: redirect to %s lost state %q", what, loc, state)
		}
	case shapeBare:
		if got := a.Header.Get("WWW-Authenticate"); got != "Bearer" || len(a.Body) != 0 {
			t.Errorf("%s: WWW-Authenticate %q, body %q; want a bare Bearer challenge", what, got, a.Body)
		}
	case shapeLogin:
		if !strings.HasPrefix(loc, e.login.srv.URL+"/") {
			t.Errorf("%s: Location %q, want the login app", what, loc)
		}
	}
	if c.check != nil {
		c.check(t, a)
	}
}

// requestState is the state parameter a case sent, if any.
func requestState(c *badCase) string {
	q := c.target
	if i := strings.IndexByte(q, '?'); i >= 0 {
		v, _ := url.ParseQuery(q[i+1:])
		if s := v.Get("state"); s != "" {
			return s
		}
	}
	v, _ := url.ParseQuery(c.body)
	return v.Get("state")
}

// checkRedirectTarget fails unless loc is empty or goes where the provider may
// send a browser: a redirect URI or post-logout redirect URI a client
// registered, the login app, or the provider itself.
func checkRedirectTarget(t *testing.T, e *env, loc string) {
	t.Helper()
	if loc == "" {
		return
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("Location %q: %v", loc, err)
	}
	base := u.Scheme + "://" + u.Host + u.Path
	if u.User == nil && (base == rpRedirect || base == loggedOut) {
		return
	}
	for _, own := range []string{e.login.srv.URL, e.issuer()} {
		if strings.HasPrefix(loc, own+"/") {
			return
		}
	}
	t.Fatalf("redirect to %q, which no client registered", loc)
}

// wantMember checks the answer is a JSON object whose member key is value.
func wantMember(key string, value any) func(*testing.T, httpAnswer) {
	return func(t *testing.T, a httpAnswer) {
		t.Helper()
		if got := a.JSON(t)[key]; fmt.Sprint(got) != fmt.Sprint(value) {
			t.Errorf("%s = %v, want %v: %s", key, got, value, a.Body)
		}
	}
}

// badFixture is what the battery's cases refer to: clients of every kind,
// and tokens they hold.
type badFixture struct {
	web, other, public, machine, device, otherDevice *store.Client
	// signed has keys and must sign its request objects.
	signed *store.Client
	// Code flow tokens of web and of other.
	webAccess, webRefresh, webIDToken string
	otherAccess, otherRefresh         string
	// regClient and regToken are a dynamically registered client and its
	// registration access token.
	regClient, regToken string
	// session is the Cookie header of a browser signed in at the provider.
	session string
}

func newBadFixture(t *testing.T, e *env) *badFixture {
	t.Helper()
	f := &badFixture{}
	web := func(id string) *store.Client {
		return webClient(e, func(c *store.Client) { c.ID = id; c.PostLogoutRedirectURIs = []string{loggedOut} })
	}
	f.web, f.other = web("bad-web"), web("bad-other")
	_, jwks := rpKey(t)
	f.signed = webClient(e, func(c *store.Client) { c.ID = "bad-signed"; c.JWKS = jwks; c.RequestObjectSigningAlg = "ES256" })
	f.public = e.createClient(&store.Client{ID: "bad-public", GrantTypes: []string{"authorization_code", "refresh_token"},
		ResponseTypes: []string{"code"}, Scope: "openid profile email offline_access"}, "")
	f.machine = e.createClient(&store.Client{ID: "bad-machine", GrantTypes: []string{"client_credentials"}, Scope: "api"}, testSecret)
	f.device = e.createClient(&store.Client{ID: "bad-device", GrantTypes: []string{deviceGrant}, Scope: "openid"}, "")
	f.otherDevice = e.createClient(&store.Client{ID: "bad-device-2", GrantTypes: []string{deviceGrant}, Scope: "openid"}, "")
	scopes := []string{"openid", "offline_access"}
	tok := codeFlowTokens(t, e, f.web, testSecret, scopes)
	f.webAccess, f.webRefresh = tok.AccessToken, tok.RefreshToken
	f.webIDToken, _ = tok.Extra("id_token").(string)
	tok = codeFlowTokens(t, e, f.other, testSecret, scopes)
	f.otherAccess, f.otherRefresh = tok.AccessToken, tok.RefreshToken
	if f.webIDToken == "" || f.webRefresh == "" || f.otherRefresh == "" {
		t.Fatal("the fixture's code flows gave no ID token or refresh token")
	}
	b := newBrowser(t)
	mustCode(t, b.authorize(e.issuer(), codeParams(f.web.ID)))
	u, _ := url.Parse(e.issuer())
	var cookies []string
	for _, c := range b.client.Jar.Cookies(u) {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	f.session = strings.Join(cookies, "; ")
	reg := e.register(t, map[string]any{"redirect_uris": []string{rpRedirect}, "client_name": "Bad input"})
	f.regClient, _ = reg["client_id"].(string)
	f.regToken, _ = reg["registration_access_token"].(string)
	return f
}

// freshCode runs a code flow of codeParams for client and returns the code.
func freshCode(t *testing.T, e *env, clientID string) string {
	t.Helper()
	return mustCode(t, newBrowser(t).authorize(e.issuer(), codeParams(clientID)))
}

// encodePairs encodes pairs as a form body, in order and repeats kept.
func encodePairs(pairs ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(pairs); i += 2 {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(pairs[i]) + "=" + url.QueryEscape(pairs[i+1]))
	}
	return b.String()
}

// Malformed JWTs, as client assertions, hints, request objects and tokens.
var malformedJWTs = map[string]string{
	"three junk parts":   "a.b.c",
	"alg none":           base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"alice-subject"}`)) + ".",
	"header not JSON":    "eyJub3QganNvbg.e30.AAAA",
	"bad signature":      "eyJhbGciOiJSUzI1NiIsImtpZCI6Im5vbmUifQ.eyJpc3MiOiJ4In0.c2lnbmF0dXJl",
	"two parts":          "eyJhbGciOiJSUzI1NiJ9.e30",
	"not base64":         "!!!.###.$$$",
	"encrypted (5 part)": "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d",
}

// jwtNames returns m's keys in order, so subtests have a stable order.
func jwtNames(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestBadInput runs the battery against one provider: the public
// endpoints, the admin API, and the grants that misuse codes and tokens;
// then checks every route of both tables had its cases.
func TestBadInput(t *testing.T) {
	e := newEnv(t, func(c *provider.Config) {
		c.RegistrationPolicy = provider.RegistrationOpen
		c.HTTPClient = offline
	})
	f := newBadFixture(t, e)
	public := publicBadCases(t, e, f)
	admin := adminBadCases(t, e)
	t.Run("public", func(t *testing.T) { runBattery(t, e, e.p.PublicHandler(), e.issuer(), public) })
	t.Run("admin", func(t *testing.T) { runBattery(t, e, e.p.AdminHandler(), e.admin.URL, admin) })
	t.Run("every route has cases", func(t *testing.T) {
		pub, adm := e.p.Routers()
		checkRoutesCovered(t, "public", pub, public)
		checkRoutesCovered(t, "admin", adm, admin)
	})
}

// checkRoutesCovered fails for every route of r that no case reaches with
// one of its methods, and every path no case sends a wrong method.
func checkRoutesCovered(t *testing.T, table string, r *mux.Router, cases []badCase) {
	t.Helper()
	routes := 0
	err := latchkeytest.WalkRoutes(r, func(tmpl string, methods []string, rt *mux.Route) {
		routes++
		var reached, wrongMethod bool
		for _, c := range cases {
			var m mux.RouteMatch
			req := httptest.NewRequest(c.method, "http://provider.test"+c.target, nil)
			if rt.Match(req, &m) {
				reached = reached || m.MatchErr == nil
			} else if m.MatchErr == mux.ErrMethodMismatch {
				wrongMethod = true
			}
		}
		if !reached {
			t.Errorf("%s route %v %s has no bad-input case", table, methods, tmpl)
		}
		if !wrongMethod {
			t.Errorf("%s route %s has no wrong-method case", table, tmpl)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// A table that could not be walked must not pass for an empty one.
	if routes < 10 {
		t.Fatalf("only %d %s routes were found", routes, table)
	}
}

// wrongMethods answers, for every path of r, a method it does not serve:
// 405 invalid_request as JSON.
func wrongMethods(t *testing.T, r *mux.Router, header http.Header) []badCase {
	t.Helper()
	var out []badCase
	seen := map[string]bool{}
	err := latchkeytest.WalkRoutes(r, func(tmpl string, _ []string, _ *mux.Route) {
		if seen[tmpl] {
			return
		}
		seen[tmpl] = true
		// Variables get a plain value; every route accepts one.
		path := tmpl
		for strings.Contains(path, "{") {
			i, j := strings.IndexByte(path, '{'), strings.IndexByte(path, '}')
			path = path[:i] + "some-value" + path[j+1:]
		}
		for _, m := range []string{http.MethodPatch, http.MethodOptions} {
			out = append(out, badCase{name: "wrong method " + tmpl, method: m, target: path, header: header,
				status: http.StatusMethodNotAllowed, shape: shapeJSON, code: "invalid_request"})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func publicBadCases(t *testing.T, e *env, f *badFixture) []badCase {
	pub, _ := e.p.Routers()
	cases := wrongMethods(t, pub, nil)
	cases = append(cases, []badCase{
		// Methods a route of the same path does not take.
		{name: "discovery by POST", method: http.MethodPost, target: "/.well-known/openid-configuration", header: formCT,
			status: 405, shape: shapeJSON, code: "invalid_request"},
		{name: "JWKS by DELETE", method: http.MethodDelete, target: "/.well-known/jwks.json",
			status: 405, shape: shapeJSON, code: "invalid_request"},
		{name: "token endpoint by GET", method: http.MethodGet, target: "/oauth2/token?grant_type=client_credentials",
			status: 405, shape: shapeJSON, code: "invalid_request"},
		{name: "introspection by GET", method: http.MethodGet, target: "/oauth2/introspect?token=x",
			status: 405, shape: shapeJSON, code: "invalid_request"},
		{name: "userinfo by PUT", method: http.MethodPut, target: "/userinfo", header: withHeader(nil, "Authorization", "Bearer "+f.webAccess),
			status: 405, shape: shapeJSON, code: "invalid_request"},
		{name: "registration read by POST", method: http.MethodPost, target: "/oauth2/register/" + f.regClient,
			header: withHeader(jsonCT, "Authorization", "Bearer "+f.regToken), body: `{}`,
			status: 405, shape: shapeJSON, code: "invalid_request"},
		{name: "unknown path", method: http.MethodGet, target: "/oauth2/nothing-here",
			status: 404, shape: shapeJSON, code: "not_found"},
	}...)
	cases = append(cases, discoveryCases()...)
	cases = append(cases, authorizeCases(f)...)
	cases = append(cases, continueCases()...)
	cases = append(cases, tokenCases(e, f)...)
	cases = append(cases, pkceAndCodeCases(e, f)...)
	cases = append(cases, parCases(f)...)
	cases = append(cases, deviceCases(e, f)...)
	cases = append(cases, introspectionCases(e, f)...)
	cases = append(cases, revocationCases(e, f)...)
	cases = append(cases, userinfoCases(f)...)
	cases = append(cases, endSessionCases(f)...)
	cases = append(cases, registrationCases(f)...)
	return cases
}

// discoveryCases: the documents ignore what they are sent.
func discoveryCases() []badCase {
	isJSON := func(t *testing.T, a httpAnswer) { t.Helper(); a.JSON(t) }
	return []badCase{
		{name: "discovery with junk query", method: http.MethodGet, target: "/.well-known/openid-configuration?%ff=%00&x=1&x=2",
			status: 200, shape: shapeAnswered, check: isJSON},
		{name: "JWKS with junk query", method: http.MethodGet, target: "/.well-known/jwks.json?kid=%ff&kid=x",
			status: 200, shape: shapeAnswered, check: isJSON},
	}
}

// authorizeQuery is codeParams of client with the changes given as
// name, value pairs; a value "" removes the parameter.
func authorizeQuery(clientID string, changes ...string) string {
	q := codeParams(clientID)
	for i := 0; i+1 < len(changes); i += 2 {
		if changes[i+1] == "" {
			q.Del(changes[i])
		} else {
			q.Set(changes[i], changes[i+1])
		}
	}
	return "/oauth2/auth?" + q.Encode()
}

func authorizeCases(f *badFixture) []badCase {
	id := f.web.ID
	auth := func(name string, status int, sh errorShape, code string, changes ...string) badCase {
		return badCase{name: name, method: http.MethodGet, target: authorizeQuery(id, changes...), status: status, shape: sh, code: code}
	}
	// Open redirects: nothing but the registered URI, exactly, is a
	// redirect target; the person sees a page instead.
	var cases []badCase
	for _, uri := range []string{
		"https://evil.example.test/cb",
		"https://rp.example.test/cb/evil",
		"https://rp.example.test/cbx",
		"https://rp.example.test/c",
		"https://rp.example.test/cb/",
		"https://rp.example.test/cb?next=https://evil.example.test",
		"https://rp.example.test/cb#fragment",
		"https://rp.example.test/cb#",
		"https://rp.example.test/cb/../../evil",
		"https://rp.example.test/cb/%2e%2e/evil",
		"https://rp.example.test/cb/..%2f..%2fevil",
		"https://evil.example.test@rp.example.test/cb",
		"https://rp.example.test@evil.example.test/cb",
		"https://rp.example.test:443@evil.example.test/cb",
		"https://rp.example.test\\@evil.example.test/cb",
		"https://RP.EXAMPLE.TEST/cb",
		"HTTPS://rp.example.test/cb",
		"https://rp.example.test/CB",
		"https://rp.example.test:443/cb",
		"https://rp.example.test:8443/cb",
		"http://rp.example.test/cb",
		"https://rp.example.test.evil.example.test/cb",
		"//evil.example.test/cb",
		"/cb",
		"javascript:alert(1)//https://rp.example.test/cb",
		"https://rp.example.test/cb\x00",
		"https://rp.example.test/cb\xff",
		" https://rp.example.test/cb",
	} {
		cases = append(cases, auth("redirect_uri "+uri, 400, shapePage, "invalid_request", "redirect_uri", uri))
	}
	// The parameters of a request whose request object does not verify
	// are not trusted, its redirect_uri included.
	for _, name := range jwtNames(malformedJWTs) {
		cases = append(cases, badCase{name: "request object " + name, method: http.MethodGet,
			target: authorizeQuery(f.signed.ID, "request", malformedJWTs[name]), status: 400, shape: shapePage, code: "invalid_request_object"})
	}
	return append(cases, []badCase{
		{name: "no parameters", method: http.MethodGet, target: "/oauth2/auth", status: 401, shape: shapePage, code: "invalid_client"},
		auth("no client_id", 401, shapePage, "invalid_client", "client_id", ""),
		auth("unknown client_id", 401, shapePage, "invalid_client", "client_id", "no-such-client"),
		auth("client_id invalid UTF-8", 400, shapePage, "invalid_request", "client_id", "bad-web\xff"),
		auth("unknown client with a registered redirect_uri", 401, shapePage, "invalid_client", "client_id", "bad-web "),
		auth("no response_type", 303, shapeRedirect, "unsupported_response_type", "response_type", ""),
		auth("unknown response_type", 303, shapeRedirect, "unsupported_response_type", "response_type", "code junk"),
		// How an error would go back is what response_mode says.
		auth("unknown response_mode", 400, shapePage, "unsupported_response_mode", "response_mode", "sideways"),
		auth("unregistered scope", 303, shapeRedirect, "invalid_scope", "scope", "openid admin"),
		// A value that is not UTF-8 could not be given back as sent.
		auth("scope invalid UTF-8", 400, shapePage, "invalid_request", "scope", "openid \xff"),
		auth("state invalid UTF-8", 400, shapePage, "invalid_request", "state", "state-\xff"),
		auth("nonce invalid UTF-8", 400, shapePage, "invalid_request", "nonce", "nonce-\xff"),
		auth("PKCE plain", 303, shapeRedirect, "invalid_request", "code_challenge_method", "plain"),
		auth("PKCE unknown method", 303, shapeRedirect, "invalid_request", "code_challenge_method", "S512"),
		auth("prompt none with login", 303, shapeRedirect, "invalid_request", "prompt", "none login"),
		auth("unknown prompt", 303, shapeRedirect, "invalid_request", "prompt", "sometimes"),
		auth("negative max_age", 303, shapeRedirect, "invalid_request", "max_age", "-1"),
		auth("max_age not a number", 303, shapeRedirect, "invalid_request", "max_age", "1e3"),
		auth("claims not JSON", 303, shapeRedirect, "invalid_request", "claims", `{"id_token":`),
		auth("claims of the wrong type", 303, shapeRedirect, "invalid_request", "claims", `{"userinfo":[1]}`),
		auth("request and a pushed request_uri", 400, shapePage, "invalid_request_uri", "request", "a.b.c", "request_uri", "urn:ietf:params:oauth:request_uri:x"),
		auth("unknown pushed request_uri", 400, shapePage, "invalid_request_uri", "request_uri", "urn:ietf:params:oauth:request_uri:nope"),
		// Without a session the hint is not needed: prompt=none fails
		// for the missing sign-in, and otherwise the login app asks.
		auth("malformed id_token_hint, prompt none", 303, shapeRedirect, "login_required", "id_token_hint", "a.b.c", "prompt", "none"),
		auth("malformed id_token_hint", 303, shapeLogin, "", "id_token_hint", "a.b.c"),
		// With a session, a hint the provider did not issue cannot be
		// satisfied without asking.
		{name: "malformed id_token_hint, prompt none, signed in", method: http.MethodGet,
			target: authorizeQuery(id, "id_token_hint", "a.b.c", "prompt", "none"), header: withHeader(nil, "Cookie", f.session),
			status: 303, shape: shapeRedirect, code: "login_required"},
		{name: "another provider's id_token_hint, prompt none, signed in", method: http.MethodGet,
			target: authorizeQuery(id, "id_token_hint", malformedJWTs["bad signature"], "prompt", "none"), header: withHeader(nil, "Cookie", f.session),
			status: 303, shape: shapeRedirect, code: "login_required"},
		// Repeated parameters (RFC 6749 §3.1): it is not known which one
		// the client meant, so nothing is redirected.
		{name: "client_id twice", method: http.MethodGet, target: authorizeQuery(id) + "&client_id=bad-other",
			status: 400, shape: shapePage, code: "invalid_request"},
		{name: "redirect_uri twice", method: http.MethodGet, target: authorizeQuery(id) + "&redirect_uri=" + url.QueryEscape("https://evil.example.test/cb"),
			status: 400, shape: shapePage, code: "invalid_request"},
		{name: "scope twice", method: http.MethodGet, target: authorizeQuery(id) + "&scope=openid",
			status: 400, shape: shapePage, code: "invalid_request"},
		{name: "response_type twice", method: http.MethodGet, target: authorizeQuery(id) + "&response_type=token",
			status: 400, shape: shapePage, code: "invalid_request"},
		{name: "state in query and body", method: http.MethodPost, target: "/oauth2/auth?state=from-query", header: formCT,
			body: strings.TrimPrefix(authorizeQuery(id), "/oauth2/auth?"), status: 400, shape: shapePage, code: "invalid_request"},
		{name: "JSON body", method: http.MethodPost, target: "/oauth2/auth", header: jsonCT,
			body: `{"client_id":"bad-web","response_type":"code"}`, status: 401, shape: shapePage, code: "invalid_client"},
		{name: "form body not a form", method: http.MethodPost, target: "/oauth2/auth", header: formCT,
			body: "%zz=%zz&client_id=bad-web", status: 400, shape: shapePage, code: "invalid_request"},
	}...)
}

// continueCases are the continue links the login app sends the browser
// to, followed without a decided challenge.
func continueCases() []badCase {
	var cases []badCase
	for _, path := range []string{"/oauth2/auth/continue", "/oauth2/device/continue", "/oauth2/logout/continue"} {
		cases = append(cases, badCase{name: "no verifier", method: http.MethodGet, target: path, status: 400, shape: shapePage, code: "invalid_request"})
		for _, param := range []string{"login_verifier", "consent_verifier", "device_verifier", "logout_verifier"} {
			for _, v := range []string{"no-such-challenge", "\xff\xfe", strings.Repeat("x", 5000)} {
				q := url.Values{param: {v}}
				cases = append(cases, badCase{name: fmt.Sprintf("junk %s %.20q", param, v), method: http.MethodGet, target: path + "?" + q.Encode(),
					status: 400, shape: shapePage, code: "invalid_request"})
			}
		}
	}
	return cases
}

func tokenCases(e *env, f *badFixture) []badCase {
	web := withBasic(formCT, f.web.ID, testSecret)
	machine := withBasic(formCT, f.machine.ID, testSecret)
	tok := func(name string, header http.Header, body string, status int, code string) badCase {
		return badCase{name: name, method: http.MethodPost, target: "/oauth2/token", header: header, body: body,
			status: status, shape: shapeJSON, code: code}
	}
	cc := encodePairs("grant_type", "client_credentials", "scope", "api")
	cases := []badCase{
		tok("no body", machine, "", 400, "invalid_request"),
		tok("JSON body", withBasic(jsonCT, f.machine.ID, testSecret), `{"grant_type":"client_credentials","scope":"api"}`, 400, "invalid_request"),
		tok("text/plain body", withBasic(textCT, f.machine.ID, testSecret), cc, 400, "invalid_request"),
		tok("no content type", withBasic(nil, f.machine.ID, testSecret), cc, 400, "invalid_request"),
		tok("body not a form", machine, "grant_type=client_credentials&%zz", 400, "invalid_request"),
		tok("grant_type twice", machine, cc+"&grant_type=client_credentials", 400, "invalid_request"),
		tok("grant_type twice, different", machine, cc+"&grant_type=password", 400, "invalid_request"),
		tok("scope twice", machine, cc+"&scope=api", 400, "invalid_request"),
		tok("client_id twice", formCT, encodePairs("grant_type", "refresh_token", "refresh_token", "x", "client_id", f.public.ID, "client_id", f.other.ID), 400, "invalid_request"),
		tok("unknown grant_type", machine, encodePairs("grant_type", "urn:example:nothing"), 400, "unsupported_grant_type"),
		tok("grant_type invalid UTF-8", machine, encodePairs("grant_type", "client_credentials\xff"), 400, "invalid_request"),
		tok("no grant_type", machine, encodePairs("scope", "api"), 400, "invalid_request"),
		tok("unknown client", withBasic(formCT, "no-such-client", testSecret), cc, 401, "invalid_client"),
		tok("unknown public client", formCT, encodePairs("grant_type", "refresh_token", "refresh_token", "x", "client_id", "no-such-client"), 401, "invalid_client"),
		tok("client_id invalid UTF-8", formCT, encodePairs("grant_type", "refresh_token", "refresh_token", "x", "client_id", "bad-public\xff"), 400, "invalid_request"),
		tok("client_id in Basic and another in the body", web, encodePairs("grant_type", "refresh_token", "refresh_token", f.webRefresh, "client_id", f.other.ID), 400, "invalid_request"),
		tok("wrong secret", withBasic(formCT, f.machine.ID, "wrong-secret"), cc, 401, "invalid_client"),
		// A header that cannot be decoded is a malformed request.
		tok("Basic not base64", withHeader(formCT, "Authorization", "Basic %%%"), cc, 400, "invalid_request"),
		tok("unknown client_assertion_type", formCT, cc+"&"+encodePairs("client_assertion_type", "urn:example:nothing", "client_assertion", "a.b.c"), 400, "invalid_request"),
		tok("grant the client may not use", web, encodePairs("grant_type", "client_credentials", "scope", "openid"), 400, "unauthorized_client"),
		tok("password grant not listed", web, encodePairs("grant_type", "password", "username", "alice", "password", "x"), 400, "unauthorized_client"),
		tok("no code", web, encodePairs("grant_type", "authorization_code", "redirect_uri", rpRedirect), 400, "invalid_request"),
		tok("unknown code", web, encodePairs("grant_type", "authorization_code", "code", "ory_ac_nothing.nothing", "redirect_uri", rpRedirect), 400, "invalid_grant"),
		tok("code invalid UTF-8", web, encodePairs("grant_type", "authorization_code", "code", "ory_ac_x.\xff", "redirect_uri", rpRedirect), 400, "invalid_request"),
		tok("no refresh_token", web, encodePairs("grant_type", "refresh_token"), 400, "invalid_request"),
		tok("unknown refresh token", web, encodePairs("grant_type", "refresh_token", "refresh_token", "ory_rt_nothing.nothing"), 400, "invalid_grant"),
		tok("refresh token invalid UTF-8", web, encodePairs("grant_type", "refresh_token", "refresh_token", "ory_rt_x.\xff"), 400, "invalid_request"),
		tok("refresh token of another client", web, encodePairs("grant_type", "refresh_token", "refresh_token", f.otherRefresh), 400, "invalid_grant"),
		tok("access token as a refresh token", web, encodePairs("grant_type", "refresh_token", "refresh_token", f.webAccess), 400, "invalid_grant"),
		tok("ID token as a refresh token", web, encodePairs("grant_type", "refresh_token", "refresh_token", f.webIDToken), 400, "invalid_grant"),
		tok("unknown device code", formCT, encodePairs("grant_type", deviceGrant, "device_code", "ory_dc_nothing.nothing", "client_id", f.device.ID), 400, "invalid_grant"),
		tok("device code invalid UTF-8", formCT, encodePairs("grant_type", deviceGrant, "device_code", "ory_dc_x.\xff", "client_id", f.device.ID), 400, "invalid_request"),
		tok("no device_code", formCT, encodePairs("grant_type", deviceGrant, "client_id", f.device.ID), 400, "invalid_request"),
		tok("no password", withBasic(formCT, f.machine.ID, testSecret), encodePairs("grant_type", "password", "username", "alice"), 400, "invalid_request"),
		tok("multipart body", withHeader(withBasic(nil, f.machine.ID, testSecret), "Content-Type", "multipart/form-data; boundary=b"),
			"--b\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n--b--\r\n", 400, "invalid_request"),
	}
	for _, name := range jwtNames(malformedJWTs) {
		cases = append(cases, tok("client_assertion "+name, formCT,
			cc+"&"+encodePairs("client_assertion_type", assertionTypeJWT, "client_assertion", malformedJWTs[name]), 401, "invalid_client"))
	}
	// The other client's device code, polled by this one.
	cases = append(cases, badCase{name: "device code of another client", method: http.MethodPost, target: "/oauth2/token", header: formCT,
		prepare: func(t *testing.T, c *badCase) {
			status, out := postForm(t, e.issuer()+"/oauth2/device/auth", url.Values{"client_id": {f.otherDevice.ID}, "scope": {"openid"}}, "", "")
			code, _ := out["device_code"].(string)
			if status != http.StatusOK || code == "" {
				t.Fatalf("device authorization: %d %v", status, out)
			}
			c.body = encodePairs("grant_type", deviceGrant, "device_code", code, "client_id", f.device.ID)
		},
		status: 400, shape: shapeJSON, code: "invalid_grant"})
	return cases
}

// pkceAndCodeCases redeem fresh codes in ways that must fail: PKCE
// verifiers of the wrong form, another client's code, a code twice.
func pkceAndCodeCases(e *env, f *badFixture) []badCase {
	verifier, _ := pkce()
	redeem := func(name, clientID, verifier string, status int, code string) badCase {
		return badCase{name: name, method: http.MethodPost, target: "/oauth2/token", header: formCT,
			prepare: func(t *testing.T, c *badCase) {
				c.body = encodePairs("grant_type", "authorization_code", "code", freshCode(t, e, clientID), "redirect_uri", rpRedirect,
					"code_verifier", verifier, "client_id", f.public.ID)
			},
			status: status, shape: shapeJSON, code: code}
	}
	// RFC 7636 §4.1: 43 to 128 characters of [A-Za-z0-9-._~]. fosite
	// answers every malformed verifier invalid_grant, as it does a
	// verifier that does not match (§4.6).
	cases := []badCase{
		redeem("PKCE verifier of 42 characters", f.public.ID, strings.Repeat("a", 42), 400, "invalid_grant"),
		redeem("PKCE verifier of 129 characters", f.public.ID, strings.Repeat("a", 129), 400, "invalid_grant"),
		redeem("PKCE verifier with invalid characters", f.public.ID, strings.Repeat("a", 42)+"+", 400, "invalid_grant"),
		redeem("PKCE verifier invalid UTF-8", f.public.ID, strings.Repeat("a", 42)+"\xff", 400, "invalid_request"),
		redeem("PKCE verifier that does not match", f.public.ID, strings.Repeat("a", 43), 400, "invalid_grant"),
		redeem("no PKCE verifier", f.public.ID, "", 400, "invalid_grant"),
		redeem("code of another client", f.web.ID, verifier, 400, "invalid_grant"),
	}
	// A failed redemption spends the code: fosite drops the code's PKCE
	// challenge when it checks a verifier, and the code must not then pass
	// without one, as if it never had PKCE.
	cases = append(cases, badCase{name: "code without a verifier after a wrong one", method: http.MethodPost, target: "/oauth2/token",
		header: withBasic(formCT, f.web.ID, testSecret),
		prepare: func(t *testing.T, c *badCase) {
			code := freshCode(t, e, f.web.ID)
			redeem := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect}, "code_verifier": {strings.Repeat("a", 43)}}
			if tr := e.postToken(f.web.ID, testSecret, redeem); tr.Error != "invalid_grant" {
				t.Fatalf("a wrong verifier: %+v", tr)
			}
			redeem.Set("code_verifier", verifier)
			if tr := e.postToken(f.web.ID, testSecret, redeem); tr.Error != "invalid_grant" {
				t.Errorf("the right verifier after a wrong one: %+v", tr)
			}
			c.body = encodePairs("grant_type", "authorization_code", "code", code, "redirect_uri", rpRedirect)
		},
		status: 400, shape: shapeJSON, code: "invalid_grant"})
	// A code redeemed twice: the second time is invalid_grant, and the
	// tokens of the first are revoked (RFC 6749 §4.1.2).
	var first *tokenResponse
	cases = append(cases, badCase{name: "replayed code", method: http.MethodPost, target: "/oauth2/token", header: withBasic(formCT, f.web.ID, testSecret),
		prepare: func(t *testing.T, c *badCase) {
			code := freshCode(t, e, f.web.ID)
			if first = e.exchange(f.web.ID, testSecret, code); first.Status != http.StatusOK {
				t.Fatalf("first redemption: %+v", first)
			}
			c.body = encodePairs("grant_type", "authorization_code", "code", code, "redirect_uri", rpRedirect, "code_verifier", verifier)
		},
		status: 400, shape: shapeJSON, code: "invalid_grant",
		check: func(t *testing.T, _ httpAnswer) {
			auth := clientAuth{id: f.web.ID, secret: testSecret, basic: true}
			assertInactive(t, introspect(t, e, auth, first.AccessToken))
			assertInactive(t, introspect(t, e, auth, first.RefreshToken))
			if tr := e.postToken(f.web.ID, testSecret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}}); tr.Error != "invalid_grant" {
				t.Errorf("the refresh token of a replayed code still works: %+v", tr)
			}
		}})
	return cases
}

func parCases(f *badFixture) []badCase {
	web := withBasic(formCT, f.web.ID, testSecret)
	params := strings.TrimPrefix(authorizeQuery(f.web.ID), "/oauth2/auth?")
	par := func(name string, header http.Header, body string, status int, code string) badCase {
		return badCase{name: name, method: http.MethodPost, target: "/oauth2/par", header: header, body: body,
			status: status, shape: shapeJSON, code: code}
	}
	return []badCase{
		par("no client authentication", formCT, params, 401, "invalid_client"),
		par("unknown client", withBasic(formCT, "no-such-client", testSecret), strings.TrimPrefix(authorizeQuery(f.web.ID, "client_id", ""), "/oauth2/auth?"), 401, "invalid_client"),
		par("client_id not the Basic one", withBasic(formCT, f.other.ID, testSecret), params, 400, "invalid_request"),
		par("wrong secret", withBasic(formCT, f.web.ID, "wrong"), params, 401, "invalid_client"),
		par("JSON body", withBasic(jsonCT, f.web.ID, testSecret), `{"response_type":"code"}`, 400, "invalid_request"),
		par("text/plain body", withBasic(textCT, f.web.ID, testSecret), params, 400, "invalid_request"),
		par("unregistered redirect_uri", web, strings.TrimPrefix(authorizeQuery(f.web.ID, "redirect_uri", "https://evil.example.test/cb"), "/oauth2/auth?"), 400, "invalid_request"),
		par("redirect_uri with a fragment", web, strings.TrimPrefix(authorizeQuery(f.web.ID, "redirect_uri", rpRedirect+"#x"), "/oauth2/auth?"), 400, "invalid_request"),
		par("request_uri pushed", web, params+"&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Ax", 400, "invalid_request"),
		par("redirect_uri twice", web, params+"&redirect_uri="+url.QueryEscape(rpRedirect), 400, "invalid_request"),
		par("state twice", web, params+"&state=another", 400, "invalid_request"),
		par("request object of a client without keys", web, params+"&request=a.b.c", 400, "invalid_request"),
		par("malformed request object", withBasic(formCT, f.signed.ID, testSecret),
			strings.TrimPrefix(authorizeQuery(f.signed.ID, "request", "a.b.c"), "/oauth2/auth?"), 400, "invalid_request_object"),
		par("unregistered scope", web, strings.TrimPrefix(authorizeQuery(f.web.ID, "scope", "openid admin"), "/oauth2/auth?"), 400, "invalid_scope"),
	}
}

func deviceCases(e *env, f *badFixture) []badCase {
	dev := func(name string, header http.Header, body string, status int, code string) badCase {
		return badCase{name: name, method: http.MethodPost, target: "/oauth2/device/auth", header: header, body: body,
			status: status, shape: shapeJSON, code: code}
	}
	toLogin := func(name, target string) badCase {
		return badCase{name: name, method: http.MethodGet, target: target, status: 303, shape: shapeLogin}
	}
	return []badCase{
		dev("no client", formCT, encodePairs("scope", "openid"), 400, "invalid_request"),
		dev("unknown client", formCT, encodePairs("client_id", "no-such-client", "scope", "openid"), 401, "invalid_client"),
		dev("client_id invalid UTF-8", formCT, encodePairs("client_id", "bad-device\xff"), 400, "invalid_request"),
		dev("client_id twice", formCT, encodePairs("client_id", f.device.ID, "client_id", f.otherDevice.ID), 400, "invalid_request"),
		dev("scope twice", formCT, encodePairs("client_id", f.device.ID, "scope", "openid", "scope", "openid"), 400, "invalid_request"),
		dev("JSON body", jsonCT, `{"client_id":"bad-device"}`, 400, "invalid_request"),
		dev("text/plain body", textCT, encodePairs("client_id", f.device.ID), 400, "invalid_request"),
		dev("body not a form", formCT, "client_id=bad-device&%zz", 400, "invalid_request"),
		dev("unregistered scope", formCT, encodePairs("client_id", f.device.ID, "scope", "openid admin"), 400, "invalid_scope"),
		dev("client without the device grant", withBasic(formCT, f.web.ID, testSecret), encodePairs("scope", "openid"), 400, "unauthorized_client"),
		dev("confidential client without its secret", formCT, encodePairs("client_id", f.web.ID), 401, "invalid_client"),
		// The verification page takes any user code to the login app,
		// which asks for the right one; a junk code is not an error here.
		toLogin("verification with a junk user code", "/oauth2/device?user_code=%FF%FE%00"),
		toLogin("verification with an overlong user code", "/oauth2/device?user_code="+strings.Repeat("B", 5000)),
		toLogin("verification with user_code twice", "/oauth2/device?user_code=BBBB-CCCC&user_code=DDDD-FFFF"),
	}
}

func introspectionCases(e *env, f *badFixture) []badCase {
	web := withBasic(formCT, f.web.ID, testSecret)
	in := func(name string, header http.Header, body string, status int, code string) badCase {
		return badCase{name: name, method: http.MethodPost, target: "/oauth2/introspect", header: header, body: body,
			status: status, shape: shapeJSON, code: code}
	}
	off := func(name, token string) badCase {
		return badCase{name: name, method: http.MethodPost, target: "/oauth2/introspect", header: web, body: encodePairs("token", token),
			status: 200, shape: shapeAnswered, check: assertInactive}
	}
	cases := []badCase{
		in("no client authentication", formCT, encodePairs("token", f.webAccess), 401, "invalid_client"),
		in("wrong secret", withBasic(formCT, f.web.ID, "wrong"), encodePairs("token", f.webAccess), 401, "invalid_client"),
		in("unknown client", withBasic(formCT, "no-such-client", testSecret), encodePairs("token", f.webAccess), 401, "invalid_client"),
		in("client_id invalid UTF-8", withBasic(formCT, "bad-web\xff", testSecret), encodePairs("token", f.webAccess), 401, "invalid_client"),
		in("public client", formCT, encodePairs("token", f.webAccess, "client_id", f.public.ID), 401, "invalid_client"),
		in("no token", web, "", 400, "invalid_request"),
		in("JSON body", withBasic(jsonCT, f.web.ID, testSecret), `{"token":"`+f.webAccess+`"}`, 400, "invalid_request"),
		in("text/plain body", withBasic(textCT, f.web.ID, testSecret), encodePairs("token", f.webAccess), 400, "invalid_request"),
		in("body not a form", web, "token=x&%zz", 400, "invalid_request"),
		in("token twice", web, encodePairs("token", f.webAccess, "token", f.otherAccess), 400, "invalid_request"),
		in("client_id twice", formCT, encodePairs("token", f.webAccess, "client_id", f.web.ID, "client_secret", testSecret, "client_id", f.other.ID), 400, "invalid_request"),
		in("form over 1 MiB", web, encodePairs("token", f.webAccess, "pad", strings.Repeat("a", 1<<20)), 400, "invalid_request"),
		in("token invalid UTF-8", web, encodePairs("token", "ory_at_x.\xff"), 400, "invalid_request"),
		off("token of another client", f.otherAccess),
		off("refresh token of another client", f.otherRefresh),
		off("ID token", f.webIDToken),
	}
	for _, name := range jwtNames(malformedJWTs) {
		cases = append(cases, off("malformed JWT, "+name, malformedJWTs[name]))
		cases = append(cases, in("client_assertion "+name, formCT,
			encodePairs("token", f.webAccess, "client_assertion_type", assertionTypeJWT, "client_assertion", malformedJWTs[name]), 401, "invalid_client"))
	}
	return cases
}

func revocationCases(e *env, f *badFixture) []badCase {
	web := withBasic(formCT, f.web.ID, testSecret)
	rv := func(name string, header http.Header, body string, status int, code string) badCase {
		return badCase{name: name, method: http.MethodPost, target: "/oauth2/revoke", header: header, body: body,
			status: status, shape: shapeJSON, code: code}
	}
	return []badCase{
		rv("no client authentication", formCT, encodePairs("token", f.webAccess), 401, "invalid_client"),
		rv("wrong secret", withBasic(formCT, f.web.ID, "wrong"), encodePairs("token", f.webAccess), 401, "invalid_client"),
		rv("unknown client", formCT, encodePairs("token", f.webAccess, "client_id", "no-such-client"), 401, "invalid_client"),
		rv("no token", web, "", 400, "invalid_request"),
		rv("JSON body", withBasic(jsonCT, f.web.ID, testSecret), `{"token":"`+f.webAccess+`"}`, 400, "invalid_request"),
		rv("text/plain body", withBasic(textCT, f.web.ID, testSecret), encodePairs("token", f.webAccess), 400, "invalid_request"),
		rv("token twice", web, encodePairs("token", f.otherAccess, "token", f.webAccess), 400, "invalid_request"),
		rv("form over 1 MiB", web, encodePairs("token", f.webAccess, "pad", strings.Repeat("a", 1<<20)), 400, "invalid_request"),
		{name: "malformed token", method: http.MethodPost, target: "/oauth2/revoke", header: web, body: encodePairs("token", "a.b.c"),
			status: 200, shape: shapeAnswered},
		rv("token invalid UTF-8", web, encodePairs("token", "ory_at_x.\xff"), 400, "invalid_request"),
		// RFC 7009 §2.2: another client's token is shapeAnswered 200, and it
		// stays valid.
		{name: "token of another client", method: http.MethodPost, target: "/oauth2/revoke", header: web,
			body:   encodePairs("token", f.otherAccess),
			status: 200, shape: shapeAnswered,
			check: func(t *testing.T, _ httpAnswer) {
				assertActive(t, introspect(t, e, clientAuth{id: f.other.ID, secret: testSecret, basic: true}, f.otherAccess))
			}},
		{name: "refresh token of another client", method: http.MethodPost, target: "/oauth2/revoke", header: web,
			body:   encodePairs("token", f.otherRefresh, "token_type_hint", "refresh_token"),
			status: 200, shape: shapeAnswered,
			check: func(t *testing.T, _ httpAnswer) {
				assertActive(t, introspect(t, e, clientAuth{id: f.other.ID, secret: testSecret, basic: true}, f.otherRefresh))
			}},
	}
}

func userinfoCases(f *badFixture) []badCase {
	bearer := func(token string) http.Header { return withHeader(nil, "Authorization", "Bearer "+token) }
	ui := func(name string, method string, header http.Header, body string, status int, code string) badCase {
		return badCase{name: name, method: method, target: "/userinfo", header: header, body: body,
			status: status, shape: shapeJSON, code: code}
	}
	cases := []badCase{
		{name: "no token", method: http.MethodGet, target: "/userinfo", status: 401, shape: shapeBare},
		{name: "Basic credentials", method: http.MethodGet, target: "/userinfo", header: withBasic(nil, f.web.ID, testSecret), status: 401, shape: shapeBare},
		ui("empty bearer token", http.MethodGet, withHeader(nil, "Authorization", "Bearer "), "", 400, "invalid_request"),
		ui("token in the query", http.MethodGet, nil, "", 400, "invalid_request"),
		ui("token in header and body", http.MethodPost, withHeader(formCT, "Authorization", "Bearer "+f.webAccess), encodePairs("access_token", f.webAccess), 400, "invalid_request"),
		ui("access_token twice", http.MethodPost, formCT, encodePairs("access_token", f.webAccess, "access_token", f.otherAccess), 400, "invalid_request"),
		ui("body not a form", http.MethodPost, formCT, "access_token=x&%zz", 400, "invalid_request"),
		ui("unknown token", http.MethodGet, bearer("ory_at_nothing.nothing"), "", 401, "invalid_token"),
		ui("token invalid UTF-8", http.MethodGet, bearer("ory_at_x.\xff"), "", 401, "invalid_token"),
		ui("refresh token as an access token", http.MethodGet, bearer(f.webRefresh), "", 401, "invalid_token"),
		ui("ID token as an access token", http.MethodGet, bearer(f.webIDToken), "", 401, "invalid_token"),
		// A JSON body is not where a token goes (RFC 6750 §2.2): without
		// one, the request has no credentials.
		{name: "token in a JSON body", method: http.MethodPost, target: "/userinfo", header: jsonCT,
			body: `{"access_token":"` + f.webAccess + `"}`, status: 401, shape: shapeBare},
	}
	cases[3].target = "/userinfo?access_token=" + url.QueryEscape(f.webAccess)
	for _, name := range jwtNames(malformedJWTs) {
		cases = append(cases, ui("malformed JWT, "+name, http.MethodGet, bearer(malformedJWTs[name]), "", 401, "invalid_token"))
	}
	return cases
}

func endSessionCases(f *badFixture) []badCase {
	logout := func(name string, params ...string) badCase {
		return badCase{name: name, method: http.MethodGet, target: "/oauth2/logout?" + encodePairs(params...),
			status: 400, shape: shapePage, code: "invalid_request"}
	}
	cases := []badCase{
		logout("unknown client", "client_id", "no-such-client"),
		logout("client_id invalid UTF-8", "client_id", "bad-web\xff"),
		logout("post_logout_redirect_uri without a client", "post_logout_redirect_uri", loggedOut),
		logout("client_id that is not the hint's audience", "id_token_hint", f.webIDToken, "client_id", f.other.ID),
		logout("client_id twice", "client_id", f.web.ID, "client_id", f.other.ID, "post_logout_redirect_uri", loggedOut),
		logout("post_logout_redirect_uri twice", "client_id", f.web.ID, "post_logout_redirect_uri", loggedOut, "post_logout_redirect_uri", "https://evil.example.test/"),
		logout("id_token_hint twice", "id_token_hint", f.webIDToken, "id_token_hint", f.webIDToken),
		{name: "form body not a form", method: http.MethodPost, target: "/oauth2/logout", header: formCT, body: "client_id=bad-web&%zz",
			status: 400, shape: shapePage, code: "invalid_request"},
	}
	for _, name := range jwtNames(malformedJWTs) {
		cases = append(cases, logout("id_token_hint "+name, "id_token_hint", malformedJWTs[name]))
	}
	for _, uri := range []string{
		"https://evil.example.test/logged-out",
		loggedOut + "/evil",
		loggedOut + "x",
		loggedOut + "#fragment",
		loggedOut + "?next=https://evil.example.test",
		"https://evil.example.test@rp.example.test/cb/logged-out",
		"https://rp.example.test@evil.example.test/cb/logged-out",
		strings.ToUpper(loggedOut),
		"https://rp.example.test/cb/logged-out/../../evil",
		rpRedirect, // the client's redirect URI, not a post-logout one
	} {
		cases = append(cases, logout("post_logout_redirect_uri "+uri, "client_id", f.web.ID, "post_logout_redirect_uri", uri))
		cases = append(cases, logout("post_logout_redirect_uri with hint "+uri, "id_token_hint", f.webIDToken, "post_logout_redirect_uri", uri))
	}
	return cases
}

func registrationCases(f *badFixture) []badCase {
	reg := func(name string, header http.Header, body string, status int, code string) badCase {
		return badCase{name: name, method: http.MethodPost, target: "/oauth2/register", header: header, body: body,
			status: status, shape: shapeJSON, code: code}
	}
	redirect := `"redirect_uris":["` + rpRedirect + `"]`
	manage := func(name, method, target, token, body string, status int, code string) badCase {
		h := withHeader(jsonCT, "Authorization", "Bearer "+token)
		if token == "" {
			h = jsonCT
		}
		return badCase{name: name, method: method, target: target, header: h, body: body, status: status, shape: shapeJSON, code: code}
	}
	self := "/oauth2/register/" + f.regClient
	update := `{"client_id":"` + f.regClient + `",` + redirect + `}`
	return []badCase{
		reg("text/plain", textCT, `{`+redirect+`}`, 415, "invalid_request"),
		reg("form body", formCT, "redirect_uris="+url.QueryEscape(rpRedirect), 415, "invalid_request"),
		reg("empty body", jsonCT, "", 400, "invalid_client_metadata"),
		reg("truncated JSON", jsonCT, `{`+redirect+`,"client_name":"x`, 400, "invalid_client_metadata"),
		reg("trailing garbage", jsonCT, `{`+redirect+`} {}`, 400, "invalid_client_metadata"),
		reg("not an object", jsonCT, `[`+redirect+`]`, 400, "invalid_client_metadata"),
		reg("redirect_uris a string", jsonCT, `{"redirect_uris":"`+rpRedirect+`"}`, 400, "invalid_client_metadata"),
		reg("grant_types numbers", jsonCT, `{`+redirect+`,"grant_types":[1,2]}`, 400, "invalid_client_metadata"),
		reg("huge number", jsonCT, `{`+redirect+`,"default_max_age":1e400}`, 400, "invalid_client_metadata"),
		reg("number past int64", jsonCT, `{`+redirect+`,"default_max_age":9223372036854775808}`, 400, "invalid_client_metadata"),
		reg("deep nesting", jsonCT, strings.Repeat("[", 20000), 400, "invalid_client_metadata"),
		reg("document over 64 KiB", jsonCT, `{`+redirect+`,"client_name":"`+strings.Repeat("a", 70<<10)+`"}`, 400, "invalid_client_metadata"),
		reg("redirect_uri with a fragment", jsonCT, `{"redirect_uris":["`+rpRedirect+`#x"]}`, 400, "invalid_redirect_uri"),
		reg("redirect_uri with credentials", jsonCT, `{"redirect_uris":["https://user:pw@rp.example.test/cb"]}`, 400, "invalid_redirect_uri"),
		reg("redirect_uri relative", jsonCT, `{"redirect_uris":["/cb"]}`, 400, "invalid_redirect_uri"),
		reg("redirect_uri javascript", jsonCT, `{"redirect_uris":["javascript:alert(1)"]}`, 400, "invalid_redirect_uri"),
		reg("post_logout_redirect_uri with a fragment", jsonCT, `{`+redirect+`,"post_logout_redirect_uris":["`+loggedOut+`#x"]}`, 400, "invalid_client_metadata"),
		{name: "invalid UTF-8", method: http.MethodPost, target: "/oauth2/register", header: jsonCT,
			body:   `{` + redirect + `,"client_name":"bad \xff name"}`,
			status: 400, shape: shapeJSON, code: "invalid_client_metadata"},
		manage("read without a token", http.MethodGet, self, "", "", 401, "invalid_token"),
		manage("read with a wrong token", http.MethodGet, self, "wrong-token", "", 401, "invalid_token"),
		manage("read an unknown client", http.MethodGet, "/oauth2/register/no-such-client", f.regToken, "", 401, "invalid_token"),
		// No client_id is anything but unreserved ASCII.
		manage("read a client_id of invalid UTF-8", http.MethodGet, "/oauth2/register/%FF", f.regToken, "", 404, "not_found"),
		manage("update with malformed JSON", http.MethodPut, self, f.regToken, `{"client_id":`, 400, "invalid_client_metadata"),
		manage("update with trailing garbage", http.MethodPut, self, f.regToken, update+`x`, 400, "invalid_client_metadata"),
		manage("update with a fragment", http.MethodPut, self, f.regToken, `{"client_id":"`+f.regClient+`","redirect_uris":["`+rpRedirect+`#x"]}`, 400, "invalid_redirect_uri"),
		manage("update naming another client", http.MethodPut, self, f.regToken, `{"client_id":"bad-web",`+redirect+`}`, 400, "invalid_client_metadata"),
		manage("update with a wrong token", http.MethodPut, self, "wrong-token", update, 401, "invalid_token"),
		manage("delete with a wrong token", http.MethodDelete, self, "wrong-token", "", 401, "invalid_token"),
		manage("delete another client", http.MethodDelete, "/oauth2/register/bad-web", f.regToken, "", 401, "invalid_token"),
	}
}

func adminBadCases(t *testing.T, e *env) []badCase {
	_, adm := e.p.Routers()
	admin := withHeader(jsonCT, "Authorization", "Bearer "+adminToken)
	var cases []badCase
	// Every route refuses a request without the admin token, or with a
	// wrong one, before anything else.
	err := latchkeytest.WalkRoutes(adm, func(tmpl string, methods []string, _ *mux.Route) {
		path := strings.NewReplacer("{id}", "bad-web", "{subject}", "alice-subject", "{sid}", "some-sid").Replace(tmpl)
		for _, auth := range []string{"", "Bearer wrong-token", "Bearer " + adminToken + "x", "Basic " + adminToken, adminToken} {
			cases = append(cases, badCase{name: fmt.Sprintf("Authorization %q", auth), method: methods[0], target: path,
				header: withHeader(jsonCT, "Authorization", auth), body: `{}`,
				status: 401, shape: shapeJSON, code: "unauthorized",
				check: func(t *testing.T, a httpAnswer) {
					if a.Header.Get("WWW-Authenticate") == "" {
						t.Error("no WWW-Authenticate challenge")
					}
				}})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// Wrong methods, with the token: 405.
	cases = append(cases, wrongMethods(t, adm, admin)...)
	call := func(name, method, target, body string, status int, code string) badCase {
		return badCase{name: name, method: method, target: target, header: admin, body: body, status: status, shape: shapeJSON, code: code}
	}
	for _, kind := range []string{"login", "consent", "logout", "device"} {
		base := "/admin/" + kind
		accept := map[string]string{"login": `{"subject":"alice-subject"}`, "consent": `{"grant_scope":[]}`, "logout": `{}`, "device": `{"user_code":"BBBBCCCC"}`}[kind]
		for _, id := range []string{"", "no-such-challenge", "%FF%FE", strings.Repeat("x", 5000)} {
			q := "?challenge=" + id
			cases = append(cases,
				call("unknown challenge "+fmt.Sprintf("%.20q", id), http.MethodGet, base+q, "", 404, "not_found"),
				call("accept unknown challenge "+fmt.Sprintf("%.20q", id), http.MethodPut, base+"/accept"+q, accept, 404, "not_found"),
				call("reject unknown challenge "+fmt.Sprintf("%.20q", id), http.MethodPut, base+"/reject"+q, `{"error":"access_denied"}`, 404, "not_found"),
			)
		}
		cases = append(cases,
			call("challenge twice", http.MethodGet, base+"?challenge=a&challenge=b", "", 404, "not_found"),
			call("reject with a non-OAuth error", http.MethodPut, base+"/reject?challenge=x", `{"error":"server_error"}`, 400, "invalid_request"),
			call("reject with malformed JSON", http.MethodPut, base+"/reject?challenge=x", `{"error":`, 400, "invalid_request"),
			call("reject with unknown fields", http.MethodPut, base+"/reject?challenge=x", `{"reason":"no"}`, 400, "invalid_request"),
			call("reject with trailing garbage", http.MethodPut, base+"/reject?challenge=x", `{"error":"access_denied"} x`, 400, "invalid_request"),
			call("reject with a JSON array", http.MethodPut, base+"/reject?challenge=x", `[]`, 400, "invalid_request"),
		)
		if kind != "logout" {
			cases = append(cases, call("accept with an empty body", http.MethodPut, base+"/accept?challenge=x", "", 400, "invalid_request"))
		}
		cases = append(cases,
			call("accept with malformed JSON", http.MethodPut, base+"/accept?challenge=x", `{`, 400, "invalid_request"),
			call("accept with trailing garbage", http.MethodPut, base+"/accept?challenge=x", accept+` {}`, 400, "invalid_request"),
			call("accept with unknown fields", http.MethodPut, base+"/accept?challenge=x", `{"unknown":1}`, 400, "invalid_request"),
		)
	}
	cases = append(cases,
		call("login accept with a number subject", http.MethodPut, "/admin/login/accept?challenge=x", `{"subject":1}`, 400, "invalid_request"),
		call("login accept with a blank subject", http.MethodPut, "/admin/login/accept?challenge=x", `{"subject":"  "}`, 400, "invalid_request"),
		call("login accept with a huge remember_for", http.MethodPut, "/admin/login/accept?challenge=x", `{"subject":"a","remember_for":1e400}`, 400, "invalid_request"),
		call("login accept with remember_for past int64", http.MethodPut, "/admin/login/accept?challenge=x", `{"subject":"a","remember_for":9223372036854775808}`, 400, "invalid_request"),
		call("login accept with a negative remember_for", http.MethodPut, "/admin/login/accept?challenge=x", `{"subject":"a","remember_for":-1}`, 400, "invalid_request"),
		call("consent accept with a string grant_scope", http.MethodPut, "/admin/consent/accept?challenge=x", `{"grant_scope":"openid"}`, 400, "invalid_request"),
		call("device accept with a number user_code", http.MethodPut, "/admin/device/accept?challenge=x", `{"user_code":12345678}`, 400, "invalid_request"),
		// Clients.
		call("create with malformed JSON", http.MethodPost, "/admin/clients", `{"redirect_uris":`, 400, "invalid_client_metadata"),
		call("create with trailing garbage", http.MethodPost, "/admin/clients", `{"redirect_uris":["`+rpRedirect+`"]} {}`, 400, "invalid_client_metadata"),
		call("create with wrong types", http.MethodPost, "/admin/clients", `{"redirect_uris":"`+rpRedirect+`"}`, 400, "invalid_client_metadata"),
		call("create with a huge number", http.MethodPost, "/admin/clients", `{"redirect_uris":["`+rpRedirect+`"],"default_max_age":1e400}`, 400, "invalid_client_metadata"),
		call("create with an empty body", http.MethodPost, "/admin/clients", "", 400, "invalid_client_metadata"),
		call("create with a redirect_uri fragment", http.MethodPost, "/admin/clients", `{"redirect_uris":["`+rpRedirect+`#x"]}`, 400, "invalid_redirect_uri"),
		badCase{name: "create with a redirect_uri not UTF-8", method: http.MethodPost, target: "/admin/clients", header: admin,
			body: "{\"redirect_uris\":[\"https://rp.example.test/c\xffb\"]}", status: 400, shape: shapeJSON, code: "invalid_client_metadata"},
		call("create with a taken client_id", http.MethodPost, "/admin/clients", `{"client_id":"bad-web","redirect_uris":["`+rpRedirect+`"]}`, 409, "conflict"),
		call("list with limit 0", http.MethodGet, "/admin/clients?limit=0", "", 400, "invalid_request"),
		call("list with limit not a number", http.MethodGet, "/admin/clients?limit=%FF", "", 400, "invalid_request"),
		call("list with limit past the maximum", http.MethodGet, "/admin/clients?limit=1000000", "", 400, "invalid_request"),
		call("get an unknown client", http.MethodGet, "/admin/clients/no-such-client", "", 404, "not_found"),
		call("get a client_id of invalid UTF-8", http.MethodGet, "/admin/clients/%FF", "", 404, "not_found"),
		call("update an unknown client", http.MethodPut, "/admin/clients/no-such-client", `{"redirect_uris":["`+rpRedirect+`"]}`, 404, "not_found"),
		call("update with malformed JSON", http.MethodPut, "/admin/clients/bad-web", `{"redirect_uris":[`, 400, "invalid_client_metadata"),
		call("update with a redirect_uri fragment", http.MethodPut, "/admin/clients/bad-web", `{"redirect_uris":["`+rpRedirect+`#x"]}`, 400, "invalid_redirect_uri"),
		call("delete an unknown client", http.MethodDelete, "/admin/clients/no-such-client", "", 404, "not_found"),
		call("delete a client_id of invalid UTF-8", http.MethodDelete, "/admin/clients/%FF", "", 404, "not_found"),
		// Keys.
		call("rotate with malformed JSON", http.MethodPost, "/admin/keys/rotate", `{"alg":`, 400, "invalid_request"),
		call("rotate an unknown alg", http.MethodPost, "/admin/keys/rotate", `{"alg":"HS256"}`, 400, "invalid_request"),
		call("rotate with unknown fields", http.MethodPost, "/admin/keys/rotate", `{"alg":"RS256","kid":"x"}`, 400, "invalid_request"),
		call("rotate with trailing garbage", http.MethodPost, "/admin/keys/rotate", `{"alg":"RS256"} {}`, 400, "invalid_request"),
		call("rotate with a number alg", http.MethodPost, "/admin/keys/rotate", `{"alg":256}`, 400, "invalid_request"),
		// Subjects.
		call("sessions of a blank subject", http.MethodGet, "/admin/subjects/%20/sessions", "", 400, "invalid_request"),
		call("end sessions with revoke_tokens not a boolean", http.MethodDelete, "/admin/subjects/alice-subject/sessions?revoke_tokens=maybe", "", 400, "invalid_request"),
		call("end an unknown session", http.MethodDelete, "/admin/subjects/alice-subject/sessions/no-such-sid", "", 404, "not_found"),
		call("end a session of invalid UTF-8", http.MethodDelete, "/admin/subjects/alice-subject/sessions/%FF", "", 404, "not_found"),
		call("end a blank subject's session", http.MethodDelete, "/admin/subjects/%20/sessions/some-sid", "", 400, "invalid_request"),
		call("revoke a blank subject's tokens", http.MethodDelete, "/admin/subjects/%20/tokens", "", 400, "invalid_request"),
		call("withdraw a blank subject's consents", http.MethodDelete, "/admin/subjects/%20/consents", "", 400, "invalid_request"),
		// No subject is anything but UTF-8: nothing is at such a path.
		call("sessions of a subject of invalid UTF-8", http.MethodGet, "/admin/subjects/%FF/sessions", "", 404, "not_found"),
		call("revoke the tokens of a subject of invalid UTF-8", http.MethodDelete, "/admin/subjects/%FF/tokens", "", 404, "not_found"),
		call("withdraw the consents of a subject of invalid UTF-8", http.MethodDelete, "/admin/subjects/%FF/consents", "", 404, "not_found"),
		call("revoke a subject's tokens of a client_id of invalid UTF-8", http.MethodDelete, "/admin/subjects/alice-subject/tokens?client_id=%FF", "", 400, "invalid_request"),
		call("revoke a subject's tokens of client_id twice", http.MethodDelete, "/admin/subjects/alice-subject/tokens?client_id=bad-web&client_id=bad-other", "", 400, "invalid_request"),
		call("withdraw a subject's consents of a client_id of invalid UTF-8", http.MethodDelete, "/admin/subjects/alice-subject/consents?client_id=%FF", "", 400, "invalid_request"),
		call("list clients after a client_id of invalid UTF-8", http.MethodGet, "/admin/clients?after=%FF", "", 400, "invalid_request"),
		call("list clients with limit twice", http.MethodGet, "/admin/clients?limit=1&limit=1000000", "", 400, "invalid_request"),
		// A client the provider does not know has nothing: not an error.
		badCase{name: "revoke a subject's tokens of an unknown client", method: http.MethodDelete, target: "/admin/subjects/alice-subject/tokens?client_id=no-such-client",
			header: admin, status: 200, shape: shapeAnswered, check: wantMember("revoked_tokens", 0)},
	)
	return cases
}
