// Package password hashes, verifies and vets the passwords users of the
// login app sign in with.
//
// Hashes are argon2id in the PHC string format,
//
//	$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<key>
//
// which carries its own parameters, so raising the cost later leaves old
// hashes verifiable (see Hasher.NeedsRehash). The codec, EncodeArgon2id
// and DecodeArgon2id, is exported for other argon2id hashes of Latchkey,
// such as chosen client secrets.
//
// Policy decides which new passwords are acceptable: long enough, not the
// username or email, not one of the most common passwords.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/crypto/argon2"
)

const (
	saltLen = 16
	keyLen  = 32
)

// Hasher hashes and verifies passwords. Set its fields, if at all, before
// first use, and do not copy it afterwards; it is then safe for concurrent
// use. The zero value verifies hashes but cannot make them: it has no
// parameters.
type Hasher struct {
	// Parameters of new hashes. Verify reads the parameters from each
	// hash, so changing these affects only hashes made afterwards.
	MemoryKiB uint32
	Time      uint32
	Threads   uint8

	// MaxConcurrent bounds how many argon2id computations run at once;
	// zero means runtime.NumCPU(). More than one per CPU finishes none
	// sooner, and each holds MemoryKiB, so without a bound a flood of
	// sign-in attempts could exhaust memory. Callers over the bound wait,
	// or give up when their context ends.
	MaxConcurrent int

	semOnce sync.Once
	sem     chan struct{}

	dummyOnce sync.Once
	dummy     string
}

// Default returns a Hasher with the OWASP minimum parameters for argon2id:
// 19 MiB of memory, 2 passes, 1 lane, and one computation per CPU at once.
func Default() *Hasher {
	return &Hasher{MemoryKiB: 19456, Time: 2, Threads: 1, MaxConcurrent: runtime.NumCPU()}
}

// Params returns the parameters of the hashes h makes.
func (h *Hasher) Params() Params {
	return Params{MemoryKiB: h.MemoryKiB, Time: h.Time, Threads: h.Threads}
}

// Hash returns the PHC string of a new argon2id hash of password, under a
// random salt. It refuses an empty password and parameters outside
// Params.Check's bounds, and gives up if ctx ends while it waits its turn.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if password == "" {
		return "", errors.New("hash password: password is empty")
	}
	p := h.Params()
	if err := p.Check(); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: salt: %w", err)
	}
	key, err := h.derive(ctx, p, password, salt, keyLen)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return EncodeArgon2id(p, salt, key), nil
}

// Verify reports whether password matches encoded, a hash Hash made (with
// any parameters within the bounds). A mismatch is (false, nil); an error
// means encoded is unusable (it wraps ErrInvalidHash) or ctx ended while
// Verify waited its turn.
func (h *Hasher) Verify(ctx context.Context, encoded, password string) (bool, error) {
	p, salt, key, err := DecodeArgon2id(encoded)
	if err != nil {
		return false, fmt.Errorf("verify password: %w", err)
	}
	got, err := h.derive(ctx, p, password, salt, uint32(len(key)))
	if err != nil {
		return false, fmt.Errorf("verify password: %w", err)
	}
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// VerifyDummy costs what Verify of a hash made by h costs, and matches
// nothing. Call it when there is no user by the name given, so that an
// unknown username takes as long to refuse as a wrong password and the
// time of an answer does not tell which usernames exist. It returns an
// error only when ctx ends while it waits its turn, or when h's parameters
// are outside the bounds.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) error {
	h.dummyOnce.Do(func() {
		// Nothing is ever compared against the dummy for real, so random
		// bytes serve as its key: verifying costs the same as against a
		// hash of a password, without spending a computation to make it.
		salt, key := make([]byte, saltLen), make([]byte, keyLen)
		_, _ = rand.Read(salt) // crypto/rand.Read never fails
		_, _ = rand.Read(key)
		h.dummy = EncodeArgon2id(h.Params(), salt, key)
	})
	if _, err := h.Verify(ctx, h.dummy, password); err != nil {
		return fmt.Errorf("dummy verification: %w", err)
	}
	return nil
}

// NeedsRehash reports whether encoded should be replaced by a new hash of
// the same password, made the next time the user signs in: it was made
// with other parameters or another key length than h uses, or it is
// unusable.
func (h *Hasher) NeedsRehash(encoded string) bool {
	p, _, key, err := DecodeArgon2id(encoded)
	return err != nil || p != h.Params() || len(key) != keyLen
}

// derive computes an argon2id key once a slot is free.
func (h *Hasher) derive(ctx context.Context, p Params, password string, salt []byte, n uint32) ([]byte, error) {
	if err := h.acquire(ctx); err != nil {
		return nil, err
	}
	defer h.release()
	return argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, n), nil
}

// acquire takes a slot for an argon2id computation, or gives up when ctx
// ends: a user who went away does not need their password checked.
func (h *Hasher) acquire(ctx context.Context) error {
	h.semOnce.Do(func() {
		n := h.MaxConcurrent
		if n <= 0 {
			n = runtime.NumCPU()
		}
		h.sem = make(chan struct{}, n)
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.sem }
