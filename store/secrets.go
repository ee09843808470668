package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
)

// secretPairwise names the key of pairwise subject identifiers in
// provider_secrets; it is also the additional data its sealed value is
// bound to.
const secretPairwise = "pairwise-subjects"

// providerSecretSize is the length of every provider secret: 256 bits.
const providerSecretSize = 32

// PairwiseSecret returns the key the provider derives pairwise subject
// identifiers with (OpenID Connect Core §8.1), creating it on first use.
// Every replica gets the same key: when several create it at once, the
// first insert wins and the others read it. It is sealed under the system
// secret, which may be rotated (with the old secret in OldSystemSecrets)
// without changing the key, so the sub a relying party knows a user by
// stays the same.
func (s *Store) PairwiseSecret(ctx context.Context) ([]byte, error) {
	key, err := s.providerSecret(ctx, secretPairwise, s.pairwiseSeal)
	if err != nil {
		return nil, fmt.Errorf("pairwise secret: %w", err)
	}
	return key, nil
}

// providerSecret reads the secret name, inserting a random one first when
// there is none. The insert does nothing when another replica inserted
// meanwhile, so everyone reads the value that was stored first.
func (s *Store) providerSecret(ctx context.Context, name string, seal *Sealer) ([]byte, error) {
	if seal == nil {
		return nil, ErrNoSystemSecret
	}
	const read = `SELECT sealed FROM provider_secrets WHERE name = ?`
	var sealed []byte
	err := s.get(ctx, &sealed, read, name)
	if errors.Is(err, ErrNotFound) {
		fresh := make([]byte, providerSecretSize)
		_, _ = rand.Read(fresh) // crypto/rand.Read never fails
		b, serr := seal.Seal(fresh, []byte(name))
		if serr != nil {
			return nil, serr
		}
		if _, err := s.exec(ctx, `INSERT INTO provider_secrets (name, sealed, created_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO NOTHING`, name, b, s.now()); err != nil {
			return nil, fmt.Errorf("create: %w", err)
		}
		err = s.get(ctx, &sealed, read, name)
	}
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	secret, err := seal.Open(sealed, []byte(name))
	if err != nil {
		return nil, err
	}
	if len(secret) != providerSecretSize {
		return nil, fmt.Errorf("stored secret has %d bytes, want %d", len(secret), providerSecretSize)
	}
	return secret, nil
}
