package provider_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v3"

	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
)

// rpKey is a relying party's signing key with its public JWKS.
func rpKey(t testing.TB) (*ecdsa.PrivateKey, *jose.JSONWebKeySet) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k, &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "rp-key", Algorithm: "ES256", Use: "sig"}}}
}

// requestObject signs claims with key, or leaves them unsigned (alg none)
// when key is nil.
func requestObject(t *testing.T, key *ecdsa.PrivateKey, claims map[string]any) string {
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	if key == nil {
		hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
		return hdr + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "rp-key"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRequestObjects(t *testing.T) {
	e := newEnv(t)
	key, jwks := rpKey(t)
	signed := webClient(e, func(c *store.Client) { c.ID = "signed-ro"; c.JWKS = jwks; c.RequestObjectSigningAlg = "ES256" })
	unsigned := webClient(e, func(c *store.Client) { c.ID = "unsigned-ro"; c.JWKS = jwks; c.RequestObjectSigningAlg = "none" })
	// A client without keys may still send unsigned objects (Core §6.1);
	// fosite alone refuses them (notes §3.6).
	keyless := webClient(e, func(c *store.Client) { c.ID = "keyless-ro" })
	_, challenge := pkce()
	claims := func(clientID string) map[string]any {
		return map[string]any{
			"iss": clientID, "aud": e.issuer(), "client_id": clientID,
			"response_type": "code", "redirect_uri": rpRedirect, "scope": "openid profile email",
			"state": "ro-state-0123", "nonce": "ro-nonce-0123",
			"code_challenge": challenge, "code_challenge_method": "S256",
			// Not strings: fosite mangles these unless repaired.
			"max_age": 3600,
			"claims":  map[string]any{"id_token": map[string]any{"email": map[string]any{"essential": true}}},
		}
	}
	for _, tc := range []struct {
		client *store.Client
		key    *ecdsa.PrivateKey
	}{{signed, key}, {unsigned, nil}, {keyless, nil}} {
		t.Run(tc.client.ID, func(t *testing.T) {
			q := url.Values{
				"client_id":     {tc.client.ID},
				"response_type": {"code"},
				"scope":         {"openid"},
				"request":       {requestObject(t, tc.key, claims(tc.client.ID))},
			}
			b := newBrowser(t)
			res := b.authorize(e.issuer(), q)
			code := mustCode(t, res)
			if res.Params.Get("state") != "ro-state-0123" {
				t.Errorf("state from the request object: %v", res.Params)
			}
			v := e.login.lastSeen("consent")
			if v.OIDCContext == nil || v.OIDCContext.MaxAge == nil || *v.OIDCContext.MaxAge != 3600 {
				t.Errorf("max_age lost: %+v", v.OIDCContext)
			}
			if v.OIDCContext == nil || !strings.Contains(string(v.OIDCContext.Claims), `"essential":true`) {
				t.Errorf("claims lost: %+v", v.OIDCContext)
			}
			tr := e.exchange(tc.client.ID, testSecret, code)
			if tr.Status != http.StatusOK {
				t.Fatalf("exchange: %+v", tr)
			}
			idc, _ := e.idTokenClaims(tr.IDToken)
			if idc["email"] != "alice@example.test" || idc["nonce"] != "ro-nonce-0123" {
				t.Errorf("ID token claims %v", idc)
			}
		})
	}
	t.Run("wrong signature", func(t *testing.T) {
		other, _ := rpKey(t)
		q := url.Values{"client_id": {signed.ID}, "response_type": {"code"}, "scope": {"openid"},
			"redirect_uri": {rpRedirect}, "request": {requestObject(t, other, claims(signed.ID))}}
		res := newBrowser(t).authorize(e.issuer(), q)
		if res.Params.Get("code") != "" || (res.Params.Get("error") == "" && res.Status != http.StatusBadRequest) {
			t.Fatalf("forged request object accepted: %d %v", res.Status, res.Params)
		}
	})
	t.Run("unsigned object naming another client", func(t *testing.T) {
		q := url.Values{"client_id": {keyless.ID}, "response_type": {"code"}, "scope": {"openid"},
			"redirect_uri": {rpRedirect}, "request": {requestObject(t, nil, claims(unsigned.ID))}}
		res := newBrowser(t).authorize(e.issuer(), q)
		if res.Params.Get("code") != "" || res.Params.Get("error") != "invalid_request_object" {
			t.Fatalf("an object whose client_id differs from the request's was not refused as invalid_request_object: %d %v", res.Status, res.Params)
		}
	})
	t.Run("expired unsigned object", func(t *testing.T) {
		c := claims(keyless.ID)
		c["exp"] = time.Now().Add(-time.Minute).Unix()
		q := url.Values{"client_id": {keyless.ID}, "response_type": {"code"}, "scope": {"openid"},
			"redirect_uri": {rpRedirect}, "request": {requestObject(t, nil, c)}}
		if res := newBrowser(t).authorize(e.issuer(), q); res.Params.Get("error") != "invalid_request_object" {
			t.Fatalf("an expired object was not refused as invalid_request_object: %d %v", res.Status, res.Params)
		}
	})
	t.Run("alg none refused when ES256 is registered", func(t *testing.T) {
		q := url.Values{"client_id": {signed.ID}, "response_type": {"code"}, "scope": {"openid"},
			"redirect_uri": {rpRedirect}, "request": {requestObject(t, nil, claims(signed.ID))}}
		if res := newBrowser(t).authorize(e.issuer(), q); res.Params.Get("code") != "" {
			t.Fatal("unsigned request object accepted for a client that registered ES256")
		}
	})
}

// TestRequestURI fetches a request object by reference from a URI the
// client registered, and refuses one it did not.
func TestRequestURI(t *testing.T) {
	e := newEnv(t, loopbackRPs)
	key, jwks := rpKey(t)
	var object string
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/oauth-authz-req+jwt")
		_, _ = w.Write([]byte(object))
	}))
	defer rp.Close()
	c := webClient(e, func(c *store.Client) {
		c.ID = "by-reference"
		c.JWKS = jwks
		c.RequestObjectSigningAlg = "ES256"
		c.RequestURIs = []string{rp.URL + "/request.jwt"}
	})
	_, challenge := pkce()
	object = requestObject(t, key, map[string]any{
		"iss": c.ID, "aud": e.issuer(), "client_id": c.ID, "response_type": "code", "redirect_uri": rpRedirect,
		"scope": "openid email", "state": "by-ref-state", "code_challenge": challenge, "code_challenge_method": "S256",
		"max_age": 600,
	})
	q := url.Values{"client_id": {c.ID}, "response_type": {"code"}, "scope": {"openid"}, "request_uri": {rp.URL + "/request.jwt"}}
	res := newBrowser(t).authorize(e.issuer(), q)
	mustCode(t, res)
	if res.Params.Get("state") != "by-ref-state" {
		t.Errorf("state = %q", res.Params.Get("state"))
	}
	if v := e.login.lastSeen("consent"); v.OIDCContext == nil || v.OIDCContext.MaxAge == nil || *v.OIDCContext.MaxAge != 600 {
		t.Errorf("max_age from the fetched object lost: %+v", v.OIDCContext)
	}
	q.Set("request_uri", rp.URL+"/other.jwt")
	q.Set("redirect_uri", rpRedirect)
	if res := newBrowser(t).authorize(e.issuer(), q); res.Params.Get("error") != "invalid_request_uri" {
		t.Errorf("unregistered request_uri: %d %v", res.Status, res.Params)
	}
}

func TestClaimsParameter(t *testing.T) {
	e := newEnv(t)
	c := webClient(e, nil)
	p := codeParams(c.ID)
	p.Set("scope", "openid")
	p.Set("claims", `{"id_token":{"name":{"essential":true},"email":{"value":"someone-else@example.test"}},"userinfo":{"phone_number":null,"given_name":{"essential":true}}}`)
	code := mustCode(t, newBrowser(t).authorize(e.issuer(), p))
	tr := e.exchange(c.ID, testSecret, code)
	idc, _ := e.idTokenClaims(tr.IDToken)
	if idc["name"] != "Alice Liddell" {
		t.Errorf("essential name missing from the ID token: %v", idc)
	}
	if _, ok := idc["email"]; ok {
		t.Errorf("email with a value the user does not have was sent: %v", idc)
	}
	ui := e.userinfo(tr.AccessToken)
	if ui["phone_number"] != "+1 555 0100" || ui["given_name"] != "Alice" || ui["email"] != nil {
		t.Errorf("userinfo = %v", ui)
	}
	p.Set("claims", `{"id_token": [1, 2]}`)
	if res := newBrowser(t).authorize(e.issuer(), p); res.Params.Get("error") != "invalid_request" {
		t.Errorf("malformed claims: %v", res.Params)
	}
}

// userinfo calls the userinfo endpoint with a bearer token.
func (e *env) userinfo(accessToken string) map[string]any {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.issuer()+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusOK {
		e.t.Errorf("userinfo: %d %v", resp.StatusCode, out)
	}
	return out
}

func TestPushedAuthorizationRequest(t *testing.T) {
	e := newEnv(t)
	c := webClient(e, nil)
	push := func(params url.Values) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, e.issuer()+"/oauth2/par", strings.NewReader(params.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(c.ID, testSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	status, out := push(codeParams(c.ID))
	uri, _ := out["request_uri"].(string)
	if status != http.StatusCreated || !strings.HasPrefix(uri, "urn:ietf:params:oauth:request_uri:") {
		t.Fatalf("PAR: %d %v", status, out)
	}
	b := newBrowser(t)
	res := b.authorize(e.issuer(), url.Values{"client_id": {c.ID}, "request_uri": {uri}})
	code := mustCode(t, res)
	if tr := e.exchange(c.ID, testSecret, code); tr.Status != http.StatusOK {
		t.Fatalf("exchange: %+v", tr)
	}
	// A request_uri is used once.
	if res := b.authorize(e.issuer(), url.Values{"client_id": {c.ID}, "request_uri": {uri}}); res.Params.Get("code") != "" {
		t.Fatal("a pushed request was used twice")
	}
	// The authorize endpoint's rules apply at push time.
	bad := codeParams(c.ID)
	bad.Set("code_challenge_method", "plain")
	if status, out := push(bad); status != http.StatusBadRequest || out["error"] != "invalid_request" {
		t.Errorf("plain PKCE pushed: %d %v", status, out)
	}
}

func TestMachineGrants(t *testing.T) {
	e := newEnv(t)
	svc := e.createClient(&store.Client{ID: "service", GrantTypes: []string{"client_credentials"}, Scope: "reports.read reports.write",
		Audience: []string{"https://api.example.test"}}, testSecret)
	tr := e.postToken(svc.ID, testSecret, url.Values{"grant_type": {"client_credentials"}, "scope": {"reports.read"}, "audience": {"https://api.example.test"}})
	if tr.Status != http.StatusOK || tr.AccessToken == "" || tr.Scope != "reports.read" || tr.RefreshToken != "" {
		t.Fatalf("client_credentials: %+v", tr)
	}
	if tr := e.postToken(svc.ID, "wrong-secret", url.Values{"grant_type": {"client_credentials"}}); tr.Status != http.StatusUnauthorized || tr.Error != "invalid_client" {
		t.Errorf("wrong secret: %+v", tr)
	}
	if tr := e.postToken(svc.ID, testSecret, url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}); tr.Error != "invalid_scope" {
		t.Errorf("unregistered scope: %+v", tr)
	}
	if tr := e.postToken(svc.ID, testSecret, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alice.password}}); tr.Error != "unauthorized_client" {
		t.Errorf("password grant for a client that does not list it: %+v", tr)
	}

	ropc := e.createClient(&store.Client{ID: "legacy", GrantTypes: []string{"password", "refresh_token"}, Scope: "openid offline_access"}, testSecret)
	tr = e.postToken(ropc.ID, testSecret, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alice.password}, "scope": {"offline_access"}})
	if tr.Status != http.StatusOK || tr.AccessToken == "" || tr.RefreshToken == "" {
		t.Fatalf("password grant: %+v", tr)
	}
	if tr := e.postToken(ropc.ID, testSecret, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"wrong"}}); tr.Error != "invalid_grant" {
		t.Errorf("wrong password: %+v", tr)
	}
	if tr := e.postToken(ropc.ID, testSecret, url.Values{"grant_type": {"password"}, "username": {"nobody"}, "password": {"x"}}); tr.Error != "invalid_grant" {
		t.Errorf("unknown user: %+v", tr)
	}
}

func TestRefreshRotationAndReuse(t *testing.T) {
	e := newEnv(t)
	c := webClient(e, nil)
	code := mustCode(t, newBrowser(t).authorize(e.issuer(), codeParams(c.ID)))
	first := e.exchange(c.ID, testSecret, code)
	if first.RefreshToken == "" {
		t.Fatalf("no refresh token: %+v", first)
	}
	refresh := func(rt string) *tokenResponse {
		return e.postToken(c.ID, testSecret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	}
	second := refresh(first.RefreshToken)
	if second.Status != http.StatusOK || second.RefreshToken == "" || second.RefreshToken == first.RefreshToken || second.IDToken == "" {
		t.Fatalf("refresh: %+v", second)
	}
	idc, _ := e.idTokenClaims(second.IDToken)
	if idc["sub"] != alice.subject || idc["sid"] == nil {
		t.Errorf("refreshed ID token claims %v", idc)
	}
	// Reusing the rotated token revokes the whole family.
	if tr := refresh(first.RefreshToken); tr.Error != "invalid_grant" {
		t.Fatalf("reuse: %+v", tr)
	}
	if tr := refresh(second.RefreshToken); tr.Error != "invalid_grant" {
		t.Errorf("the family survived a reuse: %+v", tr)
	}
	// A replayed code revokes what it issued.
	code = mustCode(t, newBrowser(t).authorize(e.issuer(), codeParams(c.ID)))
	tr := e.exchange(c.ID, testSecret, code)
	if again := e.exchange(c.ID, testSecret, code); again.Error != "invalid_grant" {
		t.Fatalf("code replay: %+v", again)
	}
	if r := refresh(tr.RefreshToken); r.Error != "invalid_grant" {
		t.Errorf("tokens of a replayed code survived: %+v", r)
	}
}

func TestIDTokenAlgorithmPerClient(t *testing.T) {
	e := newEnv(t)
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			c := webClient(e, func(c *store.Client) { c.ID = "alg-" + strings.ToLower(alg); c.IDTokenSignedResponseAlg = alg })
			code := mustCode(t, newBrowser(t).authorize(e.issuer(), codeParams(c.ID)))
			tr := e.exchange(c.ID, testSecret, code)
			if tr.Status != http.StatusOK {
				t.Fatalf("exchange: %+v", tr)
			}
			claims, got := e.idTokenClaims(tr.IDToken)
			if got != alg {
				t.Errorf("alg %s, want %s", got, alg)
			}
			want := halfHash(tr.AccessToken)
			if alg == "EdDSA" {
				sum := sha512.Sum512([]byte(tr.AccessToken))
				want = base64.RawURLEncoding.EncodeToString(sum[:32])
			}
			if claims["at_hash"] != want {
				t.Errorf("at_hash %v, want %s", claims["at_hash"], want)
			}
		})
	}
}

// TestChallengeAPIErrors checks the admin API refuses what a login app
// must not do.
func TestChallengeAPIErrors(t *testing.T) {
	e := newEnv(t)
	c := webClient(e, nil)
	var challenge string
	e.login.consent = func(v provider.ChallengeView) any {
		challenge = v.Challenge
		// Granting a scope the client did not ask for is refused...
		if status := e.login.call(http.MethodPut, "/admin/consent/accept?challenge="+url.QueryEscape(v.Challenge),
			provider.ConsentAccept{GrantScope: []string{"openid", "admin"}}, nil); status != http.StatusBadRequest {
			t.Errorf("over-granting consent: %d", status)
		}
		return provider.ConsentAccept{GrantScope: []string{"openid"}}
	}
	mustCode(t, newBrowser(t).authorize(e.issuer(), codeParams(c.ID)))
	// ...and a decided challenge cannot be decided again.
	if status := e.login.call(http.MethodPut, "/admin/consent/accept?challenge="+url.QueryEscape(challenge),
		provider.ConsentAccept{GrantScope: []string{"openid"}}, nil); status != http.StatusNotFound && status != http.StatusConflict {
		t.Errorf("second decision: %d", status)
	}
	if status := e.login.call(http.MethodGet, "/admin/login?challenge=nope", nil, nil); status != http.StatusNotFound {
		t.Errorf("unknown challenge: %d", status)
	}
	req, _ := http.NewRequest(http.MethodGet, e.admin.URL+"/admin/login?challenge=x", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("admin API without a token: %d", resp.StatusCode)
	}
	_ = time.Second
}
