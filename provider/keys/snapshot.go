package keys

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"fmt"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v3"

	"github.com/latchkey-oidc/latchkey/store"
)

// snapshot is the keys as of one load. It is never changed once built, so
// readers use it without locks.
type snapshot struct {
	gen     int64
	keys    []*key // PublicKeys order
	byKID   map[string]*key
	current map[string]*key // by algorithm
	next    map[string]*key // by algorithm
}

// key is one loaded signing key.
type key struct {
	meta    *store.SigningKey // PrivateJWK nil
	private *jose.JSONWebKey
	public  jose.JSONWebKey
}

// publishedAt reports whether k is still in the JWKS at now: the store
// lists only keys not yet expired, but a ring can keep a load for longer
// than a retired key has left.
func (k *key) publishedAt(now time.Time) bool {
	return k.meta.ExpiresAt == nil || now.Before(*k.meta.ExpiresAt)
}

func newSnapshot(gen int64, listed []*store.SigningKey, algs []string) (*snapshot, error) {
	s := &snapshot{
		gen:     gen,
		byKID:   make(map[string]*key, len(listed)),
		current: map[string]*key{},
		next:    map[string]*key{},
	}
	for _, sk := range listed {
		k, err := parseKey(sk)
		if err != nil {
			return nil, err
		}
		if s.byKID[sk.ID] != nil {
			return nil, fmt.Errorf("key ID %q is listed twice", sk.ID)
		}
		s.byKID[sk.ID] = k
		s.keys = append(s.keys, k)
		switch sk.State {
		case store.KeyCurrent:
			s.current[sk.Alg] = k
		case store.KeyNext:
			s.next[sk.Alg] = k
		}
	}
	// The store's order (current, next, retired, newest first) with the
	// configured algorithms in order within each state, so the default
	// algorithm's current key leads the JWKS for clients that take the
	// first key.
	rank := func(alg string) int {
		if i := slices.Index(algs, alg); i >= 0 {
			return i
		}
		return len(algs)
	}
	state := map[store.KeyState]int{store.KeyCurrent: 0, store.KeyNext: 1, store.KeyRetired: 2}
	slices.SortStableFunc(s.keys, func(a, b *key) int {
		if c := state[a.meta.State] - state[b.meta.State]; c != 0 {
			return c
		}
		return rank(a.meta.Alg) - rank(b.meta.Alg)
	})
	return s, nil
}

// published returns the keys still published at now.
func (s *snapshot) published(now time.Time) []*key {
	out := make([]*key, 0, len(s.keys))
	for _, k := range s.keys {
		if k.publishedAt(now) {
			out = append(out, k)
		}
	}
	return out
}

// parseKey opens a stored key and checks that its JWKs agree with its row:
// the kid and alg in the token header come from the private JWK, and a
// relying party checks the signature with the public one.
func parseKey(sk *store.SigningKey) (*key, error) {
	var priv, pub jose.JSONWebKey
	if err := priv.UnmarshalJSON(sk.PrivateJWK); err != nil {
		return nil, fmt.Errorf("key %q: private JWK: %w", sk.ID, err)
	}
	if err := pub.UnmarshalJSON(sk.PublicJWK); err != nil {
		return nil, fmt.Errorf("key %q: public JWK: %w", sk.ID, err)
	}
	switch {
	case priv.IsPublic():
		return nil, fmt.Errorf("key %q: the private JWK holds no private key", sk.ID)
	case priv.KeyID != sk.ID:
		return nil, fmt.Errorf("key %q: private JWK has kid %q", sk.ID, priv.KeyID)
	case priv.Algorithm != sk.Alg:
		return nil, fmt.Errorf("key %q: private JWK has alg %q, the key %q", sk.ID, priv.Algorithm, sk.Alg)
	case priv.Use != "" && priv.Use != "sig":
		return nil, fmt.Errorf("key %q: private JWK is for use %q, not sig", sk.ID, priv.Use)
	}
	if err := checkKeyType(sk.Alg, priv.Key); err != nil {
		return nil, fmt.Errorf("key %q: %w", sk.ID, err)
	}
	want, err := priv.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", sk.ID, err)
	}
	got, err := pub.Thumbprint(crypto.SHA256)
	if err != nil || !bytes.Equal(got, want) || !pub.IsPublic() {
		return nil, fmt.Errorf("key %q: the public JWK is not the private key's public part", sk.ID)
	}
	if k, ok := priv.Key.(*rsa.PrivateKey); ok {
		// A key read from a JWK has only the CRT values; done once here,
		// the rest is not redone by every signature.
		k.Precompute()
	}
	priv.Use = "sig"
	meta := *sk
	meta.PrivateJWK = nil
	return &key{meta: &meta, private: &priv, public: priv.Public()}, nil
}
