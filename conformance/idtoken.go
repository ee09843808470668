package conformance

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// claims is a decoded JSON object: an ID token's payload, userinfo.
type claims map[string]any

func (c claims) str(name string) string { s, _ := c[name].(string); return s }

func (c claims) num(name string) (float64, bool) { f, ok := c[name].(float64); return f, ok }

func (c claims) time(name string) (time.Time, bool) {
	f, ok := c.num(name)
	return time.Unix(int64(f), 0), ok
}

// audience returns aud as a list, whichever form the token used.
func (c claims) audience() []string {
	switch a := c["aud"].(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, v := range a {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// signingAlgs are the JWS algorithms an ID token may use.
var signingAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// anyNonce skips the nonce check, for ID tokens from a refresh, which
// carry the original nonce or none (OpenID Connect Core §12.2).
const anyNonce = "\x00any"

// idToken is a verified ID token.
type idToken struct {
	raw    string
	alg    string
	kid    string
	claims claims
}

// validateIDToken runs the suite's standard ID token checks
// (PerformStandardIdTokenChecks): signature by a published key, iss, aud,
// exp, iat, auth_time, nonce, sub and the types of the standard claims.
// where names the endpoint that returned the token, for the notes.
func (t *T) validateIDToken(raw, clientID, nonce, where string) *idToken {
	if t.unsignedIDTokens && where == "token endpoint" {
		if tok, ok := t.unsignedIDToken(raw, where); ok {
			return t.checkIDTokenClaims(tok, clientID, nonce, where)
		}
	}
	h, payload := t.verifyJWS(raw, "ValidateIdTokenSignature", "the "+where+"'s ID token")
	tok := &idToken{raw: raw, alg: h.Algorithm, kid: h.KeyID}
	if err := json.Unmarshal(payload, &tok.claims); err != nil {
		t.Fatal("ValidateIdToken", "the %s's ID token payload is not a JSON object: %v", where, err)
	}
	return t.checkIDTokenClaims(tok, clientID, nonce, where)
}

// verifyJWS verifies a JWS the provider signed (an ID token, a logout
// token, a signed userinfo answer) with a key of its JWKS, failing the
// module on condition otherwise; what names the token in the notes.
func (t *T) verifyJWS(raw, condition, what string) (jose.Header, []byte) {
	jws, err := jose.ParseSigned(strings.TrimSpace(raw), signingAlgs)
	if err != nil {
		t.Fatal(condition, "%s is not a JWS with an asymmetric algorithm: %v", what, err)
	}
	if len(jws.Signatures) != 1 {
		t.Fatal(condition, "%s has %d signatures", what, len(jws.Signatures))
	}
	h := jws.Signatures[0].Header
	key, ok := t.r.key(t.ctx, h.KeyID, h.Algorithm)
	if !ok {
		t.Fatal(condition, "no key in the provider's JWKS matches %s (kid %q, alg %s)", what, h.KeyID, h.Algorithm)
	}
	payload, err := jws.Verify(key)
	if err != nil {
		t.Fatal(condition, "the signature of %s does not verify: %v", what, err)
	}
	return h, payload
}

// unsignedIDToken decodes an ID token with alg none (RFC 7519 §6: the
// signature part empty); ok is false when raw is not one.
func (t *T) unsignedIDToken(raw, where string) (*idToken, bool) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, false
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	h, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(h, &header) != nil || header.Alg != "none" {
		return nil, false
	}
	t.Check(parts[2] == "", "ValidateIdTokenSignature", "the %s's unsigned ID token has a signature part", where)
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	tok := &idToken{raw: raw, alg: header.Alg, kid: header.Kid}
	if err != nil || json.Unmarshal(payload, &tok.claims) != nil {
		t.Fatal("ValidateIdToken", "the %s's ID token payload is not a JSON object", where)
	}
	return tok, true
}

// checkIDTokenClaims runs the claim checks of validateIDToken.
func (t *T) checkIDTokenClaims(tok *idToken, clientID, nonce, where string) *idToken {
	c := tok.claims
	now := time.Now()
	const skew = 5 * time.Minute
	t.Check(c.str("iss") == t.r.meta.Issuer, "ValidateIdToken", "%s ID token iss %q, want the issuer %q", where, c["iss"], t.r.meta.Issuer)
	t.Check(slices.Contains(c.audience(), clientID), "ValidateIdToken", "%s ID token aud %v does not contain the client_id %q", where, c["aud"], clientID)
	if exp, ok := c.time("exp"); !ok {
		t.Fail("ValidateIdToken", "%s ID token has no numeric exp", where)
	} else {
		t.Check(exp.After(now.Add(-skew)), "ValidateIdToken", "%s ID token expired at %s", where, exp)
		t.Check(exp.Before(now.AddDate(50, 0, 0)), "ValidateIdToken", "%s ID token exp %s is more than 50 years ahead", where, exp)
	}
	if iat, ok := c.time("iat"); !ok {
		t.Fail("ValidateIdToken", "%s ID token has no numeric iat", where)
	} else {
		t.Check(iat.Before(now.Add(skew)), "ValidateIdToken", "%s ID token iat %s is in the future", where, iat)
		t.Check(iat.After(now.Add(-skew)), "ValidateIdToken", "%s ID token iat %s is more than 5 minutes old", where, iat)
	}
	if _, present := c["auth_time"]; present {
		if at, ok := c.time("auth_time"); !ok {
			t.Fail("ValidateIdToken", "%s ID token auth_time is not a number", where)
		} else {
			t.Check(at.Before(now.Add(skew)), "ValidateIdToken", "%s ID token auth_time %s is in the future", where, at)
			t.Check(at.After(now.AddDate(-1, 0, 0)), "ValidateIdToken", "%s ID token auth_time %s is more than a year old", where, at)
		}
	}
	if acr, present := c["acr"]; present {
		s, ok := acr.(string)
		t.Check(ok && s != "", "ValidateIdToken", "%s ID token acr %v is not a non-empty string", where, acr)
	}
	t.Check(c.str("sub") != "", "CheckForSubjectInIdToken", "%s ID token has no sub", where)
	switch got, present := c["nonce"]; {
	case nonce == anyNonce:
	case nonce == "" && present:
		t.Fail("ValidateIdTokenNonce", "%s ID token has nonce %v though the request sent none", where, got)
	case nonce != "" && got != nonce:
		t.Fail("ValidateIdTokenNonce", "%s ID token nonce %v, want %q", where, got, nonce)
	}
	t.checkStandardClaims("ValidateIdTokenStandardClaims", where+" ID token", c)
	return tok
}

// checkStandardClaims checks the JSON types of the OpenID Connect Core §5.1
// claims present in c.
func (t *T) checkStandardClaims(condition, where string, c claims) {
	for name, v := range c {
		var ok bool
		switch name {
		case "sub", "name", "given_name", "family_name", "middle_name", "nickname", "preferred_username",
			"profile", "picture", "website", "email", "gender", "birthdate", "zoneinfo", "locale", "phone_number":
			_, ok = v.(string)
		case "email_verified", "phone_number_verified":
			_, ok = v.(bool)
		case "updated_at":
			_, ok = v.(float64)
		case "address":
			var addr map[string]any
			if addr, ok = v.(map[string]any); ok {
				for k, av := range addr {
					if _, isString := av.(string); !isString {
						t.Fail(condition, "%s address.%s is not a string", where, k)
					}
				}
			}
		default:
			ok = true
		}
		t.Check(ok, condition, "%s claim %s has the wrong JSON type (%T)", where, name, v)
	}
}

// LeftHalfHash is the at_hash / c_hash of value for an ID token signed
// with alg (OpenID Connect Core §3.3.2.11): the base64url left half of the
// hash of value under alg's hash function (SHA-512 for EdDSA with
// Ed25519, the only curve providers use).
func LeftHalfHash(alg, value string) (string, bool) {
	var h hash.Hash
	switch {
	case strings.HasSuffix(alg, "256"):
		h = sha256.New()
	case strings.HasSuffix(alg, "384"):
		h = sha512.New384()
	case strings.HasSuffix(alg, "512") || alg == "EdDSA":
		h = sha512.New()
	default:
		return "", false
	}
	h.Write([]byte(value))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2]), true
}

// checkHash checks the at_hash or c_hash claim of tok against value; when
// required, a missing claim fails.
func (t *T) checkHash(tok *idToken, claim, value string, required bool, where string) {
	condition := map[string]string{"at_hash": "ValidateAtHash", "c_hash": "ValidateCHash"}[claim]
	got, present := tok.claims[claim]
	if !present {
		if required {
			extract := map[string]string{"at_hash": "ExtractAtHash", "c_hash": "ExtractCHash"}[claim]
			t.Fail(extract, "the %s's ID token has no %s (OpenID Connect Core §3.3.2.11)", where, claim)
		}
		return
	}
	if tok.alg == "none" {
		return // no hash algorithm: an unsigned token's hashes bind nothing
	}
	want, ok := LeftHalfHash(tok.alg, value)
	if !ok {
		t.Fail(condition, "cannot compute %s for alg %s", claim, tok.alg)
		return
	}
	t.Check(got == want, condition, "the %s's ID token %s is %v, want %s", where, claim, got, want)
}
