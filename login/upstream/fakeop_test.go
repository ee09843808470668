package upstream

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// clientHeader is set by the HTTP client tests give Upstream. The fake
// provider refuses back-channel requests without it, proving every request
// (discovery, token, JWKS, userinfo) goes through Config.HTTPClient.
const clientHeader = "X-Latchkey-Test-Client"

const (
	testClientID     = "latchkey"
	testClientSecret = "s3cret:/+&= %" // characters that basic auth must form-urlencode
	testSubject      = "upstream-user-1"
	testKeyID        = "key-1"
)

// fakeOP is a minimal OpenID provider: discovery, authorization (redirecting
// straight back with a code), token with PKCE, JWKS and userinfo.
type fakeOP struct {
	srv *httptest.Server
	key *rsa.PrivateKey // published in the JWKS

	mu           sync.Mutex
	codes        map[string]authRequest
	accessTokens map[string]bool
	// discoveryFailures is how many discovery requests to fail before
	// serving the document; discoveryHits counts the requests.
	discoveryFailures int
	discoveryHits     int
	// signWith, when set, signs ID tokens with a key not in the JWKS.
	signWith *rsa.PrivateKey
	// idClaims edits the claims of each ID token before signing.
	idClaims func(claims map[string]any)
	// noIDToken leaves the id_token out of the token response.
	noIDToken bool
	// userinfo is served by the userinfo endpoint.
	userinfo map[string]any
	// discoveryIssuer, when set, is the issuer the discovery document claims.
	discoveryIssuer string
}

type authRequest struct {
	challenge, nonce, redirectURI string
}

func newFakeOP(t *testing.T) *fakeOP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	op := &fakeOP{key: key, codes: map[string]authRequest{}, accessTokens: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", op.discovery)
	mux.HandleFunc("GET /authorize", op.authorize)
	mux.HandleFunc("POST /token", op.token)
	mux.HandleFunc("GET /keys", op.keys)
	mux.HandleFunc("GET /userinfo", op.userInfo)
	op.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/authorize" && r.Header.Get(clientHeader) == "" {
			http.Error(w, "request not made with Config.HTTPClient", http.StatusForbidden)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(op.srv.Close)
	return op
}

// set changes the provider's behaviour under its lock.
func (op *fakeOP) set(f func(op *fakeOP)) {
	op.mu.Lock()
	defer op.mu.Unlock()
	f(op)
}

func (op *fakeOP) issuer() string { return op.srv.URL }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (op *fakeOP) discovery(w http.ResponseWriter, r *http.Request) {
	op.mu.Lock()
	op.discoveryHits++
	fail := op.discoveryHits <= op.discoveryFailures
	issuer := op.discoveryIssuer
	op.mu.Unlock()
	if fail {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	if issuer == "" {
		issuer = op.issuer()
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                issuer,
		"authorization_endpoint":                op.issuer() + "/authorize",
		"token_endpoint":                        op.issuer() + "/token",
		"jwks_uri":                              op.issuer() + "/keys",
		"userinfo_endpoint":                     op.issuer() + "/userinfo",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"code_challenge_methods_supported":      []string{"S256"},
	})
}

func (op *fakeOP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case q.Get("client_id") != testClientID,
		q.Get("response_type") != "code",
		q.Get("code_challenge_method") != "S256",
		q.Get("code_challenge") == "",
		q.Get("redirect_uri") == "":
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	code := rand.Text()
	op.mu.Lock()
	op.codes[code] = authRequest{challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), redirectURI: q.Get("redirect_uri")}
	op.mu.Unlock()
	back, _ := url.Parse(q.Get("redirect_uri"))
	v := back.Query()
	v.Set("code", code)
	v.Set("state", q.Get("state"))
	back.RawQuery = v.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (op *fakeOP) token(w http.ResponseWriter, r *http.Request) {
	tokenError := func(status int, code string) {
		writeJSON(w, status, map[string]string{"error": code})
	}
	// client_secret_basic: the ID and secret are form-urlencoded before
	// being joined (RFC 6749 §2.3.1).
	user, pass, ok := r.BasicAuth()
	id, _ := url.QueryUnescape(user)
	secret, _ := url.QueryUnescape(pass)
	if !ok || id != testClientID || secret != testClientSecret {
		tokenError(http.StatusUnauthorized, "invalid_client")
		return
	}
	if r.PostFormValue("grant_type") != "authorization_code" {
		tokenError(http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	req, ok := op.codes[r.PostFormValue("code")]
	delete(op.codes, r.PostFormValue("code"))
	if !ok || req.redirectURI != r.PostFormValue("redirect_uri") {
		tokenError(http.StatusBadRequest, "invalid_grant")
		return
	}
	// PKCE S256, computed here rather than with oauth2 so the test does not
	// check the library against itself.
	sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != req.challenge {
		tokenError(http.StatusBadRequest, "invalid_grant")
		return
	}

	accessToken := rand.Text()
	op.accessTokens[accessToken] = true
	atHash := sha256.Sum256([]byte(accessToken))
	now := time.Now()
	claims := map[string]any{
		"iss":                op.issuer(),
		"sub":                testSubject,
		"aud":                testClientID,
		"iat":                now.Unix(),
		"exp":                now.Add(5 * time.Minute).Unix(),
		"nonce":              req.nonce,
		"at_hash":            base64.RawURLEncoding.EncodeToString(atHash[:16]),
		"email":              "ann@acme.test",
		"email_verified":     true,
		"name":               "Ann Example",
		"preferred_username": "ann",
	}
	if op.idClaims != nil {
		op.idClaims(claims)
	}
	resp := map[string]any{"access_token": accessToken, "token_type": "Bearer", "expires_in": 300}
	if !op.noIDToken {
		key := op.key
		if op.signWith != nil {
			key = op.signWith
		}
		resp["id_token"] = sign(key, claims)
	}
	writeJSON(w, http.StatusOK, resp)
}

func sign(key *rsa.PrivateKey, claims map[string]any) string {
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: testKeyID}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		panic(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		panic(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return s
}

func (op *fakeOP) keys(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: &op.key.PublicKey, KeyID: testKeyID, Algorithm: string(jose.RS256), Use: "sig",
	}}})
}

func (op *fakeOP) userInfo(w http.ResponseWriter, r *http.Request) {
	op.mu.Lock()
	defer op.mu.Unlock()
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !op.accessTokens[token] {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "invalid access token", http.StatusUnauthorized)
		return
	}
	writeJSON(w, http.StatusOK, op.userinfo)
}
