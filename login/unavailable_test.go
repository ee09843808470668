package login_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/latchkey-oidc/latchkey/login"
)

// TestProviderUnavailable: when the provider's admin API answers 503 (its
// database is unavailable), the login app shows its 503 page with
// Retry-After, so the person tries again, rather than "something went
// wrong"; a 500 from the provider stays a 500.
func TestProviderUnavailable(t *testing.T) {
	var fail atomic.Int32 // the status the admin API answers with; 0 passes requests on
	e := newEnv(t, func(o *envOptions) {
		o.login = func(c *login.Config) {
			target, err := url.Parse(c.AdminURL)
			if err != nil {
				t.Fatal(err)
			}
			proxy := httputil.NewSingleHostReverseProxy(target)
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if status := int(fail.Load()); status != 0 {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(status)
					_, _ = w.Write([]byte(`{"error":"temporarily_unavailable","error_description":"down"}`))
					return
				}
				proxy.ServeHTTP(w, r)
			}))
			t.Cleanup(front.Close)
			c.AdminURL = front.URL
		}
	})
	e.createUser("frank", "a long enough passphrase")
	c := e.createClient(nil)
	for _, tc := range []struct {
		provider, want int
		says           string
	}{
		{http.StatusServiceUnavailable, http.StatusServiceUnavailable, "unavailable for a moment"},
		{http.StatusInternalServerError, http.StatusInternalServerError, "Something went wrong"},
	} {
		b := newBrowser(t)
		b.authorize(c)
		fail.Store(int32(tc.provider))
		b.signIn("frank", "a long enough passphrase")
		fail.Store(0)
		if b.code != tc.want || !b.has(tc.says) {
			t.Errorf("provider answering %d: %d\n%s", tc.provider, b.code, b.body)
		}
		if retry := b.header.Get("Retry-After"); (tc.want == http.StatusServiceUnavailable) != (retry != "") {
			t.Errorf("provider answering %d: Retry-After %q", tc.provider, retry)
		}
	}
}
