package clientsecret_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/latchkey-oidc/latchkey/provider/clientsecret"
)

var (
	systemSecret = []byte("current-system-secret-32-bytes-at-least")
	oldSecret    = []byte("previous-system-secret-32-bytes-at-least")
	olderSecret  = []byte("an-even-older-system-secret-of-32-bytes")
)

func newHasher(t testing.TB, secret []byte, old ...[]byte) *clientsecret.Hasher {
	t.Helper()
	h, err := clientsecret.NewHasher(secret, old...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// cheap returns a Hasher whose argon2id hashes take well under a
// millisecond, for tests that are about formats rather than cost.
func cheap(t testing.TB, secret []byte, old ...[]byte) *clientsecret.Hasher {
	t.Helper()
	h := newHasher(t, secret, old...)
	h.Argon2MemoryKiB, h.Argon2Time, h.Argon2Threads = 64, 1, 1
	return h
}

func generated(t testing.TB) []byte {
	t.Helper()
	s, err := clientsecret.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return []byte(s)
}

func bcryptHash(t testing.TB, secret []byte, cost int) []byte {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword(secret, cost)
	if err != nil {
		t.Fatal(err)
	}
	return hash
}

func TestNewHasher(t *testing.T) {
	long := bytes.Repeat([]byte("k"), 32)
	tests := []struct {
		name    string
		secret  []byte
		old     [][]byte
		wantErr bool
	}{
		{"32 bytes", long, nil, false},
		{"with old secrets", long, [][]byte{oldSecret, olderSecret}, false},
		{"nil", nil, nil, true},
		{"empty", []byte{}, nil, true},
		{"31 bytes", long[:31], nil, true},
		{"short old secret", long, [][]byte{oldSecret, long[:31]}, true},
		{"empty old secret", long, [][]byte{nil}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := clientsecret.NewHasher(tt.secret, tt.old...)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewHasher: err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (h.Argon2MemoryKiB != 19456 || h.Argon2Time != 2 || h.Argon2Threads != 1) {
				t.Errorf("argon2 defaults m=%d,t=%d,p=%d, want the OWASP minimum m=19456,t=2,p=1",
					h.Argon2MemoryKiB, h.Argon2Time, h.Argon2Threads)
			}
		})
	}
}

// TestRoundTrip hashes a secret of each kind and checks that the secret
// verifies and that any other secret is a mismatch.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	h := cheap(t, systemSecret)
	secret := generated(t)
	tests := []struct {
		name       string
		hash       func() ([]byte, error)
		prefix     string
		isGenerate bool
	}{
		{"generated", func() ([]byte, error) { return h.HashGenerated(secret) }, "$hmac-sha256$v=1$", true},
		{"chosen", func() ([]byte, error) { return h.HashChosen(secret) }, "$argon2id$v=19$m=64,t=1,p=1$", false},
		{"fosite Hash", func() ([]byte, error) { return h.Hash(ctx, secret) }, "$argon2id$v=19$m=64,t=1,p=1$", false},
		{"imported bcrypt", func() ([]byte, error) { return bcryptHash(t, secret, bcrypt.MinCost), nil }, "$2a$04$", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hash, err := tt.hash()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(hash, []byte(tt.prefix)) {
				t.Fatalf("hash %q, want prefix %q", hash, tt.prefix)
			}
			if got := clientsecret.IsGenerated(hash); got != tt.isGenerate {
				t.Errorf("IsGenerated = %v, want %v", got, tt.isGenerate)
			}
			if err := h.Compare(ctx, hash, secret); err != nil {
				t.Errorf("Compare(right secret) = %v, want nil", err)
			}
			wrong := map[string][]byte{
				"other secret":         generated(t),
				"empty":                nil,
				"one byte changed":     append(bytes.Clone(secret[:len(secret)-1]), secret[len(secret)-1]^1),
				"prefix of secret":     secret[:len(secret)-1],
				"secret plus a byte":   append(bytes.Clone(secret), 'x'),
				"hash given as secret": hash,
			}
			for name, w := range wrong {
				if err := h.Compare(ctx, hash, w); !errors.Is(err, clientsecret.ErrMismatch) {
					t.Errorf("Compare(%s) = %v, want ErrMismatch", name, err)
				}
			}
		})
	}
}

func TestHashesAreSalted(t *testing.T) {
	h := cheap(t, systemSecret)
	secret := []byte("an operator's favourite secret")
	a, err := h.HashChosen(secret)
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.HashChosen(secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) {
		t.Errorf("two argon2id hashes of one secret are equal: %q", a)
	}
}

func TestHashGeneratedRefusesShortSecret(t *testing.T) {
	h := newHasher(t, systemSecret)
	tests := []struct {
		n       int
		wantErr bool
	}{
		{0, true}, {1, true}, {16, true}, {31, true}, {32, false}, {43, false}, {200, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n, " bytes"), func(t *testing.T) {
			_, err := h.HashGenerated(bytes.Repeat([]byte("s"), tt.n))
			if (err != nil) != tt.wantErr {
				t.Errorf("HashGenerated(%d bytes): err = %v, want error %v", tt.n, err, tt.wantErr)
			}
		})
	}
}

func TestHashChosenRefuses(t *testing.T) {
	tests := []struct {
		name   string
		secret []byte
		tune   func(*clientsecret.Hasher)
	}{
		{"empty secret", nil, func(*clientsecret.Hasher) {}},
		{"zero time", []byte("secret"), func(h *clientsecret.Hasher) { h.Argon2Time = 0 }},
		{"zero threads", []byte("secret"), func(h *clientsecret.Hasher) { h.Argon2Threads = 0 }},
		{"memory below 8 KiB per lane", []byte("secret"), func(h *clientsecret.Hasher) { h.Argon2MemoryKiB, h.Argon2Threads = 15, 2 }},
		{"memory above the bound", []byte("secret"), func(h *clientsecret.Hasher) { h.Argon2MemoryKiB = 1 << 22 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := cheap(t, systemSecret)
			tt.tune(h)
			if hash, err := h.HashChosen(tt.secret); err == nil {
				t.Errorf("HashChosen = %q, want an error", hash)
			}
			if hash, err := h.Hash(context.Background(), tt.secret); err == nil {
				t.Errorf("Hash = %q, want an error", hash)
			}
		})
	}
}

// TestArgon2idParameters checks that the parameters are written into the
// hash and read back from it, so a Hasher with other parameters, or another
// PHC implementation, verifies it.
func TestArgon2idParameters(t *testing.T) {
	ctx := context.Background()
	secret := []byte("chosen by an operator")
	verifier := newHasher(t, systemSecret) // default parameters
	tests := []struct {
		name    string
		m, t    uint32
		p       uint8
		wantSub string
	}{
		{"small", 64, 1, 1, "$m=64,t=1,p=1$"},
		{"more passes", 128, 3, 1, "$m=128,t=3,p=1$"},
		{"more lanes", 256, 1, 4, "$m=256,t=1,p=4$"},
		{"OWASP minimum", 19456, 2, 1, "$m=19456,t=2,p=1$"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHasher(t, systemSecret)
			h.Argon2MemoryKiB, h.Argon2Time, h.Argon2Threads = tt.m, tt.t, tt.p
			hash, err := h.HashChosen(secret)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(hash), tt.wantSub) {
				t.Fatalf("hash %q does not contain %q", hash, tt.wantSub)
			}
			if err := verifier.Compare(ctx, hash, secret); err != nil {
				t.Errorf("a default Hasher does not verify %q: %v", hash, err)
			}
			if err := verifier.Compare(ctx, hash, []byte("guess")); !errors.Is(err, clientsecret.ErrMismatch) {
				t.Errorf("wrong secret: %v, want ErrMismatch", err)
			}
		})
	}

	t.Run("PHC string built by hand", func(t *testing.T) {
		salt := []byte("sixteen byte slt")
		key := argon2.IDKey(secret, salt, 2, 32, 2, 24)
		hash := fmt.Sprintf("$argon2id$v=19$m=32,t=2,p=2$%s$%s",
			base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
		if err := verifier.Compare(ctx, []byte(hash), secret); err != nil {
			t.Errorf("Compare(%q) = %v, want nil", hash, err)
		}
	})
}

func TestBcryptImports(t *testing.T) {
	ctx := context.Background()
	h := newHasher(t, systemSecret)
	secret := []byte("a secret from hydra")
	hash := bcryptHash(t, secret, bcrypt.MinCost)
	for _, prefix := range []string{"$2a$", "$2b$", "$2y$"} {
		t.Run(prefix, func(t *testing.T) {
			hash := append([]byte(prefix), hash[len(prefix):]...)
			if err := h.Compare(ctx, hash, secret); err != nil {
				t.Errorf("Compare = %v, want nil", err)
			}
			if err := h.Compare(ctx, hash, []byte("a secret from keycloak")); !errors.Is(err, clientsecret.ErrMismatch) {
				t.Errorf("wrong secret: %v, want ErrMismatch", err)
			}
			if clientsecret.IsGenerated(hash) {
				t.Error("IsGenerated(bcrypt) = true")
			}
		})
	}
}

// TestSystemSecretRotation checks that HMAC hashes made under an old system
// secret verify while that secret is passed as old, and no longer once it is
// dropped, and that chosen and imported hashes do not depend on it at all.
func TestSystemSecretRotation(t *testing.T) {
	ctx := context.Background()
	secret := generated(t)
	hashUnder := func(sys []byte) []byte {
		hash, err := newHasher(t, sys).HashGenerated(secret)
		if err != nil {
			t.Fatal(err)
		}
		return hash
	}
	current, old, older := hashUnder(systemSecret), hashUnder(oldSecret), hashUnder(olderSecret)
	chosen, err := cheap(t, oldSecret).HashChosen(secret)
	if err != nil {
		t.Fatal(err)
	}
	imported := bcryptHash(t, secret, bcrypt.MinCost)

	tests := []struct {
		name   string
		hasher *clientsecret.Hasher
		hash   []byte
		match  bool
	}{
		{"current hash, no old secrets", newHasher(t, systemSecret), current, true},
		{"current hash, old secrets", newHasher(t, systemSecret, oldSecret, olderSecret), current, true},
		{"old hash, old secret kept", newHasher(t, systemSecret, oldSecret), old, true},
		{"older hash, second old secret", newHasher(t, systemSecret, oldSecret, olderSecret), older, true},
		{"old hash, old secret dropped", newHasher(t, systemSecret), old, false},
		{"older hash, only the newer old secret", newHasher(t, systemSecret, oldSecret), older, false},
		{"current hash, before the rotation", newHasher(t, oldSecret), current, false},
		{"argon2id hash, old secret dropped", newHasher(t, systemSecret), chosen, true},
		{"bcrypt hash, other system secret", newHasher(t, olderSecret), imported, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.hasher.Compare(ctx, tt.hash, secret)
			switch {
			case tt.match && err != nil:
				t.Errorf("Compare = %v, want nil", err)
			case !tt.match && !errors.Is(err, clientsecret.ErrMismatch):
				t.Errorf("Compare = %v, want ErrMismatch", err)
			}
		})
	}

	t.Run("new hashes use the current secret", func(t *testing.T) {
		hash, err := newHasher(t, systemSecret, oldSecret).HashGenerated(secret)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(hash, current) {
			t.Errorf("HashGenerated after rotation = %q, want %q", hash, current)
		}
	})
}

// TestMalformedHashes feeds hashes that are not well-formed and checks that
// Compare returns an error that is not ErrMismatch, without panicking or
// computing anything slow.
func TestMalformedHashes(t *testing.T) {
	ctx := context.Background()
	h := cheap(t, systemSecret)
	secret := generated(t)
	mac := strings.Repeat("A", 43)
	salt, key := "c2l4dGVlbiBieXRlIHNsdA", strings.Repeat("A", 42)+"Q" // 16 and 32 bytes
	goodBcrypt := string(bcryptHash(t, secret, bcrypt.MinCost))

	tests := []struct{ name, hash string }{
		{"empty", ""},
		{"dollar", "$"},
		{"plaintext secret", string(secret)},
		{"unknown scheme", "$pbkdf2-sha256$i=25000$c2FsdA$aGFzaA"},
		{"argon2i", "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"argon2d", "$argon2d$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"bcrypt $2$", "$2$" + goodBcrypt[3:]},
		{"bcrypt $2x$", "$2x$" + goodBcrypt[4:]},

		{"hmac: prefix only", "$hmac-sha256$"},
		{"hmac: no mac", "$hmac-sha256$v=1$"},
		{"hmac: version 2", "$hmac-sha256$v=2$" + mac},
		{"hmac: no version", "$hmac-sha256$" + mac},
		{"hmac: short mac", "$hmac-sha256$v=1$" + mac[:42]},
		{"hmac: long mac", "$hmac-sha256$v=1$" + mac + "A"},
		{"hmac: padded mac", "$hmac-sha256$v=1$" + mac + "="},
		{"hmac: standard alphabet", "$hmac-sha256$v=1$" + mac[:42] + "+"},
		{"hmac: non-zero trailing bits", "$hmac-sha256$v=1$" + mac[:42] + "B"},
		{"hmac: newline", "$hmac-sha256$v=1$" + mac[:21] + "\n" + mac[:21]},
		{"hmac: trailing dollar", "$hmac-sha256$v=1$" + mac + "$"},

		{"argon2id: prefix only", "$argon2id$"},
		{"argon2id: no key", "$argon2id$v=19$m=64,t=1,p=1$" + salt},
		{"argon2id: empty key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$"},
		{"argon2id: extra field", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "$"},
		{"argon2id: version 16", "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key},
		{"argon2id: no version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key},
		{"argon2id: parameters reordered", "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key},
		{"argon2id: missing parameter", "$argon2id$v=19$m=64,t=1$" + salt + "$" + key},
		{"argon2id: extra parameter", "$argon2id$v=19$m=64,t=1,p=1,keyid=x$" + salt + "$" + key},
		{"argon2id: time 0", "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key},
		{"argon2id: parallelism 0", "$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key},
		{"argon2id: parallelism 256", "$argon2id$v=19$m=4096,t=1,p=256$" + salt + "$" + key},
		{"argon2id: parallelism 257 (1 as a byte)", "$argon2id$v=19$m=4096,t=1,p=257$" + salt + "$" + key},
		{"argon2id: memory 0", "$argon2id$v=19$m=0,t=1,p=1$" + salt + "$" + key},
		{"argon2id: memory below 8 KiB per lane", "$argon2id$v=19$m=31,t=1,p=4$" + salt + "$" + key},
		{"argon2id: memory 4 GiB", "$argon2id$v=19$m=4194303,t=1,p=1$" + salt + "$" + key},
		{"argon2id: time 2^32-1", "$argon2id$v=19$m=64,t=4294967295,p=1$" + salt + "$" + key},
		{"argon2id: memory overflows uint32", "$argon2id$v=19$m=4294967296,t=1,p=1$" + salt + "$" + key},
		{"argon2id: negative time", "$argon2id$v=19$m=64,t=-1,p=1$" + salt + "$" + key},
		{"argon2id: signed time", "$argon2id$v=19$m=64,t=+1,p=1$" + salt + "$" + key},
		{"argon2id: hex memory", "$argon2id$v=19$m=0x40,t=1,p=1$" + salt + "$" + key},
		{"argon2id: short salt", "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + key},
		{"argon2id: salt not base64", "$argon2id$v=19$m=64,t=1,p=1$" + salt[:21] + "*$" + key},
		{"argon2id: newline in salt", "$argon2id$v=19$m=64,t=1,p=1$" + salt[:8] + "\n" + salt[8:] + "$" + key},
		{"argon2id: padded salt", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key},
		{"argon2id: short key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key[:20]},
		{"argon2id: key not base64", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key[:42] + "-"},
		{"argon2id: long key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + strings.Repeat(key, 3)},

		{"bcrypt: prefix only", "$2a$"},
		{"bcrypt: truncated", goodBcrypt[:59]},
		{"bcrypt: trailing byte", goodBcrypt + "x"},
		{"bcrypt: cost 3", goodBcrypt[:4] + "03" + goodBcrypt[6:]},
		{"bcrypt: cost 15", goodBcrypt[:4] + "15" + goodBcrypt[6:]},
		{"bcrypt: cost 31", goodBcrypt[:4] + "31" + goodBcrypt[6:]},
		{"bcrypt: cost 99", goodBcrypt[:4] + "99" + goodBcrypt[6:]},
		{"bcrypt: signed cost", goodBcrypt[:4] + "+4" + goodBcrypt[6:]},
		{"bcrypt: no dollar after cost", goodBcrypt[:6] + "x" + goodBcrypt[7:]},
		{"bcrypt: invalid character", goodBcrypt[:30] + "=" + goodBcrypt[31:]},
		{"bcrypt: all dollars", "$2a$" + strings.Repeat("$", 56)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h.Compare(ctx, []byte(tt.hash), secret)
			if err == nil || errors.Is(err, clientsecret.ErrMismatch) {
				t.Errorf("Compare = %v, want an error other than ErrMismatch", err)
			}
			if err != nil && len(tt.hash) > 8 && strings.Contains(err.Error(), tt.hash) {
				t.Errorf("error %q echoes the hash", err)
			}
			if clientsecret.IsGenerated([]byte(tt.hash)) {
				t.Error("IsGenerated = true")
			}
		})
	}
}

// TestTruncatedHashes checks every prefix of a valid hash of each kind: none
// verifies and none panics.
func TestTruncatedHashes(t *testing.T) {
	ctx := context.Background()
	h := cheap(t, systemSecret)
	secret := generated(t)
	hmacHash, err := h.HashGenerated(secret)
	if err != nil {
		t.Fatal(err)
	}
	argonHash, err := h.HashChosen(secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		hash []byte
	}{
		{"hmac", hmacHash},
		{"argon2id", argonHash},
		{"bcrypt", bcryptHash(t, secret, bcrypt.MinCost)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for n := range len(tt.hash) {
				if err := h.Compare(ctx, tt.hash[:n], secret); err == nil {
					t.Errorf("Compare(%q) = nil, want an error", tt.hash[:n])
				}
			}
			if err := h.Compare(ctx, tt.hash, secret); err != nil {
				t.Errorf("Compare(whole hash) = %v", err)
			}
		})
	}
}

// TestTamperedHashes changes one character of the MAC or key of a valid
// hash of each kind: the result is well-formed and must be a mismatch.
func TestTamperedHashes(t *testing.T) {
	ctx := context.Background()
	h := cheap(t, systemSecret)
	secret := generated(t)
	hmacHash, err := h.HashGenerated(secret)
	if err != nil {
		t.Fatal(err)
	}
	argonHash, err := h.HashChosen(secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		hash []byte
	}{
		{"hmac", hmacHash},
		{"argon2id", argonHash},
		{"bcrypt", bcryptHash(t, secret, bcrypt.MinCost)},
	} {
		// The second and the last but one characters of the MAC or key
		// carry data bits only, in both base64 alphabets and bcrypt's.
		for _, back := range []int{2, len(tt.hash) - strings.LastIndexByte(string(tt.hash), '$') - 2} {
			t.Run(fmt.Sprintf("%s/%d from the end", tt.name, back), func(t *testing.T) {
				hash := bytes.Clone(tt.hash)
				i := len(hash) - back
				if hash[i] == 'A' {
					hash[i] = 'B'
				} else {
					hash[i] = 'A'
				}
				if err := h.Compare(ctx, hash, secret); !errors.Is(err, clientsecret.ErrMismatch) {
					t.Errorf("Compare(%q) = %v, want ErrMismatch", hash, err)
				}
			})
		}
	}
}

// TestZeroHasher checks that a Hasher not made by NewHasher fails instead of
// hashing with an empty pepper or blocking.
func TestZeroHasher(t *testing.T) {
	ctx := context.Background()
	var h clientsecret.Hasher
	secret := generated(t)
	good := cheap(t, systemSecret)
	hmacHash, _ := good.HashGenerated(secret)
	argonHash, _ := good.HashChosen(secret)
	if _, err := h.HashGenerated(secret); err == nil {
		t.Error("HashGenerated succeeded")
	}
	if _, err := h.HashChosen(secret); err == nil {
		t.Error("HashChosen succeeded")
	}
	if _, err := h.Hash(ctx, secret); err == nil {
		t.Error("Hash succeeded")
	}
	for _, hash := range [][]byte{hmacHash, argonHash, bcryptHash(t, secret, bcrypt.MinCost)} {
		if err := h.Compare(ctx, hash, secret); err == nil {
			t.Errorf("Compare(%.12q…) succeeded", hash)
		}
	}
	var nilHasher *clientsecret.Hasher
	if err := nilHasher.Compare(ctx, hmacHash, secret); err == nil {
		t.Error("Compare on a nil Hasher succeeded")
	}
}

// TestCanceledContext checks that slow hashes are not computed for a request
// that has gone away, while the HMAC, which costs nothing, still is.
func TestCanceledContext(t *testing.T) {
	h := cheap(t, systemSecret)
	secret := generated(t)
	hmacHash, _ := h.HashGenerated(secret)
	argonHash, _ := h.HashChosen(secret)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		hash    []byte
		wantErr error
	}{
		{"hmac", hmacHash, nil},
		{"argon2id", argonHash, context.Canceled},
		{"bcrypt", bcryptHash(t, secret, bcrypt.MinCost), context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := h.Compare(ctx, tt.hash, secret); !errors.Is(err, tt.wantErr) {
				t.Errorf("Compare = %v, want %v", err, tt.wantErr)
			}
		})
	}
	if _, err := h.Hash(ctx, secret); !errors.Is(err, context.Canceled) {
		t.Errorf("Hash = %v, want context.Canceled", err)
	}
}

// TestConcurrentCompare runs every kind of Compare from many goroutines at
// once, for the race detector and the bound on slow computations.
func TestConcurrentCompare(t *testing.T) {
	ctx := context.Background()
	h := cheap(t, systemSecret, oldSecret)
	secret := generated(t)
	hmacHash, _ := h.HashGenerated(secret)
	argonHash, _ := h.HashChosen(secret)
	hashes := [][]byte{hmacHash, argonHash, bcryptHash(t, secret, bcrypt.MinCost)}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 32 {
		wg.Go(func() {
			hash := hashes[i%len(hashes)]
			if err := h.Compare(ctx, hash, secret); err != nil {
				errs <- err
			}
			if err := h.Compare(ctx, hash, []byte("wrong")); !errors.Is(err, clientsecret.ErrMismatch) {
				errs <- fmt.Errorf("wrong secret: %v", err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestGenerate(t *testing.T) {
	h := newHasher(t, systemSecret)
	seen := make(map[string]bool)
	for range 1000 {
		s, err := clientsecret.Generate()
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != 43 {
			t.Fatalf("Generate() = %q, %d characters, want 43", s, len(s))
		}
		raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
		if err != nil || len(raw) != 32 {
			t.Fatalf("Generate() = %q is not 32 bytes of base64url: %v", s, err)
		}
		if seen[s] {
			t.Fatalf("Generate() returned %q twice", s)
		}
		seen[s] = true
	}
	// Whatever Generate returns, HashGenerated accepts.
	s, _ := clientsecret.Generate()
	if _, err := h.HashGenerated([]byte(s)); err != nil {
		t.Errorf("HashGenerated(Generate()) = %v", err)
	}
}

func TestIsGenerated(t *testing.T) {
	h := cheap(t, systemSecret)
	secret := generated(t)
	hmacHash, _ := h.HashGenerated(secret)
	argonHash, _ := h.HashChosen(secret)
	random := make([]byte, 60)
	rand.Read(random)
	tests := []struct {
		name string
		hash []byte
		want bool
	}{
		{"hmac", hmacHash, true},
		{"hmac under another secret", func() []byte { b, _ := newHasher(t, oldSecret).HashGenerated(secret); return b }(), true},
		{"argon2id", argonHash, false},
		{"bcrypt", bcryptHash(t, secret, bcrypt.MinCost), false},
		{"truncated hmac", hmacHash[:len(hmacHash)-1], false},
		{"nil", nil, false},
		{"random", random, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clientsecret.IsGenerated(tt.hash); got != tt.want {
				t.Errorf("IsGenerated(%q) = %v, want %v", tt.hash, got, tt.want)
			}
		})
	}
}
