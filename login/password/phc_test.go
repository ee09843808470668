package password_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/latchkey-oidc/latchkey/login/password"
)

func TestArgon2idCodecRoundTrip(t *testing.T) {
	tests := []struct {
		name      string
		p         password.Params
		salt, key []byte
		want      string
	}{
		{"OWASP", password.Params{MemoryKiB: 19456, Time: 2, Threads: 1},
			[]byte("sixteen byte slt"), bytes.Repeat([]byte{0xfb}, 32),
			"$argon2id$v=19$m=19456,t=2,p=1$c2l4dGVlbiBieXRlIHNsdA$+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/s"},
		{"bounds", password.Params{MemoryKiB: password.MaxMemoryKiB, Time: password.MaxTime, Threads: password.MaxThreads},
			bytes.Repeat([]byte{1}, password.MaxSaltLen), bytes.Repeat([]byte{2}, password.MaxKeyLen), ""},
		{"smallest", password.Params{MemoryKiB: 8, Time: 1, Threads: 1},
			bytes.Repeat([]byte{3}, password.MinSaltLen), bytes.Repeat([]byte{4}, password.MinKeyLen), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := password.EncodeArgon2id(tt.p, tt.salt, tt.key)
			if tt.want != "" && enc != tt.want {
				t.Errorf("EncodeArgon2id = %q, want %q", enc, tt.want)
			}
			p, salt, key, err := password.DecodeArgon2id(enc)
			if err != nil {
				t.Fatalf("DecodeArgon2id(%q): %v", enc, err)
			}
			if p != tt.p || !bytes.Equal(salt, tt.salt) || !bytes.Equal(key, tt.key) {
				t.Errorf("DecodeArgon2id = %+v %x %x, want %+v %x %x", p, salt, key, tt.p, tt.salt, tt.key)
			}
		})
	}
}

// TestDecodeArgon2idRefuses feeds hashes that are malformed or whose
// parameters are out of bounds: each is an error wrapping ErrInvalidHash,
// and none is read far enough to cost anything.
func TestDecodeArgon2idRefuses(t *testing.T) {
	salt, key := "c2l4dGVlbiBieXRlIHNsdA", strings.Repeat("A", 42)+"Q" // 16 and 32 bytes
	tests := []struct{ name, hash string }{
		{"empty", ""},
		{"prefix only", "$argon2id$"},
		{"argon2i", "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"no key", "$argon2id$v=19$m=64,t=1,p=1$" + salt},
		{"empty key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$"},
		{"extra field", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "$"},
		{"version 16", "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key},
		{"no version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key},
		{"parameters reordered", "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key},
		{"missing parameter", "$argon2id$v=19$m=64,t=1$" + salt + "$" + key},
		{"extra parameter", "$argon2id$v=19$m=64,t=1,p=1,keyid=x$" + salt + "$" + key},
		{"empty parameter", "$argon2id$v=19$m=,t=1,p=1$" + salt + "$" + key},
		{"time 0", "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key},
		{"time 17", "$argon2id$v=19$m=64,t=17,p=1$" + salt + "$" + key},
		{"time 2^32-1", "$argon2id$v=19$m=64,t=4294967295,p=1$" + salt + "$" + key},
		{"parallelism 0", "$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key},
		{"parallelism 17", "$argon2id$v=19$m=4096,t=1,p=17$" + salt + "$" + key},
		{"parallelism 257 (1 as a byte)", "$argon2id$v=19$m=4096,t=1,p=257$" + salt + "$" + key},
		{"memory 0", "$argon2id$v=19$m=0,t=1,p=1$" + salt + "$" + key},
		{"memory below 8 KiB per lane", "$argon2id$v=19$m=31,t=1,p=4$" + salt + "$" + key},
		{"memory 256 MiB + 1 KiB", "$argon2id$v=19$m=262145,t=1,p=1$" + salt + "$" + key},
		{"memory 4 GiB", "$argon2id$v=19$m=4194303,t=1,p=1$" + salt + "$" + key},
		{"memory overflows uint32", "$argon2id$v=19$m=4294967296,t=1,p=1$" + salt + "$" + key},
		{"negative time", "$argon2id$v=19$m=64,t=-1,p=1$" + salt + "$" + key},
		{"signed time", "$argon2id$v=19$m=64,t=+1,p=1$" + salt + "$" + key},
		{"hex memory", "$argon2id$v=19$m=0x40,t=1,p=1$" + salt + "$" + key},
		{"leading zero", "$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key},
		{"space in parameter", "$argon2id$v=19$m=64, t=1,p=1$" + salt + "$" + key},
		{"short salt", "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + key},
		{"long salt", "$argon2id$v=19$m=64,t=1,p=1$" + strings.Repeat(salt, 5) + "$" + key},
		{"salt not base64", "$argon2id$v=19$m=64,t=1,p=1$" + salt[:21] + "*$" + key},
		{"newline in salt", "$argon2id$v=19$m=64,t=1,p=1$" + salt[:8] + "\n" + salt[8:] + "$" + key},
		{"padded salt", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key},
		{"url-safe alphabet", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + strings.Repeat("_", 42) + "w"},
		{"non-zero trailing bits", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key[:42] + "R"},
		{"short key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key[:20]},
		{"key not base64", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key[:42] + "-"},
		{"long key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + strings.Repeat(key, 3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, s, k, err := password.DecodeArgon2id(tt.hash)
			if err == nil {
				t.Fatalf("DecodeArgon2id = %+v %x %x, want an error", p, s, k)
			}
			if !errors.Is(err, password.ErrInvalidHash) {
				t.Errorf("error %v does not wrap ErrInvalidHash", err)
			}
			if len(tt.hash) > 8 && strings.Contains(err.Error(), tt.hash) {
				t.Errorf("error %q echoes the hash", err)
			}
		})
	}
}

func TestParamsCheck(t *testing.T) {
	tests := []struct {
		p  password.Params
		ok bool
	}{
		{password.Params{MemoryKiB: 19456, Time: 2, Threads: 1}, true},
		{password.Params{MemoryKiB: 8, Time: 1, Threads: 1}, true},
		{password.Params{MemoryKiB: 128, Time: 1, Threads: 16}, true},
		{password.Params{MemoryKiB: password.MaxMemoryKiB, Time: password.MaxTime, Threads: password.MaxThreads}, true},
		{password.Params{}, false},
		{password.Params{MemoryKiB: 7, Time: 1, Threads: 1}, false},
		{password.Params{MemoryKiB: 127, Time: 1, Threads: 16}, false},
		{password.Params{MemoryKiB: password.MaxMemoryKiB + 1, Time: 1, Threads: 1}, false},
		{password.Params{MemoryKiB: 64, Time: password.MaxTime + 1, Threads: 1}, false},
		{password.Params{MemoryKiB: 1024, Time: 1, Threads: password.MaxThreads + 1}, false},
	}
	for _, tt := range tests {
		if err := tt.p.Check(); (err == nil) != tt.ok {
			t.Errorf("%+v.Check() = %v, want ok %v", tt.p, err, tt.ok)
		}
	}
}
