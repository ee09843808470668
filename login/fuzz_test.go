package login_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzCookies sends the login app's pages arbitrary Cookie headers:
// whatever a browser holds (forged, truncated or stale sealed cookies,
// duplicates, junk), the answer is a page, a redirect or a 4xx, never a
// server error.
func FuzzCookies(f *testing.F) {
	e := newEnv(f)
	e.createUser("alice", "correct horse battery staple")
	c := e.createClient(nil)
	// A real sign-in leaves the cookies a browser holds in the middle of
	// a flow: the pages it passed are fuzzed with them.
	b := newBrowser(f)
	b.authorize(c)
	signInPage := b.url
	b.signIn("alice", "correct horse battery staple")
	consentPage := b.url
	base, err := url.Parse(e.app.PublicURL() + "/")
	if err != nil {
		f.Fatal(err)
	}
	var all []string
	for _, ck := range b.client.Jar.Cookies(base) {
		all = append(all, ck.String())
		f.Add(ck.String())
		f.Add(ck.Name + "=" + strings.ToUpper(ck.Value))
		f.Add(ck.Name + "=" + ck.Value[:len(ck.Value)/2])
	}
	f.Add(strings.Join(all, "; "))
	for _, seed := range []string{
		"latchkey_account=nope; latchkey_signin=x.y; latchkey_ceremony=%zz; latchkey_csrf=",
		"latchkey_signin=" + strings.Repeat("A", 8000),
		"latchkey_csrf=a; latchkey_csrf=b; latchkey_account=\"quoted\"",
		"=;;=; latchkey_account; ;latchkey_ceremony=\x00\xff",
		"", "\r\nSet-Cookie: x=y",
	} {
		f.Add(seed)
	}
	h := e.public.Config.Handler
	pages := []string{
		signInPage,
		consentPage,
		e.app.PublicURL() + "/login/second-factor",
		e.app.PublicURL() + "/account",
		e.app.PublicURL() + "/device",
		e.app.PublicURL() + "/logout?logout_challenge=nope",
	}
	f.Fuzz(func(t *testing.T, cookies string) {
		for _, p := range pages {
			req := httptest.NewRequest(http.MethodGet, p, nil)
			req.Header.Set("Cookie", cookies)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("GET %s with cookies %q: %d %s", p, cookies, rec.Code, rec.Body)
			}
		}
	})
}
