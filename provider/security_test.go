package provider_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
	"github.com/latchkey-oidc/latchkey/store/storetest"
)

// The controls of deploy/SECURITY.md that no other test of the provider
// proves. Each test here is cited there, next to the section of RFC 9700 or
// OpenID Connect Core it answers.

// TestRedirectURIExactMatch: an authorization request's redirect_uri must
// equal a registered one character for character (RFC 9700 §4.1.3, Core
// §3.1.2.1). Anything else, however close, gets an error page and no
// redirect; a registered URI that looks like a pattern matches only
// itself. The token endpoint then wants the same redirect_uri again (RFC
// 6749 §4.1.3).
func TestRedirectURIExactMatch(t *testing.T) {
	e := newEnv(t)
	c := webClient(e, func(c *store.Client) {
		c.ID = "exact-rp"
		c.RedirectURIs = []string{rpRedirect, "https://*.rp.example.test/cb"}
	})
	for _, tc := range []struct{ name, uri string }{
		{"trailing slash", rpRedirect + "/"},
		{"longer path", rpRedirect + "/more"},
		{"path suffix", rpRedirect + "x"},
		{"added query", rpRedirect + "?next=https://evil.example.test"},
		{"empty query", rpRedirect + "?"},
		{"empty fragment", rpRedirect + "#"},
		{"other port", "https://rp.example.test:8443/cb"},
		{"default port spelled out", "https://rp.example.test:443/cb"},
		{"http scheme", "http://rp.example.test/cb"},
		{"userinfo", "https://rp.example.test@evil.example.test/cb"},
		{"registered wildcard expanded", "https://evil.rp.example.test/cb"},
		{"percent-encoded path", "https://rp.example.test/%63b"},
		{"dot segment", "https://rp.example.test/x/../cb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := codeParams(c.ID)
			p.Set("redirect_uri", tc.uri)
			res := newBrowser(t).authorize(e.issuer(), p)
			if res.Mode != "" || res.Status != http.StatusBadRequest || !strings.Contains(res.Body, "<html") {
				t.Fatalf("redirect_uri %q: %d mode %q %v: %.200s", tc.uri, res.Status, res.Mode, res.Params, res.Body)
			}
		})
	}
	t.Run("loopback port may vary, nothing else", func(t *testing.T) {
		// The one exception RFC 9700 §2.1 allows: a native app's loopback
		// redirect URI listens on a port of the moment (RFC 8252 §7.3).
		lo := webClient(e, func(c *store.Client) { c.ID = "loopback-rp"; c.RedirectURIs = []string{"http://127.0.0.1:9000/cb"} })
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		for uri, accepted := range map[string]bool{
			"http://127.0.0.1:9000/cb":  true,
			"http://127.0.0.1:9001/cb":  true,
			"http://127.0.0.1:9001/cbx": false,
			"http://127.0.0.1:9001/cb/": false,
			"http://127.0.0.2:9000/cb":  false,
			"https://127.0.0.1:9000/cb": false,
		} {
			p := codeParams(lo.ID)
			p.Set("redirect_uri", uri)
			resp, err := noFollow.Get(e.issuer() + "/oauth2/auth?" + p.Encode())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			toLogin := strings.HasPrefix(resp.Header.Get("Location"), e.login.srv.URL)
			if toLogin != accepted || (!accepted && resp.StatusCode != http.StatusBadRequest) {
				t.Errorf("redirect_uri %s: %d to %q, want accepted %v", uri, resp.StatusCode, resp.Header.Get("Location"), accepted)
			}
		}
	})
	t.Run("token endpoint wants the same redirect_uri", func(t *testing.T) {
		verifier, _ := pkce()
		for _, redirect := range []string{rpRedirect + "/", ""} {
			code := mustCode(t, newBrowser(t).authorize(e.issuer(), codeParams(c.ID)))
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier}}
			if redirect != "" {
				form.Set("redirect_uri", redirect)
			}
			if tr := e.postToken(c.ID, testSecret, form); tr.Error != "invalid_grant" {
				t.Errorf("redirect_uri %q at the token endpoint: %+v", redirect, tr)
			}
		}
	})
}

// TestPostLogoutRedirectURIExactMatch: the end-session endpoint redirects
// only to a post_logout_redirect_uri the client registered, compared
// exactly (RP-Initiated Logout §3), so it is no open redirector (RFC 9700
// §4.11.2).
func TestPostLogoutRedirectURIExactMatch(t *testing.T) {
	e := newEnv(t)
	c := e.rpClient()
	for _, tc := range []struct{ name, uri string }{
		{"longer path", loggedOut + "/more"},
		{"added query", loggedOut + "?next=https://evil.example.test"},
		{"fragment", loggedOut + "#x"},
		{"other host", "https://evil.example.test/cb/logged-out"},
		{"upper case", strings.ToUpper(loggedOut)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := newBrowser(t).get(e.logoutURL(url.Values{"client_id": {c.ID}, "post_logout_redirect_uri": {tc.uri}}))
			if res.Status != http.StatusBadRequest || res.Mode != "" || !strings.Contains(res.Body, "not one the client registered") {
				t.Fatalf("post_logout_redirect_uri %q: %d %q %.300s", tc.uri, res.Status, res.Mode, res.Body)
			}
		})
	}
}

// TestPKCEDowngrade: a code issued with a code_challenge is redeemed only
// with its code_verifier, and a code issued without one is not redeemed
// with a code_verifier (RFC 9700 §2.1.1, §4.8.2). An S256 challenge is not
// met by sending the challenge itself as a plain verifier, and a request
// that leaves code_challenge_method out (plain, by RFC 7636 §4.3) is
// refused for a client not registered for plain.
func TestPKCEDowngrade(t *testing.T) {
	e := newEnv(t)
	c := webClient(e, func(c *store.Client) { c.ID = "pkce-rp" })
	verifier, challenge := pkce()
	redeem := func(code string, extra url.Values) *tokenResponse {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect}}
		for k, v := range extra {
			form[k] = v
		}
		return e.postToken(c.ID, testSecret, form)
	}
	withChallenge := func() string { return mustCode(t, newBrowser(t).authorize(e.issuer(), codeParams(c.ID))) }
	withoutChallenge := func() string {
		p := codeParams(c.ID)
		p.Del("code_challenge")
		p.Del("code_challenge_method")
		return mustCode(t, newBrowser(t).authorize(e.issuer(), p))
	}

	t.Run("challenge without verifier", func(t *testing.T) {
		if tr := redeem(withChallenge(), nil); tr.Error != "invalid_grant" {
			t.Fatalf("a code issued with a challenge was redeemed without its verifier: %+v", tr)
		}
	})
	t.Run("verifier without challenge", func(t *testing.T) {
		if tr := redeem(withoutChallenge(), url.Values{"code_verifier": {verifier}}); tr.Error != "invalid_grant" {
			t.Fatalf("a code issued without a challenge was redeemed with a verifier: %+v", tr)
		}
	})
	t.Run("S256 challenge as plain verifier", func(t *testing.T) {
		if tr := redeem(withChallenge(), url.Values{"code_verifier": {challenge}}); tr.Error != "invalid_grant" {
			t.Fatalf("the challenge itself passed as the verifier: %+v", tr)
		}
	})
	t.Run("method left out", func(t *testing.T) {
		p := codeParams(c.ID)
		p.Del("code_challenge_method")
		res := newBrowser(t).authorize(e.issuer(), p)
		if res.Params.Get("error") != "invalid_request" || res.Params.Has("code") {
			t.Fatalf("a challenge without method (plain) for a client without plain: %d %v", res.Status, res.Params)
		}
	})
	// The controls: each kind of code is redeemed the right way.
	if tr := redeem(withChallenge(), url.Values{"code_verifier": {verifier}}); tr.Status != http.StatusOK {
		t.Errorf("code with challenge and verifier: %+v", tr)
	}
	if tr := redeem(withoutChallenge(), nil); tr.Status != http.StatusOK {
		t.Errorf("confidential client without PKCE: %+v", tr)
	}
}

// TestGrantsBoundToTheirClient: an authorization code and a refresh token
// are redeemed only by the client they were issued to, even when another
// client authenticates properly (RFC 6749 §4.1.3, §6; Core §3.1.3.2).
func TestGrantsBoundToTheirClient(t *testing.T) {
	e := newEnv(t)
	a := webClient(e, func(c *store.Client) { c.ID = "client-a" })
	b := webClient(e, func(c *store.Client) { c.ID = "client-b" })
	t.Run("code", func(t *testing.T) {
		code := mustCode(t, newBrowser(t).authorize(e.issuer(), codeParams(a.ID)))
		if tr := e.exchange(b.ID, testSecret, code); tr.Error != "invalid_grant" {
			t.Fatalf("client-b redeemed client-a's code: %+v", tr)
		}
	})
	t.Run("refresh token", func(t *testing.T) {
		tr := e.exchange(a.ID, testSecret, mustCode(t, newBrowser(t).authorize(e.issuer(), codeParams(a.ID))))
		if tr.RefreshToken == "" {
			t.Fatalf("no refresh token: %+v", tr)
		}
		got := e.postToken(b.ID, testSecret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}})
		if got.Error != "invalid_grant" || got.AccessToken != "" {
			t.Fatalf("client-b used client-a's refresh token: %+v", got)
		}
	})
}

// TestReplayRevokesIssuedTokens: a second redemption of a code, or a second
// use of a rotated refresh token, fails and revokes the access and refresh
// tokens the first one issued (RFC 6749 §4.1.2, RFC 9700 §4.14.2).
func TestReplayRevokesIssuedTokens(t *testing.T) {
	e := newEnv(t)
	c := webClient(e, func(c *store.Client) { c.ID = "replay-rp" })
	revoked := func(t *testing.T, tr *tokenResponse) {
		t.Helper()
		if a := userinfoGET(t, e, tr.AccessToken); a.Status != http.StatusUnauthorized {
			t.Errorf("the access token still works at userinfo: %d %s", a.Status, a.Body)
		}
		if r := e.postToken(c.ID, testSecret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}); r.Error != "invalid_grant" {
			t.Errorf("the refresh token still works: %+v", r)
		}
	}
	t.Run("code", func(t *testing.T) {
		code := mustCode(t, newBrowser(t).authorize(e.issuer(), codeParams(c.ID)))
		first := e.exchange(c.ID, testSecret, code)
		if first.Status != http.StatusOK || first.RefreshToken == "" {
			t.Fatalf("exchange: %+v", first)
		}
		if a := userinfoGET(t, e, first.AccessToken); a.Status != http.StatusOK {
			t.Fatalf("userinfo before the replay: %d %s", a.Status, a.Body)
		}
		if again := e.exchange(c.ID, testSecret, code); again.Error != "invalid_grant" {
			t.Fatalf("code replay: %+v", again)
		}
		revoked(t, first)
	})
	t.Run("refresh token", func(t *testing.T) {
		first := e.exchange(c.ID, testSecret, mustCode(t, newBrowser(t).authorize(e.issuer(), codeParams(c.ID))))
		second := e.postToken(c.ID, testSecret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}})
		if second.Status != http.StatusOK || second.RefreshToken == "" {
			t.Fatalf("refresh: %+v", second)
		}
		if again := e.postToken(c.ID, testSecret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}}); again.Error != "invalid_grant" {
			t.Fatalf("reuse of the rotated refresh token: %+v", again)
		}
		revoked(t, second)
	})
}

// TestImplicitAndHybridRequireNonce: a response type that returns an ID
// token from the authorization endpoint needs a nonce (Core §3.2.2.1,
// §3.3.2.11); without one the client gets an error and no token.
func TestImplicitAndHybridRequireNonce(t *testing.T) {
	e := newEnv(t)
	c := webClient(e, func(c *store.Client) { c.ID = "nonce-rp" })
	for _, rt := range []string{"id_token", "id_token token", "code id_token", "code id_token token"} {
		t.Run(rt, func(t *testing.T) {
			p := codeParams(c.ID)
			p.Set("response_type", rt)
			p.Del("nonce")
			res := newBrowser(t).authorize(e.issuer(), p)
			if res.Params.Get("error") != "invalid_request" {
				t.Fatalf("%s without nonce: %d %q %v", rt, res.Status, res.Mode, res.Params)
			}
			for _, name := range []string{"code", "id_token", "access_token"} {
				if res.Params.Has(name) {
					t.Errorf("the error response carries %s", name)
				}
			}
		})
	}
}

// TestClientAssertionAlgNoneRefused: a private_key_jwt client assertion
// that is not signed (alg none) does not authenticate the client (RFC 7523
// §3, Core §9).
func TestClientAssertionAlgNoneRefused(t *testing.T) {
	e := newEnv(t)
	_, jwks := rpKey(t)
	c := e.createClient(&store.Client{ID: "pkjwt-none", GrantTypes: []string{"client_credentials"}, Scope: "api",
		TokenEndpointAuthMethod: "private_key_jwt", TokenEndpointAuthSigningAlg: "ES256", JWKS: jwks}, "")
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	claims := enc(map[string]any{"iss": c.ID, "sub": c.ID, "aud": e.issuer() + "/oauth2/token", "jti": "none-1",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix()})
	for _, header := range []map[string]any{{"alg": "none"}, {"alg": "none", "kid": "rp-key"}, {"alg": "NONE"}} {
		a := postClientForm(t, e.issuer()+"/oauth2/token", clientAuth{}, url.Values{
			"grant_type": {"client_credentials"}, "scope": {"api"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {enc(header) + "." + claims + "."},
		})
		if a.Status != http.StatusUnauthorized || a.JSON(t)["error"] != "invalid_client" {
			t.Errorf("assertion with header %v: %d %s", header, a.Status, a.Body)
		}
	}
}

// responseRecorder keeps the status, headers and request of every answer
// a test browser gets.
type responseRecorder struct {
	mu   sync.Mutex
	seen []*http.Response // bodies not kept
	next http.RoundTripper
}

func (r *responseRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err == nil {
		r.mu.Lock()
		r.seen = append(r.seen, &http.Response{Request: req, StatusCode: resp.StatusCode, Header: resp.Header.Clone()})
		r.mu.Unlock()
	}
	return resp, err
}

func (r *responseRecorder) answers() []*http.Response {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*http.Response(nil), r.seen...)
}

// recordedBrowser is a test browser whose answers are recorded.
func recordedBrowser(t *testing.T, next http.RoundTripper) (*browser, *responseRecorder) {
	b := newBrowser(t)
	rec := &responseRecorder{next: next}
	b.client.Transport = rec
	return b, rec
}

// TestProviderPagesRefuseFraming: every HTML page of the provider (the
// error page, the form_post page, the logout pages) forbids framing with
// CSP frame-ancestors 'none' and X-Frame-Options DENY (RFC 9700 §4.16), and
// leaks no Referer (§4.2.4); every answer, HTML or not, has those headers
// and nosniff.
func TestProviderPagesRefuseFraming(t *testing.T) {
	e := newEnv(t)
	c := webClient(e, func(c *store.Client) { c.ID = "frame-rp"; c.PostLogoutRedirectURIs = []string{loggedOut} })
	b, rec := recordedBrowser(t, http.DefaultTransport)

	p := codeParams(c.ID)
	p.Set("client_id", "nobody")
	if res := b.authorize(e.issuer(), p); res.Status/100 != 4 || res.Mode != "" {
		t.Fatalf("unknown client: %d %q", res.Status, res.Mode)
	}
	p = codeParams(c.ID)
	p.Set("response_mode", "form_post")
	if res := b.authorize(e.issuer(), p); res.Mode != "form_post" {
		t.Fatalf("form_post: %d %q", res.Status, res.Mode)
	}
	if res := b.get(e.logoutURL(url.Values{"client_id": {c.ID}, "post_logout_redirect_uri": {"https://evil.example.test/"}})); res.Status != http.StatusBadRequest {
		t.Fatalf("bad logout: %d", res.Status)
	}
	e.login.logout = func(provider.ChallengeView) any { return provider.Rejection{} }
	b.get(e.logoutURL(nil))
	b.get(e.issuer() + "/.well-known/openid-configuration")

	issuer, _ := url.Parse(e.issuer())
	pages := map[string]bool{}
	for _, resp := range rec.answers() {
		if resp.Request.URL.Host != issuer.Host {
			continue // the login double's
		}
		where := resp.Request.Method + " " + resp.Request.URL.Path
		h := resp.Header
		for name, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"} {
			if got := h.Get(name); got != want {
				t.Errorf("%s (%d): %s %q, want %q", where, resp.StatusCode, name, got, want)
			}
		}
		// A redirect's little HTML body is never shown: browsers follow it.
		if !strings.HasPrefix(h.Get("Content-Type"), "text/html") || resp.StatusCode/100 == 3 {
			continue
		}
		pages[where] = true
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s (%d): Content-Security-Policy %q lacks frame-ancestors 'none'", where, resp.StatusCode, csp)
		}
	}
	// The error page, the form_post page, the refused logout and the
	// page after a declined logout.
	t.Logf("HTML pages checked: %v", pages)
	if len(pages) < 3 {
		t.Errorf("only %d HTML pages were checked: %v", len(pages), pages)
	}
}

// TestProviderCookieFlags: the provider's cookies (the flow cookie that
// binds a sign-in to its browser, the SSO session) are HttpOnly and
// SameSite=Lax, and Secure when the issuer is https; only a plain http
// loopback issuer (local development) leaves Secure out.
func TestProviderCookieFlags(t *testing.T) {
	for _, https := range []bool{true, false} {
		name := map[bool]string{true: "https issuer", false: "http loopback issuer"}[https]
		t.Run(name, func(t *testing.T) {
			const host = "op.example.test"
			e := newEnv(t, func(c *provider.Config) {
				if https {
					c.Issuer = "https://" + host
				}
			})
			issuer := e.issuer()
			var next http.RoundTripper = http.DefaultTransport
			if https {
				target, _ := url.Parse(e.issuer())
				issuer, next = "https://"+host, latchkeytest.HTTPSFront{Host: host, Target: target}
			}
			c := webClient(e, func(c *store.Client) { c.ID = "cookie-rp" })
			b, rec := recordedBrowser(t, next)
			mustCode(t, b.authorize(issuer, codeParams(c.ID)))

			var flow, session bool
			for _, resp := range rec.answers() {
				for _, ck := range resp.Cookies() {
					flow = flow || strings.HasPrefix(ck.Name, "latchkey_flow_")
					session = session || ck.Name == "latchkey_session"
					if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure != https {
						t.Errorf("%s %s: cookie %s: HttpOnly %v SameSite %v Secure %v; want HttpOnly, Lax, Secure %v",
							resp.Request.Method, resp.Request.URL.Path, ck.Name, ck.HttpOnly, ck.SameSite, ck.Secure, https)
					}
				}
			}
			if !flow || !session {
				t.Errorf("the sign-in set the flow cookie: %v, the session cookie: %v; want both checked", flow, session)
			}
		})
	}
}

// TestPlainHTTPIssuerRefused: outside dev mode the issuer must be https,
// except on a loopback address (Core §16.17; RFC 9700 §2.6).
func TestPlainHTTPIssuerRefused(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		issuer string
		dev    bool
		ok     bool
	}{
		{"http://op.example.test", false, false},
		{"http://10.0.0.1:8080", false, false},
		{"http://op.example.test", true, true},
		{"https://op.example.test", false, true},
		{"http://127.0.0.1:8080", false, true},
		{"http://localhost:8080", false, true},
	} {
		cfg := provider.Config{Issuer: tc.issuer, Dev: tc.dev, AdminToken: adminToken, SystemSecret: storetest.TestSecret, KeyAlgs: []string{"RS256"}}
		st := storetest.OpenURL(t, storetest.FreshSQLite(t), provider.StoreOptions(cfg))
		_, err := provider.New(ctx, st, cfg)
		if (err == nil) != tc.ok {
			t.Errorf("issuer %s, dev %v: error %v, want ok %v", tc.issuer, tc.dev, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "plain http") {
			t.Errorf("issuer %s: error %q does not say why", tc.issuer, err)
		}
	}
}

// TestRequestHeadersDoNotMoveTheIssuer: the issuer and every URL the
// provider publishes or redirects to come from its configuration, never
// from Host or X-Forwarded-* headers a client or a careless proxy passes on
// (RFC 9700 §4.13).
func TestRequestHeadersDoNotMoveTheIssuer(t *testing.T) {
	e := newEnv(t)
	c := webClient(e, func(c *store.Client) { c.ID = "forwarded-rp" })
	spoof := func(req *http.Request) {
		req.Host = "evil.example.test"
		req.Header.Set("X-Forwarded-Host", "evil.example.test")
		req.Header.Set("X-Forwarded-Proto", "http")
		req.Header.Set("Forwarded", "host=evil.example.test;proto=http")
	}
	req, err := http.NewRequest(http.MethodGet, e.issuer()+"/.well-known/openid-configuration", nil)
	if err != nil {
		t.Fatal(err)
	}
	spoof(req)
	a := do(t, req)
	if a.Status != http.StatusOK || a.JSON(t)["issuer"] != e.issuer() || bytes.Contains(a.Body, []byte("evil.example.test")) {
		t.Errorf("discovery with spoofed headers: %d %s", a.Status, a.Body)
	}
	req, err = http.NewRequest(http.MethodGet, e.issuer()+"/oauth2/auth?"+codeParams(c.ID).Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	spoof(req)
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, e.login.srv.URL+"/login?") {
		t.Errorf("authorization with spoofed headers redirected to %q (%d), want the login app", loc, resp.StatusCode)
	}
}

// TestNoCORSAtAuthorizationEndpoint: the authorization endpoint does not
// answer cross-origin requests with CORS headers (RFC 9700 §2.6): a script
// on another site cannot read it.
func TestNoCORSAtAuthorizationEndpoint(t *testing.T) {
	e := newEnv(t)
	c := webClient(e, func(c *store.Client) { c.ID = "cors-rp" })
	for _, method := range []string{http.MethodGet, http.MethodOptions, http.MethodPost} {
		req, err := http.NewRequest(method, e.issuer()+"/oauth2/auth?"+codeParams(c.ID).Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", "https://evil.example.test")
		req.Header.Set("Access-Control-Request-Method", http.MethodGet)
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for name := range resp.Header {
			if strings.HasPrefix(name, "Access-Control-") {
				t.Errorf("%s /oauth2/auth from another origin answered %s: %q", method, name, resp.Header.Get(name))
			}
		}
	}
}

// TestTokensAndSecretsNotStoredInTheClear runs the flows that create
// secrets (a client secret from the admin API, a code, access and refresh
// tokens, a rotated refresh token, a client_credentials token) and then
// reads the SQLite database files byte by byte: none of those values is
// there, only what fosite keys them by (RFC 9700 §4.14; Core §16.19 for
// the client secret).
func TestTokensAndSecretsNotStoredInTheClear(t *testing.T) {
	// Always on SQLite, whose files the test can read byte by byte; the
	// store writes the same values to PostgreSQL.
	t.Setenv("LATCHKEY_TEST_PROVIDER_BACKEND", "")
	e := newEnv(t)
	var created adminClient
	adminDecode(t, adminCall(t, e, http.MethodPost, "/admin/clients", map[string]any{
		"client_id":     "stored-rp",
		"redirect_uris": []string{rpRedirect},
		"grant_types":   []string{"authorization_code", "refresh_token", "client_credentials"},
		"scope":         "openid profile offline_access",
	}), http.StatusCreated, &created)
	if created.ClientSecret == "" {
		t.Fatal("no generated client secret")
	}
	p := codeParams(created.ID)
	p.Set("scope", "openid profile offline_access")
	code := mustCode(t, newBrowser(t).authorize(e.issuer(), p))
	first := e.exchange(created.ID, created.ClientSecret, code)
	rotated := e.postToken(created.ID, created.ClientSecret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}})
	cc := e.postToken(created.ID, created.ClientSecret, url.Values{"grant_type": {"client_credentials"}})
	for _, tr := range []*tokenResponse{first, rotated, cc} {
		if tr.Status != http.StatusOK || tr.AccessToken == "" {
			t.Fatalf("token request: %+v", tr)
		}
	}
	secrets := map[string]string{
		"client secret":            created.ClientSecret,
		"code":                     code,
		"access token":             first.AccessToken,
		"refresh token":            first.RefreshToken,
		"rotated access token":     rotated.AccessToken,
		"rotated refresh token":    rotated.RefreshToken,
		"client_credentials token": cc.AccessToken,
	}
	// fosite's HMAC tokens are key.signature and stored by signature: the
	// key half must not be there either.
	halves := map[string]string{}
	for name, v := range secrets {
		if key, _, ok := strings.Cut(v, "."); ok && len(key) >= 16 {
			halves[name+" (key half)"] = key
		}
	}
	maps.Copy(secrets, halves)

	var data []byte
	files, err := filepath.Glob(e.dbURL + "*") // the database and its WAL
	if err != nil || len(files) == 0 {
		t.Fatalf("database files %v: %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, b...)
	}
	// The scan reads the rows: the client's ID is in them.
	if !bytes.Contains(data, []byte(created.ID)) {
		t.Fatalf("the client ID is not in %v: the scan does not see the data", files)
	}
	for name, v := range secrets {
		if bytes.Contains(data, []byte(v)) {
			t.Errorf("the %s is stored in the clear", name)
		}
	}
}

// constantTimeScan lists the server packages whose comparisons of secrets
// TestSecretComparisonsAreConstantTime checks.
var constantTimeScan = []string{".", "../login", "../store"}

// secretName matches what the code calls a value that must not be
// compared with ==: its last word is one of these.
var secretName = regexp.MustCompile(`(?i)(secret|password|passwd|csrf|verifier|mac|hmac|hash|nonce|token)$`)

// constantTimeAllowed are the == comparisons of secret-named values that
// compare no secret, by file and expression.
var constantTimeAllowed = map[string]string{
	"login/password/policy.go: lowerPassword == name": "the password policy refuses a password equal to the user's own name; nothing is checked against a stored secret",
}

// TestSecretComparisonsAreConstantTime reads the server's Go source (the
// provider, the login app, the store; not tests) and fails on any == or !=
// whose operand is named as a secret (…Secret, …Token, …Hash, …CSRF,
// …Verifier, …Nonce, …MAC, …Password) unless the other side is a literal,
// nil or a declared constant. Those comparisons go through crypto/subtle or
// hmac.Equal, whose time does not depend on where the values differ (Core
// §16.12). A timing test could not prove this without timing thresholds;
// the scan keeps it from regressing.
func TestSecretComparisonsAreConstantTime(t *testing.T) {
	fset := token.NewFileSet()
	var files []*ast.File
	var names []string
	for _, root := range constantTimeScan {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "storetest" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			files = append(files, f)
			names = append(names, path)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(files) < 50 {
		t.Fatalf("scanned %d files: the scan does not see the source", len(files))
	}
	// Constants declared anywhere in the scanned code, and package names
	// (a selector on an import is an exported constant or variable of a
	// library, such as fosite.AccessToken).
	constants := map[string]bool{}
	for _, f := range files {
		for _, d := range f.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.CONST {
				for _, s := range g.Specs {
					for _, n := range s.(*ast.ValueSpec).Names {
						constants[n.Name] = true
					}
				}
			}
		}
	}
	lastName := func(x ast.Expr) string {
		for {
			switch v := x.(type) {
			case *ast.Ident:
				return v.Name
			case *ast.SelectorExpr:
				return v.Sel.Name
			case *ast.CallExpr:
				x = v.Fun
			case *ast.IndexExpr:
				x = v.X
			case *ast.StarExpr:
				x = v.X
			case *ast.ParenExpr:
				x = v.X
			default:
				return ""
			}
		}
	}
	fixed := func(f *ast.File, x ast.Expr) bool {
		switch v := x.(type) {
		case *ast.BasicLit:
			return true
		case *ast.Ident:
			return v.Name == "nil" || v.Name == "true" || v.Name == "false" || constants[v.Name]
		case *ast.SelectorExpr:
			if pkg, ok := v.X.(*ast.Ident); ok {
				for _, imp := range f.Imports {
					path := strings.Trim(imp.Path.Value, `"`)
					name := path[strings.LastIndex(path, "/")+1:]
					if imp.Name != nil {
						name = imp.Name.Name
					}
					if pkg.Name == name {
						return true
					}
				}
			}
		}
		return false
	}
	seen := 0
	for i, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			be, ok := n.(*ast.BinaryExpr)
			if !ok || (be.Op != token.EQL && be.Op != token.NEQ) || fixed(f, be.X) || fixed(f, be.Y) {
				return true
			}
			if !secretName.MatchString(lastName(be.X)) && !secretName.MatchString(lastName(be.Y)) {
				return true
			}
			seen++
			rel := filepath.ToSlash(filepath.Join("provider", names[i]))
			expr := lastName(be.X) + " " + be.Op.String() + " " + lastName(be.Y)
			if _, ok := constantTimeAllowed[rel+": "+expr]; ok {
				return true
			}
			t.Errorf("%s: %s compares a secret with %s; use crypto/subtle.ConstantTimeCompare or hmac.Equal",
				fset.Position(be.Pos()), expr, be.Op)
			return true
		})
	}
	if seen < len(constantTimeAllowed) {
		t.Errorf("the allowed comparisons %v were not all found: the list is stale", constantTimeAllowed)
	}
}

// TestAccessTokenAudienceRestricted: a client gets access tokens only for
// the audiences registered for it, and a JWT access token names the one
// granted (RFC 9700 §2.3, §4.10.2).
func TestAccessTokenAudienceRestricted(t *testing.T) {
	e := newEnv(t)
	svc := e.createClient(&store.Client{ID: "aud-service", GrantTypes: []string{"client_credentials"}, Scope: "read",
		Audience: []string{"https://api.example.test"}, AccessTokenFormat: "jwt"}, testSecret)
	for _, aud := range []string{"https://other.example.test", "https://api.example.test.evil.example", "https://api.example.test/more"} {
		tr := e.postToken(svc.ID, testSecret, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}, "audience": {aud}})
		if tr.Status != http.StatusBadRequest || tr.AccessToken != "" {
			t.Errorf("audience %s, not registered: %+v", aud, tr)
		}
	}
	tr := e.postToken(svc.ID, testSecret, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}, "audience": {"https://api.example.test"}})
	if tr.Status != http.StatusOK {
		t.Fatalf("registered audience: %+v", tr)
	}
	_, payload, _ := strings.Cut(tr.AccessToken, ".")
	payload, _, _ = strings.Cut(payload, ".")
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatalf("access token %q is not a JWT: %v", tr.AccessToken, err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	if aud, _ := claims["aud"].([]any); len(aud) != 1 || aud[0] != "https://api.example.test" {
		t.Errorf("aud %v, want the granted audience only", claims["aud"])
	}
}
