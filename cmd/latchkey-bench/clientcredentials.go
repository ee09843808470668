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
	// jwt requires the access token to be a JWT.
	jwt bool
}

func (w *ccWorker) do(ctx context.Context) (string, error) {
	ta, err := w.t.token(ctx, w.c, url.Values{"grant_type": {"client_credentials"}, "scope": {ccScope}})
	if err != nil {
		return "", err
	}
	if w.jwt {
		if err := checkJWT(ta.AccessToken); err != nil {
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

// setUpClientCredentialsJWT registers a client_credentials client that
// asks for JWT access tokens with the client metadata of --jwt-metadata,
// and checks with one request that the provider honours it: a provider
// that refuses the metadata, or accepts it (RFC 7591 §2 lets it ignore
// fields it does not know) and still issues opaque tokens, is reported as
// not supporting the scenario.
func setUpClientCredentialsJWT(ctx context.Context, e *env, n int) ([]worker, error) {
	meta := ccClientMeta("client_credentials_jwt")
	maps.Copy(meta, e.jwtMetadata)
	c, err := e.clientFor(ctx, meta)
	if err != nil {
		var ae *adminError
		if errors.As(err, &ae) && ae.status >= 400 && ae.status < 500 {
			return nil, fmt.Errorf("%w: the admin API refused a client with JWT access tokens (%s): %v", errUnsupported, metaString(e.jwtMetadata), ae)
		}
		return nil, err
	}
	w := &ccWorker{t: e.t, c: c, jwt: true}
	ta, err := e.t.token(ctx, c, url.Values{"grant_type": {"client_credentials"}, "scope": {ccScope}})
	if err != nil {
		return nil, fmt.Errorf("first token request: %w", err)
	}
	if err := checkJWT(ta.AccessToken); err != nil {
		return nil, fmt.Errorf("%w: the provider registered the client (%s) but issued an opaque access token, not a JWT (%v); "+
			"it does not issue JWT access tokens for this client", errUnsupported, metaString(e.jwtMetadata), err)
	}
	ws := make([]worker, n)
	for i := range ws {
		ws[i] = w
	}
	return ws, nil
}

// checkJWT checks that tok has the form of a signed JWT (RFC 7519 §7.2):
// three base64url parts, the first a JSON header with an alg.
func checkJWT(tok string) error {
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
	return nil
}

func metaString(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b)
}
