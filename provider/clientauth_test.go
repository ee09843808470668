package provider_test

import (
	"crypto/ecdsa"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v3/jwt"

	"github.com/latchkey-oidc/latchkey/store"
)

// clientAssertion is a private_key_jwt assertion (RFC 7523 §3) for clientID
// with audience aud, issued now.
func clientAssertion(t *testing.T, key *ecdsa.PrivateKey, clientID, aud, jti string) string {
	t.Helper()
	return clientAssertionAt(t, key, clientID, aud, jti, time.Now())
}

// clientAssertionAt is the same assertion issued at issued; it expires a
// minute later.
func clientAssertionAt(t *testing.T, key *ecdsa.PrivateKey, clientID, aud, jti string, issued time.Time) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "rp-key"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: clientID, Subject: clientID, Audience: jwt.Audience{aud}, ID: jti,
		IssuedAt: jwt.NewNumericDate(issued), Expiry: jwt.NewNumericDate(issued.Add(time.Minute)),
	}).CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestClientAuthenticationMethods(t *testing.T) {
	e := newEnv(t)
	key, jwks := rpKey(t)
	post := e.createClient(&store.Client{ID: "post-client", GrantTypes: []string{"client_credentials"}, Scope: "api",
		TokenEndpointAuthMethod: "client_secret_post"}, testSecret)
	pkjwt := e.createClient(&store.Client{ID: "jwt-client", GrantTypes: []string{"client_credentials"}, Scope: "api",
		TokenEndpointAuthMethod: "private_key_jwt", TokenEndpointAuthSigningAlg: "ES256", JWKS: jwks}, "")
	public := e.createClient(&store.Client{ID: "public-client", GrantTypes: []string{"client_credentials"}, Scope: "api"}, "")

	call := func(form url.Values) (int, map[string]any) {
		resp, err := http.Post(e.issuer()+"/oauth2/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	cc := func(extra url.Values) url.Values {
		f := url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}}
		for k, v := range extra {
			f[k] = v
		}
		return f
	}
	const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	cases := []struct {
		name string
		form url.Values
		want int
	}{
		{"client_secret_post", cc(url.Values{"client_id": {post.ID}, "client_secret": {testSecret}}), http.StatusOK},
		{"client_secret_post wrong secret", cc(url.Values{"client_id": {post.ID}, "client_secret": {"nope"}}), http.StatusUnauthorized},
		{"private_key_jwt, token endpoint audience", cc(url.Values{"client_assertion_type": {assertionType},
			"client_assertion": {clientAssertion(t, key, pkjwt.ID, e.issuer()+"/oauth2/token", "jti-1")}}), http.StatusOK},
		{"private_key_jwt, issuer audience", cc(url.Values{"client_assertion_type": {assertionType},
			"client_assertion": {clientAssertion(t, key, pkjwt.ID, e.issuer(), "jti-2")}}), http.StatusOK},
		{"private_key_jwt replayed", cc(url.Values{"client_assertion_type": {assertionType},
			"client_assertion": {clientAssertion(t, key, pkjwt.ID, e.issuer(), "jti-2")}}), http.StatusUnauthorized},
		{"private_key_jwt foreign audience", cc(url.Values{"client_assertion_type": {assertionType},
			"client_assertion": {clientAssertion(t, key, pkjwt.ID, "https://elsewhere.example.test", "jti-3")}}), http.StatusUnauthorized},
		{"private_key_jwt expired", cc(url.Values{"client_assertion_type": {assertionType},
			"client_assertion": {clientAssertionAt(t, key, pkjwt.ID, e.issuer()+"/oauth2/token", "jti-4", time.Now().Add(-2*time.Minute))}}), http.StatusUnauthorized},
		{"public client cannot use client_credentials", cc(url.Values{"client_id": {public.ID}}), http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, out := call(tc.form)
			if status != tc.want {
				t.Fatalf("status %d, want %d: %v", status, tc.want, out)
			}
			if status != http.StatusOK && out["error"] == nil {
				t.Fatalf("error without an error code: %v", out)
			}
		})
	}
}
