package clientsecret_test

import (
	"context"
	"testing"
)

// BenchmarkCompare measures one successful Compare of each kind, with the
// parameters Latchkey uses (argon2id at NewHasher's defaults) or imports
// (bcrypt at Hydra's default cost 10).
func BenchmarkCompare(b *testing.B) {
	ctx := context.Background()
	h := newHasher(b, systemSecret, oldSecret)
	secret := generated(b)
	hmacHash, err := h.HashGenerated(secret)
	if err != nil {
		b.Fatal(err)
	}
	argonHash, err := h.HashChosen(secret)
	if err != nil {
		b.Fatal(err)
	}
	for _, bb := range []struct {
		name string
		hash []byte
	}{
		{"hmac", hmacHash},
		{"argon2id", argonHash},
		{"bcrypt-10", bcryptHash(b, secret, 10)},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := h.Compare(ctx, bb.hash, secret); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
