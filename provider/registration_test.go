package provider_test

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/latchkey-oidc/latchkey/provider"
)

// Dynamic client registration (RFC 7591) and management (RFC 7592), from
// the outside: HTTP in, HTTP out.

const (
	initialToken  = "initial-access-token-0123456789"
	initialToken2 = "second-initial-token-0123456789"
)

// registrationEnv is a provider with registration open (or as policy says)
// whose HTTP client trusts the sector identifier server sectors, if any.
func registrationEnv(t *testing.T, policy provider.RegistrationPolicy, sectors *httptest.Server) *env {
	t.Helper()
	return newEnv(t, func(c *provider.Config) {
		c.RegistrationPolicy = policy
		if policy == provider.RegistrationToken {
			c.RegistrationTokens = []string{initialToken, initialToken2}
		}
		if sectors != nil {
			c.HTTPClient = sectors.Client()
		}
	})
}

// regCall calls a registration endpoint with an optional Authorization
// header; body is sent as is when it is a string, else as JSON.
func regCall(t *testing.T, method, u, authorization string, body any) httpAnswer {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case nil:
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	return do(t, req)
}

// register registers metadata at e, which must accept it, and returns the
// answer as a JSON object.
func (e *env) register(t *testing.T, metadata any) map[string]any {
	t.Helper()
	a := regCall(t, http.MethodPost, e.issuer()+"/oauth2/register", "", metadata)
	if a.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", a.Status, a.Body)
	}
	return a.JSON(t)
}

// wantOAuthError checks an error answer's status and code.
func wantOAuthError(t *testing.T, a httpAnswer, status int, code string) {
	t.Helper()
	if a.Status != status {
		t.Fatalf("status %d, want %d: %s", a.Status, status, a.Body)
	}
	body := a.JSON(t)
	t.Logf("%d %v: %v", a.Status, body["error"], body["error_description"])
	if body["error"] != code || body["error_description"] == "" || body["error_description"] == nil {
		t.Fatalf("error %v (%v), want %s with a description", body["error"], body["error_description"], code)
	}
}

// registrationOnly are the members of a registration answer that the
// stored client does not have: its credentials and where to manage it.
var registrationOnly = []string{"client_secret", "client_secret_expires_at", "registration_access_token", "registration_client_uri"}

// TestRegistrationThenCodeFlow registers clients as RFC 7591 describes and
// runs an authorization code flow with each, authenticating with what the
// registration issued: the client secret, or the registered keys.
func TestRegistrationThenCodeFlow(t *testing.T) {
	e := registrationEnv(t, provider.RegistrationOpen, nil)
	key, jwks := rpKey(t)
	const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	cases := []struct {
		name     string
		metadata map[string]any
		// exchange redeems code with the registered client's credentials.
		exchange func(t *testing.T, clientID, secret, code string) *tokenResponse
		secret   bool
	}{
		{
			name: "client_secret_basic",
			metadata: map[string]any{
				"client_name":        "Registered web app",
				"redirect_uris":      []string{rpRedirect},
				"grant_types":        []string{"authorization_code", "refresh_token"},
				"require_auth_time":  true,
				"default_acr_values": []string{"urn:latchkey:acr:mfa"},
				"contacts":           []string{"ops@rp.example.test"},
				"unknown_field":      "ignored (RFC 7591 §2)",
			},
			exchange: func(t *testing.T, clientID, secret, code string) *tokenResponse {
				return e.exchange(clientID, secret, code)
			},
			secret: true,
		},
		{
			name: "private_key_jwt with jwks",
			metadata: map[string]any{
				"client_name":                     "Registered key client",
				"redirect_uris":                   []string{rpRedirect},
				"token_endpoint_auth_method":      "private_key_jwt",
				"token_endpoint_auth_signing_alg": "ES256",
				"jwks":                            jwks,
			},
			exchange: func(t *testing.T, clientID, _, code string) *tokenResponse {
				verifier, _ := pkce()
				a := postClientForm(t, e.issuer()+"/oauth2/token", clientAuth{}, url.Values{
					"grant_type":            {"authorization_code"},
					"code":                  {code},
					"redirect_uri":          {rpRedirect},
					"code_verifier":         {verifier},
					"client_assertion_type": {assertionType},
					"client_assertion":      {clientAssertion(t, key, clientID, e.issuer()+"/oauth2/token", "jti-"+clientID)},
				})
				tr := &tokenResponse{Status: a.Status}
				if err := json.Unmarshal(a.Body, tr); err != nil {
					t.Fatalf("token answer %d %s: %v", a.Status, a.Body, err)
				}
				return tr
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := regCall(t, http.MethodPost, e.issuer()+"/oauth2/register", "", tc.metadata)
			if a.Status != http.StatusCreated {
				t.Fatalf("register: %d %s", a.Status, a.Body)
			}
			if cc := a.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			got := a.JSON(t)
			id, _ := got["client_id"].(string)
			secret, _ := got["client_secret"].(string)
			token, _ := got["registration_access_token"].(string)
			if id == "" || token == "" || len(token) < 32 {
				t.Fatalf("no client_id or registration_access_token: %s", a.Body)
			}
			if want := e.issuer() + "/oauth2/register/" + id; got["registration_client_uri"] != want || a.Header.Get("Location") != want {
				t.Errorf("registration_client_uri %v, Location %q, want %s", got["registration_client_uri"], a.Header.Get("Location"), want)
			}
			if issued, _ := got["client_id_issued_at"].(float64); issued <= 0 {
				t.Errorf("client_id_issued_at = %v", got["client_id_issued_at"])
			}
			if tc.secret {
				if secret == "" || got["client_secret_expires_at"] != float64(0) {
					t.Errorf("a confidential client needs client_secret and client_secret_expires_at 0: %s", a.Body)
				}
			} else if _, ok := got["client_secret"]; ok {
				t.Errorf("a private_key_jwt client got a secret: %s", a.Body)
			}
			// Every registered value comes back; what was left out has the
			// OpenID Connect Registration §2 default.
			for k, v := range tc.metadata {
				if k == "unknown_field" {
					if _, ok := got[k]; ok {
						t.Errorf("an unknown field was stored: %s", a.Body)
					}
					continue
				}
				if !sameJSON(t, got[k], v) {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
			defaults := map[string]any{
				"response_types":               []any{"code"},
				"application_type":             "web",
				"id_token_signed_response_alg": "RS256",
				"scope":                        "openid profile email address phone offline_access",
			}
			if tc.secret {
				defaults["token_endpoint_auth_method"] = "client_secret_basic"
			} else {
				defaults["grant_types"] = []any{"authorization_code"}
			}
			for k, v := range defaults {
				if !reflect.DeepEqual(got[k], v) {
					t.Errorf("default %s = %v, want %v", k, got[k], v)
				}
			}

			// The admin API shows the same client, without the
			// registration's credentials.
			var admin map[string]any
			adminDecode(t, adminCall(t, e, http.MethodGet, "/admin/clients/"+id, nil), http.StatusOK, &admin)
			for _, k := range registrationOnly {
				delete(got, k)
			}
			if !reflect.DeepEqual(admin, got) {
				t.Errorf("the admin API shows\n%v\nregistration answered\n%v", admin, got)
			}

			// The registered client signs a user in.
			res := newBrowser(t).authorize(e.issuer(), codeParams(id))
			code := mustCode(t, res)
			tr := tc.exchange(t, id, secret, code)
			if tr.Status != http.StatusOK || tr.IDToken == "" {
				t.Fatalf("token: %d %s %s", tr.Status, tr.Error, tr.Description)
			}
			claims, alg := e.idTokenClaims(tr.IDToken)
			if alg != "RS256" || claims["aud"] != id && !slices.Contains(stringList(claims["aud"]), id) {
				t.Errorf("ID token alg %s aud %v", alg, claims["aud"])
			}
			if _, ok := claims["auth_time"]; !ok {
				t.Errorf("the ID token has no auth_time: %v", claims)
			}
			if want, _ := tc.metadata["default_acr_values"].([]string); want != nil {
				v := e.login.lastSeen("login")
				if v.OIDCContext == nil || !slices.Equal(v.OIDCContext.ACRValues, want) {
					t.Errorf("the login app was not given default_acr_values %v: %+v", want, v.OIDCContext)
				}
			}
		})
	}
}

// sameJSON compares a decoded JSON value with what was sent, through JSON.
func sameJSON(t *testing.T, got, sent any) bool {
	t.Helper()
	b, err := json.Marshal(sent)
	if err != nil {
		t.Fatal(err)
	}
	var want any
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(got, want)
}

// sectorServer serves sector identifier documents over https.
func sectorServer(t *testing.T) *httptest.Server {
	big := []string{rpRedirect}
	for len(strings.Join(big, `","`)) <= 64<<10 {
		big = append(big, "https://rp.example.test/cb/"+strings.Repeat("x", 100))
	}
	docs := map[string]any{
		"/good":    []string{"https://other.example.test/cb", rpRedirect},
		"/missing": []string{"https://other.example.test/cb"},
		"/big":     big,
		"/object":  map[string]any{"redirect_uris": []string{rpRedirect}},
	}
	return jsonDocuments(t, docs)
}

// jsonDocuments serves each of docs as JSON at its path over https.
func jsonDocuments(t *testing.T, docs map[string]any) *httptest.Server {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		doc, ok := docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestRegistrationRefusesInvalidMetadata sends metadata the provider must
// refuse, each with the RFC 7591 §3.2.2 error it must give, and metadata
// close to it that it must accept.
func TestRegistrationRefusesInvalidMetadata(t *testing.T) {
	sectors := sectorServer(t)
	gone := httptest.NewTLSServer(http.NotFoundHandler())
	goneURL := gone.URL + "/good"
	gone.Close()
	e := registrationEnv(t, provider.RegistrationOpen, sectors)
	_, jwks := rpKey(t)
	jwksJSON, err := json.Marshal(jwks)
	if err != nil {
		t.Fatal(err)
	}
	web := func(extra string) string {
		return `{"redirect_uris":["` + rpRedirect + `"]` + extra + `}`
	}
	const (
		badURI  = "invalid_redirect_uri"
		badMeta = "invalid_client_metadata"
	)
	tests := []struct{ name, body, code, about string }{
		{"malformed JSON", `{"redirect_uris":`, badMeta, "JSON"},
		{"not an object", `["x"]`, badMeta, "JSON object"},
		{"wrong type", `{"redirect_uris":"` + rpRedirect + `"}`, badMeta, "redirect_uris"},
		{"body over 64 KiB", web(`,"client_name":"` + strings.Repeat("x", 64<<10) + `"`), badMeta, "64 KiB"},
		{"no redirect_uris", `{}`, badURI, "redirect_uris"},
		{"fragment", `{"redirect_uris":["https://rp.example.test/cb#frag"]}`, badURI, "fragment"},
		{"http off loopback", `{"redirect_uris":["http://rp.example.test/cb"]}`, badURI, "plain http"},
		{"relative", `{"redirect_uris":["/cb"]}`, badURI, "absolute"},
		{"web app with a custom scheme", `{"redirect_uris":["com.example.app:/cb"]}`, badURI, "application_type native"},
		{"web implicit over http loopback", `{"redirect_uris":["http://127.0.0.1:9000/cb"],"grant_types":["implicit"],"response_types":["id_token"]}`, badURI, "implicit"},
		{"web implicit to localhost", `{"redirect_uris":["https://localhost/cb"],"grant_types":["implicit"],"response_types":["id_token"]}`, badURI, "implicit"},
		{"unknown application_type", web(`,"application_type":"desktop"`), badMeta, "application_type"},
		{"unknown id_token alg", web(`,"id_token_signed_response_alg":"HS256"`), badMeta, "id_token_signed_response_alg"},
		{"unsigned ID tokens from the authorization endpoint", web(`,"grant_types":["authorization_code","implicit"],"response_types":["code id_token"],"id_token_signed_response_alg":"none"`), badMeta, "authorization endpoint"},
		{"unsigned ID tokens with implicit", web(`,"grant_types":["implicit"],"response_types":["id_token token"],"id_token_signed_response_alg":"none"`), badMeta, "id_token_signed_response_alg none"},
		{"unsigned userinfo", web(`,"userinfo_signed_response_alg":"none"`), badMeta, "userinfo_signed_response_alg"},
		{"unknown userinfo alg", web(`,"userinfo_signed_response_alg":"RS1"`), badMeta, "userinfo_signed_response_alg"},
		{"unknown request object alg", web(`,"request_object_signing_alg":"HS256"`), badMeta, "request_object_signing_alg"},
		{"unknown client assertion alg", web(`,"token_endpoint_auth_method":"private_key_jwt","token_endpoint_auth_signing_alg":"HS256","jwks":` + string(jwksJSON)), badMeta, "token_endpoint_auth_signing_alg"},
		{"jwks and jwks_uri", web(`,"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://rp.example.test/jwks","jwks":` + string(jwksJSON)), badMeta, "jwks_uri"},
		{"encrypted ID tokens", web(`,"id_token_encrypted_response_alg":"RSA-OAEP"`), badMeta, "encryption"},
		{"response type without its grant", web(`,"response_types":["code id_token"]`), badMeta, "implicit grant"},
		{"code grant without code response", web(`,"grant_types":["authorization_code"],"response_types":["id_token"]`), badMeta, "implicit grant"},
		{"unknown auth method", web(`,"token_endpoint_auth_method":"client_secret_jwt"`), badMeta, "token_endpoint_auth_method"},
		{"unknown subject_type", web(`,"subject_type":"foo"`), badMeta, "subject_type must be public or pairwise"},
		{"pairwise over two redirect hosts", `{"redirect_uris":["` + rpRedirect + `","https://other.example.test/cb"],"subject_type":"pairwise"}`, badMeta, "register a sector_identifier_uri"},
		{"pairwise native app with its own scheme", `{"application_type":"native","redirect_uris":["com.example.app:/cb"],"subject_type":"pairwise"}`, badMeta, "register a sector_identifier_uri"},
		{"unsupported scope", web(`,"scope":"openid api:admin"`), badMeta, "api:admin"},
		{"chosen client_id", web(`,"client_id":"my-own-id"`), badMeta, "client_id"},
		{"chosen client_secret", web(`,"client_secret":"my-own-secret-0123456789"`), badMeta, "client_secret"},
		{"skip consent", web(`,"latchkey_skip_consent":true`), badMeta, "latchkey_skip_consent"},
		{"token lifespans", web(`,"latchkey_token_lifespans":{"authorization_code_grant_access_token_lifespan":3600000000000000}`), badMeta, "latchkey_token_lifespans"},
		{"audience", web(`,"audience":["https://api.example.test"]`), badMeta, "audience"},
		{"password grant", web(`,"grant_types":["authorization_code","password"]`), badMeta, "password"},
		{"http initiate_login_uri", web(`,"initiate_login_uri":"http://rp.example.test/login"`), badMeta, "initiate_login_uri"},
		{"http sector_identifier_uri", web(`,"sector_identifier_uri":"http://rp.example.test/sector"`), badMeta, "https"},
		{"sector_identifier_uri without the redirect URI", web(`,"sector_identifier_uri":"` + sectors.URL + `/missing"`), badMeta, "does not list"},
		{"sector_identifier_uri unreachable", web(`,"sector_identifier_uri":"` + goneURL + `"`), badMeta, "could not be fetched"},
		{"sector_identifier_uri not found", web(`,"sector_identifier_uri":"` + sectors.URL + `/nothing"`), badMeta, "could not be fetched"},
		{"sector_identifier_uri over 64 KiB", web(`,"sector_identifier_uri":"` + sectors.URL + `/big"`), badMeta, "64 KiB"},
		{"sector_identifier_uri not an array", web(`,"sector_identifier_uri":"` + sectors.URL + `/object"`), badMeta, "JSON array"},
		{"http logo_uri", web(`,"logo_uri":"http://rp.example.test/logo.png"`), badMeta, "logo_uri"},
		{"http backchannel_logout_uri", web(`,"backchannel_logout_uri":"http://rp.example.test/bc"`), badMeta, "backchannel_logout_uri"},
		{"post-logout fragment", web(`,"post_logout_redirect_uris":["https://rp.example.test/bye#x"]`), badMeta, "post_logout_redirect_uris"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := regCall(t, http.MethodPost, e.issuer()+"/oauth2/register", "", tc.body)
			wantOAuthError(t, a, http.StatusBadRequest, tc.code)
			// The refusal names the rule that refused.
			if d, _ := a.JSON(t)["error_description"].(string); !strings.Contains(d, tc.about) {
				t.Errorf("error_description %q does not mention %q", d, tc.about)
			}
		})
	}
	t.Run("not JSON", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, e.issuer()+"/oauth2/register", strings.NewReader("redirect_uris="+url.QueryEscape(rpRedirect)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		wantOAuthError(t, do(t, req), http.StatusUnsupportedMediaType, "invalid_request")
	})
	if cs, err := e.store.ListClients(context.Background(), "", 10); err != nil || len(cs) != 0 {
		t.Fatalf("refused registrations left %d clients (%v)", len(cs), err)
	}

	// Next to each refusal, what is allowed: it is the rule that refused,
	// not the field.
	ok := []struct {
		name     string
		metadata map[string]any
	}{
		{"native app with its own scheme and loopback", map[string]any{
			"application_type": "native", "token_endpoint_auth_method": "none",
			"redirect_uris": []string{"com.example.app:/cb", "http://127.0.0.1:8123/cb", "http://[::1]/cb"},
		}},
		{"web implicit over https", map[string]any{
			"redirect_uris": []string{rpRedirect}, "grant_types": []string{"implicit"}, "response_types": []string{"id_token", "id_token token"},
		}},
		{"unsigned ID tokens for the code flow only", map[string]any{
			"redirect_uris": []string{rpRedirect}, "id_token_signed_response_alg": "none", "response_types": []string{"code"},
		}},
		{"unsigned ID tokens with code token", map[string]any{
			"redirect_uris": []string{rpRedirect}, "id_token_signed_response_alg": "none",
			"grant_types": []string{"authorization_code", "implicit"}, "response_types": []string{"code", "code token"},
		}},
		{"listed in the sector identifier document", map[string]any{
			"redirect_uris": []string{rpRedirect}, "sector_identifier_uri": sectors.URL + "/good",
		}},
		{"pairwise on one redirect host", map[string]any{
			"redirect_uris": []string{rpRedirect, rpRedirect + "/other"}, "subject_type": "pairwise",
		}},
		{"pairwise over two redirect hosts listed in the sector identifier document", map[string]any{
			"redirect_uris": []string{rpRedirect, "https://other.example.test/cb"}, "subject_type": "pairwise",
			"sector_identifier_uri": sectors.URL + "/good",
		}},
		{"every OpenID Connect Registration field", map[string]any{
			"client_name":                          "Everything",
			"redirect_uris":                        []string{rpRedirect},
			"grant_types":                          []string{"authorization_code", "implicit", "refresh_token", "client_credentials"},
			"response_types":                       []string{"code", "code id_token"},
			"scope":                                "openid email",
			"token_endpoint_auth_method":           "client_secret_post",
			"application_type":                     "web",
			"contacts":                             []string{"ops@rp.example.test", "dev@rp.example.test"},
			"logo_uri":                             "https://rp.example.test/logo.png",
			"client_uri":                           "https://rp.example.test/",
			"policy_uri":                           "https://rp.example.test/privacy",
			"tos_uri":                              "https://rp.example.test/terms",
			"software_id":                          "4NRB1-0XZABZI9E6-5SM3R",
			"software_version":                     "2.1",
			"jwks_uri":                             "https://rp.example.test/jwks.json",
			"request_uris":                         []string{"https://rp.example.test/request.jwt"},
			"request_object_signing_alg":           "ES256",
			"id_token_signed_response_alg":         "ES256",
			"userinfo_signed_response_alg":         "RS256",
			"subject_type":                         "public",
			"sector_identifier_uri":                sectors.URL + "/good",
			"default_max_age":                      3600,
			"require_auth_time":                    true,
			"default_acr_values":                   []string{"urn:latchkey:acr:pwd"},
			"initiate_login_uri":                   "https://rp.example.test/start",
			"post_logout_redirect_uris":            []string{"https://rp.example.test/bye"},
			"frontchannel_logout_uri":              "https://rp.example.test/fc",
			"frontchannel_logout_session_required": true,
			"backchannel_logout_uri":               "https://rp.example.test/bc",
			"backchannel_logout_session_required":  true,
			"latchkey_require_mfa":                 true,
			"latchkey_access_token_format":         "jwt",
			"latchkey_access_token_signing_alg":    "ES256",
		}},
	}
	for _, tc := range ok {
		t.Run("accepts "+tc.name, func(t *testing.T) {
			got := e.register(t, tc.metadata)
			for k, v := range tc.metadata {
				if !sameJSON(t, got[k], v) {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

// TestRegistrationPolicy checks each operator policy: closed has no
// endpoint and advertises none, open lets anyone register, token needs one
// of the configured initial access tokens.
func TestRegistrationPolicy(t *testing.T) {
	body := map[string]any{"redirect_uris": []string{rpRedirect}}
	advertised := func(t *testing.T, e *env) (string, bool) {
		_, doc := getJSON(t, e.issuer()+"/.well-known/openid-configuration")
		v, ok := doc["registration_endpoint"]
		s, _ := v.(string)
		return s, ok
	}

	t.Run("closed by default", func(t *testing.T) {
		e := newEnv(t)
		if v, ok := advertised(t, e); ok {
			t.Errorf("registration_endpoint advertised: %q", v)
		}
		for _, m := range []string{http.MethodPost, http.MethodGet} {
			a := regCall(t, m, e.issuer()+"/oauth2/register", "Bearer "+initialToken, body)
			wantOAuthError(t, a, http.StatusNotFound, "not_found")
		}
		a := regCall(t, http.MethodGet, e.issuer()+"/oauth2/register/some-client", "Bearer x", nil)
		wantOAuthError(t, a, http.StatusNotFound, "not_found")
	})

	t.Run("open", func(t *testing.T) {
		e := registrationEnv(t, provider.RegistrationOpen, nil)
		if v, _ := advertised(t, e); v != e.issuer()+"/oauth2/register" {
			t.Errorf("registration_endpoint = %q", v)
		}
		if a := regCall(t, http.MethodPost, e.issuer()+"/oauth2/register", "", body); a.Status != http.StatusCreated {
			t.Errorf("open registration: %d %s", a.Status, a.Body)
		}
	})

	t.Run("token", func(t *testing.T) {
		e := registrationEnv(t, provider.RegistrationToken, nil)
		if v, _ := advertised(t, e); v != e.issuer()+"/oauth2/register" {
			t.Errorf("registration_endpoint = %q", v)
		}
		refused := []struct {
			name, authorization, challenge string
		}{
			{"no token", "", "Bearer"},
			{"wrong token", "Bearer wrong-token-0123456789abc", `error="invalid_token"`},
			{"a prefix of a token", "Bearer " + initialToken[:20], `error="invalid_token"`},
			{"the token with Basic", "Basic " + initialToken, "Bearer"},
		}
		for _, tc := range refused {
			t.Run(tc.name, func(t *testing.T) {
				a := regCall(t, http.MethodPost, e.issuer()+"/oauth2/register", tc.authorization, body)
				wantOAuthError(t, a, http.StatusUnauthorized, "invalid_token")
				if ch := a.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer") || !strings.Contains(ch, tc.challenge) {
					t.Errorf("WWW-Authenticate = %q, want a Bearer challenge with %q", ch, tc.challenge)
				}
			})
		}
		if cs, err := e.store.ListClients(context.Background(), "", 10); err != nil || len(cs) != 0 {
			t.Fatalf("refused registrations left %d clients (%v)", len(cs), err)
		}
		for _, tok := range []string{initialToken, initialToken2} {
			if a := regCall(t, http.MethodPost, e.issuer()+"/oauth2/register", "Bearer "+tok, body); a.Status != http.StatusCreated {
				t.Errorf("registration with a configured token: %d %s", a.Status, a.Body)
			}
		}
	})

	t.Run("settings", func(t *testing.T) {
		bad := []struct {
			policy string
			tokens []string
		}{
			{"maybe", nil},
			{"token", nil},
			{"token", []string{"short"}},
			{"open", []string{initialToken}},
			{"closed", []string{initialToken}},
		}
		for _, tc := range bad {
			if _, err := provider.ParseRegistrationPolicy(tc.policy, tc.tokens); err == nil {
				t.Errorf("policy %q with tokens %q accepted", tc.policy, tc.tokens)
			}
		}
		if p, err := provider.ParseRegistrationPolicy("", nil); err != nil || p != provider.RegistrationClosed {
			t.Errorf("the default policy is %q (%v), want closed", p, err)
		}
	})
}

// TestRegistrationManagement reads, updates and deletes a registered client
// at its registration_client_uri (RFC 7592) with its registration access
// token, and checks that nothing else opens it.
func TestRegistrationManagement(t *testing.T) {
	e := registrationEnv(t, provider.RegistrationOpen, nil)
	meta := map[string]any{
		"client_name":   "Managed",
		"redirect_uris": []string{rpRedirect},
		"grant_types":   []string{"authorization_code", "client_credentials"},
		"scope":         "openid email",
	}
	reg := e.register(t, meta)
	id, _ := reg["client_id"].(string)
	secret, _ := reg["client_secret"].(string)
	token, _ := reg["registration_access_token"].(string)
	uri, _ := reg["registration_client_uri"].(string)
	other := e.register(t, map[string]any{"redirect_uris": []string{rpRedirect}})
	otherToken, _ := other["registration_access_token"].(string)
	var admin adminClient
	adminDecode(t, adminCall(t, e, http.MethodPost, "/admin/clients", map[string]any{
		"client_id": "admin-made", "redirect_uris": []string{rpRedirect},
	}), http.StatusCreated, &admin)

	// Refusals look alike whatever their reason, so they do not tell
	// whether a client exists.
	var refusal []byte
	for _, tc := range []struct{ name, uri, authorization string }{
		{"wrong token", uri, "Bearer wrong-registration-token-0123456789"},
		{"another client's token", uri, "Bearer " + otherToken},
		{"the token of another client's URI", other["registration_client_uri"].(string), "Bearer " + token},
		{"unknown client", e.issuer() + "/oauth2/register/no-such-client", "Bearer " + token},
		{"admin-made client", e.issuer() + "/oauth2/register/admin-made", "Bearer " + token},
		{"admin token on an admin-made client", e.issuer() + "/oauth2/register/admin-made", "Bearer " + adminToken},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
				var body any
				if m == http.MethodPut {
					body = map[string]any{"client_id": id, "redirect_uris": []string{rpRedirect}, "client_name": "Hijacked"}
				}
				a := regCall(t, m, tc.uri, tc.authorization, body)
				wantOAuthError(t, a, http.StatusUnauthorized, "invalid_token")
				if ch := a.Header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="invalid_token"`) {
					t.Errorf("%s: WWW-Authenticate = %q", m, ch)
				}
				if refusal == nil {
					refusal = a.Body
				} else if !bytes.Equal(a.Body, refusal) {
					t.Errorf("%s: refusal %s differs from %s", m, a.Body, refusal)
				}
			}
		})
	}
	t.Run("refused: no token", func(t *testing.T) {
		wantOAuthError(t, regCall(t, http.MethodGet, uri, "", nil), http.StatusUnauthorized, "invalid_token")
	})
	if c, err := e.store.LoadClient(context.Background(), id); err != nil || c.Name != "Managed" {
		t.Fatalf("a refused call changed the client: %+v %v", c, err)
	}
	if _, err := e.store.LoadClient(context.Background(), "admin-made"); err != nil {
		t.Fatalf("a refused call deleted the admin-made client: %v", err)
	}

	auth := "Bearer " + token
	t.Run("read", func(t *testing.T) {
		a := regCall(t, http.MethodGet, uri, auth, nil)
		if a.Status != http.StatusOK {
			t.Fatalf("read: %d %s", a.Status, a.Body)
		}
		got := a.JSON(t)
		if got["registration_access_token"] != token || got["registration_client_uri"] != uri || got["client_secret_expires_at"] != float64(0) {
			t.Errorf("read answer lacks the RFC 7592 members: %s", a.Body)
		}
		if _, ok := got["client_secret"]; ok {
			t.Errorf("read shows a client secret, which is stored only as a hash: %s", a.Body)
		}
		want := maps.Clone(reg)
		for _, k := range registrationOnly {
			delete(want, k)
			delete(got, k)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("read\n%v\nregistered\n%v", got, want)
		}
	})

	update := func(t *testing.T, body map[string]any) httpAnswer {
		t.Helper()
		return regCall(t, http.MethodPut, uri, auth, body)
	}
	with := func(changes map[string]any) map[string]any {
		m := maps.Clone(meta)
		m["client_id"] = id
		for k, v := range changes {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	t.Run("update refusals", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			body map[string]any
			code string
		}{
			{"no client_id", with(map[string]any{"client_id": nil}), "invalid_client_metadata"},
			{"another client_id", with(map[string]any{"client_id": other["client_id"]}), "invalid_client_metadata"},
			{"a chosen secret", with(map[string]any{"client_secret": "a-secret-of-my-own-choosing-0123"}), "invalid_client_metadata"},
			{"a fragment", with(map[string]any{"redirect_uris": []string{rpRedirect + "#x"}}), "invalid_redirect_uri"},
			{"skip consent", with(map[string]any{"latchkey_skip_consent": true}), "invalid_client_metadata"},
			{"rotation", with(map[string]any{"latchkey_rotate_secret": true}), "invalid_client_metadata"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantOAuthError(t, update(t, tc.body), http.StatusBadRequest, tc.code)
			})
		}
		if c, err := e.store.LoadClient(context.Background(), id); err != nil || c.Name != "Managed" || c.SkipConsent {
			t.Fatalf("a refused update changed the client: %+v %v", c, err)
		}
	})

	t.Run("update", func(t *testing.T) {
		// The secret sent back unchanged, or left out, keeps it.
		for _, body := range []map[string]any{
			with(map[string]any{"client_name": "Renamed", "client_secret": secret, "client_id_issued_at": reg["client_id_issued_at"]}),
			with(map[string]any{"client_name": "Renamed again", "redirect_uris": []string{rpRedirect, "https://rp.example.test/other"}}),
		} {
			a := update(t, body)
			if a.Status != http.StatusOK {
				t.Fatalf("update: %d %s", a.Status, a.Body)
			}
			got := a.JSON(t)
			if got["client_name"] != body["client_name"] || got["registration_access_token"] != token || got["client_id_issued_at"] != reg["client_id_issued_at"] {
				t.Errorf("update answered %s", a.Body)
			}
			if _, ok := got["client_secret"]; ok {
				t.Errorf("an update that kept the secret shows one: %s", a.Body)
			}
			if _, err := adminCCToken(e, id, secret); err != nil {
				t.Errorf("the secret stopped working after an update: %v", err)
			}
		}
		var stored adminClient
		adminDecode(t, adminCall(t, e, http.MethodGet, "/admin/clients/"+id, nil), http.StatusOK, &stored)
		if stored.Name != "Renamed again" || len(stored.RedirectURIs) != 2 {
			t.Errorf("the admin API shows %+v", stored.Client)
		}

		// What the operator grants stays: an update can send it back but
		// neither drop nor change it.
		granted := with(map[string]any{"client_name": "Renamed again", "latchkey_skip_consent": true, "audience": []string{"https://api.example.test"}})
		delete(granted, "client_id")
		adminDecode(t, adminCall(t, e, http.MethodPut, "/admin/clients/"+id, granted), http.StatusOK, nil)
		for _, body := range []map[string]any{
			with(map[string]any{"client_name": "Without the grant"}),
			with(map[string]any{"client_name": "Echoing the grant", "latchkey_skip_consent": true, "audience": []string{"https://api.example.test"}}),
		} {
			a := update(t, body)
			if a.Status != http.StatusOK {
				t.Fatalf("update after the operator's grant: %d %s", a.Status, a.Body)
			}
			c, err := e.store.LoadClient(context.Background(), id)
			if err != nil || !c.SkipConsent || !slices.Equal(c.Audience, []string{"https://api.example.test"}) || c.Name != body["client_name"] {
				t.Errorf("after %v the client is %+v (%v)", body["client_name"], c, err)
			}
		}
		if a := update(t, with(map[string]any{"audience": []string{"https://elsewhere.example.test"}})); a.Status != http.StatusBadRequest {
			t.Errorf("an update widened the audience: %d %s", a.Status, a.Body)
		}
		// The admin API's update kept the registration access token.
		if a := regCall(t, http.MethodGet, uri, auth, nil); a.Status != http.StatusOK {
			t.Errorf("read after the operator's update: %d %s", a.Status, a.Body)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if a := regCall(t, http.MethodDelete, uri, auth, nil); a.Status != http.StatusNoContent {
			t.Fatalf("delete: %d %s", a.Status, a.Body)
		}
		wantOAuthError(t, regCall(t, http.MethodGet, uri, auth, nil), http.StatusUnauthorized, "invalid_token")
		wantOAuthError(t, regCall(t, http.MethodDelete, uri, auth, nil), http.StatusUnauthorized, "invalid_token")
		if a := adminCall(t, e, http.MethodGet, "/admin/clients/"+id, nil); a.Status != http.StatusNotFound {
			t.Errorf("the admin API still has the deleted client: %d", a.Status)
		}
		if _, err := adminCCToken(e, id, secret); err == nil {
			t.Error("a deleted client still gets tokens")
		}
		// The other clients are untouched.
		if a := regCall(t, http.MethodGet, other["registration_client_uri"].(string), "Bearer "+otherToken, nil); a.Status != http.StatusOK {
			t.Errorf("the other registered client: %d %s", a.Status, a.Body)
		}
	})
}
