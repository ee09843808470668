package conformance_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/latchkey-oidc/latchkey/conformance"
	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
)

// TestRunnerCatchesFaults breaks the provider on purpose, one way at a
// time, and checks the runner fails the module with the suite's condition:
// a check that cannot fail proves nothing.
func TestRunnerCatchesFaults(t *testing.T) {
	cases := []struct {
		name      string
		module    string
		condition string
		// rewrite changes a response's headers and status before they
		// are sent.
		rewrite func(r *http.Request, h http.Header, status int) int
	}{{
		name: "state dropped", module: "oidcc-server", condition: "CheckStateInAuthorizationResponse",
		rewrite: func(_ *http.Request, h http.Header, status int) int {
			rewriteLocation(h, func(q url.Values) { q.Del("state") })
			return status
		},
	}, {
		name: "wrong iss", module: "oidcc-server", condition: "ValidateIssIfPresentInAuthorizationResponse",
		rewrite: func(_ *http.Request, h http.Header, status int) int {
			rewriteLocation(h, func(q url.Values) {
				if q.Has("iss") {
					q.Set("iss", "https://attacker.example")
				}
			})
			return status
		},
	}, {
		name: "token response cacheable", module: "oidcc-server", condition: "CheckTokenEndpointCacheHeaders",
		rewrite: func(r *http.Request, h http.Header, status int) int {
			if r.URL.Path == "/oauth2/token" {
				h.Del("Cache-Control")
			}
			return status
		},
	}, {
		name: "logout ignores the hint's client", module: "oidcc-rp-initiated-logout-no-id-token-hint", condition: "ExpectNoRedirectToPostLogoutRedirectUri",
		rewrite: func(r *http.Request, h http.Header, status int) int {
			// Redirect wherever the request says, hint or not.
			if r.URL.Path == "/oauth2/logout" && r.URL.Query().Has("post_logout_redirect_uri") {
				h.Set("Location", r.URL.Query().Get("post_logout_redirect_uri"))
				return http.StatusSeeOther
			}
			return status
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wrap := func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					next.ServeHTTP(&headerRewriter{ResponseWriter: w, rewrite: func(h http.Header, status int) int { return tc.rewrite(r, h, status) }}, r)
				})
			}
			srv, cfg, _ := setUp(t, latchkeytest.Options{TLS: true, Wrap: wrap}, 2)
			r, err := conformance.New(context.Background(), cfg, srv.HTTPClient, nil)
			if err != nil {
				t.Fatal(err)
			}
			r.Modules = []string{tc.module}
			plan := "oidcc-basic-certification-test-plan"
			if strings.HasPrefix(tc.module, "oidcc-rp-initiated-logout") {
				plan = "oidcc-rp-initiated-logout-certification-test-plan"
			}
			results, err := r.Run(context.Background(), plan)
			if err != nil {
				t.Fatal(err)
			}
			if len(results) == 0 {
				t.Fatalf("%s did not run", tc.module)
			}
			res := results[0]
			if res.Status != conformance.Fail || !strings.Contains(strings.Join(res.Notes, "; "), tc.condition) {
				t.Errorf("%s = %s, want FAIL on %s", res.Module, res, tc.condition)
			}
		})
	}
}

// rewriteLocation edits the query or fragment of a redirect.
func rewriteLocation(h http.Header, edit func(url.Values)) {
	loc := h.Get("Location")
	u, err := url.Parse(loc)
	if loc == "" || err != nil || strings.Contains(u.Path, "/login") || strings.HasPrefix(u.Path, "/oauth2") {
		return
	}
	if u.Fragment != "" {
		q, _ := url.ParseQuery(u.Fragment)
		edit(q)
		u.Fragment = q.Encode()
	} else {
		q := u.Query()
		edit(q)
		u.RawQuery = q.Encode()
	}
	h.Set("Location", u.String())
}

// headerRewriter applies a rewrite to the headers just before they go out.
type headerRewriter struct {
	http.ResponseWriter
	rewrite func(http.Header, int) int
	done    bool
}

func (w *headerRewriter) WriteHeader(code int) {
	if !w.done {
		w.done = true
		code = w.rewrite(w.Header(), code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *headerRewriter) Write(b []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}
