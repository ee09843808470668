package provider_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v3"
)

// tokenResponse is a token endpoint answer, success or error.
type tokenResponse struct {
	Status       int    `json:"-"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope"`
	ExpiresIn    int64  `json:"expires_in"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
}

// postToken calls the token endpoint with form, authenticating with
// client_secret_basic when secret is set.
func (e *env) postToken(clientID, secret string, form url.Values) *tokenResponse {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.issuer()+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	} else if form.Get("client_id") == "" {
		form.Set("client_id", clientID)
		req.Body = io.NopCloser(strings.NewReader(form.Encode()))
		req.ContentLength = int64(len(form.Encode()))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	tr := &tokenResponse{Status: resp.StatusCode}
	if err := json.Unmarshal(body, tr); err != nil {
		e.t.Fatalf("token endpoint answered %d %q: %v", resp.StatusCode, body, err)
	}
	return tr
}

// idTokenClaims verifies an ID token against the provider's published keys
// and returns its claims and header alg.
func (e *env) idTokenClaims(raw string) (map[string]any, string) {
	e.t.Helper()
	jws, err := jose.ParseSigned(raw)
	if err != nil {
		e.t.Fatalf("parse ID token: %v", err)
	}
	hdr := jws.Signatures[0].Header
	set := e.p.Keys().PublicKeys()
	keys := set.Key(hdr.KeyID)
	if len(keys) != 1 {
		e.t.Fatalf("ID token kid %q is not published once (%d)", hdr.KeyID, len(keys))
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		e.t.Fatalf("verify ID token: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		e.t.Fatal(err)
	}
	if claims["iss"] != e.issuer() {
		e.t.Errorf("ID token iss = %v, want %s", claims["iss"], e.issuer())
	}
	return claims, hdr.Algorithm
}

// halfHash is at_hash / c_hash for an RS256/ES256 token (Core §3.1.3.6).
func halfHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// pkce returns a verifier and its S256 challenge.
func pkce() (verifier, challenge string) {
	verifier = "verifier-0123456789-0123456789-0123456789-0123456789"
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// codeParams are the parameters of a plain code + PKCE request for client.
func codeParams(clientID string) url.Values {
	_, challenge := pkce()
	return url.Values{
		"response_type":         {"code"},
		"client_id":             {clientID},
		"redirect_uri":          {rpRedirect},
		"scope":                 {"openid profile email offline_access"},
		"state":                 {"state-0123456789"},
		"nonce":                 {"nonce-0123456789"},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
	}
}

// exchange redeems a code of codeParams.
func (e *env) exchange(clientID, secret, code string) *tokenResponse {
	verifier, _ := pkce()
	return e.postToken(clientID, secret, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {rpRedirect},
		"code_verifier": {verifier},
	})
}

// mustCode asserts res carries a code and returns it.
func mustCode(t *testing.T, res *authResult) string {
	t.Helper()
	code := res.Params.Get("code")
	if code == "" {
		t.Fatalf("no code: status %d mode %q params %v body %.300s", res.Status, res.Mode, res.Params, res.Body)
	}
	return code
}
