package clientsecret

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

var argon2idPrefix = []byte("$argon2id$")

const (
	argon2SaltLen = 16
	argon2KeyLen  = 32

	// Bounds on parameters, checked on new hashes and on those read back, so
	// that a corrupt or hostile stored hash cannot make one Compare allocate
	// gigabytes or run for minutes. RFC 9106's second recommended option
	// (64 MiB, t=3, p=4) and every OWASP option are well inside them.
	maxArgon2MemoryKiB = 256 << 10 // 256 MiB
	maxArgon2Time      = 16
	maxArgon2Threads   = 16
	minArgon2SaltLen   = 8 // RFC 9106
	maxArgon2SaltLen   = 64
	minArgon2KeyLen    = 16
	maxArgon2KeyLen    = 64
)

type argon2Params struct {
	memoryKiB uint32
	time      uint32
	threads   uint8
}

func (p argon2Params) check() error {
	switch {
	case p.time < 1 || p.time > maxArgon2Time:
		return fmt.Errorf("argon2id time %d outside [1, %d]", p.time, maxArgon2Time)
	case p.threads < 1 || p.threads > maxArgon2Threads:
		return fmt.Errorf("argon2id parallelism %d outside [1, %d]", p.threads, maxArgon2Threads)
	case p.memoryKiB < 8*uint32(p.threads) || p.memoryKiB > maxArgon2MemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB outside [8×parallelism, %d]", p.memoryKiB, maxArgon2MemoryKiB)
	}
	return nil
}

func (h *Hasher) hashArgon2id(ctx context.Context, secret []byte) ([]byte, error) {
	if err := h.ready(); err != nil {
		return nil, err
	}
	if len(secret) == 0 {
		return nil, errors.New("empty client secret")
	}
	p := argon2Params{memoryKiB: h.Argon2MemoryKiB, time: h.Argon2Time, threads: h.Argon2Threads}
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("hash client secret: %w", err)
	}
	salt := make([]byte, argon2SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("hash client secret: salt: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return nil, err
	}
	key := argon2.IDKey(secret, salt, p.time, p.memoryKiB, p.threads, argon2KeyLen)
	h.release()
	return encodeArgon2id(p, salt, key), nil
}

// encodeArgon2id writes the PHC string format, as the reference
// implementation does: standard base64 alphabet without padding.
func encodeArgon2id(p argon2Params, salt, key []byte) []byte {
	b64 := base64.RawStdEncoding
	return fmt.Appendf(nil, "$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memoryKiB, p.time, p.threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// parseArgon2id reads "$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<key>".
func parseArgon2id(hash []byte) (p argon2Params, salt, key []byte, err error) {
	malformed := func(why string) (argon2Params, []byte, []byte, error) {
		return argon2Params{}, nil, nil, errors.New("malformed argon2id hash: " + why)
	}
	rest, ok := bytes.CutPrefix(hash, argon2idPrefix)
	if !ok {
		return malformed("wrong prefix")
	}
	fields := strings.Split(string(rest), "$")
	if len(fields) != 4 {
		return malformed("want version, parameters, salt and key")
	}
	if fields[0] != "v="+strconv.Itoa(argon2.Version) {
		return argon2Params{}, nil, nil, errors.New("unsupported argon2id hash version")
	}
	params := strings.Split(fields[1], ",")
	if len(params) != 3 {
		return malformed("want parameters m, t and p")
	}
	var n [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(params[i], name+"=")
		if !ok {
			return malformed("want parameters m, t and p")
		}
		if n[i], err = strconv.ParseUint(v, 10, 32); err != nil {
			return malformed("parameter " + name + " is not a number")
		}
	}
	if n[2] > maxArgon2Threads {
		return argon2Params{}, nil, nil, fmt.Errorf("argon2id hash: parallelism %d above %d", n[2], maxArgon2Threads)
	}
	p = argon2Params{memoryKiB: uint32(n[0]), time: uint32(n[1]), threads: uint8(n[2])}
	if err := p.check(); err != nil {
		return argon2Params{}, nil, nil, fmt.Errorf("argon2id hash: %w", err)
	}
	b64 := base64.RawStdEncoding
	if l := len(fields[2]); l < b64.EncodedLen(minArgon2SaltLen) || l > b64.EncodedLen(maxArgon2SaltLen) {
		return malformed("salt length")
	}
	if l := len(fields[3]); l < b64.EncodedLen(minArgon2KeyLen) || l > b64.EncodedLen(maxArgon2KeyLen) {
		return malformed("key length")
	}
	if salt, err = decodeCanonical(b64, []byte(fields[2])); err != nil {
		return malformed("salt is not base64")
	}
	if key, err = decodeCanonical(b64, []byte(fields[3])); err != nil {
		return malformed("key is not base64")
	}
	return p, salt, key, nil
}

func (h *Hasher) compareArgon2id(ctx context.Context, hash, secret []byte) error {
	p, salt, key, err := parseArgon2id(hash)
	if err != nil {
		return err
	}
	if err := h.acquire(ctx); err != nil {
		return err
	}
	got := argon2.IDKey(secret, salt, p.time, p.memoryKiB, p.threads, uint32(len(key)))
	h.release()
	if subtle.ConstantTimeCompare(got, key) != 1 {
		return fmt.Errorf("argon2id hash: %w", ErrMismatch)
	}
	return nil
}
