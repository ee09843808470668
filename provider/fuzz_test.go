package provider_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
)

// fuzzEnv is one provider shared by every input of a fuzz target. opts
// may change its config.
func fuzzEnv(f *testing.F, opts ...func(*provider.Config)) (*env, http.Handler) {
	// No fuzzed input may make the provider wait on the network.
	e := newEnv(f, append([]func(*provider.Config){func(c *provider.Config) { c.HTTPClient = offline }}, opts...)...)
	webClient(e, func(c *store.Client) { c.ID = "fuzz-client" })
	e.createClient(&store.Client{ID: "fuzz-public", GrantTypes: []string{"authorization_code", "refresh_token"}, Scope: "openid offline_access"}, "")
	return e, e.p.PublicHandler()
}

// FuzzAuthorize sends arbitrary query strings to the authorization
// endpoint: whatever comes in, the answer is an error page, a redirect or a
// login redirect — never a server error.
func FuzzAuthorize(f *testing.F) {
	e, h := fuzzEnv(f)
	for _, seed := range []string{
		codeParams("fuzz-client").Encode(),
		codeParams("fuzz-public").Encode(),
		"response_type=code+id_token&client_id=fuzz-client&redirect_uri=" + url.QueryEscape(rpRedirect) + "&scope=openid&nonce=n&state=s",
		"client_id=fuzz-client&request=eyJhbGciOiJub25lIn0.eyJtYXhfYWdlIjoxfQ.&scope=openid&response_type=code",
		"client_id=fuzz-client&request_uri=urn:ietf:params:oauth:request_uri:nope",
		"client_id=fuzz-client&response_type=code&redirect_uri=" + url.QueryEscape(rpRedirect) + "&scope=openid&state=abcdefgh&claims=%7B%22id_token%22%3A1%7D&max_age=-1&prompt=none+login",
		"%zz=%zz&&&=",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, query string) {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			var req *http.Request
			if method == http.MethodGet {
				// Set after parsing: NewRequest panics on a target it
				// cannot parse (a space, say), which no server sees.
				req = httptest.NewRequest(method, e.issuer()+"/oauth2/auth", nil)
				req.URL.RawQuery = query
			} else {
				req = httptest.NewRequest(method, e.issuer()+"/oauth2/auth", strings.NewReader(query))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("%s %q: %d %s", method, query, rec.Code, rec.Body)
			}
		}
	})
}

// FuzzToken sends arbitrary form bodies to the token endpoint: every
// answer that is not a token is an RFC 6749 error object with a 4xx status.
func FuzzToken(f *testing.F) {
	e, h := fuzzEnv(f)
	for _, seed := range []string{
		"grant_type=authorization_code&code=ory_ac_x.y&redirect_uri=" + url.QueryEscape(rpRedirect) + "&code_verifier=abc&client_id=fuzz-public",
		"grant_type=refresh_token&refresh_token=ory_rt_abc.def&client_id=fuzz-public",
		"grant_type=client_credentials&scope=openid",
		"grant_type=password&username=a&password=b",
		"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=ory_dc_x.y&client_id=fuzz-public",
		"client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=a.b.c&grant_type=client_credentials",
		"grant_type=&&%zz",
	} {
		f.Add(seed, true)
	}
	answer := jsonAnswer{success: []int{http.StatusOK}}
	f.Fuzz(func(t *testing.T, body string, basic bool) {
		req := formRequest(e.issuer()+"/oauth2/token", body)
		if basic {
			req.SetBasicAuth("fuzz-client", testSecret)
		}
		answer.check(t, fmt.Sprintf("%q", body), serve(h, req))
	})
}

// FuzzRequestObject sends arbitrary request objects: verification fails
// cleanly, and a claim of any JSON type never breaks the provider.
func FuzzRequestObject(f *testing.F) {
	e, h := fuzzEnv(f)
	for _, seed := range []string{
		"eyJhbGciOiJub25lIn0.eyJtYXhfYWdlIjozMDAsImNsYWltcyI6eyJ1c2VyaW5mbyI6eyJlbWFpbCI6bnVsbH19fQ.",
		"eyJhbGciOiJFUzI1NiJ9.e30.AAAA",
		"a.b.c", "....", "",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, obj string) {
		q := url.Values{"client_id": {"fuzz-client"}, "response_type": {"code"}, "scope": {"openid"},
			"redirect_uri": {rpRedirect}, "state": {"state-fuzz"}, "request": {obj}}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, e.issuer()+"/oauth2/auth?"+q.Encode(), nil))
		if rec.Code >= 500 {
			t.Fatalf("%q: %d %s", obj, rec.Code, rec.Body)
		}
	})
}
