package password

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2idPrefix starts every argon2id hash in the PHC string format.
const Argon2idPrefix = "$argon2id$"

// Bounds on argon2id parameters, checked on new hashes and on those read
// back, so that a corrupt or hostile stored hash cannot make one
// verification allocate gigabytes or run for minutes. RFC 9106's second
// recommended option (64 MiB, t=3, p=4) and every OWASP option are well
// inside them.
const (
	MaxMemoryKiB = 256 << 10 // 256 MiB
	MaxTime      = 16
	MaxThreads   = 16
	MinSaltLen   = 8 // RFC 9106
	MaxSaltLen   = 64
	MinKeyLen    = 16
	MaxKeyLen    = 64
)

// ErrInvalidHash is wrapped by every error DecodeArgon2id returns: the
// stored hash is unusable, as opposed to a password that does not match it.
var ErrInvalidHash = errors.New("invalid argon2id hash")

// Params are the cost parameters of an argon2id hash.
type Params struct {
	MemoryKiB uint32
	Time      uint32 // passes over the memory
	Threads   uint8  // lanes (parallelism)
}

// Check reports parameters outside the bounds (MaxMemoryKiB, MaxTime,
// MaxThreads) or below what argon2id accepts: at least one pass and one
// lane, and 8 KiB of memory per lane.
func (p Params) Check() error {
	switch {
	case p.Time < 1 || p.Time > MaxTime:
		return fmt.Errorf("argon2id time %d outside [1, %d]", p.Time, MaxTime)
	case p.Threads < 1 || p.Threads > MaxThreads:
		return fmt.Errorf("argon2id parallelism %d outside [1, %d]", p.Threads, MaxThreads)
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > MaxMemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB outside [8×parallelism, %d]", p.MemoryKiB, MaxMemoryKiB)
	}
	return nil
}

// EncodeArgon2id writes an argon2id hash in the PHC string format, as the
// reference implementation does:
//
//	$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<key>
//
// with salt and key in the standard base64 alphabet without padding. It
// does not check its arguments; DecodeArgon2id does, on the way back.
func EncodeArgon2id(p Params, salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("%sv=%d$m=%d,t=%d,p=%d$%s$%s", Argon2idPrefix,
		argon2.Version, p.MemoryKiB, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// DecodeArgon2id reads a hash EncodeArgon2id wrote. It accepts exactly one
// spelling of each hash: version 19, the parameters m, t and p in that
// order as plain decimals, canonical unpadded base64. It refuses
// parameters outside Params.Check's bounds, salts outside [MinSaltLen,
// MaxSaltLen] bytes and keys outside [MinKeyLen, MaxKeyLen] bytes, before
// decoding anything large. Errors wrap ErrInvalidHash and never contain
// the hash.
func DecodeArgon2id(encoded string) (p Params, salt, key []byte, err error) {
	invalid := func(format string, args ...any) (Params, []byte, []byte, error) {
		return Params{}, nil, nil, fmt.Errorf("%w: %s", ErrInvalidHash, fmt.Sprintf(format, args...))
	}
	rest, ok := strings.CutPrefix(encoded, Argon2idPrefix)
	if !ok {
		return invalid("wrong prefix")
	}
	fields := strings.Split(rest, "$")
	if len(fields) != 4 {
		return invalid("want version, parameters, salt and key")
	}
	if fields[0] != "v="+strconv.Itoa(argon2.Version) {
		return invalid("unsupported version")
	}
	params := strings.Split(fields[1], ",")
	if len(params) != 3 {
		return invalid("want parameters m, t and p")
	}
	var n [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(params[i], name+"=")
		if !ok {
			return invalid("want parameters m, t and p")
		}
		if n[i], ok = parseDecimal(v); !ok {
			return invalid("parameter %s is not a decimal number", name)
		}
	}
	// Compared before the conversion to uint8, which would wrap 257 to 1.
	if n[2] > MaxThreads {
		return invalid("parallelism %d above %d", n[2], MaxThreads)
	}
	p = Params{MemoryKiB: uint32(n[0]), Time: uint32(n[1]), Threads: uint8(n[2])}
	if err := p.Check(); err != nil {
		return Params{}, nil, nil, fmt.Errorf("%w: %w", ErrInvalidHash, err)
	}
	b64 := base64.RawStdEncoding
	if l := len(fields[2]); l < b64.EncodedLen(MinSaltLen) || l > b64.EncodedLen(MaxSaltLen) {
		return invalid("salt length")
	}
	if l := len(fields[3]); l < b64.EncodedLen(MinKeyLen) || l > b64.EncodedLen(MaxKeyLen) {
		return invalid("key length")
	}
	if salt, err = decodeCanonical(fields[2]); err != nil {
		return invalid("salt is not canonical base64")
	}
	if key, err = decodeCanonical(fields[3]); err != nil {
		return invalid("key is not canonical base64")
	}
	return p, salt, key, nil
}

// parseDecimal parses a uint32 written as plain decimal digits without a
// sign or leading zeros, so that a hash has one spelling.
func parseDecimal(s string) (uint64, bool) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return n, err == nil
}

// decodeCanonical decodes unpadded standard base64 and insists it was the
// one encoding of its bytes: Strict refuses non-zero trailing bits, and the
// length check refuses the CR and LF the decoder skips.
func decodeCanonical(s string) ([]byte, error) {
	enc := base64.RawStdEncoding.Strict()
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if enc.EncodedLen(len(b)) != len(s) {
		return nil, errors.New("non-canonical base64")
	}
	return b, nil
}
