package password_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/latchkey-oidc/latchkey/login/password"
)

// cheap returns a Hasher whose hashes take well under a millisecond, so
// the tests stay fast; TestDefault is the one test of real parameters.
func cheap() *password.Hasher {
	return &password.Hasher{MemoryKiB: 64, Time: 1, Threads: 1, MaxConcurrent: 2}
}

func mustHash(t testing.TB, h *password.Hasher, pw string) string {
	t.Helper()
	hash, err := h.Hash(context.Background(), pw)
	if err != nil {
		t.Fatalf("Hash(%q): %v", pw, err)
	}
	return hash
}

func TestHashVerify(t *testing.T) {
	ctx := context.Background()
	h := cheap()
	tests := []struct {
		name, password, attempt string
		want                    bool
	}{
		{"same", "correct horse battery staple", "correct horse battery staple", true},
		{"unicode", "pässwörd-Ωμέγα-密码", "pässwörd-Ωμέγα-密码", true},
		{"long", strings.Repeat("x", 1000), strings.Repeat("x", 1000), true},
		{"wrong", "correct horse battery staple", "correct horse battery stable", false},
		{"case matters", "Correct Horse", "correct horse", false},
		{"prefix", "correct horse battery staple", "correct horse", false},
		{"empty attempt", "correct horse battery staple", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hash := mustHash(t, h, tt.password)
			if !strings.HasPrefix(hash, "$argon2id$v=19$m=64,t=1,p=1$") {
				t.Fatalf("hash %q does not start with the PHC prefix and parameters", hash)
			}
			if strings.Contains(hash, tt.password) {
				t.Fatalf("hash %q contains the password", hash)
			}
			ok, err := h.Verify(ctx, hash, tt.attempt)
			if err != nil || ok != tt.want {
				t.Errorf("Verify = %v, %v; want %v, nil", ok, err, tt.want)
			}
		})
	}

	t.Run("salted", func(t *testing.T) {
		if a, b := mustHash(t, h, "same password"), mustHash(t, h, "same password"); a == b {
			t.Errorf("two hashes of one password are equal: %q", a)
		}
	})
	t.Run("empty password refused", func(t *testing.T) {
		if hash, err := h.Hash(ctx, ""); err == nil {
			t.Errorf("Hash(\"\") = %q, want an error", hash)
		}
	})
}

// TestVerifyReadsParameters checks that Verify takes the parameters from
// the hash, so a Hasher with other parameters, or another PHC
// implementation, verifies it.
func TestVerifyReadsParameters(t *testing.T) {
	ctx := context.Background()
	verifier := &password.Hasher{} // no parameters of its own
	tests := []struct {
		name string
		p    password.Params
		want string
	}{
		{"small", password.Params{MemoryKiB: 64, Time: 1, Threads: 1}, "$m=64,t=1,p=1$"},
		{"more passes", password.Params{MemoryKiB: 128, Time: 3, Threads: 1}, "$m=128,t=3,p=1$"},
		{"more lanes", password.Params{MemoryKiB: 256, Time: 1, Threads: 4}, "$m=256,t=1,p=4$"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &password.Hasher{MemoryKiB: tt.p.MemoryKiB, Time: tt.p.Time, Threads: tt.p.Threads}
			hash := mustHash(t, h, "hunter2 hunter2")
			if !strings.Contains(hash, tt.want) {
				t.Fatalf("hash %q does not contain %q", hash, tt.want)
			}
			if ok, err := verifier.Verify(ctx, hash, "hunter2 hunter2"); !ok || err != nil {
				t.Errorf("Verify = %v, %v; want true", ok, err)
			}
		})
	}

	t.Run("PHC string built by hand", func(t *testing.T) {
		salt := []byte("sixteen byte slt")
		key := argon2.IDKey([]byte("hunter2"), salt, 2, 32, 2, 24)
		hash := fmt.Sprintf("$argon2id$v=19$m=32,t=2,p=2$%s$%s",
			base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
		if ok, err := verifier.Verify(ctx, hash, "hunter2"); !ok || err != nil {
			t.Errorf("Verify(%q) = %v, %v; want true", hash, ok, err)
		}
	})
}

// TestTamperedHash changes one part of a valid hash at a time: a changed
// salt, key or parameter makes a well-formed hash that no longer matches;
// a broken one is an error wrapping ErrInvalidHash, never a match.
func TestTamperedHash(t *testing.T) {
	ctx := context.Background()
	h := cheap()
	const pw = "tamper-proof password"
	hash := mustHash(t, h, pw)
	parts := strings.Split(hash, "$") // "", argon2id, v=19, params, salt, key
	join := func(params, salt, key string) string {
		return strings.Join([]string{"", "argon2id", "v=19", params, salt, key}, "$")
	}
	flip := func(s string) string { // another canonical base64 string of the same length
		c := byte('A')
		if s[0] == 'A' {
			c = 'B'
		}
		return string(c) + s[1:]
	}
	tests := []struct {
		name      string
		hash      string
		wantError bool
	}{
		{"salt changed", join(parts[3], flip(parts[4]), parts[5]), false},
		{"key changed", join(parts[3], parts[4], flip(parts[5])), false},
		{"memory changed", join("m=72,t=1,p=1", parts[4], parts[5]), false},
		{"time changed", join("m=64,t=2,p=1", parts[4], parts[5]), false},
		{"lanes changed", join("m=64,t=1,p=2", parts[4], parts[5]), false},
		{"key truncated", join(parts[3], parts[4], parts[5][:len(parts[5])-2]), true},
		{"key too short", join(parts[3], parts[4], parts[5][:20]), true},
		{"argon2i", strings.Replace(hash, "$argon2id$", "$argon2i$", 1), true},
		{"version 16", strings.Replace(hash, "$v=19$", "$v=16$", 1), true},
		{"trailing dollar", hash + "$", true},
		{"empty", "", true},
		{"plaintext", pw, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := h.Verify(ctx, tt.hash, pw)
			if ok {
				t.Fatal("Verify matched a tampered hash")
			}
			if tt.wantError != (err != nil) {
				t.Fatalf("Verify error = %v, want an error: %v", err, tt.wantError)
			}
			if err != nil {
				if !errors.Is(err, password.ErrInvalidHash) {
					t.Errorf("error %v does not wrap ErrInvalidHash", err)
				}
				if len(tt.hash) > 8 && strings.Contains(err.Error(), tt.hash) {
					t.Errorf("error %q echoes the hash", err)
				}
			}
		})
	}
}

// TestHashRefusesParameters checks that a Hasher with parameters outside
// the bounds makes no hash.
func TestHashRefusesParameters(t *testing.T) {
	tests := []struct {
		name string
		h    *password.Hasher
	}{
		{"zero value", &password.Hasher{}},
		{"zero time", &password.Hasher{MemoryKiB: 64, Time: 0, Threads: 1}},
		{"zero threads", &password.Hasher{MemoryKiB: 64, Time: 1, Threads: 0}},
		{"memory below 8 KiB per lane", &password.Hasher{MemoryKiB: 15, Time: 1, Threads: 2}},
		{"memory above the bound", &password.Hasher{MemoryKiB: password.MaxMemoryKiB + 1, Time: 1, Threads: 1}},
		{"time above the bound", &password.Hasher{MemoryKiB: 64, Time: password.MaxTime + 1, Threads: 1}},
		{"threads above the bound", &password.Hasher{MemoryKiB: 1024, Time: 1, Threads: password.MaxThreads + 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if hash, err := tt.h.Hash(context.Background(), "a fine password"); err == nil {
				t.Errorf("Hash = %q, want an error", hash)
			}
		})
	}
}

func TestNeedsRehash(t *testing.T) {
	h := cheap()
	current := mustHash(t, h, "some password")
	other := mustHash(t, &password.Hasher{MemoryKiB: 128, Time: 1, Threads: 1}, "some password")
	salt := base64.RawStdEncoding.EncodeToString(make([]byte, 16))
	key16 := base64.RawStdEncoding.EncodeToString(make([]byte, 16))
	tests := []struct {
		name string
		hash string
		want bool
	}{
		{"same parameters", current, false},
		{"other memory", other, true},
		{"other time", mustHash(t, &password.Hasher{MemoryKiB: 64, Time: 2, Threads: 1}, "x"), true},
		{"other lanes", mustHash(t, &password.Hasher{MemoryKiB: 64, Time: 1, Threads: 2}, "x"), true},
		{"shorter key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key16, true},
		{"unusable", "not a hash", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.NeedsRehash(tt.hash); got != tt.want {
				t.Errorf("NeedsRehash(%q) = %v, want %v", tt.hash, got, tt.want)
			}
		})
	}
}

func TestVerifyDummy(t *testing.T) {
	ctx := context.Background()
	h := cheap()
	for _, pw := range []string{"", "x", "a fine password", strings.Repeat("é", 500), "\x00\xff"} {
		if err := h.VerifyDummy(ctx, pw); err != nil {
			t.Errorf("VerifyDummy(%q) = %v", pw, err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := h.VerifyDummy(cancelled, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("VerifyDummy with a cancelled context = %v, want context.Canceled", err)
	}
	if err := (&password.Hasher{}).VerifyDummy(ctx, "x"); err == nil {
		t.Error("VerifyDummy of a Hasher without parameters succeeded")
	}
}

// TestDefault is the one test of the real parameters: OWASP's minimum, and
// a dummy verification that costs about what a real one does.
func TestDefault(t *testing.T) {
	ctx := context.Background()
	h := password.Default()
	if got, want := h.Params(), (password.Params{MemoryKiB: 19456, Time: 2, Threads: 1}); got != want {
		t.Fatalf("Default().Params() = %+v, want %+v", got, want)
	}
	if h.MaxConcurrent < 1 {
		t.Errorf("Default().MaxConcurrent = %d", h.MaxConcurrent)
	}
	hash := mustHash(t, h, "a default password")
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q", hash)
	}
	if h.NeedsRehash(hash) {
		t.Error("NeedsRehash of a fresh hash")
	}

	timeOf := func(f func() error) time.Duration {
		best := time.Duration(1<<63 - 1)
		for range 3 {
			start := time.Now()
			if err := f(); err != nil {
				t.Fatal(err)
			}
			best = min(best, time.Since(start))
		}
		return best
	}
	verify := timeOf(func() error { _, err := h.Verify(ctx, hash, "wrong password"); return err })
	dummy := timeOf(func() error { return h.VerifyDummy(ctx, "wrong password") })
	// Generous bounds: only a dummy that skips the work, or does it twice,
	// should fail this on a loaded machine.
	if dummy < verify/3 || dummy > verify*3 {
		t.Errorf("VerifyDummy took %v, Verify %v: want about the same", dummy, verify)
	}
}
