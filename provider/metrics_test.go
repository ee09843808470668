package provider_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
)

// gathered is one scrape of a registry, by metric name.
type gathered map[string]*dto.MetricFamily

func gather(t *testing.T, reg *prometheus.Registry) gathered {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	g := gathered{}
	for _, mf := range mfs {
		g[mf.GetName()] = mf
	}
	return g
}

// value is the value of name's series whose labels include labels, summed
// over the series that match; -1 when the metric does not exist at all.
func (g gathered) value(name string, labels ...string) float64 {
	mf, ok := g[name]
	if !ok {
		return -1
	}
	sum := 0.0
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		}
	}
	return sum
}

// TestTokenMetrics drives every kind of token issuance and the endpoints
// around it over HTTP, and checks each counter moved by exactly what was
// done.
func TestTokenMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(c *provider.Config) { c.Registerer = reg })
	web := webClient(e, nil)
	machine := e.createClient(&store.Client{
		ID: "machine", GrantTypes: []string{"client_credentials"}, Scope: "api",
	}, testSecret)

	// Before anything happened, the counters exist at zero.
	g := gather(t, reg)
	for _, name := range []string{
		"latchkey_tokens_issued_total", "latchkey_token_requests_total", "latchkey_token_errors_total",
		"latchkey_authorize_requests_total", "latchkey_introspections_total", "latchkey_revocations_total",
		"latchkey_database_up", "latchkey_sso_sessions_active", "latchkey_signing_key_age_seconds",
		"latchkey_signing_key_rotation_period_seconds", "latchkey_backchannel_logout_deliveries_total",
	} {
		if g.value(name) != 0 && name != "latchkey_database_up" && name != "latchkey_signing_key_age_seconds" &&
			name != "latchkey_signing_key_rotation_period_seconds" {
			t.Errorf("%s = %v before any request, want 0", name, g.value(name))
		}
		if _, ok := g[name]; !ok {
			t.Errorf("%s is not exported before the first request", name)
		}
	}
	if _, ok := g["latchkey_client_tokens_issued_total"]; ok {
		t.Error("per-client metrics are exported without the operator asking")
	}

	// client_credentials: two tokens, one wrong secret.
	for range 2 {
		if tr := e.postToken(machine.ID, testSecret, url.Values{"grant_type": {"client_credentials"}}); tr.Status != http.StatusOK {
			t.Fatalf("client_credentials: %+v", tr)
		}
	}
	if tr := e.postToken(machine.ID, "wrong-secret-0123456789", url.Values{"grant_type": {"client_credentials"}}); tr.Status != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %+v", tr)
	}
	if tr := e.postToken(machine.ID, testSecret, url.Values{"grant_type": {"urn:example:made-up"}}); tr.Error != "unsupported_grant_type" {
		t.Fatalf("made-up grant: %+v", tr)
	}

	// Code flow with refresh: one code, its three tokens, a refresh.
	res := newBrowser(t).authorize(e.issuer(), codeParams(web.ID))
	tr := e.exchange(web.ID, testSecret, mustCode(t, res))
	if tr.Status != http.StatusOK || tr.RefreshToken == "" || tr.IDToken == "" {
		t.Fatalf("exchange: %+v", tr)
	}
	// The refresh replaces tr's tokens.
	tr = e.postToken(web.ID, testSecret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}})
	if tr.Status != http.StatusOK {
		t.Fatalf("refresh: %+v", tr)
	}
	// Implicit: an ID token and an access token from the authorization
	// endpoint.
	p := codeParams(web.ID)
	p.Set("response_type", "id_token token")
	if res := newBrowser(t).authorize(e.issuer(), p); res.Params.Get("access_token") == "" {
		t.Fatalf("implicit: %v", res.Params)
	}
	// An authorization request with no valid redirect URI: an error page.
	p = codeParams(web.ID)
	p.Set("redirect_uri", "https://evil.example.test/cb")
	if res := newBrowser(t).authorize(e.issuer(), p); res.Mode != "" {
		t.Fatalf("unregistered redirect URI was used: %v", res.Params)
	}
	// An error the client is told about: an unknown scope.
	p = codeParams(web.ID)
	p.Set("scope", "openid made-up-scope")
	if res := newBrowser(t).authorize(e.issuer(), p); res.Params.Get("error") == "" {
		t.Fatalf("unknown scope: %v", res.Params)
	}

	webAuth := clientAuth{id: web.ID, secret: testSecret, basic: true}
	assertActive(t, introspect(t, e, webAuth, tr.AccessToken))
	assertInactive(t, introspect(t, e, webAuth, "not-a-token"))
	if a := introspect(t, e, clientAuth{id: web.ID, secret: "wrong-secret-0123456789", basic: true}, tr.AccessToken); a.Status != http.StatusUnauthorized {
		t.Fatalf("introspection with a wrong secret: %d %s", a.Status, a.Body)
	}
	if a := revoke(t, e, webAuth, tr.AccessToken); a.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", a.Status, a.Body)
	}
	if a := revoke(t, e, webAuth, ""); a.Status != http.StatusBadRequest {
		t.Fatalf("revoke without a token: %d %s", a.Status, a.Body)
	}

	g = gather(t, reg)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"latchkey_tokens_issued_total", []string{"grant_type", "client_credentials", "token_type", "access_token"}, 2},
		{"latchkey_tokens_issued_total", []string{"grant_type", "client_credentials", "token_type", "refresh_token"}, 0},
		{"latchkey_tokens_issued_total", []string{"grant_type", "authorization_code", "token_type", "access_token"}, 1},
		{"latchkey_tokens_issued_total", []string{"grant_type", "authorization_code", "token_type", "refresh_token"}, 1},
		{"latchkey_tokens_issued_total", []string{"grant_type", "authorization_code", "token_type", "id_token"}, 1},
		{"latchkey_tokens_issued_total", []string{"grant_type", "refresh_token", "token_type", "access_token"}, 1},
		{"latchkey_tokens_issued_total", []string{"grant_type", "refresh_token", "token_type", "refresh_token"}, 1},
		{"latchkey_tokens_issued_total", []string{"grant_type", "implicit", "token_type", "access_token"}, 1},
		{"latchkey_tokens_issued_total", []string{"grant_type", "implicit", "token_type", "id_token"}, 1},
		{"latchkey_tokens_issued_total", nil, 10},
		{"latchkey_token_requests_total", []string{"grant_type", "client_credentials"}, 3},
		{"latchkey_token_requests_total", []string{"grant_type", "authorization_code"}, 1},
		{"latchkey_token_requests_total", []string{"grant_type", "refresh_token"}, 1},
		{"latchkey_token_requests_total", []string{"grant_type", "unsupported"}, 1},
		{"latchkey_token_errors_total", []string{"grant_type", "client_credentials", "error", "invalid_client"}, 1},
		{"latchkey_token_errors_total", []string{"grant_type", "unsupported", "error", "unsupported_grant_type"}, 1},
		{"latchkey_token_errors_total", nil, 2},
		{"latchkey_authorize_requests_total", []string{"response_type", "code", "outcome", "issued"}, 1},
		{"latchkey_authorize_requests_total", []string{"response_type", "id_token token", "outcome", "issued"}, 1},
		{"latchkey_authorize_requests_total", []string{"outcome", "refused"}, 1},
		{"latchkey_authorize_requests_total", []string{"outcome", "error"}, 1},
		{"latchkey_introspections_total", []string{"result", "active"}, 1},
		{"latchkey_introspections_total", []string{"result", "inactive"}, 1},
		{"latchkey_introspections_total", []string{"result", "error"}, 1},
		{"latchkey_revocations_total", []string{"result", "revoked"}, 1},
		{"latchkey_revocations_total", []string{"result", "error"}, 1},
		{"latchkey_database_up", nil, 1},
	} {
		if got := g.value(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Each sign-in went to the login app (login and consent challenges).
	if got := g.value("latchkey_authorize_requests_total", "outcome", "login"); got < 4 {
		t.Errorf("authorize outcome login = %v, want at least 4 (two sign-ins, each with login and consent)", got)
	}
	// The login double's sign-ins made SSO sessions.
	if got := g.value("latchkey_sso_sessions_active"); got < 1 {
		t.Errorf("latchkey_sso_sessions_active = %v after sign-ins", got)
	}
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		if got := g.value("latchkey_signing_key_age_seconds", "alg", alg); got <= 0 {
			t.Errorf("signing key age of %s = %v", alg, got)
		}
	}
	if got := g.value("latchkey_signing_key_rotation_period_seconds"); got != 30*24*3600 {
		t.Errorf("rotation period = %v, want 30 days", got)
	}
}

// TestPerClientMetricsOptIn: with the operator's opt-in, tokens are also
// counted by client.
func TestPerClientMetricsOptIn(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(c *provider.Config) { c.Registerer, c.MetricsPerClient = reg, true })
	machine := e.createClient(&store.Client{ID: "machine", GrantTypes: []string{"client_credentials"}}, testSecret)
	for range 3 {
		if tr := e.postToken(machine.ID, testSecret, url.Values{"grant_type": {"client_credentials"}}); tr.Status != http.StatusOK {
			t.Fatalf("client_credentials: %+v", tr)
		}
	}
	g := gather(t, reg)
	if got := g.value("latchkey_client_tokens_issued_total", "client_id", "machine", "grant_type", "client_credentials"); got != 3 {
		t.Errorf("per-client count = %v, want 3", got)
	}
}
