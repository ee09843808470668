package provider

import (
	"context"
	"errors"
	"fmt"

	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"
)

// algNone is the "alg" of an unsigned JWT (RFC 7518 §3.6). A client may
// register it as id_token_signed_response_alg only when it gets no ID token
// from the authorization endpoint (OpenID Connect Core §2, Registration §2):
// an ID token from the token endpoint comes over TLS straight from the
// provider, so its signature proves nothing the connection does not.
const algNone = "none"

// idTokenSigner is the signer of fosite's OpenID Connect token strategy, and
// of nothing else: the key ring, except that an ID token whose session
// header names alg "none" is issued unsigned (RFC 7519 §6) — at the token
// endpoint only. JWT access tokens, logout tokens and signed userinfo
// answers are signed by the ring itself, which never signs with "none", so
// none of them can come out unsigned. Decode and Validate are the ring's,
// which refuse alg none: an unsigned id_token_hint is never trusted.
//
// at_hash and c_hash stay right: fosite computes them from the session
// header's alg, and for "none" (no hash size in its name) with SHA-256.
type idTokenSigner struct {
	jwt.Signer
}

// Generate signs claims with the ring, or for a header alg of "none" at the
// token endpoint returns the unsigned form, header {"alg":"none","typ":"JWT"}
// (no kid: no key signed it), the claims and an empty signature. Anywhere
// else, "none" is a server_error: the authorization endpoint never issues an
// unsigned ID token, even for a client that somehow has both alg none and a
// response type that returns an ID token from there.
func (s idTokenSigner) Generate(ctx context.Context, claims jwt.MapClaims, header jwt.Mapper) (string, string, error) {
	if header == nil || header.Get("alg") != algNone {
		return s.Signer.Generate(ctx, claims, header)
	}
	if !atTokenEndpoint(ctx) {
		return "", "", fosite.ErrServerError.WithDebug("An unsigned ID token (id_token_signed_response_alg none) may be issued only by the token endpoint.")
	}
	if claims == nil {
		return "", "", errors.New("unsigned ID token: no claims")
	}
	raw, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		return "", "", fmt.Errorf("encode unsigned ID token: %w", err)
	}
	return raw, "", nil
}

type tokenEndpointKey struct{}

// tokenEndpointContext marks ctx as the token endpoint's, the only place an
// unsigned ID token may be issued.
func tokenEndpointContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, tokenEndpointKey{}, true)
}

func atTokenEndpoint(ctx context.Context) bool {
	v, _ := ctx.Value(tokenEndpointKey{}).(bool)
	return v
}
