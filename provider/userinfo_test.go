package provider_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/latchkey-oidc/latchkey/store"
)

// The helpers below obtain tokens the way relying parties do, and make the
// raw HTTP calls the userinfo, introspection and revocation tests check.

// codeFlowTokens runs the authorization code flow with PKCE for client c
// (secret "" for a public client), asking for scopes, and returns the
// tokens. extra adds authorization request parameters.
func codeFlowTokens(t *testing.T, e *env, c *store.Client, secret string, scopes []string, extra ...oauth2.AuthCodeOption) *oauth2.Token {
	t.Helper()
	ctx := context.Background()
	style := oauth2.AuthStyleInHeader
	if secret == "" || c.TokenEndpointAuthMethod == "client_secret_post" {
		style = oauth2.AuthStyleInParams
	}
	conf := &oauth2.Config{
		ClientID:     c.ID,
		ClientSecret: secret,
		Endpoint: oauth2.Endpoint{
			AuthURL:   e.issuer() + "/oauth2/auth",
			TokenURL:  e.issuer() + "/oauth2/token",
			AuthStyle: style,
		},
		RedirectURL: rpRedirect,
		Scopes:      scopes,
	}
	verifier := oauth2.GenerateVerifier()
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-1234567890")}, extra...)
	res := newBrowser(t).get(conf.AuthCodeURL("state-1234567890", opts...))
	code := res.Params.Get("code")
	if code == "" {
		t.Fatalf("authorization returned no code: %d %v %.300s", res.Status, res.Params, res.Body)
	}
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange code: %v", err)
	}
	return tok
}

// clientCredentialsToken gets a client_credentials token for c.
func clientCredentialsToken(t *testing.T, e *env, c *store.Client, secret string, scopes []string, params url.Values) *oauth2.Token {
	t.Helper()
	conf := clientcredentials.Config{
		ClientID:       c.ID,
		ClientSecret:   secret,
		TokenURL:       e.issuer() + "/oauth2/token",
		Scopes:         scopes,
		EndpointParams: params,
		AuthStyle:      oauth2.AuthStyleInHeader,
	}
	tok, err := conf.Token(context.Background())
	if err != nil {
		t.Fatalf("client_credentials token: %v", err)
	}
	return tok
}

// httpAnswer is a response read in full.
type httpAnswer struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body as a JSON object.
func (a httpAnswer) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.Body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", a.Body, err)
	}
	return m
}

// do sends req and reads the answer.
func do(t *testing.T, req *http.Request) httpAnswer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpAnswer{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// clientAuth is how a test client authenticates a form POST.
type clientAuth struct {
	id, secret string
	basic      bool // HTTP Basic; else client_id (and client_secret) in the body
}

// postClientForm posts form to u as the client auth names.
func postClientForm(t *testing.T, u string, auth clientAuth, form url.Values) httpAnswer {
	t.Helper()
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	if !auth.basic && auth.id != "" {
		f.Set("client_id", auth.id)
		if auth.secret != "" {
			f.Set("client_secret", auth.secret)
		}
	}
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(f.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth.basic {
		req.SetBasicAuth(url.QueryEscape(auth.id), url.QueryEscape(auth.secret))
	}
	return do(t, req)
}

// userinfoGET calls userinfo with the token in the Authorization header.
func userinfoGET(t *testing.T, e *env, token string) httpAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.issuer()+"/userinfo", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return do(t, req)
}

// userClient registers a confidential client for the code flow.
func userClient(e *env, id, scope string) *store.Client {
	return e.createClient(&store.Client{
		ID:            id,
		GrantTypes:    []string{"authorization_code", "refresh_token"},
		ResponseTypes: []string{"code"},
		Scope:         scope,
	}, testSecret)
}

func TestUserinfo(t *testing.T) {
	e := newEnv(t)
	c := userClient(e, "rp", "openid profile email")
	tok := codeFlowTokens(t, e, c, testSecret, []string{"openid", "profile", "email"})

	newReq := func(method, body string) *http.Request {
		req, err := http.NewRequest(method, e.issuer()+"/userinfo", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	tests := []struct {
		name string
		req  func() *http.Request
	}{
		{"GET with Authorization header", func() *http.Request {
			req := newReq(http.MethodGet, "")
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			return req
		}},
		{"POST with Authorization header", func() *http.Request {
			req := newReq(http.MethodPost, "")
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			return req
		}},
		{"POST with lower-case scheme", func() *http.Request {
			req := newReq(http.MethodPost, "")
			req.Header.Set("Authorization", "bearer "+tok.AccessToken)
			return req
		}},
		{"POST with form body", func() *http.Request {
			req := newReq(http.MethodPost, url.Values{"access_token": {tok.AccessToken}}.Encode())
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return req
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, tt.req())
			if a.Status != http.StatusOK {
				t.Fatalf("status %d: %s", a.Status, a.Body)
			}
			if ct := a.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q", ct)
			}
			if cc := a.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q", cc)
			}
			got := a.JSON(t)
			want := map[string]any{
				"sub": alice.subject, "name": "Alice Liddell", "given_name": "Alice", "family_name": "Liddell",
				"email": "alice@example.test", "email_verified": true,
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
			for _, k := range []string{"phone_number", "address", "iss", "aud"} {
				if _, ok := got[k]; ok {
					t.Errorf("userinfo has %s, which no granted scope covers: %v", k, got)
				}
			}
		})
	}
}

func TestUserinfoClaimsByScope(t *testing.T) {
	e := newEnv(t)
	c := userClient(e, "rp", "openid profile email phone")
	tok := codeFlowTokens(t, e, c, testSecret, []string{"openid", "email"})
	a := userinfoGET(t, e, tok.AccessToken)
	if a.Status != http.StatusOK {
		t.Fatalf("status %d: %s", a.Status, a.Body)
	}
	got := a.JSON(t)
	if got["sub"] != alice.subject || got["email"] != "alice@example.test" || got["email_verified"] != true {
		t.Errorf("userinfo for openid email = %v", got)
	}
	for _, k := range []string{"name", "given_name", "family_name", "phone_number", "address"} {
		if _, ok := got[k]; ok {
			t.Errorf("userinfo has %s without its scope: %v", k, got)
		}
	}
}

func TestUserinfoErrors(t *testing.T) {
	e := newEnv(t)
	c := userClient(e, "rp", "openid profile offline_access")
	tok := codeFlowTokens(t, e, c, testSecret, []string{"openid", "profile", "offline_access"})
	revoked := codeFlowTokens(t, e, c, testSecret, []string{"openid", "profile"})
	if a := postClientForm(t, e.issuer()+"/oauth2/revoke", clientAuth{id: c.ID, secret: testSecret, basic: true},
		url.Values{"token": {revoked.AccessToken}}); a.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", a.Status, a.Body)
	}
	machine := e.createClient(&store.Client{ID: "machine", GrantTypes: []string{"client_credentials"}, Scope: "api"}, testSecret)
	ccTok := clientCredentialsToken(t, e, machine, testSecret, []string{"api"}, nil)

	u := e.issuer() + "/userinfo"
	tests := []struct {
		name        string
		method, url string
		header      string // Authorization
		form        url.Values
		status      int
		challenge   string // the WWW-Authenticate header must start with it
		errCode     string // and name this error ("" for none)
	}{
		{"no token", http.MethodGet, u, "", nil, 401, "Bearer", ""},
		{"basic credentials only", http.MethodGet, u, "Basic cnA6c2VjcmV0", nil, 401, "Bearer", ""},
		{"unknown token", http.MethodGet, u, "Bearer ory_at_not-a-token.nope", nil, 401, "Bearer ", "invalid_token"},
		{"garbage token", http.MethodPost, u, "Bearer x", nil, 401, "Bearer ", "invalid_token"},
		{"empty bearer", http.MethodGet, u, "Bearer ", nil, 400, "Bearer ", "invalid_request"},
		{"revoked token", http.MethodGet, u, "Bearer " + revoked.AccessToken, nil, 401, "Bearer ", "invalid_token"},
		{"refresh token", http.MethodGet, u, "Bearer " + tok.RefreshToken, nil, 401, "Bearer ", "invalid_token"},
		{"token without openid", http.MethodGet, u, "Bearer " + ccTok.AccessToken, nil, 403, "Bearer ", "insufficient_scope"},
		{"token in query", http.MethodGet, u + "?access_token=" + url.QueryEscape(tok.AccessToken), "", nil, 400, "Bearer ", "invalid_request"},
		{"token in query of POST", http.MethodPost, u + "?access_token=" + url.QueryEscape(tok.AccessToken), "", nil, 400, "Bearer ", "invalid_request"},
		{"header and body", http.MethodPost, u, "Bearer " + tok.AccessToken, url.Values{"access_token": {tok.AccessToken}}, 400, "Bearer ", "invalid_request"},
		{"body token twice", http.MethodPost, u, "", url.Values{"access_token": {tok.AccessToken, tok.AccessToken}}, 400, "Bearer ", "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.form != nil {
				body = strings.NewReader(tt.form.Encode())
			}
			req, err := http.NewRequest(tt.method, tt.url, body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.form != nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			a := do(t, req)
			if a.Status != tt.status {
				t.Fatalf("status %d, want %d: %s", a.Status, tt.status, a.Body)
			}
			ch := a.Header.Get("WWW-Authenticate")
			if !strings.HasPrefix(ch, tt.challenge) {
				t.Errorf("WWW-Authenticate = %q, want it to start with %q", ch, tt.challenge)
			}
			if tt.errCode == "" {
				if strings.Contains(ch, "error") {
					t.Errorf("a request without credentials got an error code: %q", ch)
				}
				return
			}
			if !strings.Contains(ch, `error="`+tt.errCode+`"`) {
				t.Errorf("WWW-Authenticate = %q, want error %q", ch, tt.errCode)
			}
			if got := a.JSON(t)["error"]; got != tt.errCode {
				t.Errorf("body error = %v, want %s", got, tt.errCode)
			}
		})
	}
	// The token that was not revoked still works.
	if a := userinfoGET(t, e, tok.AccessToken); a.Status != http.StatusOK {
		t.Errorf("valid token: %d %s", a.Status, a.Body)
	}
}

func TestUserinfoSigned(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, alg := range e.p.Keys().Algs() {
		t.Run(alg, func(t *testing.T) {
			c := e.createClient(&store.Client{
				ID:                        "rp-" + strings.ToLower(alg),
				GrantTypes:                []string{"authorization_code"},
				ResponseTypes:             []string{"code"},
				Scope:                     "openid email",
				UserinfoSignedResponseAlg: alg,
			}, testSecret)
			tok := codeFlowTokens(t, e, c, testSecret, []string{"openid", "email"})
			a := userinfoGET(t, e, tok.AccessToken)
			if a.Status != http.StatusOK {
				t.Fatalf("status %d: %s", a.Status, a.Body)
			}
			if ct := a.Header.Get("Content-Type"); ct != "application/jwt" {
				t.Errorf("Content-Type = %q", ct)
			}
			raw := string(a.Body)
			if hdr := jwtHeader(t, raw); hdr["alg"] != alg {
				t.Errorf("signed with %v, the client registered %s", hdr["alg"], alg)
			}
			payload, err := oidc.NewRemoteKeySet(ctx, e.issuer()+"/.well-known/jwks.json").VerifySignature(ctx, raw)
			if err != nil {
				t.Fatalf("verify against the JWKS: %v", err)
			}
			var claims map[string]any
			if err := json.Unmarshal(payload, &claims); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{"iss": e.issuer(), "aud": c.ID, "sub": alice.subject, "email": "alice@example.test", "email_verified": true}
			for k, v := range want {
				if claims[k] != v {
					t.Errorf("%s = %v, want %v", k, claims[k], v)
				}
			}
			if _, ok := claims["name"]; ok {
				t.Errorf("signed userinfo has name without the profile scope: %v", claims)
			}

			// go-oidc, as a relying party, reads the signed form too.
			op, err := oidc.NewProvider(ctx, e.issuer())
			if err != nil {
				t.Fatal(err)
			}
			ui, err := op.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatalf("go-oidc userinfo: %v", err)
			}
			if ui.Subject != alice.subject || ui.Email != "alice@example.test" {
				t.Errorf("go-oidc userinfo = %+v", ui)
			}
		})
	}
}
