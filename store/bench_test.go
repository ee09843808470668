package store_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

	"github.com/latchkey-oidc/latchkey/store"
	"github.com/latchkey-oidc/latchkey/store/storetest"
)

// backends yields a fresh store per backend: SQLite always, PostgreSQL when
// LATCHKEY_TEST_DATABASE_URL is set.
func backends(b *testing.B, opts store.Options, fn func(b *testing.B, s *store.Store)) {
	b.Run("sqlite", func(b *testing.B) {
		fn(b, storetest.OpenURL(b, storetest.FreshSQLite(b), opts))
	})
	b.Run("postgres", func(b *testing.B) {
		if os.Getenv("LATCHKEY_TEST_DATABASE_URL") == "" {
			b.Skip("LATCHKEY_TEST_DATABASE_URL is not set")
		}
		fn(b, storetest.OpenURL(b, storetest.FreshPostgres(b), opts))
	})
}

func benchClient(b *testing.B, s *store.Store) *store.Client {
	c := &store.Client{ID: "bench-client", GrantTypes: []string{"authorization_code", "refresh_token"}, Scope: "openid offline_access", TokenEndpointAuthMethod: "none"}
	if err := s.CreateClient(context.Background(), c); err != nil {
		b.Fatal(err)
	}
	return c
}

func benchRequest(c *store.Client, id string) *fosite.Request {
	r := fosite.NewRequest()
	r.ID = id
	r.Client = c
	r.RequestedAt = time.Now().UTC()
	r.GrantedScope = fosite.Arguments{"openid", "offline_access"}
	sess := openid.NewDefaultSession()
	sess.Subject = "alice"
	sess.SetExpiresAt(fosite.AccessToken, time.Now().Add(time.Hour))
	sess.SetExpiresAt(fosite.AuthorizeCode, time.Now().Add(5*time.Minute))
	r.Session = sess
	return r
}

func BenchmarkGetClient(b *testing.B) {
	for _, mode := range []struct {
		name string
		ttl  time.Duration
	}{{"cached", time.Hour}, {"cold", -1}} {
		b.Run(mode.name, func(b *testing.B) {
			backends(b, store.Options{ClientCacheTTL: mode.ttl}, func(b *testing.B, s *store.Store) {
				c := benchClient(b, s)
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if _, err := s.GetClient(ctx, c.ID); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkCreateAccessTokenSession is the whole storage cost of a
// client_credentials token: one INSERT, from 8 goroutines per core.
func BenchmarkCreateAccessTokenSession(b *testing.B) {
	backends(b, store.Options{}, func(b *testing.B, s *store.Store) {
		c := benchClient(b, s)
		ctx := context.Background()
		b.SetParallelism(8)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			req := benchRequest(c, "req")
			i := 0
			for pb.Next() {
				i++
				sig := fmt.Sprintf("sig-%p-%d", pb, i)
				if err := s.CreateAccessTokenSession(ctx, sig, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkClientCredentialsToken runs fosite's client_credentials grant on
// the store (bcrypt cost 4 for the secret, so storage dominates).
func BenchmarkClientCredentialsToken(b *testing.B) {
	backends(b, store.Options{}, func(b *testing.B, s *store.Store) {
		_, issue := storetest.ClientCredentialsProvider(b, s)
		ctx := context.Background()
		b.SetParallelism(8)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := issue(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkCodeExchangeStorage replays the storage calls fosite makes to
// exchange an authorization code with PKCE and OpenID Connect for an access
// and a refresh token.
func BenchmarkCodeExchangeStorage(b *testing.B) {
	backends(b, store.Options{}, func(b *testing.B, s *store.Store) {
		c := benchClient(b, s)
		ctx := context.Background()
		const batch = 512
		i := 0
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if i%batch == 0 {
				b.StopTimer()
				for j := i; j < i+batch; j++ {
					req := benchRequest(c, fmt.Sprintf("req-%d", j))
					code := fmt.Sprintf("code-%d", j)
					if err := s.CreateAuthorizeCodeSession(ctx, code, req); err != nil {
						b.Fatal(err)
					}
					if err := s.CreatePKCERequestSession(ctx, code, req); err != nil {
						b.Fatal(err)
					}
					if err := s.CreateOpenIDConnectSession(ctx, code, req); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
			}
			code := fmt.Sprintf("code-%d", i)
			i++
			sess := openid.NewDefaultSession()
			req, err := s.GetAuthorizeCodeSession(ctx, code, sess)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.GetPKCERequestSession(ctx, code, sess); err != nil {
				b.Fatal(err)
			}
			if err := s.DeletePKCERequestSession(ctx, code); err != nil {
				b.Fatal(err)
			}
			err = s.InTx(ctx, func(ctx context.Context) error {
				if err := s.InvalidateAuthorizeCodeSession(ctx, code); err != nil {
					return err
				}
				if err := s.CreateAccessTokenSession(ctx, "at-"+code, req); err != nil {
					return err
				}
				return s.CreateRefreshTokenSession(ctx, "rt-"+code, "at-"+code, req)
			})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.GetOpenIDConnectSession(ctx, code, req); err != nil {
				b.Fatal(err)
			}
			if err := s.DeleteOpenIDConnectSession(ctx, code); err != nil {
				b.Fatal(err)
			}
		}
	})
}
