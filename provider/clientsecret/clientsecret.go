// Package clientsecret hashes and verifies OAuth client secrets; its Hasher is
// fosite's Config.ClientSecretsHasher. fosite compares on every client
// authentication (token, PAR, device authorization, revocation,
// introspection), once per stored hash, so the usual case has to cost
// microseconds, not the tens of milliseconds of a password KDF.
//
// A stored hash says what it is:
//
//   - "$hmac-sha256$v=1$<mac>": a secret the server generated (Generate,
//     256 random bits), under an HMAC-SHA256 keyed with a pepper derived from
//     the system secret. Nobody can guess such a secret, so a slow KDF would
//     buy nothing.
//   - "$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<key>" (PHC string
//     format): a secret an operator chose, which may be guessable.
//   - "$2a$", "$2b$", "$2y$": bcrypt hashes of clients imported from Hydra;
//     they still verify, but this package never makes them.
//
// HMAC hashes made under an old system secret keep verifying as long as the
// old secret is passed to NewHasher.
package clientsecret

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"

	"github.com/ory/fosite"
)

var _ fosite.Hasher = (*Hasher)(nil)

// ErrMismatch is wrapped by the error Compare returns when a well-formed hash
// does not match the secret. Other errors mean the hash itself is unusable.
var ErrMismatch = errors.New("client secret does not match")

const (
	// minSystemSecret is the shortest system secret NewHasher accepts.
	minSystemSecret = 32
	// minGeneratedSecret is the shortest secret HashGenerated accepts: below
	// 256 bits an unsalted fast hash is no longer safe against guessing.
	minGeneratedSecret = 32
	// generatedBytes is how much randomness Generate puts in a secret.
	generatedBytes = 32
	// pepperPurpose is the HKDF info that separates the client-secret pepper
	// from every other key derived from the system secret.
	pepperPurpose = "latchkey client secrets"
)

// Hasher hashes and verifies client secrets. Make one with NewHasher; set
// the Argon2 fields, if at all, before first use. It is then safe for
// concurrent use.
type Hasher struct {
	// Argon2 parameters of new hashes of chosen secrets (Hash, HashChosen).
	// NewHasher sets the OWASP minimum: 19 MiB, 2 passes, 1 lane. Compare
	// reads the parameters from each hash, so changing these affects only
	// hashes made afterwards.
	Argon2MemoryKiB uint32
	Argon2Time      uint32
	Argon2Threads   uint8

	peppers [][]byte // HMAC keys: the current system secret's first

	// slow bounds how many argon2id and bcrypt computations run at once.
	// More than one per CPU finishes none sooner, and every argon2id
	// computation holds Argon2MemoryKiB, so without a bound a flood of
	// wrong secrets for a chosen-secret client could exhaust memory.
	slow chan struct{}
}

// NewHasher returns a Hasher whose pepper derives from systemSecret, and
// which still verifies HMAC hashes made under any of oldSecrets. Every secret
// must be at least 32 bytes.
func NewHasher(systemSecret []byte, oldSecrets ...[]byte) (*Hasher, error) {
	h := &Hasher{
		Argon2MemoryKiB: 19456,
		Argon2Time:      2,
		Argon2Threads:   1,
		slow:            make(chan struct{}, runtime.GOMAXPROCS(0)),
	}
	p, err := derivePepper(systemSecret)
	if err != nil {
		return nil, err
	}
	h.peppers = append(h.peppers, p)
	for i, old := range oldSecrets {
		p, err := derivePepper(old)
		if err != nil {
			return nil, fmt.Errorf("old system secret %d: %w", i+1, err)
		}
		h.peppers = append(h.peppers, p)
	}
	return h, nil
}

func derivePepper(secret []byte) ([]byte, error) {
	if len(secret) < minSystemSecret {
		return nil, fmt.Errorf("system secret must be at least %d bytes, got %d", minSystemSecret, len(secret))
	}
	p, err := hkdf.Key(sha256.New, secret, nil, pepperPurpose, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("derive client secret pepper: %w", err)
	}
	return p, nil
}

var errNotReady = errors.New("clientsecret: Hasher not made by NewHasher")

func (h *Hasher) ready() error {
	if h == nil || len(h.peppers) == 0 || h.slow == nil {
		return errNotReady
	}
	return nil
}

// Hash implements fosite.Hasher. It hashes with argon2id, the safe choice
// for a secret nothing is known about.
func (h *Hasher) Hash(ctx context.Context, secret []byte) ([]byte, error) {
	return h.hashArgon2id(ctx, secret)
}

// HashChosen hashes a secret an operator chose, with argon2id.
func (h *Hasher) HashChosen(secret []byte) ([]byte, error) {
	return h.hashArgon2id(context.Background(), secret)
}

// HashGenerated hashes a secret the server generated (see Generate) with the
// peppered HMAC. It refuses secrets shorter than 32 bytes, which could be
// guessed offline from a leaked hash and pepper.
func (h *Hasher) HashGenerated(secret []byte) ([]byte, error) {
	if err := h.ready(); err != nil {
		return nil, err
	}
	if len(secret) < minGeneratedSecret {
		return nil, fmt.Errorf("generated client secret must be at least %d bytes, got %d; hash shorter secrets with HashChosen", minGeneratedSecret, len(secret))
	}
	return encodeHMAC(macOf(h.peppers[0], secret)), nil
}

// Compare implements fosite.Hasher: it returns nil if secret matches hash, an
// error wrapping ErrMismatch if it does not, and another error if hash is
// empty, malformed or of an unknown kind, or if ctx ends before a slow hash
// could be computed.
func (h *Hasher) Compare(ctx context.Context, hash, secret []byte) error {
	if err := h.ready(); err != nil {
		return err
	}
	switch {
	case len(hash) == 0:
		return errors.New("empty client secret hash")
	case bytes.HasPrefix(hash, hmacPrefix):
		return h.compareHMAC(hash, secret)
	case bytes.HasPrefix(hash, argon2idPrefix):
		return h.compareArgon2id(ctx, hash, secret)
	case isBcrypt(hash):
		return h.compareBcrypt(ctx, hash, secret)
	}
	// The hash is not echoed: it may be a secret stored in clear by mistake.
	return errors.New("unknown client secret hash format")
}

// Generate returns a new server-generated client secret: 32 random bytes,
// base64url without padding (43 characters). Hash it with HashGenerated.
func Generate() (string, error) {
	b := make([]byte, generatedBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate client secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// IsGenerated reports whether hash is a well-formed hash of a server-generated
// secret (the HMAC kind), as opposed to a chosen or imported one.
func IsGenerated(hash []byte) bool {
	_, err := parseHMAC(hash)
	return err == nil
}

// acquire takes a slot for a slow hash computation, or gives up when ctx
// ends: a client that went away does not need its secret checked.
func (h *Hasher) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case h.slow <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.slow }

// decodeCanonical decodes s and insists it was the one encoding of its bytes,
// so that a hash has exactly one spelling (the decoders skip CR and LF).
func decodeCanonical(enc *base64.Encoding, s []byte) ([]byte, error) {
	b := make([]byte, enc.DecodedLen(len(s)))
	n, err := enc.Strict().Decode(b, s)
	if err != nil {
		return nil, err
	}
	b = b[:n]
	if enc.EncodedLen(n) != len(s) {
		return nil, errors.New("non-canonical base64")
	}
	return b, nil
}
