package password_test

import (
	"context"
	"errors"
	"testing"

	"github.com/latchkey-oidc/latchkey/login/password"
)

// FuzzDecodeArgon2id feeds DecodeArgon2id arbitrary stored hashes. It must
// never panic; what it accepts must be within the bounds and be the one
// spelling of its contents (encoding it again gives the same string); what
// it refuses must wrap ErrInvalidHash. Hashes it accepts with cheap
// parameters are verified too, which must not fail.
func FuzzDecodeArgon2id(f *testing.F) {
	h := cheap()
	hash, err := h.Hash(context.Background(), "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(hash)
	f.Add("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$c2l4dGVlbiBieXRlIHNsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2id$v=19$m=4096,t=1,p=257$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("$argon2id$v=19$m=4294967296,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("$argon2id$")
	f.Add("$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("")
	f.Add("$")

	ctx := context.Background()
	f.Fuzz(func(t *testing.T, encoded string) {
		p, salt, key, err := password.DecodeArgon2id(encoded)
		if err != nil {
			if !errors.Is(err, password.ErrInvalidHash) {
				t.Fatalf("DecodeArgon2id(%q) = %v, not ErrInvalidHash", encoded, err)
			}
			return
		}
		if cerr := p.Check(); cerr != nil {
			t.Fatalf("DecodeArgon2id(%q) accepted %+v: %v", encoded, p, cerr)
		}
		if len(salt) < password.MinSaltLen || len(salt) > password.MaxSaltLen || len(key) < password.MinKeyLen || len(key) > password.MaxKeyLen {
			t.Fatalf("DecodeArgon2id(%q): salt of %d and key of %d bytes", encoded, len(salt), len(key))
		}
		if again := password.EncodeArgon2id(p, salt, key); again != encoded {
			t.Fatalf("DecodeArgon2id(%q) then EncodeArgon2id = %q", encoded, again)
		}
		if p.MemoryKiB <= 1024 && p.Time <= 2 {
			if _, err := h.Verify(ctx, encoded, "fuzz"); err != nil {
				t.Fatalf("Verify(%q) = %v after DecodeArgon2id accepted it", encoded, err)
			}
		}
	})
}
