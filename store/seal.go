package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Sealer encrypts secrets kept at rest (private signing keys, TOTP seeds)
// with AES-256-GCM under a key derived from the system secret. Old system
// secrets still open what they sealed, so the system secret can be rotated.
type Sealer struct {
	current cipher.AEAD
	old     []cipher.AEAD
}

// ErrNoSystemSecret is returned when sealing is needed but the store was
// opened without a system secret.
var ErrNoSystemSecret = errors.New("no system secret configured")

// NewSealer derives the sealing keys for purpose (e.g. "signing-keys") from
// the current and old system secrets. Secrets must be at least 32 bytes.
func NewSealer(purpose string, secret []byte, oldSecrets ...[]byte) (*Sealer, error) {
	cur, err := deriveAEAD(purpose, secret)
	if err != nil {
		return nil, err
	}
	s := &Sealer{current: cur}
	for _, o := range oldSecrets {
		a, err := deriveAEAD(purpose, o)
		if err != nil {
			return nil, fmt.Errorf("old system secret: %w", err)
		}
		s.old = append(s.old, a)
	}
	return s, nil
}

func deriveAEAD(purpose string, secret []byte) (cipher.AEAD, error) {
	if len(secret) < 32 {
		return nil, errors.New("system secret must be at least 32 bytes")
	}
	key, err := hkdf.Key(sha256.New, secret, nil, "latchkey "+purpose, 32)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Seal encrypts plaintext; aad binds the ciphertext to its row (e.g. the key
// ID) so it cannot be moved to another.
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	nonce := make([]byte, s.current.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return s.current.Seal(nonce, nonce, plaintext, aad), nil
}

// Open decrypts what Seal produced under the current or an old secret.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	for _, a := range append([]cipher.AEAD{s.current}, s.old...) {
		if len(sealed) < a.NonceSize() {
			return nil, errors.New("open sealed data: too short")
		}
		if pt, err := a.Open(nil, sealed[:a.NonceSize()], sealed[a.NonceSize():], aad); err == nil {
			return pt, nil
		}
	}
	return nil, errors.New("open sealed data: wrong system secret or tampered data")
}
