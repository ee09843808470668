package conformance

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Dynamic registration: the runner registers its own clients (OpenID
// Connect Dynamic Client Registration 1.0, RFC 7591), one or more per
// module as the suite does, authenticates them with private_key_jwt and
// deletes them afterwards (RFC 7592).

// dynamicRedirectURI is where the runner's registered clients redirect.
// Nothing listens there: the browser stops at it.
const dynamicRedirectURI = "https://rp.dynamic.conformance.invalid/callback"

// dynamicClient is what the runner keeps about a client it registered.
type dynamicClient struct {
	// key signs client assertions and request objects; its public half
	// is what the client registered (by value or at a jwks_uri).
	key jose.JSONWebKey
	// auth is the registered token_endpoint_auth_method.
	auth string
	// assertionAud, when set, replaces the token endpoint as the client
	// assertion's aud.
	assertionAud string
}

// newClientKey makes an RS256 key with a random kid
// (GenerateRS256ClientJWKsWithKeyID).
func newClientKey() jose.JSONWebKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err) // the system's random source failed
	}
	return jose.JSONWebKey{Key: k, KeyID: random(), Algorithm: string(jose.RS256), Use: "sig"}
}

func publicSet(k jose.JSONWebKey) jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k.Public()}}
}

// registration is a registration request being built.
type registration struct {
	meta map[string]any
	key  jose.JSONWebKey
}

// newRegistration builds the suite's registration request
// (OIDCCCreateDynamicClientRegistrationRequest): the redirect URI, the
// variant's response type with its grant types, the client's public keys
// by value and the variant's token endpoint authentication method.
func (t *T) newRegistration() *registration {
	rt := strings.Fields(t.v.ResponseType)
	var grants []string
	if slices.Contains(rt, "code") {
		grants = append(grants, "authorization_code")
	}
	if slices.Contains(rt, "id_token") || slices.Contains(rt, "token") {
		grants = append(grants, "implicit")
	}
	reg := &registration{key: newClientKey(), meta: map[string]any{
		"client_name":                "Latchkey conformance " + t.module,
		"redirect_uris":              []string{dynamicRedirectURI},
		"response_types":             []string{t.v.ResponseType},
		"grant_types":                grants,
		"token_endpoint_auth_method": t.v.ClientAuth,
		"contacts":                   []string{"certification@conformance.invalid"},
	}}
	if t.v.ClientAuth == "private_key_jwt" {
		reg.meta["jwks"] = publicSet(reg.key)
	}
	return reg
}

// addGrant adds a grant type to the request.
func (reg *registration) addGrant(g string) {
	reg.meta["grant_types"] = append(reg.meta["grant_types"].([]string), g)
}

// keysByReference publishes the client's keys on the runner's server and
// registers them as jwks_uri instead of by value (CreateJwksUri,
// AddJwksUriToDynamicRegistrationRequest); it returns the document's path.
func (t *T) keysByReference(reg *registration) string {
	path, u := t.publish("application/json", mustJSON(publicSet(reg.key)))
	delete(reg.meta, "jwks")
	reg.meta["jwks_uri"] = u
	return path
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// publish serves a document on the runner's relying-party server and
// returns its path there and its URL as the provider reaches it.
func (t *T) publish(contentType string, body []byte) (path, u string) {
	if !t.r.rpServed || t.r.cfg.RPURL == "" {
		t.Skip("the configuration has no rp_url, where the runner serves what this module registers by reference")
	}
	path = "/doc/" + random()
	t.r.rp.publish(path, contentType, body)
	return path, strings.TrimSuffix(t.r.cfg.RPURL, "/") + path
}

// callRegistration sends a registration request and returns the status,
// headers and decoded body (CallDynamicRegistrationEndpoint).
func (t *T) callRegistration(meta map[string]any) (int, http.Header, claims) {
	endpoint, _ := t.r.rawMeta["registration_endpoint"].(string)
	if endpoint == "" {
		t.Fatal("CallDynamicRegistrationEndpoint", "the discovery document has no registration_endpoint")
	}
	req, err := http.NewRequestWithContext(t.ctx, http.MethodPost, endpoint, bytes.NewReader(mustJSON(meta)))
	if err != nil {
		t.Fatal("CallDynamicRegistrationEndpoint", "%v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if tok := t.r.cfg.RegistrationToken; tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	status, header, body, err := t.r.do(req)
	if err != nil {
		t.Fatal("CallDynamicRegistrationEndpoint", "%v", err)
	}
	var out claims
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fail("EnsureContentTypeJson", "the registration endpoint's answer (status %d) is not a JSON object: %.200s", status, body)
	}
	return status, header, out
}

// register registers the client and runs the suite's checks of the
// answer: 201, JSON, no error, management credentials and the client
// credentials the authentication method needs. The client is deleted when
// the module ends.
func (t *T) register(reg *registration) Client {
	status, header, body := t.callRegistration(reg.meta)
	t.checkJSON("EnsureContentTypeJson", header)
	if status != http.StatusCreated {
		t.Fatal("EnsureHttpStatusCodeIs201", "the registration endpoint answered %d: %v %v", status, body["error"], body["error_description"])
	}
	t.Check(body.str("error") == "", "CheckNoErrorFromDynamicRegistrationEndpoint", "error %v", body["error"])
	c := Client{ID: body.str("client_id"), Secret: body.str("client_secret"), RedirectURI: dynamicRedirectURI,
		dynamic: &dynamicClient{key: reg.key, auth: reg.meta["token_endpoint_auth_method"].(string)}}
	if c.ID == "" {
		t.Fatal("VerifyDynamicRegistrationResponseClientCredentials", "no client_id in the registration response")
	}
	if strings.HasPrefix(t.v.ClientAuth, "client_secret") && c.Secret == "" {
		t.Fatal("VerifyDynamicRegistrationResponseClientCredentials", "no client_secret for a %s client", t.v.ClientAuth)
	}
	regURI, token := body.str("registration_client_uri"), body.str("registration_access_token")
	// VerifyClientManagementCredentials: both or neither.
	t.Check((regURI == "") == (token == ""), "VerifyClientManagementCredentials",
		"registration_client_uri %q and registration_access_token must come together", regURI)
	if regURI != "" {
		t.cleanups = append(t.cleanups, func() { t.unregister(regURI, token) })
	}
	return c
}

// unregister deletes a registered client (RFC 7592 §2.3;
// UnregisterDynamicallyRegisteredClient).
func (t *T) unregister(regURI, token string) {
	req, err := http.NewRequestWithContext(t.ctx, http.MethodDelete, regURI, nil)
	if err != nil {
		t.Warn("UnregisterDynamicallyRegisteredClient", "%v", err)
		return
	}
	req.Header.Set("Authorization", "Bearer "+token)
	status, _, _, err := t.r.do(req)
	if err != nil || status != http.StatusNoContent {
		t.Warn("UnregisterDynamicallyRegisteredClient", "deleting the client answered %d (%v), want 204", status, err)
	}
}

// useRegistered registers reg and makes it the module's client.
func (t *T) useRegistered(reg *registration) Client {
	c := t.register(reg)
	t.dyn = &c
	return c
}

// clientAssertion signs a private_key_jwt client assertion
// (RFC 7523 §3; OpenID Connect Core §9).
func (t *T) clientAssertion(c Client) string {
	aud := t.r.meta.TokenEndpoint
	if a := c.dynamic.assertionAud; a != "" {
		aud = a
	}
	now := time.Now()
	return t.signJWT(c.dynamic.key, map[string]any{
		"iss": c.ID, "sub": c.ID, "aud": aud, "jti": random(),
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
	})
}

// signJWT signs claims with the client's key (RS256, its kid).
func (t *T) signJWT(key jose.JSONWebKey, claims map[string]any) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), key.KeyID))
	if err != nil {
		t.Fatal("SignJWT", "%v", err)
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal("SignJWT", "%v", err)
	}
	return raw
}

// reserveRequestURI publishes an empty request object document and
// registers its URL in request_uris (CreateRandomRequestUri,
// AddRequestUriToDynamicRegistrationRequest); sendByReference fills it.
func (t *T) reserveRequestURI(reg *registration) (path, u string) {
	path, u = t.publish("application/oauth-authz-req+jwt", nil)
	reg.meta["request_uris"] = []string{u}
	return path, u
}

// requestObjectByReference moves the request's parameters into the request
// object at the reserved path (signed with the client's key when signed is
// set, else alg none) and sends its request_uri, with response_type,
// client_id, scope and redirect_uri repeated outside
// (BuildRequestObjectByReferenceRedirectToAuthorizationEndpoint).
func (t *T) requestObjectByReference(req *authRequest, path, u string, signed bool) {
	obj := map[string]any{}
	for k := range req.params {
		obj[k] = req.params.Get(k)
	}
	var raw string
	if signed {
		obj["iss"], obj["aud"] = req.client.ID, t.r.meta.Issuer
		raw = t.signJWT(req.client.dynamic.key, obj)
	} else {
		raw = unsignedJWT(obj)
	}
	t.r.rp.publish(path, "application/oauth-authz-req+jwt", []byte(raw))
	outside := url.Values{"request_uri": {u}}
	for _, k := range []string{"response_type", "client_id", "scope", "redirect_uri"} {
		if v := req.params.Get(k); v != "" {
			outside.Set(k, v)
		}
	}
	req.params = outside
}
