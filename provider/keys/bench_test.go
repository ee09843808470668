package keys_test

import (
	"context"
	"testing"
	"time"

	"github.com/ory/fosite/token/jwt"

	"github.com/latchkey-oidc/latchkey/provider/keys"
)

// BenchmarkGenerate is the cost of signing an ID token's worth of claims,
// the ring's hot path: sequential is one core's cost, parallel what all
// of GOMAXPROCS's cores sign together (the ceiling of JWT access tokens and
// of refreshes with an ID token, which sign once each).
func BenchmarkGenerate(b *testing.B) {
	r := newDB(b).loaded(b, keys.Options{})
	claims := jwt.MapClaims{
		"iss": "https://op.example", "sub": "248289761001", "aud": []string{"s6BhdRkqt3"},
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "nonce": "n-0S6_WzA2Mj",
		"auth_time": time.Now().Unix(), "at_hash": "77QmUPtjPfzWtF2AnpK9RQ",
	}
	ctx := context.Background()
	for _, alg := range r.Algs() {
		h := jwt.NewHeaders()
		h.Add("alg", alg)
		b.Run(alg+"/sequential", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := r.Generate(ctx, claims, h); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, _, err := r.Generate(ctx, claims, h); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkDecode is the cost of verifying a token the ring signed.
func BenchmarkDecode(b *testing.B) {
	r := newDB(b).loaded(b, keys.Options{})
	for _, alg := range r.Algs() {
		b.Run(alg, func(b *testing.B) {
			tok := generate(b, r, alg)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Decode(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
