package keys

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite/token/jwt"
)

var _ jwt.Signer = (*Ring)(nil)

// signerHeaders are header parameters the signing key decides. go-jose
// copies extra headers over its own, so a caller's "alg" or "kid" would
// label the token with another key than the one that signed it.
var signerHeaders = []string{"alg", "kid", "jwk", "b64"}

// Generate signs claims for fosite (ID tokens, JWT access tokens). The
// algorithm is header's "alg" when it is one the ring keeps keys for, else
// the default one; the token is signed with that algorithm's current key
// and names it in "kid". Other header parameters are kept.
func (r *Ring) Generate(ctx context.Context, claims jwt.MapClaims, header jwt.Mapper) (string, string, error) {
	if claims == nil || header == nil {
		return "", "", errors.New("either claims or header is nil")
	}
	alg := r.DefaultAlg()
	if a, ok := headerAlg(header.Get("alg")); ok && slices.Contains(r.algs, a) {
		alg = a
	}
	raw, err := r.sign(alg, claims, header.ToMap())
	if err != nil {
		return "", "", err
	}
	sig, err := r.GetSignature(ctx, raw)
	return raw, sig, err
}

// EdDSAHashHint is what a session's ID token header names EdDSA as.
// fosite picks the at_hash and c_hash function from the digits after the
// first two letters of the header's alg ("ES384" → SHA-384), and would hash
// for EdDSA with SHA-256; Ed25519 ID tokens hash with SHA-512 (the OpenID
// Foundation's reading, and what relying parties such as go-oidc verify).
// Generate signs a header alg of EdDSAHashHint with the EdDSA key.
const EdDSAHashHint = "Ed512"

// HeaderAlg returns the alg to put in a session's ID token header so that
// fosite signs with alg and computes its hashes right.
func HeaderAlg(alg string) string {
	if alg == "EdDSA" {
		return EdDSAHashHint
	}
	return alg
}

func headerAlg(v any) (string, bool) {
	var a string
	switch v := v.(type) {
	case string:
		a = v
	case jose.SignatureAlgorithm:
		a = string(v)
	}
	if a == EdDSAHashHint {
		a = "EdDSA"
	}
	return a, a != ""
}

// Sign signs claims with the current key of alg ("" is the default
// algorithm), for JWTs fosite does not make: signed userinfo responses and
// logout tokens. header adds header parameters such as "typ"; "alg" and
// "kid" are the key's.
func (r *Ring) Sign(_ context.Context, alg string, claims map[string]any, header map[string]any) (string, error) {
	alg, err := r.configuredAlg(alg)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	if claims == nil {
		return "", errors.New("sign: no claims")
	}
	return r.sign(alg, claims, header)
}

// sign signs with alg's current key from the loaded snapshot.
func (r *Ring) sign(alg string, claims jwt.MapClaims, header map[string]any) (string, error) {
	k := r.snapshot().current[alg]
	if k == nil {
		return "", fmt.Errorf("sign: no current %s key loaded", alg)
	}
	tok := jwt.NewWithClaims(jose.SignatureAlgorithm(alg), claims)
	for name, v := range header {
		if !slices.Contains(signerHeaders, name) {
			tok.Header[name] = v
		}
	}
	raw, err := tok.SignedString(k.private)
	if err != nil {
		return "", fmt.Errorf("sign with %s key %q: %w", alg, k.meta.ID, err)
	}
	return raw, nil
}

// Decode parses token and verifies its signature with the published key its
// "kid" names, whatever that key's state: a token signed before a rotation
// is still good while its key is published. A token without "kid" is tried
// against every published key of its algorithm. Like fosite's DefaultSigner,
// Decode also validates exp, iat and nbf and returns the token together with
// the *jwt.ValidationError when they fail, so that fosite can accept an
// expired id_token_hint.
func (r *Ring) Decode(_ context.Context, token string) (*jwt.Token, error) {
	snap, now := r.snapshot(), r.now()
	var candidates []*key
	tok, err := jwt.ParseWithClaims(token, jwt.MapClaims{}, func(t *jwt.Token) (any, error) {
		ks, err := snap.verificationKeys(t, now)
		if err != nil {
			return nil, err
		}
		candidates = ks
		return &ks[0].public, nil
	})
	for i := 1; i < len(candidates) && signatureInvalid(err); i++ {
		k := candidates[i]
		tok, err = jwt.ParseWithClaims(token, jwt.MapClaims{}, func(*jwt.Token) (any, error) { return &k.public, nil })
	}
	return tok, err
}

func signatureInvalid(err error) bool {
	var ve *jwt.ValidationError
	return errors.As(err, &ve) && ve.Has(jwt.ValidationErrorSignatureInvalid)
}

// verificationKeys returns the keys that may have signed t: the published
// key t's kid names, if its algorithm is t's, or without a kid every
// published key of t's algorithm.
func (s *snapshot) verificationKeys(t *jwt.Token, now time.Time) ([]*key, error) {
	alg := string(t.Method)
	if alg == "" || alg == string(jwt.SigningMethodNone) {
		return nil, fmt.Errorf("token algorithm %q is not accepted", alg)
	}
	kid, _ := t.Header["kid"].(string)
	if kid != "" {
		k := s.byKID[kid]
		switch {
		case k == nil || !k.publishedAt(now):
			return nil, fmt.Errorf("token signed with unknown key %q", kid)
		case k.meta.Alg != alg:
			return nil, fmt.Errorf("token says %s but key %q is for %s", alg, kid, k.meta.Alg)
		}
		return []*key{k}, nil
	}
	var ks []*key
	for _, k := range s.published(now) {
		if k.meta.Alg == alg {
			ks = append(ks, k)
		}
	}
	if len(ks) == 0 {
		return nil, fmt.Errorf("no published key for token algorithm %q", alg)
	}
	return ks, nil
}

// Validate verifies token as Decode does and returns its signature.
func (r *Ring) Validate(ctx context.Context, token string) (string, error) {
	if _, err := r.Decode(ctx, token); err != nil {
		return "", err
	}
	return r.GetSignature(ctx, token)
}

// GetSignature returns the signature part of a compact JWT.
func (r *Ring) GetSignature(_ context.Context, token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("header, body and signature must all be set")
	}
	return parts[2], nil
}

// Hash is SHA-256, as in fosite's DefaultSigner: fosite uses it for at_hash
// and c_hash whatever the signing algorithm.
func (r *Ring) Hash(_ context.Context, in []byte) ([]byte, error) {
	sum := sha256.Sum256(in)
	return sum[:], nil
}

// GetSigningMethodLength is the size of Hash's output.
func (r *Ring) GetSigningMethodLength(context.Context) int {
	return sha256.Size
}
