package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"strings"
)

// ccScope is the scope the client_credentials clients are registered
// with and ask for.
const ccScope = "api"

// ccClientMeta is the metadata of a client_credentials client.
func ccClientMeta(name string) map[string]any {
	return map[string]any{
		"client_name":                "latchkey-bench " + name,
		"grant_types":                []string{"client_credentials"},
		"response_types":             []string{},
		"token_endpoint_auth_method": "client_secret_basic",
		"scope":                      ccScope,
	}
}

// ccWorker asks for an access token with the client_credentials grant.
type ccWorker struct {
	t *target
	c client
	// jwt requires the access token to be a JWT, signed with jwtAlg when
	// that is set.
	jwt    bool
	jwtAlg string
}

func (w *ccWorker) do(ctx context.Context) (string, error) {
	ta, err := w.t.token(ctx, w.c, url.Values{"grant_type": {"client_credentials"}, "scope": {ccScope}})
	if err != nil {
		return "", err
	}
	if w.jwt {
		if err := checkJWT(ta.AccessToken, w.jwtAlg); err != nil {
			return "", &failure{kind: "not_jwt", detail: err.Error()}
		}
	}
	return "", nil
}

func setUpClientCredentials(ctx context.Context, e *env, n int) ([]worker, error) {
	c, err := e.clientFor(ctx, ccClientMeta("client_credentials"))
	if err != nil {
		return nil, err
	}
	ws := make([]worker, n)
	for i := range ws {
		ws[i] = &ccWorker{t: e.t, c: c}
	}
	return ws, nil
}

// jwtAlgField is the Latchkey client metadata field that picks the
// algorithm of JWT access tokens.
const jwtAlgField = "latchkey_access_token_signing_alg"

// setUpClientCredentialsJWT registers a client_credentials client with the
// metadata of --jwt-metadata, which asks for JWT access tokens.
func setUpClientCredentialsJWT(ctx context.Context, e *env, n int) ([]worker, error) {
	return setUpJWTClient(ctx, e, n, "client_credentials_jwt", e.jwtMetadata)
}

// setUpClientCredentialsJWTRS256 does the same with RS256 as the signing
// algorithm.
func setUpClientCredentialsJWTRS256(ctx context.Context, e *env, n int) ([]worker, error) {
	meta := maps.Clone(e.jwtMetadata)
	meta[jwtAlgField] = "RS256"
	return setUpJWTClient(ctx, e, n, "client_credentials_jwt_rs256", meta)
}

// setUpJWTClient registers a client_credentials client with jwtMeta added
// to its metadata, and checks with one request that the provider honours
// it: a provider that refuses the metadata, or accepts it (RFC 7591 §2
// lets it ignore fields it does not know) and still issues opaque tokens
// or signs with another algorithm than jwtMeta names, is reported as not
// supporting the scenario.
func setUpJWTClient(ctx context.Context, e *env, n int, name string, jwtMeta map[string]any) ([]worker, error) {
	meta := ccClientMeta(name)
	maps.Copy(meta, jwtMeta)
	c, err := e.clientFor(ctx, meta)
	if err != nil {
		var ae *adminError
		if errors.As(err, &ae) && ae.status >= 400 && ae.status < 500 {
			return nil, fmt.Errorf("%w: the admin API refused a client with JWT access tokens (%s): %v", errUnsupported, metaString(jwtMeta), ae)
		}
		return nil, err
	}
	alg, _ := jwtMeta[jwtAlgField].(string)
	w := &ccWorker{t: e.t, c: c, jwt: true, jwtAlg: alg}
	ta, err := e.t.token(ctx, c, url.Values{"grant_type": {"client_credentials"}, "scope": {ccScope}})
	if err != nil {
		return nil, fmt.Errorf("first token request: %w", err)
	}
	if err := checkJWT(ta.AccessToken, alg); err != nil {
		return nil, fmt.Errorf("%w: the provider registered the client (%s) but did not issue the JWT access token it asks for (%v)",
			errUnsupported, metaString(jwtMeta), err)
	}
	ws := make([]worker, n)
	for i := range ws {
		ws[i] = w
	}
	return ws, nil
}

// checkJWT checks that tok has the form of a signed JWT (RFC 7519 §7.2):
// three base64url parts, the first a JSON header with an alg, which is alg
// when that is set.
func checkJWT(tok, alg string) error {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return fmt.Errorf("the token has %d dot-separated parts, a JWS has 3", len(parts))
	}
	h, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return fmt.Errorf("the token's header is not base64url: %w", err)
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(h, &header); err != nil || header.Alg == "" {
		return errors.New("the token's header is not a JSON object with an alg")
	}
	if alg != "" && header.Alg != alg {
		return fmt.Errorf("the token is signed with %s, not %s", header.Alg, alg)
	}
	return nil
}

func metaString(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b)
}
