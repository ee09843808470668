package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/latchkey-oidc/latchkey/store"
)

var _ = register(
	test{"ClientCRUD", testClientCRUD},
	test{"ClientJSONHasNoSecrets", testClientJSONHasNoSecrets},
	test{"ClientList", testClientList},
	test{"ClientAssertionJTI", testClientAssertionJTI},
)

var _ = registerShared(
	sharedTest{"ClientCacheAcrossReplicas", testClientCacheAcrossReplicas},
	sharedTest{"ConcurrentMigrations", testConcurrentMigrations},
)

func exampleClient() *store.Client {
	return &store.Client{
		ID:                      randomID("client"),
		Name:                    "Example App",
		RedirectURIs:            []string{"https://app.example.test/cb"},
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		ResponseTypes:           []string{"code", "code id_token"},
		Scope:                   "openid profile email",
		TokenEndpointAuthMethod: "client_secret_post",
		PostLogoutRedirectURIs:  []string{"https://app.example.test/bye"},
		BackchannelLogoutURI:    "https://app.example.test/backchannel",
		SecretHash:              "hash-of-secret",
		RotatedSecretHashes:     []string{"hash-of-old-secret"},
	}
}

func testClientCRUD(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	c := exampleClient()
	if err := s.CreateClient(ctx, c); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := s.CreateClient(ctx, exampleClientWithID(c.ID)); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("create duplicate: got %v, want ErrAlreadyExists", err)
	}
	got, err := s.GetClient(ctx, c.ID)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	gc := got.(*store.Client)
	if gc.Name != "Example App" || gc.SecretHash != "hash-of-secret" || len(gc.RotatedSecretHashes) != 1 ||
		gc.BackchannelLogoutURI != c.BackchannelLogoutURI || !gc.GetResponseTypes().Has("code id_token") {
		t.Fatalf("get returned %+v", gc)
	}
	if string(got.GetHashedSecret()) != "hash-of-secret" || string(gc.GetRotatedHashes()[0]) != "hash-of-old-secret" {
		t.Fatal("secret hashes not returned through fosite's interface")
	}
	if got.IsPublic() {
		t.Fatal("client_secret_post client reported public")
	}

	// An update is seen at once on this replica (the cache is invalidated).
	upd, err := s.LoadClient(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	upd.Name = "Renamed"
	upd.TokenEndpointAuthMethod = "none"
	if err := s.UpdateClient(ctx, upd); err != nil {
		t.Fatalf("update: %v", err)
	}
	got, err = s.GetClient(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.(*store.Client).Name != "Renamed" || !got.IsPublic() {
		t.Fatalf("after update got %+v", got)
	}
	if err := s.UpdateClient(ctx, exampleClientWithID("missing")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update missing: got %v", err)
	}

	if err := s.DeleteClient(ctx, c.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := s.GetClient(ctx, c.ID); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("get after delete: got %v, want ErrNotFound", err)
	}
	if err := s.DeleteClient(ctx, c.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: got %v", err)
	}
	if err := s.CreateClient(ctx, &store.Client{ID: "  "}); err == nil {
		t.Fatal("create with blank id succeeded")
	}
}

func exampleClientWithID(id string) *store.Client {
	c := exampleClient()
	c.ID = id
	return c
}

func testClientJSONHasNoSecrets(t *testing.T, open Opener) {
	c := exampleClient()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	js := string(b)
	for _, secret := range []string{"hash-of-secret", "hash-of-old-secret"} {
		if strings.Contains(js, secret) {
			t.Fatalf("client JSON contains %q: %s", secret, js)
		}
	}
	for _, field := range []string{`"client_id"`, `"redirect_uris"`, `"grant_types"`, `"token_endpoint_auth_method"`, `"post_logout_redirect_uris"`, `"backchannel_logout_uri"`} {
		if !strings.Contains(js, field) {
			t.Fatalf("client JSON lacks %s: %s", field, js)
		}
	}
	// Defaults from RFC 7591 §2 when fields are absent.
	var bare store.Client
	if err := json.Unmarshal([]byte(`{"client_id":"x"}`), &bare); err != nil {
		t.Fatal(err)
	}
	if !bare.GetGrantTypes().ExactOne("authorization_code") || !bare.GetResponseTypes().ExactOne("code") ||
		bare.GetTokenEndpointAuthMethod() != "client_secret_basic" {
		t.Fatalf("defaults wrong: %v %v %v", bare.GetGrantTypes(), bare.GetResponseTypes(), bare.GetTokenEndpointAuthMethod())
	}
}

func testClientList(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	for _, id := range []string{"c-3", "c-1", "c-2"} {
		if err := s.CreateClient(ctx, exampleClientWithID(id)); err != nil {
			t.Fatal(err)
		}
	}
	page, err := s.ListClients(ctx, "", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 2 || page[0].ID != "c-1" || page[1].ID != "c-2" {
		t.Fatalf("first page = %v", ids(page))
	}
	page, err = s.ListClients(ctx, "c-2", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 1 || page[0].ID != "c-3" {
		t.Fatalf("second page = %v", ids(page))
	}
}

func ids(cs []*store.Client) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func testClientAssertionJTI(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	s := open(t, store.Options{Now: clock.Now})
	if err := s.ClientAssertionJWTValid(ctx, "jti-1"); err != nil {
		t.Fatalf("unknown jti: %v", err)
	}
	if err := s.SetClientAssertionJWT(ctx, "jti-1", clock.Now().Add(time.Minute)); err != nil {
		t.Fatalf("set: %v", err)
	}
	if err := s.ClientAssertionJWTValid(ctx, "jti-1"); !errors.Is(err, fosite.ErrJTIKnown) {
		t.Fatalf("known jti: got %v, want ErrJTIKnown", err)
	}
	if err := s.SetClientAssertionJWT(ctx, "jti-1", clock.Now().Add(time.Minute)); !errors.Is(err, fosite.ErrJTIKnown) {
		t.Fatalf("set twice: got %v, want ErrJTIKnown", err)
	}
	used, err := s.IsJWTUsed(ctx, "jti-1")
	if err != nil || !used {
		t.Fatalf("IsJWTUsed = %v, %v", used, err)
	}
	// After expiry the jti may be recorded again.
	clock.Add(2 * time.Minute)
	if err := s.ClientAssertionJWTValid(ctx, "jti-1"); err != nil {
		t.Fatalf("expired jti: %v", err)
	}
	if err := s.MarkJWTUsedForTime(ctx, "jti-1", clock.Now().Add(time.Minute)); err != nil {
		t.Fatalf("re-set expired jti: %v", err)
	}

	// Concurrent uses of one fresh assertion: exactly one is accepted.
	const n = 16
	errs := inParallel(n, func(int) error {
		return s.SetClientAssertionJWT(ctx, "jti-race", clock.Now().Add(time.Minute))
	})
	if ok, _ := countErrs(t, errs, fosite.ErrJTIKnown); ok != 1 {
		t.Fatalf("%d concurrent uses of one jti accepted, want 1", ok)
	}
}

func testClientCacheAcrossReplicas(t *testing.T, fresh FreshDB) {
	ctx := context.Background()
	url := fresh(t)
	a := OpenURL(t, url, store.Options{ClientCacheTTL: time.Hour})
	b := OpenURL(t, url, store.Options{ClientCacheTTL: time.Hour})
	c := exampleClient()
	if err := a.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := b.SyncCaches(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetClient(ctx, c.ID); err != nil { // now cached on b
		t.Fatal(err)
	}
	if err := a.DeleteClient(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	// b still trusts its cache until it syncs; then the deletion is seen.
	if _, err := b.GetClient(ctx, c.ID); err != nil {
		t.Fatalf("b before sync: %v (the cache should still serve it)", err)
	}
	if err := b.SyncCaches(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetClient(ctx, c.ID); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("b after sync: got %v, want ErrNotFound", err)
	}
}

func testConcurrentMigrations(t *testing.T, fresh FreshDB) {
	ctx := context.Background()
	url := fresh(t)
	const n = 4
	stores := make([]*store.Store, n)
	for i := range stores {
		s, err := store.Open(ctx, url, store.Options{SystemSecret: TestSecret})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		stores[i] = s
	}
	var wg sync.WaitGroup
	applied := make([]int, n)
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if applied[i], err = s.Migrate(ctx); err != nil {
				t.Errorf("migrate %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, a := range applied {
		total += a
	}
	done, pending, err := stores[0].MigrationStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 0 || total != len(done) {
		t.Fatalf("concurrent migrations applied %d in all (%d recorded, pending %v), want each once", total, len(done), pending)
	}
}
