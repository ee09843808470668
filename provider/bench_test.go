package provider_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"

	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
)

// The benchmarks call the provider's public handler directly, so they
// measure the whole endpoint (routing, client authentication, fosite, the
// store, signing and the JSON answer) without the network. They run on
// SQLite, or on PostgreSQL with LATCHKEY_TEST_PROVIDER_BACKEND=postgres.
// Profile one with, for example:
//
//	go test -run '^$' -bench 'TokenEndpoint/client_credentials' -cpuprofile cpu.out ./provider/
//	go tool pprof -top provider.test cpu.out

// serveForm sends a form POST to h and returns the status and JSON answer.
func serveForm(b *testing.B, h http.Handler, path string, auth clientAuth, form url.Values) (int, map[string]any) {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(auth.id), url.QueryEscape(auth.secret))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		b.Fatalf("%s answered %d %q", path, rec.Code, rec.Body)
	}
	return rec.Code, out
}

// BenchmarkTokenEndpoint issues client_credentials tokens of each format
// from 8 goroutines per core: one client authentication (a cached client
// and a peppered HMAC of the secret), one INSERT, and for JWTs a signature.
func BenchmarkTokenEndpoint(b *testing.B) {
	e := newEnv(b)
	h := e.p.PublicHandler()
	for _, tc := range []struct{ name, format, alg string }{
		{"client_credentials_opaque", provider.AccessTokenOpaque, ""},
		{"client_credentials_jwt_ES256", provider.AccessTokenJWT, "ES256"},
		{"client_credentials_jwt_RS256", provider.AccessTokenJWT, "RS256"},
		{"client_credentials_jwt_EdDSA", provider.AccessTokenJWT, "EdDSA"},
	} {
		// A sub-benchmark's function runs more than once.
		c := e.createClient(&store.Client{ID: "bench-" + tc.name, GrantTypes: []string{"client_credentials"}, Scope: "api",
			AccessTokenFormat: tc.format, AccessTokenSigningAlg: tc.alg}, testSecret)
		b.Run(tc.name, func(b *testing.B) {
			auth := clientAuth{id: c.ID, secret: testSecret}
			form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}}
			b.SetParallelism(8)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if status, out := serveForm(b, h, "/oauth2/token", auth, form); status != http.StatusOK {
						b.Fatalf("token: %d %v", status, out)
					}
				}
			})
		})
	}
}

// BenchmarkIntrospection introspects one opaque and one JWT access token
// from 8 goroutines per core: client authentication and one indexed read.
func BenchmarkIntrospection(b *testing.B) {
	e := newEnv(b)
	h := e.p.PublicHandler()
	for _, format := range []string{provider.AccessTokenOpaque, provider.AccessTokenJWT} {
		c := e.createClient(&store.Client{ID: "bench-introspect-" + format, GrantTypes: []string{"client_credentials"}, Scope: "api",
			AccessTokenFormat: format}, testSecret)
		auth := clientAuth{id: c.ID, secret: testSecret}
		_, tok := serveForm(b, h, "/oauth2/token", auth, url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}})
		form := url.Values{"token": {tok["access_token"].(string)}}
		b.Run(format, func(b *testing.B) {
			b.SetParallelism(8)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if status, out := serveForm(b, h, "/oauth2/introspect", auth, form); status != http.StatusOK || out["active"] != true {
						b.Fatalf("introspect: %d %v", status, out)
					}
				}
			})
		})
	}
}

// BenchmarkRefresh rotates refresh tokens, each goroutine its own family
// (started with the password grant): the refresh grant's reads and writes
// in one transaction, and a new ID token signed with RS256.
func BenchmarkRefresh(b *testing.B) {
	e := newEnv(b)
	h := e.p.PublicHandler()
	c := e.createClient(&store.Client{ID: "bench-refresh", GrantTypes: []string{"password", "refresh_token"}, Scope: "openid offline_access"}, testSecret)
	auth := clientAuth{id: c.ID, secret: testSecret}
	const parallelism = 8
	families := make(chan string, parallelism*runtime.GOMAXPROCS(0))
	for range cap(families) {
		tr := e.postToken(c.ID, testSecret, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alice.password},
			"scope": {"openid offline_access"}})
		if tr.RefreshToken == "" {
			b.Fatalf("password grant: %+v", tr)
		}
		families <- tr.RefreshToken
	}
	b.SetParallelism(parallelism)
	b.ReportAllocs()
	statements := e.store.Statements()
	b.ResetTimer()
	defer func() {
		// Round trips besides BEGIN and COMMIT, which the store does not count.
		b.ReportMetric(float64(e.store.Statements()-statements)/float64(b.N), "statements/op")
	}()
	b.RunParallel(func(pb *testing.PB) {
		refresh := <-families
		for pb.Next() {
			status, out := serveForm(b, h, "/oauth2/token", auth, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}})
			if status != http.StatusOK {
				b.Fatalf("refresh: %d %v", status, out)
			}
			refresh = out["refresh_token"].(string)
		}
	})
}
