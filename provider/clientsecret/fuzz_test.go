package clientsecret_test

import (
	"context"
	"errors"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/latchkey-oidc/latchkey/provider/clientsecret"
)

// FuzzCompare feeds Compare arbitrary stored hashes and secrets: it must
// never panic, and a hash IsGenerated accepts must be well-formed, so it
// either matches or is a mismatch.
func FuzzCompare(f *testing.F) {
	h := cheap(f, systemSecret, oldSecret)
	secret := generated(f)
	hmacHash, err := h.HashGenerated(secret)
	if err != nil {
		f.Fatal(err)
	}
	argonHash, err := h.HashChosen(secret)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(hmacHash, secret)
	f.Add(argonHash, secret)
	f.Add(bcryptHash(f, secret, bcrypt.MinCost), secret)
	f.Add([]byte("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"), []byte("x"))
	f.Add([]byte("$hmac-sha256$v=1$"), []byte{})
	f.Add([]byte("$2y$04$"), []byte("secret"))
	f.Add([]byte{}, []byte{})
	f.Add([]byte("$"), []byte("$"))

	ctx := context.Background()
	f.Fuzz(func(t *testing.T, hash, secret []byte) {
		err := h.Compare(ctx, hash, secret)
		if clientsecret.IsGenerated(hash) && err != nil && !errors.Is(err, clientsecret.ErrMismatch) {
			t.Errorf("IsGenerated(%q) but Compare = %v", hash, err)
		}
	})
}
