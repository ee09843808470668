package keys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"

	"github.com/go-jose/go-jose/v3"

	"github.com/latchkey-oidc/latchkey/store"
)

// supported reports whether the ring can generate and use keys for alg.
func supported(alg string) bool {
	return alg == "RS256" || alg == "ES256" || alg == "EdDSA"
}

// checkKeyType checks that key is a private key alg signs with.
func checkKeyType(alg string, k any) error {
	ok := false
	switch alg {
	case "RS256":
		_, ok = k.(*rsa.PrivateKey)
	case "ES256":
		ec, isEC := k.(*ecdsa.PrivateKey)
		ok = isEC && ec.Curve == elliptic.P256()
	case "EdDSA":
		_, ok = k.(ed25519.PrivateKey)
	default:
		return fmt.Errorf("signing algorithm %q is not supported", alg)
	}
	if !ok {
		return fmt.Errorf("a %T is not a key for %s", k, alg)
	}
	return nil
}

// newSigningKey generates a key pair for alg, not yet stored.
func newSigningKey(alg string, state store.KeyState) (*store.SigningKey, error) {
	var (
		priv any
		err  error
	)
	switch alg {
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("signing algorithm %q is not supported", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", alg, err)
	}
	kid := make([]byte, 16)
	if _, err := rand.Read(kid); err != nil {
		return nil, err
	}
	jwk := jose.JSONWebKey{Key: priv, KeyID: base64.RawURLEncoding.EncodeToString(kid), Algorithm: alg, Use: "sig"}
	private, err := jwk.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode %s key: %w", alg, err)
	}
	pub := jwk.Public()
	public, err := pub.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode %s key: %w", alg, err)
	}
	return &store.SigningKey{ID: jwk.KeyID, Alg: alg, State: state, PublicJWK: public, PrivateJWK: private}, nil
}
