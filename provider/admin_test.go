package provider_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
)

// adminCall makes an admin API call with the admin token; body is sent as
// is when it is a string, else as JSON.
func adminCall(t *testing.T, e *env, method, path string, body any) httpAnswer {
	t.Helper()
	return adminCallAs(t, e, "Bearer "+adminToken, method, path, body)
}

func adminCallAs(t *testing.T, e *env, authorization, method, path string, body any) httpAnswer {
	t.Helper()
	var rd *bytes.Reader
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		js, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, e.admin.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	req.Header.Set("Content-Type", "application/json")
	return do(t, req)
}

// adminGet fetches u without credentials.
func adminGet(t *testing.T, u string) httpAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

// adminDecode decodes a JSON answer into v, failing t unless status matches.
func adminDecode(t *testing.T, a httpAnswer, status int, v any) {
	t.Helper()
	if a.Status != status {
		t.Fatalf("status %d, want %d: %s", a.Status, status, a.Body)
	}
	if v != nil {
		if err := json.Unmarshal(a.Body, v); err != nil {
			t.Fatalf("decode %s: %v", a.Body, err)
		}
	}
}

// adminClient is the admin API's answer about a client.
type adminClient struct {
	store.Client
	ClientSecret          string `json:"client_secret"`
	ClientSecretExpiresAt *int64 `json:"client_secret_expires_at"`
}

// adminCCToken asks for a client_credentials token and returns the error.
func adminCCToken(e *env, id, secret string) (*oauth2.Token, error) {
	conf := clientcredentials.Config{
		ClientID:     id,
		ClientSecret: secret,
		TokenURL:     e.issuer() + "/oauth2/token",
		AuthStyle:    oauth2.AuthStyleInHeader,
	}
	return conf.Token(context.Background())
}

func TestAdminRequiresToken(t *testing.T) {
	e := newEnv(t)
	for _, auth := range []string{"", "Bearer wrong-token-0123456789", "Basic " + adminToken, adminToken} {
		for _, route := range []struct{ method, path string }{
			{http.MethodGet, "/admin/clients"},
			{http.MethodPost, "/admin/clients"},
			{http.MethodGet, "/admin/keys"},
			{http.MethodPost, "/admin/keys/rotate"},
			{http.MethodDelete, "/admin/subjects/alice/tokens"},
			{http.MethodGet, "/admin/subjects/alice/sessions"},
			{http.MethodDelete, "/admin/subjects/alice/sessions/some-sid"},
		} {
			a := adminCallAs(t, e, auth, route.method, route.path, `{"redirect_uris":["https://rp.example.test/cb"]}`)
			if a.Status != http.StatusUnauthorized || a.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s with Authorization %q: %d %s", route.method, route.path, auth, a.Status, a.Body)
			}
		}
	}
	if n, err := e.store.ListClients(context.Background(), "", 10); err != nil || len(n) != 0 {
		t.Errorf("a refused call created clients: %v %v", n, err)
	}
}

func TestAdminClientCRUD(t *testing.T) {
	e := newEnv(t)

	// Create without client_id: one is generated, and so is the secret,
	// shown this once.
	var created adminClient
	a := adminCall(t, e, http.MethodPost, "/admin/clients", map[string]any{
		"client_name":           "Billing",
		"redirect_uris":         []string{rpRedirect},
		"grant_types":           []string{"authorization_code", "refresh_token", "client_credentials"},
		"scope":                 "openid offline_access",
		"some_unknown_metadata": "ignored",
	})
	adminDecode(t, a, http.StatusCreated, &created)
	if created.ID == "" || created.ClientSecret == "" || created.ClientSecretExpiresAt == nil || *created.ClientSecretExpiresAt != 0 {
		t.Fatalf("created client: %s", a.Body)
	}
	if created.ClientIDIssuedAt == 0 || created.TokenEndpointAuthMethod != "client_secret_basic" ||
		!slices.Equal(created.ResponseTypes, []string{"code"}) {
		t.Errorf("defaults not filled in: %s", a.Body)
	}
	if loc := a.Header.Get("Location"); loc != "/admin/clients/"+created.ID {
		t.Errorf("Location = %q", loc)
	}
	if strings.Contains(string(a.Body), "hmac") || strings.Contains(string(a.Body), "argon2") {
		t.Errorf("the answer shows a hash: %s", a.Body)
	}

	// Read: no secret any more.
	var got adminClient
	a = adminCall(t, e, http.MethodGet, "/admin/clients/"+created.ID, nil)
	adminDecode(t, a, http.StatusOK, &got)
	if got.ID != created.ID || got.Name != "Billing" || got.ClientSecret != "" || strings.Contains(string(a.Body), "client_secret\"") {
		t.Errorf("get: %s", a.Body)
	}

	// The client_id is taken now.
	a = adminCall(t, e, http.MethodPost, "/admin/clients", map[string]any{"client_id": created.ID, "redirect_uris": []string{rpRedirect}})
	if a.Status != http.StatusConflict {
		t.Errorf("create with a taken client_id: %d %s", a.Status, a.Body)
	}

	// List, one page at a time.
	a = adminCall(t, e, http.MethodPost, "/admin/clients", map[string]any{"client_id": "zz-second", "redirect_uris": []string{rpRedirect}})
	adminDecode(t, a, http.StatusCreated, nil)
	var page []store.Client
	a = adminCall(t, e, http.MethodGet, "/admin/clients?limit=1", nil)
	adminDecode(t, a, http.StatusOK, &page)
	if len(page) != 1 || page[0].ID != created.ID {
		t.Fatalf("first page: %s", a.Body)
	}
	link := a.Header.Get("Link")
	if !strings.Contains(link, `rel="next"`) || !strings.Contains(link, "after="+url.QueryEscape(created.ID)) {
		t.Errorf("Link = %q", link)
	}
	a = adminCall(t, e, http.MethodGet, "/admin/clients?limit=1&after="+url.QueryEscape(created.ID), nil)
	adminDecode(t, a, http.StatusOK, &page)
	if len(page) != 1 || page[0].ID != "zz-second" {
		t.Fatalf("second page: %s", a.Body)
	}
	for _, bad := range []string{"0", "-1", "x", "100000"} {
		if a := adminCall(t, e, http.MethodGet, "/admin/clients?limit="+bad, nil); a.Status != http.StatusBadRequest {
			t.Errorf("limit=%s: %d", bad, a.Status)
		}
	}

	// Update replaces the metadata and keeps the secret.
	a = adminCall(t, e, http.MethodPut, "/admin/clients/"+created.ID, map[string]any{
		"client_name":   "Billing v2",
		"redirect_uris": []string{rpRedirect, "https://rp.example.test/cb2"},
		"grant_types":   []string{"client_credentials"},
	})
	var updated adminClient
	adminDecode(t, a, http.StatusOK, &updated)
	if updated.Name != "Billing v2" || len(updated.RedirectURIs) != 2 || updated.ClientSecret != "" ||
		updated.ClientIDIssuedAt != created.ClientIDIssuedAt || len(updated.ResponseTypes) != 0 {
		t.Errorf("update: %s", a.Body)
	}
	if _, err := adminCCToken(e, created.ID, created.ClientSecret); err != nil {
		t.Errorf("the secret stopped working after an update: %v", err)
	}
	a = adminCall(t, e, http.MethodPut, "/admin/clients/"+created.ID, map[string]any{"client_id": "another", "grant_types": []string{"client_credentials"}})
	if a.Status != http.StatusBadRequest {
		t.Errorf("update changing client_id: %d %s", a.Status, a.Body)
	}
	if a := adminCall(t, e, http.MethodPut, "/admin/clients/nope", map[string]any{"grant_types": []string{"client_credentials"}}); a.Status != http.StatusNotFound {
		t.Errorf("update of a missing client: %d %s", a.Status, a.Body)
	}

	// Delete.
	if a := adminCall(t, e, http.MethodDelete, "/admin/clients/"+created.ID, nil); a.Status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", a.Status, a.Body)
	}
	if a := adminCall(t, e, http.MethodGet, "/admin/clients/"+created.ID, nil); a.Status != http.StatusNotFound {
		t.Errorf("get after delete: %d %s", a.Status, a.Body)
	}
	if a := adminCall(t, e, http.MethodDelete, "/admin/clients/"+created.ID, nil); a.Status != http.StatusNotFound {
		t.Errorf("delete twice: %d %s", a.Status, a.Body)
	}
	if _, err := adminCCToken(e, created.ID, created.ClientSecret); err == nil {
		t.Error("a deleted client still gets tokens")
	}
}

func TestAdminClientSecrets(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	var gen adminClient
	adminDecode(t, adminCall(t, e, http.MethodPost, "/admin/clients", map[string]any{
		"client_id": "generated", "grant_types": []string{"client_credentials"},
	}), http.StatusCreated, &gen)
	tok, err := adminCCToken(e, gen.ID, gen.ClientSecret)
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("client_credentials with the generated secret: %v", err)
	}
	if _, err := adminCCToken(e, gen.ID, gen.ClientSecret+"x"); err == nil {
		t.Error("a wrong secret got a token")
	}

	const chosen = "a-secret-the-operator-chose"
	var ch adminClient
	adminDecode(t, adminCall(t, e, http.MethodPost, "/admin/clients", map[string]any{
		"client_id": "chosen", "grant_types": []string{"client_credentials"},
		"token_endpoint_auth_method": "client_secret_post", "client_secret": chosen,
	}), http.StatusCreated, &ch)
	if ch.ClientSecret != chosen {
		t.Errorf("chosen secret answered as %q", ch.ClientSecret)
	}
	stored, err := e.store.LoadClient(ctx, "chosen")
	if err != nil || !strings.HasPrefix(stored.SecretHash, "$argon2id$") {
		t.Fatalf("chosen secret stored as %q (%v), want argon2id", stored.SecretHash, err)
	}
	conf := clientcredentials.Config{ClientID: "chosen", ClientSecret: chosen, TokenURL: e.issuer() + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}
	if _, err := conf.Token(ctx); err != nil {
		t.Errorf("client_credentials with the chosen secret: %v", err)
	}

	// Rotation keeping the old secret: both work until the next change.
	var rot adminClient
	adminDecode(t, adminCall(t, e, http.MethodPut, "/admin/clients/generated", map[string]any{
		"grant_types": []string{"client_credentials"}, "latchkey_rotate_secret": true, "latchkey_keep_old_secret": true,
	}), http.StatusOK, &rot)
	if rot.ClientSecret == "" || rot.ClientSecret == gen.ClientSecret {
		t.Fatalf("rotation answered secret %q", rot.ClientSecret)
	}
	for name, s := range map[string]string{"old": gen.ClientSecret, "new": rot.ClientSecret} {
		if _, err := adminCCToken(e, "generated", s); err != nil {
			t.Errorf("%s secret during the rotation: %v", name, err)
		}
	}
	// A new chosen secret without keeping the old: only it works.
	const next = "the-next-chosen-secret"
	adminDecode(t, adminCall(t, e, http.MethodPut, "/admin/clients/generated", map[string]any{
		"grant_types": []string{"client_credentials"}, "client_secret": next,
	}), http.StatusOK, nil)
	for _, s := range []string{gen.ClientSecret, rot.ClientSecret} {
		if _, err := adminCCToken(e, "generated", s); err == nil {
			t.Error("a replaced secret still works")
		}
	}
	if _, err := adminCCToken(e, "generated", next); err != nil {
		t.Errorf("the new chosen secret: %v", err)
	}

	// A public client has no secret; becoming confidential generates one.
	var pub adminClient
	adminDecode(t, adminCall(t, e, http.MethodPost, "/admin/clients", map[string]any{
		"client_id": "spa", "token_endpoint_auth_method": "none", "redirect_uris": []string{rpRedirect},
	}), http.StatusCreated, &pub)
	if pub.ClientSecret != "" || pub.ClientSecretExpiresAt != nil {
		t.Errorf("public client got a secret: %+v", pub)
	}
	var conf2 adminClient
	adminDecode(t, adminCall(t, e, http.MethodPut, "/admin/clients/spa", map[string]any{
		"grant_types": []string{"client_credentials"},
	}), http.StatusOK, &conf2)
	if _, err := adminCCToken(e, "spa", conf2.ClientSecret); conf2.ClientSecret == "" || err != nil {
		t.Errorf("client made confidential: secret %q, token error %v", conf2.ClientSecret, err)
	}
}

func TestAdminClientInvalidMetadata(t *testing.T) {
	e := newEnv(t)
	key := `{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}`
	privKey := `{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","d":"870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE"}`
	tests := []struct {
		name, body, code string
	}{
		{"not JSON", `{`, "invalid_client_metadata"},
		{"not an object", `["x"]`, "invalid_client_metadata"},
		{"two documents", `{} {}`, "invalid_client_metadata"},
		{"wrong type", `{"redirect_uris":"https://rp.example.test/cb"}`, "invalid_client_metadata"},
		{"too large", `{"client_name":"` + strings.Repeat("x", 1<<20) + `"}`, "invalid_client_metadata"},
		{"bad client_id", `{"client_id":"a b","redirect_uris":["https://rp.example.test/cb"]}`, "invalid_client_metadata"},
		{"no redirect_uris", `{}`, "invalid_redirect_uri"},
		{"relative redirect", `{"redirect_uris":["/cb"]}`, "invalid_redirect_uri"},
		{"fragment", `{"redirect_uris":["https://rp.example.test/cb#x"]}`, "invalid_redirect_uri"},
		{"plain http", `{"redirect_uris":["http://rp.example.test/cb"]}`, "invalid_redirect_uri"},
		{"javascript", `{"redirect_uris":["javascript:alert(1)"]}`, "invalid_redirect_uri"},
		{"credentials", `{"redirect_uris":["https://user:pw@rp.example.test/cb"]}`, "invalid_redirect_uri"},
		{"opaque custom", `{"redirect_uris":["localhost:8080/cb"]}`, "invalid_redirect_uri"},
		{"bad post-logout", `{"redirect_uris":["https://rp.example.test/cb"],"post_logout_redirect_uris":["http://rp.example.test/bye"]}`, "invalid_client_metadata"},
		{"unknown grant", `{"grant_types":["urn:example:magic"]}`, "invalid_client_metadata"},
		{"unknown response type", `{"redirect_uris":["https://rp.example.test/cb"],"response_types":["code magic"]}`, "invalid_client_metadata"},
		{"code without grant", `{"grant_types":["client_credentials"],"response_types":["code"],"redirect_uris":["https://rp.example.test/cb"]}`, "invalid_client_metadata"},
		{"id_token without implicit", `{"redirect_uris":["https://rp.example.test/cb"],"response_types":["code id_token"]}`, "invalid_client_metadata"},
		{"unknown auth method", `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_jwt"}`, "invalid_client_metadata"},
		{"public with secret", `{"redirect_uris":["https://rp.example.test/cb"],"token_endpoint_auth_method":"none","client_secret":"0123456789abcdefghij"}`, "invalid_client_metadata"},
		{"public client_credentials", `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"none"}`, "invalid_client_metadata"},
		{"short chosen secret", `{"grant_types":["client_credentials"],"client_secret":"short"}`, "invalid_client_metadata"},
		{"private_key_jwt without keys", `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt"}`, "invalid_client_metadata"},
		{"jwks and jwks_uri", `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://rp.example.test/jwks","jwks":{"keys":[` + key + `]}}`, "invalid_client_metadata"},
		{"private jwk", `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[` + privKey + `]}}`, "invalid_client_metadata"},
		{"http jwks_uri", `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"http://rp.example.test/jwks"}`, "invalid_client_metadata"},
		{"unknown id token alg", `{"redirect_uris":["https://rp.example.test/cb"],"id_token_signed_response_alg":"HS256"}`, "invalid_client_metadata"},
		{"none id token alg with code id_token", `{"redirect_uris":["https://rp.example.test/cb"],"grant_types":["authorization_code","implicit"],"response_types":["code","code id_token"],"id_token_signed_response_alg":"none"}`, "invalid_client_metadata"},
		{"none id token alg with id_token", `{"redirect_uris":["https://rp.example.test/cb"],"grant_types":["implicit"],"response_types":["id_token"],"id_token_signed_response_alg":"none"}`, "invalid_client_metadata"},
		{"none userinfo alg", `{"redirect_uris":["https://rp.example.test/cb"],"userinfo_signed_response_alg":"none"}`, "invalid_client_metadata"},
		{"unknown userinfo alg", `{"redirect_uris":["https://rp.example.test/cb"],"userinfo_signed_response_alg":"PS256"}`, "invalid_client_metadata"},
		{"bad scope", `{"redirect_uris":["https://rp.example.test/cb"],"scope":"openid \"quoted\""}`, "invalid_client_metadata"},
		{"unknown subject_type", `{"redirect_uris":["https://rp.example.test/cb"],"subject_type":"foo"}`, "invalid_client_metadata"},
		{"pairwise over two hosts", `{"redirect_uris":["https://rp.example.test/cb","https://other.example.test/cb"],"subject_type":"pairwise"}`, "invalid_client_metadata"},
		{"pairwise without redirect_uris", `{"grant_types":["client_credentials"],"subject_type":"pairwise"}`, "invalid_client_metadata"},
		{"rotate on create", `{"grant_types":["client_credentials"],"latchkey_rotate_secret":true}`, "invalid_client_metadata"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := adminCall(t, e, http.MethodPost, "/admin/clients", tc.body)
			if a.Status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %.300s", a.Status, a.Body)
			}
			var oe struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			adminDecode(t, a, http.StatusBadRequest, &oe)
			if oe.Error != tc.code || oe.Description == "" {
				t.Errorf("error %q (%q), want %q", oe.Error, oe.Description, tc.code)
			}
		})
	}
	if cs, err := e.store.ListClients(context.Background(), "", 10); err != nil || len(cs) != 0 {
		t.Errorf("refused metadata left clients behind: %d %v", len(cs), err)
	}

	// What is allowed: loopback http and native app schemes, the key
	// algorithms the provider has, a public private_key_jwt-free SPA.
	ok := []string{
		`{"redirect_uris":["http://127.0.0.1:5000/cb","http://localhost/cb","http://[::1]:8000/cb","com.example.app:/oauth2redirect"],"token_endpoint_auth_method":"none"}`,
		`{"redirect_uris":["https://rp.example.test/cb"],"id_token_signed_response_alg":"ES256","userinfo_signed_response_alg":"EdDSA"}`,
		`{"redirect_uris":["https://rp.example.test/cb"],"id_token_signed_response_alg":"none"}`,
		`{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[` + key + `]}}`,
		`{"grant_types":["implicit"],"response_types":["token id_token"],"redirect_uris":["https://rp.example.test/cb"]}`,
		`{"redirect_uris":["https://rp.example.test/cb","https://RP.example.test:8443/cb2"],"subject_type":"pairwise"}`,
	}
	for _, body := range ok {
		if a := adminCall(t, e, http.MethodPost, "/admin/clients", body); a.Status != http.StatusCreated {
			t.Errorf("%s: %d %s", body, a.Status, a.Body)
		}
	}
}

// TestClientRegistrarWithoutProvider is the path the CLI takes: the
// registrar on a store, with only the system secret, and the client works
// at a provider on that store.
func TestClientRegistrarWithoutProvider(t *testing.T) {
	e := newEnv(t)
	reg, err := provider.NewClientRegistrar(e.store, provider.Config{SystemSecret: e.cfg.SystemSecret})
	if err != nil {
		t.Fatal(err)
	}
	req, err := provider.ParseClientRequest(strings.NewReader(`{"client_id":"from-cli","grant_types":["client_credentials"]}`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := reg.Create(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adminCCToken(e, "from-cli", c.ClientSecret); err != nil {
		t.Errorf("client made by the registrar: %v", err)
	}
}

func adminCurrentKID(t *testing.T, keys []provider.SigningKeyView, alg string) string {
	t.Helper()
	for _, k := range keys {
		if k.Alg == alg && k.State == "current" {
			return k.KID
		}
	}
	t.Fatalf("no current %s key in %+v", alg, keys)
	return ""
}

func TestAdminKeys(t *testing.T) {
	e := newEnv(t)
	var before []provider.SigningKeyView
	a := adminCall(t, e, http.MethodGet, "/admin/keys", nil)
	adminDecode(t, a, http.StatusOK, &before)
	if len(before) != 6 {
		t.Errorf("%d keys, want a current and a next one for each of 3 algorithms: %s", len(before), a.Body)
	}
	var raw []map[string]any
	_ = json.Unmarshal(a.Body, &raw)
	for _, k := range raw {
		for name := range k {
			if !slices.Contains([]string{"kid", "alg", "state", "created_at", "activated_at", "retired_at", "expires_at"}, name) {
				t.Errorf("key listing has %q: %v", name, k)
			}
		}
	}
	oldRS := adminCurrentKID(t, before, "RS256")
	oldES := adminCurrentKID(t, before, "ES256")

	var after []provider.SigningKeyView
	adminDecode(t, adminCall(t, e, http.MethodPost, "/admin/keys/rotate", `{"alg":"RS256"}`), http.StatusOK, &after)
	if adminCurrentKID(t, after, "RS256") == oldRS {
		t.Error("rotating RS256 kept its current key")
	}
	if adminCurrentKID(t, after, "ES256") != oldES {
		t.Error("rotating RS256 rotated ES256")
	}
	retired := false
	for _, k := range after {
		retired = retired || k.KID == oldRS && k.State == "retired" && k.ExpiresAt != nil
	}
	if !retired {
		t.Errorf("the old RS256 key is not listed as retired: %+v", after)
	}
	// The JWKS still publishes the old key, so tokens it signed verify.
	var kids []string
	if a := adminGet(t, e.issuer()+"/.well-known/jwks.json"); a.Status == http.StatusOK {
		for _, k := range jwksKeys(t, e) {
			kids = append(kids, k["kid"].(string))
		}
	} else {
		for _, k := range e.p.Keys().PublicKeys().Keys {
			kids = append(kids, k.KeyID)
		}
	}
	if !slices.Contains(kids, oldRS) || !slices.Contains(kids, adminCurrentKID(t, after, "RS256")) {
		t.Errorf("JWKS kids %v lack the retired %s or the current key", kids, oldRS)
	}

	// An empty body rotates every algorithm.
	adminDecode(t, adminCall(t, e, http.MethodPost, "/admin/keys/rotate", nil), http.StatusOK, &after)
	if adminCurrentKID(t, after, "ES256") == oldES {
		t.Error("rotating everything kept the ES256 key")
	}
	for _, body := range []string{`{"alg":"HS256"}`, `{"algorithm":"RS256"}`, `nope`} {
		if a := adminCall(t, e, http.MethodPost, "/admin/keys/rotate", body); a.Status != http.StatusBadRequest {
			t.Errorf("rotate %s: %d %s", body, a.Status, a.Body)
		}
	}
}

// adminIntrospectActive reports whether token introspects as active for client.
func adminIntrospectActive(t *testing.T, e *env, clientID, secret, token string) bool {
	t.Helper()
	a := postClientForm(t, e.issuer()+"/oauth2/introspect", clientAuth{id: clientID, secret: secret, basic: true}, url.Values{"token": {token}})
	if a.Status != http.StatusOK {
		t.Fatalf("introspect: %d %s", a.Status, a.Body)
	}
	active, _ := a.JSON(t)["active"].(bool)
	return active
}

func TestAdminRevokeSubjectTokens(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var c adminClient
	adminDecode(t, adminCall(t, e, http.MethodPost, "/admin/clients", map[string]any{
		"client_id": "rp", "redirect_uris": []string{rpRedirect},
		"grant_types": []string{"authorization_code", "refresh_token"}, "scope": "openid offline_access",
	}), http.StatusCreated, &c)
	tok := codeFlowTokens(t, e, &c.Client, c.ClientSecret, []string{"openid", "offline_access"})
	if tok.RefreshToken == "" || !adminIntrospectActive(t, e, c.ID, c.ClientSecret, tok.AccessToken) {
		t.Fatalf("the code flow gave no usable tokens: %+v", tok)
	}

	// Another client's tokens only: nothing of rp's is touched.
	var res provider.TokensRevoked
	adminDecode(t, adminCall(t, e, http.MethodDelete, "/admin/subjects/"+alice.subject+"/tokens?client_id=other", nil), http.StatusOK, &res)
	if res.RevokedTokens != 0 || !adminIntrospectActive(t, e, c.ID, c.ClientSecret, tok.AccessToken) {
		t.Fatalf("revoking another client's tokens: %+v", res)
	}

	adminDecode(t, adminCall(t, e, http.MethodDelete, "/admin/subjects/"+alice.subject+"/tokens?client_id=rp", nil), http.StatusOK, &res)
	if res.Subject != alice.subject || res.ClientID != "rp" || res.RevokedTokens != 2 {
		t.Errorf("revoke answered %+v, want 2 tokens (access and refresh)", res)
	}
	if adminIntrospectActive(t, e, c.ID, c.ClientSecret, tok.AccessToken) {
		t.Error("the access token is still active")
	}
	conf := &oauth2.Config{ClientID: c.ID, ClientSecret: c.ClientSecret, Endpoint: oauth2.Endpoint{TokenURL: e.issuer() + "/oauth2/token"}}
	expired := *tok
	expired.Expiry = expired.Expiry.Add(-24 * 365 * 3600 * 1e9)
	if _, err := conf.TokenSource(ctx, &expired).Token(); err == nil {
		t.Error("the refresh token still works")
	}

	if a := adminCall(t, e, http.MethodDelete, "/admin/subjects/%20/tokens", nil); a.Status != http.StatusBadRequest {
		t.Errorf("blank subject: %d %s", a.Status, a.Body)
	}
}

func TestAdminRevokeSessionsAndConsents(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.login.consent = func(v provider.ChallengeView) any {
		return provider.ConsentAccept{GrantScope: v.RequestedScope, Remember: true,
			Session: provider.ConsentSession{Claims: alice.claims}}
	}
	c := e.createClient(&store.Client{
		ID: "rp", GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
		Scope: "openid offline_access",
	}, testSecret)
	tok := codeFlowTokens(t, e, c, testSecret, []string{"openid", "offline_access"})

	var sess provider.SessionsRevoked
	adminDecode(t, adminCall(t, e, http.MethodDelete, "/admin/subjects/"+alice.subject+"/sessions", nil), http.StatusOK, &sess)
	if sess.Subject != alice.subject || len(sess.SIDs) != 1 {
		t.Errorf("sessions revoked: %+v, want the one SSO session", sess)
	}
	adminDecode(t, adminCall(t, e, http.MethodDelete, "/admin/subjects/"+alice.subject+"/sessions", nil), http.StatusOK, &sess)
	if sess.SIDs == nil || len(sess.SIDs) != 0 {
		t.Errorf("second revocation: %+v, want an empty list", sess)
	}

	grants, err := e.store.ListConsentGrants(ctx, alice.subject)
	if err != nil || len(grants) != 1 {
		t.Fatalf("consent grants before revocation: %v %v", grants, err)
	}
	var res provider.TokensRevoked
	adminDecode(t, adminCall(t, e, http.MethodDelete, "/admin/subjects/"+alice.subject+"/consents?client_id=rp", nil), http.StatusOK, &res)
	if res.RevokedTokens != 2 {
		t.Errorf("consent revocation revoked %d tokens, want 2", res.RevokedTokens)
	}
	if grants, err := e.store.ListConsentGrants(ctx, alice.subject); err != nil || len(grants) != 0 {
		t.Errorf("consent grants after revocation: %v %v", grants, err)
	}
	if adminIntrospectActive(t, e, c.ID, testSecret, tok.AccessToken) {
		t.Error("the access token outlived the consent")
	}
	adminDecode(t, adminCall(t, e, http.MethodDelete, "/admin/subjects/"+alice.subject+"/consents", nil), http.StatusOK, &res)
	if res.RevokedTokens != 0 {
		t.Errorf("second revocation revoked %d", res.RevokedTokens)
	}
}
