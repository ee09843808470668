package keys_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"

	"github.com/latchkey-oidc/latchkey/provider/keys"
	"github.com/latchkey-oidc/latchkey/store"
)

// generate signs a token for alg through fosite's jwt.Signer interface.
func generate(t testing.TB, r jwt.Signer, alg string) string {
	t.Helper()
	h := jwt.NewHeaders()
	if alg != "" {
		h.Add("alg", alg)
	}
	tok, _, err := r.Generate(context.Background(), jwt.MapClaims{
		"sub": "alice",
		"exp": time.Now().Add(time.Hour).Unix(),
	}, h)
	if err != nil {
		t.Fatalf("generate %s token: %v", alg, err)
	}
	return tok
}

// tokenHeader decodes a compact JWT's header without verifying anything.
func tokenHeader(t testing.TB, tok string) map[string]any {
	t.Helper()
	part, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		t.Fatalf("token header: %v", err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("token header: %v", err)
	}
	return h
}

// verifyAsRelyingParty checks tok the way a relying party does: with the
// key its kid names in the JWKS as published (JSON), and that key's alg.
func verifyAsRelyingParty(t *testing.T, r *keys.Ring, tok string) map[string]any {
	t.Helper()
	doc, err := json.Marshal(r.PublicKeys())
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatal(err)
	}
	sig, err := jose.ParseSigned(tok)
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	h := sig.Signatures[0].Header
	found := set.Key(h.KeyID)
	if len(found) != 1 {
		t.Fatalf("kid %q names %d keys in the JWKS %s", h.KeyID, len(found), doc)
	}
	k := found[0]
	if !k.IsPublic() || k.Use != "sig" || k.Algorithm != h.Algorithm {
		t.Fatalf("JWKS key %s: public %v, use %q, alg %q; token alg %q", k.KeyID, k.IsPublic(), k.Use, k.Algorithm, h.Algorithm)
	}
	payload, err := sig.Verify(&k)
	if err != nil {
		t.Fatalf("verify with the JWKS: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func TestGenerateSignsWithCurrentKeyOfHeaderAlg(t *testing.T) {
	d := newDB(t)
	r := d.loaded(t, keys.Options{})
	for _, tc := range []struct{ headerAlg, want string }{
		{"ES256", "ES256"},
		{"EdDSA", "EdDSA"},
		{keys.HeaderAlg("EdDSA"), "EdDSA"}, // the hint that makes fosite hash with SHA-512
		{"RS256", "RS256"},
		{"", "RS256"},      // no alg: the default
		{"HS256", "RS256"}, // an alg without keys: the default
		{"none", "RS256"},
	} {
		t.Run(tc.headerAlg, func(t *testing.T) {
			tok := generate(t, r, tc.headerAlg)
			h := tokenHeader(t, tok)
			if h["alg"] != tc.want || h["kid"] != keyOf(t, r, tc.want, store.KeyCurrent).ID || h["typ"] != "JWT" {
				t.Fatalf("header = %v, want alg %s, the current %s key's kid and typ JWT", h, tc.want, tc.want)
			}
			if claims := verifyAsRelyingParty(t, r, tok); claims["sub"] != "alice" {
				t.Fatalf("claims = %v", claims)
			}
			if _, err := r.Validate(context.Background(), tok); err != nil {
				t.Fatalf("validate: %v", err)
			}
		})
	}
}

func TestGenerateKeepsExtraHeadersButNotKeyOnes(t *testing.T) {
	d := newDB(t)
	r := d.loaded(t, keys.Options{Algs: []string{"EdDSA", "ES256"}})
	h := &jwt.Headers{Extra: map[string]any{"alg": "ES256", "kid": "chosen-by-caller", "typ": "at+jwt", "b64": false}}
	tok, sig, err := r.Generate(context.Background(), jwt.MapClaims{"sub": "alice"}, h)
	if err != nil {
		t.Fatal(err)
	}
	got := tokenHeader(t, tok)
	if got["alg"] != "ES256" || got["kid"] != keyOf(t, r, "ES256", store.KeyCurrent).ID || got["typ"] != "at+jwt" || got["b64"] != nil {
		t.Fatalf("header = %v, want alg ES256, the key's kid, typ at+jwt and no b64", got)
	}
	if !strings.HasSuffix(tok, "."+sig) {
		t.Fatalf("signature %q is not the token's last part", sig)
	}
	verifyAsRelyingParty(t, r, tok)
	if _, _, err := r.Generate(context.Background(), nil, h); err == nil {
		t.Fatal("Generate accepted nil claims")
	}
}

func TestSign(t *testing.T) {
	ctx := context.Background()
	d := newDB(t)
	r := d.loaded(t, keys.Options{Algs: []string{"ES256", "EdDSA"}})
	tok, err := r.Sign(ctx, "EdDSA", map[string]any{"sub": "alice", "events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}}},
		map[string]any{"typ": "logout+jwt", "alg": "none"})
	if err != nil {
		t.Fatal(err)
	}
	h := tokenHeader(t, tok)
	if h["alg"] != "EdDSA" || h["typ"] != "logout+jwt" || h["kid"] != keyOf(t, r, "EdDSA", store.KeyCurrent).ID {
		t.Fatalf("logout token header = %v", h)
	}
	verifyAsRelyingParty(t, r, tok)
	tok, err = r.Sign(ctx, "", map[string]any{"sub": "alice"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h := tokenHeader(t, tok); h["alg"] != "ES256" {
		t.Fatalf("Sign with no alg used %v, want the default ES256", h["alg"])
	}
	if _, err := r.Sign(ctx, "RS256", map[string]any{"sub": "alice"}, nil); err == nil {
		t.Fatal("Sign accepted an algorithm the ring has no keys for")
	}
}

func TestDecodeTokenOfRetiredKey(t *testing.T) {
	ctx := context.Background()
	d := newDB(t)
	r := d.loaded(t, keys.Options{})
	for _, alg := range r.Algs() {
		t.Run(alg, func(t *testing.T) {
			signer := keyOf(t, r, alg, store.KeyCurrent)
			live := generate(t, r, alg)
			// An expired ID token is still a good id_token_hint.
			expired, err := r.Sign(ctx, alg, map[string]any{"sub": "alice", "exp": time.Now().Add(-time.Hour).Unix()}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Rotate(ctx, alg); err != nil {
				t.Fatal(err)
			}
			if k := keyOf(t, r, alg, store.KeyRetired); k.ID != signer.ID {
				t.Fatalf("retired key = %s, want %s", k.ID, signer.ID)
			}
			tok, err := r.Decode(ctx, live)
			if err != nil || !tok.Valid() || tok.Claims["sub"] != "alice" || tok.Header["kid"] != signer.ID {
				t.Fatalf("decode a token of the retired key: %v, %v", tok, err)
			}
			tok, err = r.Decode(ctx, expired)
			var ve *jwt.ValidationError
			if !errors.As(err, &ve) || !ve.Has(jwt.ValidationErrorExpired) || ve.Has(jwt.ValidationErrorSignatureInvalid|jwt.ValidationErrorUnverifiable) {
				t.Fatalf("decode an expired token: %v, want only an expiry error", err)
			}
			if tok == nil || tok.Claims["sub"] != "alice" {
				t.Fatalf("decode an expired token returned %v, want its claims with the error", tok)
			}
			if _, err := r.Validate(ctx, expired); err == nil {
				t.Fatal("Validate accepted an expired token")
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	ctx := context.Background()
	d := newDB(t)
	r := d.loaded(t, keys.Options{})
	stranger := newDB(t).loaded(t, keys.Options{Algs: []string{"ES256"}})
	good := generate(t, r, "ES256")
	head, payload, _ := strings.Cut(good, ".")
	payload, sig, _ := strings.Cut(payload, ".")
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	esKID := keyOf(t, r, "ES256", store.KeyCurrent).ID
	rsKID := keyOf(t, r, "RS256", store.KeyCurrent).ID
	claims := enc(map[string]any{"sub": "mallory", "exp": time.Now().Add(time.Hour).Unix()})
	// An expired token passes as an id_token_hint when its signature is
	// good, so an unsigned one must fail on the signature, not the expiry.
	expiredClaims := enc(map[string]any{"sub": "mallory", "exp": time.Now().Add(-time.Hour).Unix()})
	for _, tc := range []struct{ name, tok string }{
		{"unknown kid", generate(t, stranger, "ES256")},
		{"tampered payload", head + "." + claims + "." + sig},
		{"alg none with kid", enc(map[string]any{"alg": "none", "kid": esKID}) + "." + claims + "."},
		{"alg none without kid", enc(map[string]any{"alg": "none"}) + "." + claims + "."},
		{"alg none as the provider issues it", enc(map[string]any{"alg": "none", "typ": "JWT"}) + "." + claims + "."},
		{"alg none expired", enc(map[string]any{"alg": "none", "typ": "JWT"}) + "." + expiredClaims + "."},
		{"alg none with a signature", enc(map[string]any{"alg": "none"}) + "." + claims + "." + sig},
		{"alg NONE", enc(map[string]any{"alg": "NONE"}) + "." + claims + "."},
		{"alg of another key", enc(map[string]any{"alg": "ES256", "kid": rsKID}) + "." + payload + "." + sig},
		{"HMAC with a public key", hmacWithPublicKey(t, r, rsKID, claims)},
		{"not a JWT", "not-a-jwt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := r.Decode(ctx, tc.tok)
			if err == nil {
				t.Fatalf("Decode accepted it: %v", tok.Claims)
			}
			var ve *jwt.ValidationError
			if errors.As(err, &ve) && ve.Has(jwt.ValidationErrorExpired) && !ve.Has(jwt.ValidationErrorSignatureInvalid|jwt.ValidationErrorUnverifiable) {
				t.Fatalf("Decode error %v passes for an expired but genuine token", err)
			}
			if _, err := r.Validate(ctx, tc.tok); err == nil {
				t.Fatal("Validate accepted it")
			}
		})
	}
}

// hmacWithPublicKey forges an HS256 token keyed with the RS256 key's public
// JWK, the classic algorithm-confusion attack.
func hmacWithPublicKey(t *testing.T, r *keys.Ring, kid, claims string) string {
	t.Helper()
	var pub []byte
	for _, k := range r.PublicKeys().Keys {
		if k.KeyID == kid {
			var err error
			if pub, err = k.MarshalJSON(); err != nil {
				t.Fatal(err)
			}
		}
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: pub}, (&jose.SignerOptions{}).WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(mustDecode(t, claims))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// importedKey is an ES256 key made outside the ring, as an operator
// importing a key would.
type importedKey struct {
	priv *ecdsa.PrivateKey
	kid  string
}

func importedES256(t *testing.T) importedKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return importedKey{priv: priv, kid: "imported-" + hex.EncodeToString(b)}
}

func (k importedKey) stored(t *testing.T, state store.KeyState, expires time.Time) *store.SigningKey {
	t.Helper()
	jwk := jose.JSONWebKey{Key: k.priv, KeyID: k.kid, Algorithm: "ES256", Use: "sig"}
	priv, err := jwk.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.Public().MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return &store.SigningKey{ID: k.kid, Alg: "ES256", State: state, PublicJWK: pub, PrivateJWK: priv, ExpiresAt: &expires}
}

func TestDecodeWithoutKIDTriesEveryKeyOfItsAlg(t *testing.T) {
	ctx := context.Background()
	d := newDB(t)
	r := d.loaded(t, keys.Options{Algs: []string{"ES256", "EdDSA"}})
	k := importedES256(t)
	if err := d.store(t).CreateSigningKey(ctx, k.stored(t, store.KeyRetired, d.clock.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	// Signed by the imported key, last of the ES256 keys, with no kid.
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.priv}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign([]byte(`{"sub":"alice"}`))
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := jws.CompactSerialize()
	if _, ok := tokenHeader(t, tok)["kid"]; ok {
		t.Fatal("test token has a kid")
	}
	got, err := r.Decode(ctx, tok)
	if err != nil || got.Claims["sub"] != "alice" {
		t.Fatalf("decode a token without kid: %v, %v", got, err)
	}
	// Once the imported key is no longer published, nothing verifies it.
	d.clock.Add(time.Hour)
	if _, err := r.Decode(ctx, tok); err == nil {
		t.Fatal("a token without kid verified after its key expired")
	}
}

func TestHash(t *testing.T) {
	ctx := context.Background()
	r := keys.New(nil, keys.Options{})
	got, err := r.Hash(ctx, []byte("access-token"))
	want := sha256.Sum256([]byte("access-token"))
	if err != nil || string(got) != string(want[:]) || r.GetSigningMethodLength(ctx) != len(want) {
		t.Fatalf("Hash = %x, %v, length %d; want SHA-256", got, err, r.GetSigningMethodLength(ctx))
	}
	if _, err := r.GetSignature(ctx, "a.b"); err == nil {
		t.Fatal("GetSignature accepted a token with two parts")
	}
}

// TestFositeIDTokenHint runs the ring under fosite's own OpenID Connect
// code: it signs an ID token with the client's algorithm, and accepts an
// expired id_token_hint whose key has been retired since.
func TestFositeIDTokenHint(t *testing.T) {
	ctx := context.Background()
	d := newDB(t)
	r := d.loaded(t, keys.Options{})
	cfg := &fosite.Config{IDTokenIssuer: "https://op.example", IDTokenLifespan: time.Hour}
	strategy := &openid.DefaultStrategy{Signer: r, Config: cfg}

	session := func() *openid.DefaultSession {
		s := openid.NewDefaultSession()
		s.Claims.Subject = "alice"
		s.Claims.AuthTime = time.Now().Add(-time.Minute).UTC()
		s.Claims.RequestedAt = time.Now().UTC()
		s.Headers.Add("alg", "EdDSA")
		return s
	}
	req := fosite.NewAuthorizeRequest()
	req.Client = &fosite.DefaultClient{ID: "rp"}
	req.Session = session()
	idToken, err := strategy.GenerateIDToken(ctx, time.Hour, req)
	if err != nil {
		t.Fatalf("fosite GenerateIDToken: %v", err)
	}
	if h := tokenHeader(t, idToken); h["alg"] != "EdDSA" || h["kid"] != keyOf(t, r, "EdDSA", store.KeyCurrent).ID {
		t.Fatalf("ID token header = %v, want EdDSA and the current EdDSA kid", h)
	}
	claims := verifyAsRelyingParty(t, r, idToken)
	if claims["iss"] != "https://op.example" || claims["sub"] != "alice" {
		t.Fatalf("ID token claims = %v", claims)
	}

	hint, err := r.Sign(ctx, "EdDSA", map[string]any{"iss": "https://op.example", "sub": "alice", "exp": time.Now().Add(-time.Hour).Unix()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Rotate(ctx, "EdDSA"); err != nil {
		t.Fatal(err)
	}
	validator := openid.NewOpenIDConnectRequestValidator(r, cfg)
	for _, tc := range []struct {
		name, hint string
		ok         bool
	}{
		{"expired hint of a retired key", hint, true},
		{"hint of an unknown key", generate(t, newDB(t).loaded(t, keys.Options{Algs: []string{"EdDSA"}}), "EdDSA"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := fosite.NewAuthorizeRequest()
			req.Client = &fosite.DefaultClient{ID: "rp"}
			req.Session = session()
			req.Form = url.Values{"id_token_hint": {tc.hint}}
			err := validator.ValidatePrompt(ctx, req)
			if tc.ok && err != nil {
				t.Fatalf("fosite refused the hint: %v", fosite.ErrorToRFC6749Error(err).GetDescription())
			}
			if !tc.ok && err == nil {
				t.Fatal("fosite accepted the hint")
			}
		})
	}
}
