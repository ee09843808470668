package rp_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
)

// TestGoClientCredentials gets a token with clientcredentials.Config for a
// client_secret_basic and a client_secret_post client, then, as a resource
// server with plain net/http, introspects it (RFC 7662), revokes it
// (RFC 7009) and introspects it again.
func TestGoClientCredentials(t *testing.T) {
	r := startGoRP(t, latchkeytest.Options{})
	serviceClient := func(authMethod string) goClient {
		return r.register(t, map[string]any{
			"client_name":                "Go service (" + authMethod + ")",
			"grant_types":                []string{"client_credentials"},
			"scope":                      "api.read api.write",
			"token_endpoint_auth_method": authMethod,
		})
	}
	cases := []struct {
		name   string
		client goClient
		// style is where the client sends its secret; wrong is the
		// other place, which Latchkey must refuse.
		style, wrong oauth2.AuthStyle
	}{
		{"client_secret_basic", serviceClient("client_secret_basic"), oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams},
		{"client_secret_post", serviceClient("client_secret_post"), oauth2.AuthStyleInParams, oauth2.AuthStyleInHeader},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			cfg := clientcredentials.Config{
				ClientID: tc.client.ID, ClientSecret: tc.client.Secret,
				TokenURL: r.op.Endpoint().TokenURL, Scopes: []string{"api.read"}, AuthStyle: tc.style,
			}
			tok, err := cfg.Token(ctx)
			if err != nil {
				t.Fatalf("client credentials: %v", err)
			}
			if tok.AccessToken == "" || !strings.EqualFold(tok.TokenType, "Bearer") {
				t.Fatalf("token %q of type %q, want a Bearer token", tok.AccessToken, tok.TokenType)
			}
			// RFC 6749 §4.4.3: no refresh token for client credentials.
			if tok.RefreshToken != "" {
				t.Error("the client credentials grant issued a refresh token")
			}

			// The secret is accepted only where the client registered it
			// (OIDC Registration: token_endpoint_auth_method).
			misplaced := cfg
			misplaced.AuthStyle = tc.wrong
			if _, err := misplaced.Token(ctx); oauthError(err) != "invalid_client" {
				t.Errorf("secret sent the other way: %v, want invalid_client", err)
			}

			got := r.introspect(t, tc.client, tc.style, tok.AccessToken)
			if got["active"] != true || got["client_id"] != tc.client.ID || got["scope"] != "api.read" {
				t.Errorf("introspection %v, want active, client_id %s, scope api.read (only what was asked for)", got, tc.client.ID)
			}

			status, body := r.postAsClient(t, r.endpoints.Revocation, tc.client, tc.style,
				url.Values{"token": {tok.AccessToken}, "token_type_hint": {"access_token"}})
			if status != http.StatusOK {
				t.Fatalf("revocation: status %d, want 200: %s", status, body)
			}
			if got := r.introspect(t, tc.client, tc.style, tok.AccessToken); got["active"] != false {
				t.Errorf("introspection after revocation %v, want active false", got)
			}
		})
	}
}

// introspect asks the introspection endpoint about token as client c and
// decodes the answer.
func (r *goRP) introspect(t *testing.T, c goClient, style oauth2.AuthStyle, token string) map[string]any {
	t.Helper()
	status, body := r.postAsClient(t, r.endpoints.Introspection, c, style, url.Values{"token": {token}})
	if status != http.StatusOK {
		t.Fatalf("introspection: status %d, want 200: %s", status, body)
	}
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("introspection answer %q: %v", body, err)
	}
	return out
}

// postAsClient posts form to endpoint authenticated as client c, the way a
// resource server without an OAuth library does it: with HTTP Basic, or
// with client_id and client_secret added to form, as style says.
func (r *goRP) postAsClient(t *testing.T, endpoint string, c goClient, style oauth2.AuthStyle, form url.Values) (int, []byte) {
	t.Helper()
	if endpoint == "" {
		t.Fatal("the endpoint is not in the discovery document")
	}
	if style == oauth2.AuthStyleInParams {
		form.Set("client_id", c.ID)
		form.Set("client_secret", c.Secret)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if style == oauth2.AuthStyleInHeader {
		// RFC 6749 §2.3.1: the credentials are form-encoded first.
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: %v", endpoint, err)
	}
	return resp.StatusCode, body
}
