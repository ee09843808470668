package provider_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
)

// jwtHeader decodes the header of a compact JWS.
func jwtHeader(t *testing.T, raw string) map[string]any {
	t.Helper()
	part, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		t.Fatalf("JWT header of %q: %v", raw, err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("JWT header %q: %v", b, err)
	}
	return h
}

// getJSON fetches u and decodes its JSON object.
func getJSON(t *testing.T, u string) (httpAnswer, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := do(t, req)
	if a.Status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, a.Status, a.Body)
	}
	return a, a.JSON(t)
}

// jwksKeys fetches the JWKS as plain JSON objects, so that members the
// provider must not publish show up.
func jwksKeys(t *testing.T, e *env) []map[string]any {
	t.Helper()
	_, doc := getJSON(t, e.issuer()+"/.well-known/jwks.json")
	raw, _ := json.Marshal(doc["keys"])
	var keys []map[string]any
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatalf("keys: %v", err)
	}
	return keys
}

// stringList reads a JSON array of strings.
func stringList(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	sort.Strings(a)
	sort.Strings(b)
	return slices.Equal(a, b)
}

func TestDiscovery(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, doc := getJSON(t, e.issuer()+"/.well-known/openid-configuration")
	if ct := a.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := a.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age") {
		t.Errorf("Cache-Control = %q", cc)
	}

	iss := e.issuer()
	endpoints := map[string]string{
		"authorization_endpoint":                iss + "/oauth2/auth",
		"token_endpoint":                        iss + "/oauth2/token",
		"userinfo_endpoint":                     iss + "/userinfo",
		"jwks_uri":                              iss + "/.well-known/jwks.json",
		"end_session_endpoint":                  iss + "/oauth2/logout",
		"revocation_endpoint":                   iss + "/oauth2/revoke",
		"introspection_endpoint":                iss + "/oauth2/introspect",
		"device_authorization_endpoint":         iss + "/oauth2/device/auth",
		"pushed_authorization_request_endpoint": iss + "/oauth2/par",
	}
	if doc["issuer"] != iss {
		t.Errorf("issuer = %v, want %s", doc["issuer"], iss)
	}
	for name, want := range endpoints {
		if doc[name] != want {
			t.Errorf("%s = %v, want %s", name, doc[name], want)
		}
	}
	// Dynamic registration is closed by default, so it is not advertised.
	if _, ok := doc["registration_endpoint"]; ok {
		t.Errorf("registration_endpoint is advertised: %v", doc["registration_endpoint"])
	}

	lists := map[string][]string{
		"scopes_supported":                              {"openid", "profile", "email", "address", "phone", "offline_access"},
		"response_types_supported":                      {"code", "id_token", "id_token token", "code id_token", "code token", "code id_token token", "token"},
		"response_modes_supported":                      {"query", "fragment", "form_post"},
		"grant_types_supported":                         {"authorization_code", "implicit", "refresh_token", "client_credentials", "password", "urn:ietf:params:oauth:grant-type:device_code"},
		"subject_types_supported":                       {"public", "pairwise"},
		"acr_values_supported":                          {"urn:latchkey:acr:pwd", "urn:latchkey:acr:mfa"},
		"token_endpoint_auth_methods_supported":         {"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		"revocation_endpoint_auth_methods_supported":    {"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		"introspection_endpoint_auth_methods_supported": {"client_secret_basic", "client_secret_post", "private_key_jwt"},
		"code_challenge_methods_supported":              {"S256", "plain"},
		"prompt_values_supported":                       {"login", "none", "consent", "select_account"},
		"display_values_supported":                      {"page"},
		"claim_types_supported":                         {"normal"},
		"id_token_signing_alg_values_supported":         append(e.p.Keys().Algs(), "none"),
		"userinfo_signing_alg_values_supported":         e.p.Keys().Algs(),
	}
	for name, want := range lists {
		if got := stringList(doc[name]); !sameSet(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	assertionAlgs := []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
	for _, name := range []string{"token_endpoint_auth_signing_alg_values_supported",
		"revocation_endpoint_auth_signing_alg_values_supported", "introspection_endpoint_auth_signing_alg_values_supported"} {
		if got := stringList(doc[name]); !sameSet(got, assertionAlgs) {
			t.Errorf("%s = %v", name, got)
		}
	}
	if got := stringList(doc["request_object_signing_alg_values_supported"]); !sameSet(got, append(assertionAlgs, "none")) {
		t.Errorf("request_object_signing_alg_values_supported = %v", got)
	}
	claims := stringList(doc["claims_supported"])
	for _, c := range []string{"sub", "iss", "name", "email", "email_verified", "address", "phone_number", "sid"} {
		if !slices.Contains(claims, c) {
			t.Errorf("claims_supported lacks %s: %v", c, claims)
		}
	}
	for name, want := range map[string]bool{
		"claims_parameter_supported":                     true,
		"request_parameter_supported":                    true,
		"request_uri_parameter_supported":                true,
		"require_request_uri_registration":               true,
		"authorization_response_iss_parameter_supported": true,
		"require_pushed_authorization_requests":          false,
		"backchannel_logout_supported":                   true,
		"backchannel_logout_session_supported":           true,
		"frontchannel_logout_supported":                  true,
		"frontchannel_logout_session_supported":          true,
	} {
		if doc[name] != want {
			t.Errorf("%s = %v, want %v", name, doc[name], want)
		}
	}

	// Every advertised endpoint is routed on the public listener: a
	// method no endpoint takes gets 405 there, while a wrong URL would
	// get 404.
	for name, u := range endpoints {
		req, err := http.NewRequest(http.MethodDelete, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		if a := do(t, req); a.Status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: DELETE answered %d, want 405 (routed): %s", name, u, a.Status, a.Body)
		}
	}

	// The signing algorithms are those of the published keys.
	var jwksAlgs []string
	for _, k := range jwksKeys(t, e) {
		if alg, _ := k["alg"].(string); !slices.Contains(jwksAlgs, alg) {
			jwksAlgs = append(jwksAlgs, alg)
		}
	}
	// ID tokens may also be unsigned, listed last; RS256 stays first, the
	// default that relying parties without registration assume.
	idAlgs := stringList(doc["id_token_signing_alg_values_supported"])
	if n := len(idAlgs); n < 2 || idAlgs[0] != "RS256" || idAlgs[n-1] != "none" || !sameSet(idAlgs[:n-1], jwksAlgs) {
		t.Errorf("id_token_signing_alg_values_supported %v, want RS256 first, then the rest of the JWKS's %v, then none", idAlgs, jwksAlgs)
	}
	if got := stringList(doc["userinfo_signing_alg_values_supported"]); slices.Contains(got, "none") {
		t.Errorf("userinfo_signing_alg_values_supported %v offers unsigned userinfo", got)
	}

	// A relying party library accepts the document.
	op, err := oidc.NewProvider(ctx, iss)
	if err != nil {
		t.Fatalf("go-oidc discovery: %v", err)
	}
	if ep := op.Endpoint(); ep.AuthURL != endpoints["authorization_endpoint"] || ep.TokenURL != endpoints["token_endpoint"] {
		t.Errorf("go-oidc endpoints = %+v", ep)
	}
	if op.UserInfoEndpoint() != endpoints["userinfo_endpoint"] {
		t.Errorf("go-oidc userinfo endpoint = %q", op.UserInfoEndpoint())
	}
}

func TestDiscoveryUnderIssuerPath(t *testing.T) {
	// An issuer with a path serves everything under it.
	e := newEnv(t, func(c *provider.Config) { c.Issuer += "/tenant" })
	_, doc := getJSON(t, e.cfg.Issuer+"/.well-known/openid-configuration")
	if doc["issuer"] != e.cfg.Issuer {
		t.Errorf("issuer = %v, want %s", doc["issuer"], e.cfg.Issuer)
	}
	if doc["jwks_uri"] != e.cfg.Issuer+"/.well-known/jwks.json" {
		t.Errorf("jwks_uri = %v", doc["jwks_uri"])
	}
	if _, err := oidc.NewProvider(context.Background(), e.cfg.Issuer); err != nil {
		t.Errorf("go-oidc discovery: %v", err)
	}
}

func TestJWKS(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := userClient(e, "rp", "openid")

	check := func(t *testing.T) []map[string]any {
		t.Helper()
		keys := jwksKeys(t, e)
		if len(keys) == 0 {
			t.Fatal("the JWKS is empty")
		}
		seen := map[string]bool{}
		for _, k := range keys {
			kid, _ := k["kid"].(string)
			if kid == "" || seen[kid] {
				t.Errorf("kid %q is empty or not unique", kid)
			}
			seen[kid] = true
			if k["use"] != "sig" || k["alg"] == nil {
				t.Errorf("key %s: use %v alg %v", kid, k["use"], k["alg"])
			}
			// Private members of RSA, EC and OKP keys (RFC 7518 §6, RFC 8037).
			for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
				if _, ok := k[private]; ok {
					t.Errorf("key %s publishes private member %q", kid, private)
				}
			}
		}
		return keys
	}
	kids := func(keys []map[string]any) []string {
		var out []string
		for _, k := range keys {
			out = append(out, k["kid"].(string))
		}
		return out
	}

	before := check(t)
	// Current and next key for every configured algorithm.
	if want := 2 * len(e.p.Keys().Algs()); len(before) != want {
		t.Errorf("%d keys published, want %d (current and next per algorithm)", len(before), want)
	}
	tok := codeFlowTokens(t, e, c, testSecret, []string{"openid"})
	idt, _ := tok.Extra("id_token").(string)
	oldKid, _ := jwtHeader(t, idt)["kid"].(string)
	if !slices.Contains(kids(before), oldKid) {
		t.Fatalf("the ID token's kid %q is not in the JWKS %v", oldKid, kids(before))
	}

	if err := e.p.Keys().Rotate(ctx, "RS256"); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	after := check(t)
	if !slices.Contains(kids(after), oldKid) {
		t.Errorf("the retired key %q left the JWKS at rotation: %v", oldKid, kids(after))
	}
	if len(after) != len(before)+1 {
		t.Errorf("%d keys after one rotation, want %d (the retired key stays)", len(after), len(before)+1)
	}
	tok2 := codeFlowTokens(t, e, c, testSecret, []string{"openid"})
	idt2, _ := tok2.Extra("id_token").(string)
	newKid, _ := jwtHeader(t, idt2)["kid"].(string)
	if newKid == oldKid || !slices.Contains(kids(before), newKid) {
		t.Errorf("after rotation ID tokens use %q; want the key published as next before it (%v)", newKid, kids(before))
	}
	// Both tokens still verify as a relying party would.
	op, err := oidc.NewProvider(ctx, e.issuer())
	if err != nil {
		t.Fatal(err)
	}
	v := op.Verifier(&oidc.Config{ClientID: c.ID})
	for _, raw := range []string{idt, idt2} {
		if _, err := v.Verify(ctx, raw); err != nil {
			t.Errorf("verify ID token: %v", err)
		}
	}
}

// TestAdvertisedResponseTypes runs every advertised response type end to
// end and checks each authorization response carries what the type
// promises, and iss.
func TestAdvertisedResponseTypes(t *testing.T) {
	e := newEnv(t)
	_, doc := getJSON(t, e.issuer()+"/.well-known/openid-configuration")
	types := stringList(doc["response_types_supported"])
	c := e.createClient(&store.Client{
		ID:            "rp",
		GrantTypes:    []string{"authorization_code", "implicit"},
		ResponseTypes: types,
		Scope:         "openid profile",
	}, testSecret)
	for _, rt := range types {
		t.Run(rt, func(t *testing.T) {
			params := url.Values{
				"client_id": {c.ID}, "redirect_uri": {rpRedirect}, "response_type": {rt},
				"scope": {"openid profile"}, "state": {"state-1234567890"}, "nonce": {"nonce-1234567890"},
			}
			res := newBrowser(t).authorize(e.issuer(), params)
			if res.Params.Get("error") != "" || res.Mode == "" {
				t.Fatalf("%s: %d %v %.300s", rt, res.Status, res.Params, res.Body)
			}
			want := map[string]bool{}
			for _, part := range strings.Fields(rt) {
				want[map[string]string{"code": "code", "id_token": "id_token", "token": "access_token"}[part]] = true
			}
			for _, p := range []string{"code", "id_token", "access_token"} {
				if got := res.Params.Get(p) != ""; got != want[p] {
					t.Errorf("%s: %s present = %v, want %v (%v)", rt, p, got, want[p], res.Params)
				}
			}
			if res.Params.Get("iss") != e.issuer() || res.Params.Get("state") != "state-1234567890" {
				t.Errorf("%s: iss %q state %q", rt, res.Params.Get("iss"), res.Params.Get("state"))
			}
			if at := res.Params.Get("access_token"); at != "" {
				// The implicitly issued token works at userinfo.
				if a := userinfoGET(t, e, at); a.Status != http.StatusOK {
					t.Errorf("%s: userinfo with the access token: %d %s", rt, a.Status, a.Body)
				}
			}
		})
	}
}

// TestAuthorizationResponsesCarryIss checks what
// authorization_response_iss_parameter_supported promises (RFC 9207): iss
// in every authorization response, success or error, in every response
// mode.
func TestAuthorizationResponsesCarryIss(t *testing.T) {
	e := newEnv(t)
	c := e.createClient(&store.Client{
		ID:            "rp",
		GrantTypes:    []string{"authorization_code", "implicit"},
		ResponseTypes: []string{"code", "id_token", "code id_token"},
		Scope:         "openid profile",
	}, testSecret)
	base := func(kv ...string) url.Values {
		v := url.Values{
			"client_id": {c.ID}, "redirect_uri": {rpRedirect}, "response_type": {"code"},
			"scope": {"openid"}, "state": {"state-1234567890"}, "nonce": {"nonce-1234567890"},
		}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	tests := []struct {
		name    string
		params  url.Values
		reject  bool // the user denies consent
		mode    string
		wantErr string
	}{
		{"code", base(), false, "query", ""},
		{"id_token in fragment", base("response_type", "id_token"), false, "fragment", ""},
		{"code id_token as form_post", base("response_type", "code id_token", "response_mode", "form_post"), false, "form_post", ""},
		{"consent denied", base(), true, "query", "access_denied"},
		{"consent denied in fragment", base("response_type", "code id_token"), true, "fragment", "access_denied"},
		{"scope not allowed", base("scope", "openid email"), false, "query", "invalid_scope"},
		{"prompt=none without session", base("prompt", "none"), false, "query", "login_required"},
		{"response type not allowed as form_post", base("response_type", "token", "response_mode", "form_post"), false, "form_post", "unsupported_response_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.reject {
				e.login.consent = func(provider.ChallengeView) any { return provider.Rejection{Error: "access_denied"} }
				defer func() {
					e.login.consent = func(v provider.ChallengeView) any {
						return provider.ConsentAccept{GrantScope: v.RequestedScope, GrantAudience: v.RequestedAudience,
							Session: provider.ConsentSession{Claims: alice.claims}}
					}
				}()
			}
			res := newBrowser(t).authorize(e.issuer(), tt.params)
			if res.Mode != tt.mode {
				t.Fatalf("mode %q, want %q: %d %v %.300s", res.Mode, tt.mode, res.Status, res.Params, res.Body)
			}
			if got := res.Params.Get("error"); got != tt.wantErr {
				t.Errorf("error = %q, want %q (%v)", got, tt.wantErr, res.Params)
			}
			if got := res.Params.Get("iss"); got != e.issuer() {
				t.Errorf("iss = %q, want %q (%v)", got, e.issuer(), res.Params)
			}
		})
	}
}

// TestDiscoveryRegistrationEndpoint: with registration open (or by token),
// discovery advertises the endpoint that answers.
func TestDiscoveryRegistrationEndpoint(t *testing.T) {
	for _, policy := range []provider.RegistrationPolicy{provider.RegistrationOpen, provider.RegistrationToken} {
		t.Run(string(policy), func(t *testing.T) {
			e := newEnv(t, func(c *provider.Config) {
				c.RegistrationPolicy = policy
				if policy == provider.RegistrationToken {
					c.RegistrationTokens = []string{initialToken}
				}
			})
			_, doc := getJSON(t, e.issuer()+"/.well-known/openid-configuration")
			endpoint, _ := doc["registration_endpoint"].(string)
			if endpoint != e.issuer()+"/oauth2/register" {
				t.Fatalf("registration_endpoint = %v", doc["registration_endpoint"])
			}
			a := regCall(t, http.MethodPost, endpoint, "Bearer "+initialToken, map[string]any{"redirect_uris": []string{rpRedirect}})
			if a.Status != http.StatusCreated {
				t.Errorf("the advertised endpoint answered %d %s", a.Status, a.Body)
			}
		})
	}
}
