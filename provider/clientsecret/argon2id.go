package clientsecret

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"

	"github.com/latchkey-oidc/latchkey/login/password"
)

// Chosen client secrets are hashed like user passwords: argon2id in the
// PHC string format, through login/password's codec, which also bounds the
// parameters of new hashes and of those read back, so that a corrupt or
// hostile stored hash cannot make one Compare allocate gigabytes or run for
// minutes.

var argon2idPrefix = []byte(password.Argon2idPrefix)

const (
	argon2SaltLen = 16
	argon2KeyLen  = 32
)

func (h *Hasher) hashArgon2id(ctx context.Context, secret []byte) ([]byte, error) {
	if err := h.ready(); err != nil {
		return nil, err
	}
	if len(secret) == 0 {
		return nil, errors.New("empty client secret")
	}
	p := password.Params{MemoryKiB: h.Argon2MemoryKiB, Time: h.Argon2Time, Threads: h.Argon2Threads}
	if err := p.Check(); err != nil {
		return nil, fmt.Errorf("hash client secret: %w", err)
	}
	salt := make([]byte, argon2SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("hash client secret: salt: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return nil, err
	}
	key := argon2.IDKey(secret, salt, p.Time, p.MemoryKiB, p.Threads, argon2KeyLen)
	h.release()
	return []byte(password.EncodeArgon2id(p, salt, key)), nil
}

func (h *Hasher) compareArgon2id(ctx context.Context, hash, secret []byte) error {
	p, salt, key, err := password.DecodeArgon2id(string(hash))
	if err != nil {
		return err
	}
	if err := h.acquire(ctx); err != nil {
		return err
	}
	got := argon2.IDKey(secret, salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(key)))
	h.release()
	if subtle.ConstantTimeCompare(got, key) != 1 {
		return fmt.Errorf("argon2id hash: %w", ErrMismatch)
	}
	return nil
}
