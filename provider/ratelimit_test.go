package provider_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
)

// TestTokenRateLimit: a client over its token rate is answered 429
// too_many_requests with Retry-After, before anything is issued; the limit
// is per client, counts only authenticated requests, and a client's own
// latchkey_token_rate_limit replaces the provider's default. Only the
// operator sets it.
//
// The rates are chosen so that no bucket refills during the test (one
// request per 1000 seconds, or 1000 requests of burst), so the outcome does
// not depend on how fast the machine is.
func TestTokenRateLimit(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(c *provider.Config) {
		c.TokenRateLimit = 0.001
		c.RegistrationPolicy = provider.RegistrationOpen
		c.Registerer = reg
	})
	const secret = "a-long-enough-client-secret-for-tests-0123"
	cc := func(id string, rate float64) *store.Client {
		return e.createClient(&store.Client{ID: id, GrantTypes: []string{"client_credentials"},
			TokenEndpointAuthMethod: "client_secret_basic", TokenRateLimit: rate}, secret)
	}
	limited, other, own := cc("limited", 0), cc("other", 0), cc("own-rate", 1000)
	grant := url.Values{"grant_type": {"client_credentials"}}

	if tr := e.postToken(limited.ID, secret, grant); tr.Status != http.StatusOK {
		t.Fatalf("the first request: %d %s", tr.Status, tr.Error)
	}
	// A wrong secret is refused as such, and uses nothing up.
	if tr := e.postToken(limited.ID, "not-the-secret", grant); tr.Status != http.StatusUnauthorized || tr.Error != "invalid_client" {
		t.Errorf("a wrong secret: %d %s, want 401 invalid_client", tr.Status, tr.Error)
	}
	status, header, body := postTokenRaw(t, e, limited.ID, secret, grant)
	if status != http.StatusTooManyRequests || body["error"] != "too_many_requests" {
		t.Fatalf("the second request within the rate: %d %v, want 429 too_many_requests", status, body)
	}
	if wait, err := strconv.Atoi(header.Get("Retry-After")); err != nil || wait < 900 || wait > 1000 {
		t.Errorf("Retry-After %q, want about 1000 seconds", header.Get("Retry-After"))
	}
	if got := gather(t, reg).value("latchkey_token_errors_total", "grant_type", "client_credentials", "error", "too_many_requests"); got != 1 {
		t.Errorf("latchkey_token_errors_total{error=too_many_requests} = %v, want 1", got)
	}

	// Another client has a bucket of its own.
	if tr := e.postToken(other.ID, secret, grant); tr.Status != http.StatusOK {
		t.Errorf("another client: %d %s", tr.Status, tr.Error)
	}
	// A client's own rate replaces the default.
	for i := range 20 {
		if tr := e.postToken(own.ID, secret, grant); tr.Status != http.StatusOK {
			t.Fatalf("request %d of a client allowed 1000/s: %d %s", i+1, tr.Status, tr.Error)
		}
	}

	t.Run("metadata", func(t *testing.T) {
		status, body, _ := e.adminCall(http.MethodPost, "/admin/clients", map[string]any{
			"grant_types": []string{"client_credentials"}, "latchkey_token_rate_limit": -1,
		})
		if status != http.StatusBadRequest || body["error"] != "invalid_client_metadata" {
			t.Errorf("a negative rate: %d %v", status, body)
		}
		status, body, _ = e.adminCall(http.MethodPost, "/admin/clients", map[string]any{
			"grant_types": []string{"client_credentials"}, "latchkey_token_rate_limit": 2.5,
		})
		if status != http.StatusCreated || body["latchkey_token_rate_limit"] != 2.5 {
			t.Errorf("the operator sets a rate: %d %v", status, body)
		}
		resp, err := http.Post(e.issuer()+"/oauth2/register", "application/json",
			strings.NewReader(`{"redirect_uris":["https://rp.example.test/cb"],"latchkey_token_rate_limit":1000000}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var reg map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&reg)
		if resp.StatusCode != http.StatusBadRequest || reg["error"] != "invalid_client_metadata" {
			t.Errorf("a client registering its own rate: %d %v, want 400 invalid_client_metadata", resp.StatusCode, reg)
		}
	})
}

// postTokenRaw posts to the token endpoint with client_secret_basic and
// returns the status, the headers and the decoded JSON answer.
func postTokenRaw(t *testing.T, e *env, id, secret string, form url.Values) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.issuer()+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("token endpoint answered %d, not JSON: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, resp.Header, body
}
