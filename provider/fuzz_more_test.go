package provider_test

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
)

// More fuzz targets of the provider: client assertions, client metadata,
// the challenge API, cookies, introspection and revocation. fuzz_test.go
// has the authorization and token endpoints.

// jsonAnswer is what a fuzz target accepts from a JSON endpoint: one of
// the success statuses, or an error object ({"error": "…"}, the shape of
// every OAuth and admin API error) with an error status.
type jsonAnswer struct {
	success []int
	// errors are the error statuses allowed; any 4xx when empty.
	errors []int
}

func (a jsonAnswer) check(t *testing.T, what string, rec *httptest.ResponseRecorder) {
	t.Helper()
	if slices.Contains(a.success, rec.Code) {
		return
	}
	if rec.Code < 400 || rec.Code >= 500 || (len(a.errors) > 0 && !slices.Contains(a.errors, rec.Code)) {
		t.Fatalf("%s: status %d: %s", what, rec.Code, rec.Body)
	}
	var out struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Error == "" {
		t.Fatalf("%s: %d with a body that is not an OAuth error: %s", what, rec.Code, rec.Body)
	}
}

// serve answers req with h.
func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// formRequest is a form POST of body to u.
func formRequest(u, body string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, u, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

// adminRequest is an admin API call with the admin token.
func adminRequest(method, u string, body []byte) *http.Request {
	req := httptest.NewRequest(method, u, strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	return req
}

// offline is an HTTP client that reaches nothing: fuzzed input must not
// make the provider fetch from the network (request_uri, jwks_uri,
// sector_identifier_uri).
var offline = &http.Client{Transport: refuseAll{}}

type refuseAll struct{}

func (refuseAll) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("the fuzz targets make no outgoing requests")
}

// signES256 signs a compact JWS with header and payload as given, so
// seeds can carry claims of the wrong type and odd headers.
func signES256(f *testing.F, key *ecdsa.PrivateKey, header, payload string) string {
	input := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		f.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

const assertionTypeJWT = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// FuzzClientAssertion sends arbitrary private_key_jwt assertions to the
// token endpoint: the answer is a token, or invalid_request or
// invalid_client as a JSON error with 400 or 401.
func FuzzClientAssertion(f *testing.F) {
	e, h := fuzzEnv(f)
	key, jwks := rpKey(f)
	e.createClient(&store.Client{ID: "fuzz-jwt", GrantTypes: []string{"client_credentials"}, Scope: "api",
		TokenEndpointAuthMethod: "private_key_jwt", TokenEndpointAuthSigningAlg: "ES256", JWKS: jwks}, "")
	tokenURL := e.issuer() + "/oauth2/token"
	now := time.Now().Unix()
	claims := func(iss, aud string, exp int64, jti string) string {
		return fmt.Sprintf(`{"iss":%q,"sub":%q,"aud":%q,"exp":%d,"iat":%d,"jti":%q}`, iss, iss, aud, exp, now, jti)
	}
	es256 := `{"alg":"ES256","kid":"rp-key","typ":"JWT"}`
	seeds := []struct{ assertion, clientID string }{
		{signES256(f, key, es256, claims("fuzz-jwt", tokenURL, now+3600, "jti-1")), ""},
		{signES256(f, key, es256, claims("fuzz-jwt", e.issuer(), now+3600, "jti-2")), "fuzz-jwt"},
		{signES256(f, key, es256, claims("fuzz-jwt", tokenURL, now+3600, "jti-3")), "fuzz-client"},
		{signES256(f, key, es256, claims("fuzz-jwt", "https://elsewhere.example.test", now+3600, "jti-5")), ""},
		{signES256(f, key, es256, claims("fuzz-jwt", tokenURL, now-60, "jti-expired")), ""},
		{signES256(f, key, es256, claims("fuzz-client", tokenURL, now+3600, "jti-6")), ""},
		{signES256(f, key, es256, claims("nobody", tokenURL, now+3600, "jti-7")), ""},
		{signES256(f, key, `{"alg":"ES256","kid":"../x","jku":"https://evil.example.test/jwks","crit":["exp"]}`, claims("fuzz-jwt", tokenURL, now+3600, "jti-8")), ""},
		{signES256(f, key, es256, `{"iss":7,"sub":["fuzz-jwt"],"aud":{"a":1},"exp":"soon","jti":null}`), ""},
		{signES256(f, key, es256, `{"iss":"fuzz-jwt","sub":"fuzz-jwt","aud":["`+tokenURL+`",null],"exp":1e400}`), ""},
		{signES256(f, key, es256, `[]`), ""},
		{base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + base64.RawURLEncoding.EncodeToString([]byte(claims("fuzz-jwt", tokenURL, now+3600, "jti-9"))) + ".", ""},
		{base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256"}`)) + ".e30.AAAA", "fuzz-jwt"},
		{"eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d", ""},
		{"a.b.c", "fuzz-jwt"}, {"....", ""}, {"", "fuzz-jwt"}, {"%zz", ""},
	}
	for _, s := range seeds {
		f.Add(s.assertion, s.clientID)
	}
	answer := jsonAnswer{success: []int{http.StatusOK}, errors: []int{http.StatusBadRequest, http.StatusUnauthorized}}
	f.Fuzz(func(t *testing.T, assertion, clientID string) {
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api"},
			"client_assertion_type": {assertionTypeJWT}, "client_assertion": {assertion}}
		if clientID != "" {
			form.Set("client_id", clientID)
		}
		answer.check(t, fmt.Sprintf("assertion %q, client_id %q", assertion, clientID), serve(h, formRequest(tokenURL, form.Encode())))
	})
}

// FuzzClientMetadata sends arbitrary client metadata, JWKS documents
// included, to the admin API and to dynamic registration: a client is
// created (201) or the metadata refused with a 4xx JSON error.
func FuzzClientMetadata(f *testing.F) {
	e, h := fuzzEnv(f, func(c *provider.Config) { c.RegistrationPolicy = provider.RegistrationOpen })
	admin := e.p.AdminHandler()
	_, jwks := rpKey(f)
	jwksDoc, err := json.Marshal(jwks)
	if err != nil {
		f.Fatal(err)
	}
	redirect := `"redirect_uris":["` + rpRedirect + `"]`
	for _, seed := range []string{
		`{` + redirect + `,"client_name":"Fuzz","scope":"openid profile","grant_types":["authorization_code","refresh_token"]}`,
		`{` + redirect + `,"token_endpoint_auth_method":"private_key_jwt","token_endpoint_auth_signing_alg":"ES256","jwks":` + string(jwksDoc) + `}`,
		`{` + redirect + `,"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://rp.example.test/jwks.json"}`,
		`{` + redirect + `,"jwks":` + string(jwksDoc) + `,"jwks_uri":"https://rp.example.test/jwks.json"}`,
		`{` + redirect + `,"jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}}`,
		`{` + redirect + `,"jwks":{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}}`,
		`{` + redirect + `,"jwks":{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB"}]}}`,
		`{` + redirect + `,"jwks":{"keys":[{"kty":"OKP","crv":"Ed25519","x":""}]}}`,
		`{` + redirect + `,"jwks":{"keys":[{"kty":"EC","crv":"P-521","x":"` + strings.Repeat("A", 4000) + `"}]}}`,
		`{` + redirect + `,"jwks":{"keys":null}}`,
		`{"jwks":[]}`, `{"jwks":"keys"}`, `{"jwks":{"keys":[1,"x",null,{}]}}`,
		`{` + redirect + `,"subject_type":"pairwise","sector_identifier_uri":"https://sector.example.test/uris.json"}`,
		`{"client_id":"fuzz-client",` + redirect + `}`,
		`{` + redirect + `,"application_type":"native","redirect_uris":["com.example.app:/cb","http://127.0.0.1/cb"]}`,
		`{` + redirect + `,"post_logout_redirect_uris":["javascript:alert(1)"],"frontchannel_logout_uri":"https://other.example.test/fc"}`,
		`{"redirect_uris":"https://rp.example.test/cb"}`, `{"grant_types":[1,2]}`, `{"scope":["openid"]}`,
		`{"default_max_age":1e400}`, `{"default_max_age":-1}`, `{"default_max_age":9223372036854775808}`,
		`{"client_id_issued_at":1e30,"client_secret_expires_at":-5}`,
		`{` + redirect + `,"latchkey_token_lifespans":{"authorization_code_grant_access_token_lifespan":-1}}`,
		`{` + redirect + `,"latchkey_rotate_secret":true,"client_secret":"x"}`,
		`{` + redirect + `,"id_token_encrypted_response_alg":"RSA-OAEP"}`,
		`{"a":{"b":[[[[[[{"c":null}]]]]]]},"redirect_uris":[null]}`,
		strings.Repeat("[", 20000), `[]`, `null`, `"client"`, `{} {}`, `{`, ``, "\xff\xfe",
	} {
		f.Add([]byte(seed))
	}
	answer := jsonAnswer{success: []int{http.StatusCreated}}
	f.Fuzz(func(t *testing.T, metadata []byte) {
		answer.check(t, fmt.Sprintf("admin API, %q", metadata), serve(admin, adminRequest(http.MethodPost, e.admin.URL+"/admin/clients", metadata)))
		req := httptest.NewRequest(http.MethodPost, e.issuer()+"/oauth2/register", strings.NewReader(string(metadata)))
		req.Header.Set("Content-Type", "application/json")
		answer.check(t, fmt.Sprintf("registration, %q", metadata), serve(h, req))
	})
}

// startFlow starts a code flow of fuzz-client and returns the login
// challenge and the flow cookie that binds it to the browser.
func startFlow(f *testing.F, e *env, h http.Handler) (challenge string, flowCookie *http.Cookie) {
	rec := serve(h, httptest.NewRequest(http.MethodGet, e.issuer()+"/oauth2/auth?"+codeParams("fuzz-client").Encode(), nil))
	return redirectParam(f, rec, "login_challenge"), flowCookieOf(f, rec)
}

// redirectParam is a query parameter of rec's redirect.
func redirectParam(f *testing.F, rec *httptest.ResponseRecorder, name string) string {
	loc, err := url.Parse(rec.Header().Get("Location"))
	if err != nil || loc.Query().Get(name) == "" {
		f.Fatalf("want a redirect with %s, got %d %v: %s", name, rec.Code, rec.Header(), rec.Body)
	}
	return loc.Query().Get(name)
}

func flowCookieOf(f *testing.F, rec *httptest.ResponseRecorder) *http.Cookie {
	for _, c := range rec.Result().Cookies() {
		if strings.HasPrefix(c.Name, "latchkey_flow_") {
			return c
		}
	}
	f.Fatalf("no flow cookie in %v", rec.Header())
	return nil
}

// acceptLogin signs alice in on challenge through the admin API.
func acceptLogin(f *testing.F, e *env, admin http.Handler, challenge string) {
	rec := serve(admin, adminRequest(http.MethodPut, e.admin.URL+"/admin/login/accept?challenge="+url.QueryEscape(challenge),
		[]byte(`{"subject":"alice-subject","remember":true}`)))
	if rec.Code != http.StatusOK {
		f.Fatalf("accept login: %d %s", rec.Code, rec.Body)
	}
}

// continueFlow follows the continue link of a decided login challenge in
// the browser that holds cookie.
func continueFlow(e *env, h http.Handler, challenge string, cookie *http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, e.issuer()+"/oauth2/auth/continue?login_verifier="+url.QueryEscape(challenge), nil)
	req.AddCookie(cookie)
	return serve(h, req)
}

// FuzzChallenge sends arbitrary challenge IDs and decision bodies to the
// challenge API of every kind: the answer is 200 or a 4xx JSON error.
func FuzzChallenge(f *testing.F) {
	e, h := fuzzEnv(f)
	admin := e.p.AdminHandler()
	pendingLogin, _ := startFlow(f, e, h)
	// A second flow goes on to a pending consent challenge.
	login2, cookie2 := startFlow(f, e, h)
	acceptLogin(f, e, admin, login2)
	pendingConsent := redirectParam(f, continueFlow(e, h, login2, cookie2), "consent_challenge")
	for _, seed := range []struct{ id, body string }{
		{pendingLogin, `{"subject":"alice-subject","acr":"1","amr":["pwd"],"remember":true,"remember_for":60,"context":{"a":[1,{}]}}`},
		{pendingLogin, `{"subject":"  "}`},
		{pendingLogin, `{"subject":"a","remember_for":-1}`},
		{pendingLogin, `{"subject":1}`},
		{pendingLogin, `{"error":"login_required","error_description":"x"}`},
		{pendingLogin, `{"error":"server_error"}`},
		{pendingConsent, `{"grant_scope":["openid","profile"],"remember":true,"session":{"claims":{"email":7,"address":[1]},"id_token":{"sub":"mallory","exp":1}}}`},
		{pendingConsent, `{"grant_scope":["openid","admin"]}`},
		{pendingConsent, `{"grant_scope":null,"grant_audience":["elsewhere"]}`},
		{pendingConsent, `{"grant_scope":[],"remember_for":-9223372036854775808}`},
		{pendingConsent, `{"user_code":"ABCD-EFGH"}`},
		{"", `{}`}, {"no-such-challenge", `{"subject":"a"}`}, {"%00\n'\"<>", `{"unknown":1}`},
		{strings.Repeat("a", 5000), `null`}, {pendingLogin, ``}, {pendingConsent, `{} {}`}, {pendingLogin, "\xff"},
	} {
		f.Add(seed.id, []byte(seed.body))
	}
	answer := jsonAnswer{success: []int{http.StatusOK}}
	f.Fuzz(func(t *testing.T, id string, body []byte) {
		q := "?challenge=" + url.QueryEscape(id)
		for _, kind := range []string{"login", "consent", "logout", "device"} {
			base := e.admin.URL + "/admin/" + kind
			for _, call := range []struct{ method, path string }{
				{http.MethodGet, base + q},
				{http.MethodPut, base + "/accept" + q},
				{http.MethodPut, base + "/reject" + q},
				{http.MethodPost, base + "/accept" + q},
			} {
				answer.check(t, fmt.Sprintf("%s %s %q", call.method, call.path, body), serve(admin, adminRequest(call.method, call.path, body)))
			}
		}
	})
}

// FuzzCookies sends arbitrary Cookie headers to the endpoints that read
// the SSO session cookie and the flow cookies: whatever the browser
// holds, the answer is never a server error.
func FuzzCookies(f *testing.F) {
	e, h := fuzzEnv(f)
	admin := e.p.AdminHandler()
	// A finished sign-in gives a real SSO session cookie; a second flow,
	// decided but not continued, a live flow cookie.
	login1, cookie1 := startFlow(f, e, h)
	acceptLogin(f, e, admin, login1)
	var session *http.Cookie
	for _, c := range continueFlow(e, h, login1, cookie1).Result().Cookies() {
		if c.Name == "latchkey_session" {
			session = c
		}
	}
	if session == nil {
		f.Fatal("no SSO session cookie after a sign-in")
	}
	login2, cookie2 := startFlow(f, e, h)
	acceptLogin(f, e, admin, login2)
	for _, seed := range []string{
		session.String(),
		(&http.Cookie{Name: cookie2.Name, Value: cookie2.Value}).String(),
		session.Name + "=" + session.Value + "; " + cookie2.Name + "=" + cookie2.Value,
		cookie2.Name + "=wrong; " + cookie2.Name + "=" + cookie2.Value,
		"latchkey_session=; latchkey_session=\"quoted\"; latchkey_flow_=x",
		"latchkey_session=" + strings.Repeat("A", 8000),
		"=;;=; latchkey_session; ;latchkey_flow_" + strings.Repeat("x", 300) + "=\x00\xff",
		"", "\r\nSet-Cookie: x=y",
	} {
		f.Add(seed)
	}
	paths := []string{
		"/oauth2/auth?" + codeParams("fuzz-client").Encode(),
		"/oauth2/auth/continue?login_verifier=" + url.QueryEscape(login2),
		"/oauth2/logout",
		"/oauth2/logout?client_id=fuzz-client&post_logout_redirect_uri=" + url.QueryEscape(rpRedirect),
		"/oauth2/logout/continue?logout_verifier=nope",
	}
	f.Fuzz(func(t *testing.T, cookies string) {
		for _, p := range paths {
			req := httptest.NewRequest(http.MethodGet, e.issuer()+p, nil)
			req.Header.Set("Cookie", cookies)
			if rec := serve(h, req); rec.Code >= 500 {
				t.Fatalf("GET %s with cookies %q: %d %s", p, cookies, rec.Code, rec.Body)
			}
		}
	})
}

// machineToken is an access token of a client credentials client, for
// the introspection and revocation seeds.
func machineToken(f *testing.F, e *env, h http.Handler) string {
	e.createClient(&store.Client{ID: "fuzz-machine", GrantTypes: []string{"client_credentials"}, Scope: "api"}, testSecret)
	req := formRequest(e.issuer()+"/oauth2/token", "grant_type=client_credentials&scope=api")
	req.SetBasicAuth("fuzz-machine", testSecret)
	rec := serve(h, req)
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.AccessToken == "" {
		f.Fatalf("client credentials: %d %s", rec.Code, rec.Body)
	}
	return out.AccessToken
}

// tokenEndpointSeeds are form bodies for the introspection and
// revocation endpoints.
func tokenEndpointSeeds(token string) []string {
	secretPost := "&client_id=fuzz-machine&client_secret=" + url.QueryEscape(testSecret)
	return []string{
		"token=" + url.QueryEscape(token),
		"token=" + url.QueryEscape(token) + "&token_type_hint=refresh_token" + secretPost,
		"token=" + url.QueryEscape(token) + "&token_type_hint=access_token&client_id=fuzz-public",
		"token=ory_at_x.y&client_id=fuzz-client&client_secret=wrong",
		"token=a&client_assertion_type=" + url.QueryEscape(assertionTypeJWT) + "&client_assertion=a.b.c",
		"token=&token_type_hint=%zz",
		"client_id=fuzz-machine&client_id=fuzz-client&token=x&token=y",
		"token=" + strings.Repeat("A", 5000) + secretPost,
		"", "&&&=", "%",
	}
}

// FuzzIntrospect sends arbitrary form bodies to the introspection
// endpoint, with and without client authentication: the answer is 200 or
// a 4xx JSON error.
func FuzzIntrospect(f *testing.F) {
	fuzzClientForm(f, "/oauth2/introspect")
}

// FuzzRevoke sends arbitrary form bodies to the revocation endpoint, with
// and without client authentication: the answer is 200 or a 4xx JSON
// error.
func FuzzRevoke(f *testing.F) {
	fuzzClientForm(f, "/oauth2/revoke")
}

// fuzzClientForm seeds with tokenEndpointSeeds and posts each input to the
// provider's path, authenticated as fuzz-machine with HTTP Basic when
// basic is set.
func fuzzClientForm(f *testing.F, path string) {
	e, h := fuzzEnv(f)
	for _, seed := range tokenEndpointSeeds(machineToken(f, e, h)) {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	endpoint := e.issuer() + path
	answer := jsonAnswer{success: []int{http.StatusOK}}
	f.Fuzz(func(t *testing.T, body string, basic bool) {
		req := formRequest(endpoint, body)
		if basic {
			req.SetBasicAuth("fuzz-machine", testSecret)
		}
		answer.check(t, fmt.Sprintf("%q, basic %v", body, basic), serve(h, req))
	})
}
