package provider

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/jwt"

	"github.com/latchkey-oidc/latchkey/provider/keys"
	"github.com/latchkey-oidc/latchkey/store"
)

// Access token formats: an operator sets the default (Config.AccessTokenFormat)
// and a client may choose its own (latchkey_access_token_format).
const (
	// AccessTokenOpaque is an HMAC-signed random string that only
	// introspection can read.
	AccessTokenOpaque = "opaque"
	// AccessTokenJWT is a signed JWT in the RFC 9068 profile, which a
	// resource server can verify with the JWKS alone.
	AccessTokenJWT = "jwt"
)

// AccessTokenFormats lists the formats, the default first.
var AccessTokenFormats = []string{AccessTokenOpaque, AccessTokenJWT}

// jwtAccessTokenType is the "typ" of an RFC 9068 access token (§2.1). A
// token without it is never taken as an access token, so an ID token or a
// logout token signed with the same keys cannot be used as one.
const jwtAccessTokenType = "at+jwt"

// accessTokens is fosite's core token strategy with the access token format
// chosen per client: the HMAC strategy for codes, refresh tokens and opaque
// access tokens, and RFC 9068 JWTs signed by the key ring for clients that
// chose them. JWT access tokens are stored like opaque ones, under their
// signature, so introspection, revocation and refresh-family revocation
// treat both alike.
type accessTokens struct {
	oauth2.CoreStrategy
	ring          *keys.Ring
	issuer        string
	defaultFormat string
	// defaultAudience is the aud of a JWT granted no audience: RFC 9068
	// §3 requires one, and the resource the provider itself serves to
	// every access token is userinfo.
	defaultAudience string
	// subject is the sub the token's client knows its user by (pairwise
	// where the client is), the client itself for client credentials.
	subject func(fosite.Requester) string
}

// GenerateAccessToken issues the format the requester's client uses. A
// request always carries the store's client; without one there would be
// no client_id to name, so the token is opaque.
func (s *accessTokens) GenerateAccessToken(ctx context.Context, req fosite.Requester) (string, string, error) {
	client, ok := req.GetClient().(*store.Client)
	if !ok || s.format(client) != AccessTokenJWT {
		return s.CoreStrategy.GenerateAccessToken(ctx, req)
	}
	claims, err := s.jwtClaims(req, client)
	if err != nil {
		return "", "", err
	}
	alg := client.AccessTokenSigningAlg
	if alg == "" {
		alg = s.ring.DefaultAlg()
	}
	token, err := s.ring.Sign(ctx, alg, claims, map[string]any{"typ": jwtAccessTokenType})
	if err != nil {
		return "", "", fmt.Errorf("sign access token: %w", err)
	}
	return token, jwtSignature(token), nil
}

// AccessTokenSignature is the key a token is stored under: the HMAC part of
// an opaque token, the signature of a JWT.
func (s *accessTokens) AccessTokenSignature(ctx context.Context, token string) string {
	if isJWT(token) {
		return jwtSignature(token)
	}
	return s.CoreStrategy.AccessTokenSignature(ctx, token)
}

// ValidateAccessToken checks a token found in the store: an opaque one as
// fosite does, a JWT by its signature, its expiry and its "typ".
func (s *accessTokens) ValidateAccessToken(ctx context.Context, req fosite.Requester, token string) error {
	if !isJWT(token) {
		return s.CoreStrategy.ValidateAccessToken(ctx, req, token)
	}
	// The errors carry no cause: a cause that is not a fosite error means
	// the store failed (tokenStoreFailed).
	t, err := s.ring.Decode(ctx, token)
	var ve *jwt.ValidationError
	switch {
	case errors.As(err, &ve) && ve.Has(jwt.ValidationErrorExpired):
		return fosite.ErrTokenExpired.WithDebug(err.Error())
	case err != nil:
		return fosite.ErrTokenSignatureMismatch.WithDebug(err.Error())
	case t.Header["typ"] != jwtAccessTokenType:
		return fosite.ErrTokenClaim.WithDebug("The JWT is not an access token (typ is not at+jwt).")
	}
	return nil
}

func (s *accessTokens) format(c *store.Client) string {
	if c.AccessTokenFormat != "" {
		return c.AccessTokenFormat
	}
	return s.defaultFormat
}

// accessTokenReserved are the claims a JWT access token's extra claims (from
// the login app) never replace.
var accessTokenReserved = map[string]bool{
	"iss": true, "sub": true, "aud": true, "exp": true, "iat": true, "nbf": true, "jti": true,
	"client_id": true, "scope": true, "auth_time": true, "acr": true, "amr": true,
	"cnf": true, "active": true, "token_type": true,
}

// jwtClaims are the RFC 9068 §2.2 claims of an access token for req: iss,
// exp, aud, sub, client_id, iat and jti, the granted scope, and, when a
// person signed in, auth_time, acr and amr. The extra claims the login app
// attached at consent (which introspection also returns) come along.
func (s *accessTokens) jwtClaims(req fosite.Requester, client *store.Client) (jwt.MapClaims, error) {
	sess, ok := req.GetSession().(*Session)
	if !ok {
		return nil, fmt.Errorf("access token: session is %T, not *Session", req.GetSession())
	}
	exp := sess.GetExpiresAt(fosite.AccessToken)
	if exp.IsZero() {
		return nil, errors.New("access token: the session has no access token expiry")
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return nil, fmt.Errorf("access token id: %w", err)
	}
	claims := jwt.MapClaims{}
	for k, v := range sess.AccessClaims {
		if !accessTokenReserved[k] {
			claims[k] = v
		}
	}
	aud := []string(req.GetGrantedAudience())
	if len(aud) == 0 {
		aud = []string{s.defaultAudience}
	}
	claims["iss"] = s.issuer
	claims["sub"] = s.subject(req)
	claims["aud"] = aud
	claims["client_id"] = client.ID
	claims["iat"] = time.Now().Unix()
	claims["exp"] = exp.Unix()
	claims["jti"] = base64.RawURLEncoding.EncodeToString(jti)
	if scopes := req.GetGrantedScopes(); len(scopes) > 0 {
		claims["scope"] = strings.Join(scopes, " ")
	}
	if c := sess.Claims; c != nil {
		if !c.AuthTime.IsZero() {
			claims["auth_time"] = c.AuthTime.Unix()
		}
		if c.AuthenticationContextClassReference != "" {
			claims["acr"] = c.AuthenticationContextClassReference
		}
		if len(c.AuthenticationMethodsReferences) > 0 {
			claims["amr"] = c.AuthenticationMethodsReferences
		}
	}
	return claims, nil
}

// isJWT reports whether token has the shape of a compact JWS; opaque tokens
// have one dot.
func isJWT(token string) bool { return strings.Count(token, ".") == 2 }

func jwtSignature(token string) string { return token[strings.LastIndexByte(token, '.')+1:] }
