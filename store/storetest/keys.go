package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/latchkey-oidc/latchkey/store"
)

var _ = register(
	test{"SigningKeyCreateAndList", testSigningKeyCreateAndList},
	test{"SigningKeyRotate", testSigningKeyRotate},
	test{"SigningKeyRetiredExpiry", testSigningKeyRetiredExpiry},
	test{"SigningKeyNoSystemSecret", testSigningKeyNoSystemSecret},
	test{"SigningKeyConcurrentBootstrap", testSigningKeyConcurrentBootstrap},
	test{"SigningKeyConcurrentRotation", testSigningKeyConcurrentRotation},
	test{"SigningKeyPerAlgorithm", testSigningKeyPerAlgorithm},
	test{"SigningKeyRotateOneAlgorithm", testSigningKeyRotateOneAlgorithm},
	test{"SigningKeyRotateAlgorithmMismatch", testSigningKeyRotateAlgorithmMismatch},
	test{"SigningKeyConcurrentBootstrapPerAlgorithm", testSigningKeyConcurrentBootstrapPerAlgorithm},
	test{"SealerWrongSecret", testSealerWrongSecret},
)

var _ = registerShared(
	sharedTest{"SigningKeyWrongSystemSecret", testSigningKeyWrongSystemSecret},
	sharedTest{"SigningKeySealedAtRest", testSigningKeySealedAtRest},
)

// flowEpoch is where the suite's clocks start: microseconds set, so a
// backend that drops them fails.
var flowEpoch = time.Date(2031, 3, 4, 5, 6, 7, 890123000, time.UTC)

// wantInstant fails t unless got is want's instant, in UTC.
func wantInstant(t *testing.T, got, want time.Time, what string) {
	t.Helper()
	if !got.Equal(want) || got.Location() != time.UTC {
		t.Fatalf("%s = %v, want %v in UTC", what, got, want)
	}
}

// openRawDB opens the database at dbURL without the store, to look at what the
// store wrote.
func openRawDB(t *testing.T, dbURL string) *sqlx.DB {
	t.Helper()
	driver := "sqlite"
	if strings.HasPrefix(dbURL, "postgres") {
		driver = "postgres"
	}
	db, err := sqlx.Open(driver, dbURL)
	if err != nil {
		t.Fatalf("open raw database: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func exampleSigningKey(state store.KeyState) *store.SigningKey {
	return exampleSigningKeyFor("ES256", state)
}

// exampleSigningKeyFor is exampleSigningKey for another algorithm. The JWKs
// are placeholders: the store keeps them as they are.
func exampleSigningKeyFor(alg string, state store.KeyState) *store.SigningKey {
	id := randomID("kid")
	return &store.SigningKey{
		ID:         id,
		Alg:        alg,
		State:      state,
		PublicJWK:  []byte(fmt.Sprintf(`{"kty":"EC","kid":%q,"x":"public-x"}`, id)),
		PrivateJWK: []byte(fmt.Sprintf(`{"kty":"EC","kid":%q,"d":"private-d-%s"}`, id, id)),
	}
}

// keysByState lists keys as "state:id" in List order.
func keysByState(keys []*store.SigningKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = string(k.State) + ":" + k.ID
	}
	return out
}

func listSigningKeys(t *testing.T, s *store.Store) []*store.SigningKey {
	t.Helper()
	keys, err := s.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatalf("list signing keys: %v", err)
	}
	return keys
}

func signingKeysGeneration(t *testing.T, s *store.Store) int64 {
	t.Helper()
	g, err := s.Generation(context.Background(), "signing_keys")
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// keysOf keeps the keys of alg, in their order.
func keysOf(alg string, keys []*store.SigningKey) []*store.SigningKey {
	var out []*store.SigningKey
	for _, k := range keys {
		if k.Alg == alg {
			out = append(out, k)
		}
	}
	return out
}

func expectKeys(t *testing.T, got []*store.SigningKey, want ...string) {
	t.Helper()
	if g := strings.Join(keysByState(got), " "); g != strings.Join(want, " ") {
		t.Fatalf("signing keys = [%s], want [%s]", g, strings.Join(want, " "))
	}
}

func testSigningKeyCreateAndList(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(flowEpoch)
	s := open(t, store.Options{Now: clock.Now})
	expectKeys(t, listSigningKeys(t, s))
	gen := signingKeysGeneration(t, s)

	cur := exampleSigningKey(store.KeyCurrent)
	wantPriv := bytes.Clone(cur.PrivateJWK)
	if err := s.CreateSigningKey(ctx, cur); err != nil {
		t.Fatalf("create current key: %v", err)
	}
	wantInstant(t, cur.CreatedAt, flowEpoch, "created_at")
	if cur.ActivatedAt == nil {
		t.Fatal("a current key was created without activated_at")
	}
	if g := signingKeysGeneration(t, s); g != gen+1 {
		t.Fatalf("generation after create = %d, want %d", g, gen+1)
	}
	clock.Add(time.Minute)
	next := exampleSigningKey(store.KeyNext)
	if err := s.CreateSigningKey(ctx, next); err != nil {
		t.Fatalf("create next key: %v", err)
	}

	// One current and one next key at most; IDs are unique.
	expectErr(t, "second current key", s.CreateSigningKey(ctx, exampleSigningKey(store.KeyCurrent)), store.ErrAlreadyExists)
	expectErr(t, "second next key", s.CreateSigningKey(ctx, exampleSigningKey(store.KeyNext)), store.ErrAlreadyExists)
	dup := exampleSigningKey(store.KeyRetired)
	dup.ID = cur.ID
	expectErr(t, "taken key ID", s.CreateSigningKey(ctx, dup), store.ErrAlreadyExists)
	if g := signingKeysGeneration(t, s); g != gen+2 {
		t.Fatalf("generation after failed creates = %d, want %d (failures change nothing)", g, gen+2)
	}
	bad := exampleSigningKey(store.KeyRetired)
	bad.PrivateJWK = []byte("not json")
	if err := s.CreateSigningKey(ctx, bad); err == nil {
		t.Fatal("a private JWK that is not JSON was accepted")
	}
	bad = exampleSigningKey("active")
	if err := s.CreateSigningKey(ctx, bad); err == nil {
		t.Fatal("an unknown key state was accepted")
	}

	keys := listSigningKeys(t, s)
	expectKeys(t, keys, "current:"+cur.ID, "next:"+next.ID)
	got := keys[0]
	if !bytes.Equal(got.PrivateJWK, wantPriv) || !bytes.Equal(got.PublicJWK, cur.PublicJWK) || got.Alg != "ES256" {
		t.Fatalf("current key read back as %+v", got)
	}
	wantInstant(t, got.CreatedAt, flowEpoch, "current created_at")
	if got.ActivatedAt == nil || got.RetiredAt != nil || got.ExpiresAt != nil {
		t.Fatalf("current key times: activated %v retired %v expires %v", got.ActivatedAt, got.RetiredAt, got.ExpiresAt)
	}
	wantInstant(t, *got.ActivatedAt, flowEpoch, "current activated_at")
	if keys[1].ActivatedAt != nil {
		t.Fatalf("next key has activated_at %v", keys[1].ActivatedAt)
	}
	wantInstant(t, keys[1].CreatedAt, flowEpoch.Add(time.Minute), "next created_at")
}

func testSigningKeyRotate(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(flowEpoch)
	s := open(t, store.Options{Now: clock.Now})
	k1, k2 := exampleSigningKey(store.KeyCurrent), exampleSigningKey(store.KeyNext)
	if err := s.CreateSigningKey(ctx, k1); err != nil {
		t.Fatal(err)
	}
	// Without a next key there is nothing to promote, and nothing changes.
	expectErr(t, "rotate without a next key", s.RotateSigningKeys(ctx, k1.ID, exampleSigningKey(store.KeyNext), time.Hour), store.ErrNotFound)
	expectKeys(t, listSigningKeys(t, s), "current:"+k1.ID)
	if err := s.CreateSigningKey(ctx, k2); err != nil {
		t.Fatal(err)
	}
	gen := signingKeysGeneration(t, s)

	clock.Add(time.Hour)
	rotatedAt := clock.Now()
	k3 := exampleSigningKey("")
	if err := s.RotateSigningKeys(ctx, k1.ID, k3, 2*time.Hour); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if k3.State != store.KeyNext {
		t.Fatalf("new key state = %q, want next", k3.State)
	}
	if g := signingKeysGeneration(t, s); g != gen+1 {
		t.Fatalf("generation after rotate = %d, want %d", g, gen+1)
	}
	keys := listSigningKeys(t, s)
	expectKeys(t, keys, "current:"+k2.ID, "next:"+k3.ID, "retired:"+k1.ID)
	wantInstant(t, *keys[0].ActivatedAt, rotatedAt, "promoted key activated_at")
	retired := keys[2]
	if retired.RetiredAt == nil || retired.ExpiresAt == nil {
		t.Fatalf("retired key times: retired %v expires %v", retired.RetiredAt, retired.ExpiresAt)
	}
	wantInstant(t, *retired.RetiredAt, rotatedAt, "retired_at")
	wantInstant(t, *retired.ExpiresAt, rotatedAt.Add(2*time.Hour), "retired expires_at")
	for _, k := range keys {
		if !bytes.Contains(k.PrivateJWK, []byte("private-d-"+k.ID)) {
			t.Fatalf("key %s private JWK read back as %s", k.ID, k.PrivateJWK)
		}
	}

	// A caller that saw k1 as current is too late now: nothing changes.
	expectErr(t, "rotate from a stale current key", s.RotateSigningKeys(ctx, k1.ID, exampleSigningKey(store.KeyNext), time.Hour), store.ErrConflict)
	expectErr(t, "rotate from an unknown key", s.RotateSigningKeys(ctx, "no-such-kid", exampleSigningKey(store.KeyNext), time.Hour), store.ErrConflict)
	if err := s.RotateSigningKeys(ctx, k2.ID, exampleSigningKey(store.KeyCurrent), time.Hour); err == nil {
		t.Fatal("rotate accepted a new key that is not in state next")
	}
	dup := exampleSigningKey(store.KeyNext)
	dup.ID = k1.ID
	expectErr(t, "rotate to a taken key ID", s.RotateSigningKeys(ctx, k2.ID, dup, time.Hour), store.ErrAlreadyExists)
	expectKeys(t, listSigningKeys(t, s), "current:"+k2.ID, "next:"+k3.ID, "retired:"+k1.ID)
	if g := signingKeysGeneration(t, s); g != gen+1 {
		t.Fatalf("generation after failed rotations = %d, want %d", g, gen+1)
	}

	// Rotating again retires k2 next to k1.
	clock.Add(time.Hour)
	k4 := exampleSigningKey(store.KeyNext)
	if err := s.RotateSigningKeys(ctx, k2.ID, k4, 2*time.Hour); err != nil {
		t.Fatalf("second rotation: %v", err)
	}
	expectKeys(t, listSigningKeys(t, s), "current:"+k3.ID, "next:"+k4.ID, "retired:"+k2.ID, "retired:"+k1.ID)
}

func testSigningKeyRetiredExpiry(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(flowEpoch)
	s := open(t, store.Options{Now: clock.Now})
	k1, k2 := exampleSigningKey(store.KeyCurrent), exampleSigningKey(store.KeyNext)
	for _, k := range []*store.SigningKey{k1, k2} {
		if err := s.CreateSigningKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	// An imported retired key whose expiry is given in another zone expires
	// at that instant.
	east := time.FixedZone("UTC+05:30", 5*3600+1800)
	old := exampleSigningKey(store.KeyRetired)
	oldExp := flowEpoch.Add(90 * time.Minute).In(east)
	old.ExpiresAt = &oldExp
	if err := s.CreateSigningKey(ctx, old); err != nil {
		t.Fatal(err)
	}
	wantInstant(t, *old.ExpiresAt, oldExp, "imported key expires_at")
	if err := s.RotateSigningKeys(ctx, k1.ID, exampleSigningKey(store.KeyNext), time.Hour); err != nil {
		t.Fatal(err)
	}
	if keys := listSigningKeys(t, s); len(keys) != 4 {
		t.Fatalf("%d keys before expiry, want 4: %v", len(keys), keysByState(keys))
	}
	clock.Add(time.Hour - time.Microsecond)
	if keys := listSigningKeys(t, s); len(keys) != 4 {
		t.Fatalf("%d keys just before k1 expires, want 4: %v", len(keys), keysByState(keys))
	}
	clock.Add(time.Microsecond)
	keys := listSigningKeys(t, s)
	if len(keys) != 3 || keys[2].ID != old.ID {
		t.Fatalf("keys once k1 expired = %v, want current, next and %s", keysByState(keys), old.ID)
	}
	clock.Add(30 * time.Minute)
	if keys := listSigningKeys(t, s); len(keys) != 2 || keys[0].ID != k2.ID {
		t.Fatalf("keys once every retired key expired = %v, want current %s and next", keysByState(keys), k2.ID)
	}
	clock.Add(time.Second)
	removed, err := s.Janitor(ctx, store.JanitorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if removed["signing_keys"] != 2 {
		t.Fatalf("janitor removed %d signing keys, want the 2 expired", removed["signing_keys"])
	}
}

func testSigningKeyNoSystemSecret(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{SystemSecret: []byte{}})
	expectErr(t, "create without a system secret", s.CreateSigningKey(ctx, exampleSigningKey(store.KeyCurrent)), store.ErrNoSystemSecret)
	_, err := s.ListSigningKeys(ctx)
	expectErr(t, "list without a system secret", err, store.ErrNoSystemSecret)
	expectErr(t, "rotate without a system secret", s.RotateSigningKeys(ctx, "kid", exampleSigningKey(store.KeyNext), time.Hour), store.ErrNoSystemSecret)
}

func testSealerWrongSecret(t *testing.T, _ Opener) {
	other := []byte("another-system-secret-of-at-least-32-bytes")
	a, err := store.NewSealer("signing-keys", TestSecret)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := a.Seal([]byte("private"), []byte("kid-1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("private")) {
		t.Fatal("sealed data contains the plaintext")
	}
	if _, err := a.Open(sealed, []byte("kid-2")); err == nil {
		t.Fatal("sealed data opened under another row's aad")
	}
	b, err := store.NewSealer("signing-keys", other)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := b.Open(sealed, []byte("kid-1")); err == nil || !strings.Contains(err.Error(), "wrong system secret") {
		t.Fatalf("open under another secret: got %q, %v; want a wrong-secret error", pt, err)
	}
	if _, err := b.Open(sealed[:5], []byte("kid-1")); err == nil {
		t.Fatal("truncated sealed data opened")
	}
	rotated, err := store.NewSealer("signing-keys", other, TestSecret)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := rotated.Open(sealed, []byte("kid-1")); err != nil || string(pt) != "private" {
		t.Fatalf("open under an old secret: got %q, %v", pt, err)
	}
	totp, err := store.NewSealer("totp", TestSecret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := totp.Open(sealed, []byte("kid-1")); err == nil {
		t.Fatal("a sealer for another purpose opened a signing key")
	}
	if _, err := store.NewSealer("signing-keys", []byte("short")); err == nil {
		t.Fatal("a system secret shorter than 32 bytes was accepted")
	}
}

func testSigningKeyConcurrentBootstrap(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	errs := inParallel(8, func(int) error {
		return s.CreateSigningKey(ctx, exampleSigningKey(store.KeyCurrent))
	})
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrAlreadyExists):
			t.Errorf("replica %d: %v, want ErrAlreadyExists", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d replicas created a current key, want exactly 1", won)
	}
	if keys := listSigningKeys(t, s); len(keys) != 1 || keys[0].State != store.KeyCurrent {
		t.Fatalf("keys after concurrent bootstrap = %v, want one current key", keysByState(keys))
	}
}

func testSigningKeyConcurrentRotation(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(flowEpoch)
	s := open(t, store.Options{Now: clock.Now})
	k0, k1 := exampleSigningKey(store.KeyCurrent), exampleSigningKey(store.KeyNext)
	for _, k := range []*store.SigningKey{k0, k1} {
		if err := s.CreateSigningKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	// One rotation first, so every statement is prepared and the racers
	// are not queued behind the first one's preparation.
	k2 := exampleSigningKey(store.KeyNext)
	if err := s.RotateSigningKeys(ctx, k0.ID, k2, time.Hour); err != nil {
		t.Fatal(err)
	}
	gen := signingKeysGeneration(t, s)
	clock.Add(time.Minute)
	const n = 8
	newKeys := make([]*store.SigningKey, n)
	for i := range newKeys {
		newKeys[i] = exampleSigningKey(store.KeyNext)
	}
	errs := inParallel(n, func(i int) error {
		return s.RotateSigningKeys(ctx, k1.ID, newKeys[i], time.Hour)
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("rotations %d and %d both took effect", winner, i)
			}
			winner = i
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("rotation %d: %v, want ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no rotation took effect")
	}
	keys := listSigningKeys(t, s)
	if len(keys) != 4 {
		t.Fatalf("keys after concurrent rotation = %v, want 4", keysByState(keys))
	}
	expectKeys(t, keys[:3], "current:"+k2.ID, "next:"+newKeys[winner].ID, "retired:"+k1.ID)
	if keys[3].ID != k0.ID || keys[3].State != store.KeyRetired {
		t.Fatalf("keys after concurrent rotation = %v, want %s retired last", keysByState(keys), k0.ID)
	}
	for _, k := range keys {
		if !bytes.Contains(k.PrivateJWK, []byte("private-d-"+k.ID)) {
			t.Fatalf("key %s private JWK read back as %s", k.ID, k.PrivateJWK)
		}
	}
	if g := signingKeysGeneration(t, s); g != gen+1 {
		t.Fatalf("generation after one rotation = %d, want %d", g, gen+1)
	}
}

func testSigningKeyWrongSystemSecret(t *testing.T, fresh FreshDB) {
	ctx := context.Background()
	url := fresh(t)
	secretA := TestSecret
	secretB := []byte("the-next-system-secret-also-32-bytes-long")
	a := OpenURL(t, url, store.Options{SystemSecret: secretA})
	k1 := exampleSigningKey(store.KeyCurrent)
	if err := a.CreateSigningKey(ctx, k1); err != nil {
		t.Fatal(err)
	}

	b := OpenURL(t, url, store.Options{SystemSecret: secretB})
	keys, err := b.ListSigningKeys(ctx)
	if err == nil || !strings.Contains(err.Error(), "wrong system secret") || !strings.Contains(err.Error(), k1.ID) {
		t.Fatalf("list under the wrong secret: got %d keys, error %v; want a wrong-secret error naming %s", len(keys), err, k1.ID)
	}

	// With the old secret kept as an old one, everything opens, and new
	// keys are sealed under the new secret only.
	c := OpenURL(t, url, store.Options{SystemSecret: secretB, OldSystemSecrets: [][]byte{secretA}})
	k2 := exampleSigningKey(store.KeyNext)
	if err := c.CreateSigningKey(ctx, k2); err != nil {
		t.Fatal(err)
	}
	keys = listSigningKeys(t, c)
	expectKeys(t, keys, "current:"+k1.ID, "next:"+k2.ID)
	if !bytes.Contains(keys[0].PrivateJWK, []byte("private-d-"+k1.ID)) {
		t.Fatalf("key sealed under the old secret read back as %s", keys[0].PrivateJWK)
	}
	if _, err := a.ListSigningKeys(ctx); err == nil || !strings.Contains(err.Error(), k2.ID) {
		t.Fatalf("a store with only the old secret listed a key sealed under the new one: %v", err)
	}
}

func testSigningKeySealedAtRest(t *testing.T, fresh FreshDB) {
	ctx := context.Background()
	url := fresh(t)
	s := OpenURL(t, url, store.Options{})
	k1, k2 := exampleSigningKey(store.KeyCurrent), exampleSigningKey(store.KeyNext)
	for _, k := range []*store.SigningKey{k1, k2} {
		if err := s.CreateSigningKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	db := openRawDB(t, url)
	var sealed []byte
	if err := db.Get(&sealed, db.Rebind(`SELECT private_jwk FROM signing_keys WHERE id = ?`), k1.ID); err != nil {
		t.Fatal(err)
	}
	if len(sealed) == 0 || bytes.Contains(sealed, []byte("private-d")) {
		t.Fatalf("private JWK stored in clear: %q", sealed)
	}
	// A sealed key moved to another row does not open there.
	if _, err := db.Exec(db.Rebind(`UPDATE signing_keys SET private_jwk = ? WHERE id = ?`), sealed, k2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListSigningKeys(ctx); err == nil || !strings.Contains(err.Error(), k2.ID) {
		t.Fatalf("list with a private key moved between rows: %v, want an error naming %s", err, k2.ID)
	}
}

// sameInstant reports whether two optional times are both unset or equal.
func sameInstant(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// perAlgorithmKeys creates a current and a next key for each of algs.
func perAlgorithmKeys(t *testing.T, s *store.Store, algs ...string) (current, next map[string]*store.SigningKey) {
	t.Helper()
	current, next = map[string]*store.SigningKey{}, map[string]*store.SigningKey{}
	for _, alg := range algs {
		current[alg], next[alg] = exampleSigningKeyFor(alg, store.KeyCurrent), exampleSigningKeyFor(alg, store.KeyNext)
		for _, k := range []*store.SigningKey{current[alg], next[alg]} {
			if err := s.CreateSigningKey(context.Background(), k); err != nil {
				t.Fatalf("create %s %s key: %v", k.State, alg, err)
			}
		}
	}
	return current, next
}

func testSigningKeyPerAlgorithm(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{Now: NewClock(flowEpoch).Now})
	cur, next := perAlgorithmKeys(t, s, "RS256", "ES256")

	// Each algorithm has one current and one next key of its own.
	for _, alg := range []string{"RS256", "ES256"} {
		expectErr(t, "second current "+alg+" key", s.CreateSigningKey(ctx, exampleSigningKeyFor(alg, store.KeyCurrent)), store.ErrAlreadyExists)
		expectErr(t, "second next "+alg+" key", s.CreateSigningKey(ctx, exampleSigningKeyFor(alg, store.KeyNext)), store.ErrAlreadyExists)
	}
	keys := listSigningKeys(t, s)
	if len(keys) != 4 {
		t.Fatalf("keys = %v, want a current and a next key for each of 2 algorithms", keysByState(keys))
	}
	for _, alg := range []string{"RS256", "ES256"} {
		expectKeys(t, keysOf(alg, keys), "current:"+cur[alg].ID, "next:"+next[alg].ID)
	}
	// A third algorithm starts from nothing.
	eddsa := exampleSigningKeyFor("EdDSA", store.KeyCurrent)
	if err := s.CreateSigningKey(ctx, eddsa); err != nil {
		t.Fatalf("create the first EdDSA key next to RS256 and ES256 keys: %v", err)
	}
	expectKeys(t, keysOf("EdDSA", listSigningKeys(t, s)), "current:"+eddsa.ID)
}

func testSigningKeyRotateOneAlgorithm(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(flowEpoch)
	s := open(t, store.Options{Now: clock.Now})
	cur, next := perAlgorithmKeys(t, s, "RS256", "ES256")
	before := keysOf("RS256", listSigningKeys(t, s))

	clock.Add(time.Hour)
	rotatedAt := clock.Now()
	newNext := exampleSigningKeyFor("ES256", store.KeyNext)
	if err := s.RotateSigningKeys(ctx, cur["ES256"].ID, newNext, 24*time.Hour); err != nil {
		t.Fatalf("rotate ES256 keys: %v", err)
	}
	keys := listSigningKeys(t, s)
	es := keysOf("ES256", keys)
	expectKeys(t, es, "current:"+next["ES256"].ID, "next:"+newNext.ID, "retired:"+cur["ES256"].ID)
	wantInstant(t, *es[0].ActivatedAt, rotatedAt, "promoted ES256 key activated_at")

	// The RS256 keys are as they were, down to their times.
	after := keysOf("RS256", keys)
	expectKeys(t, after, "current:"+cur["RS256"].ID, "next:"+next["RS256"].ID)
	for i := range after {
		b, a := before[i], after[i]
		if !a.CreatedAt.Equal(b.CreatedAt) || !sameInstant(a.ActivatedAt, b.ActivatedAt) ||
			a.RetiredAt != nil || a.ExpiresAt != nil || !bytes.Equal(a.PrivateJWK, b.PrivateJWK) {
			t.Fatalf("RS256 key %s changed by an ES256 rotation: %+v, was %+v", a.ID, a, b)
		}
	}

	// The RS256 keys rotate on their own later.
	clock.Add(time.Hour)
	rsNext := exampleSigningKeyFor("RS256", store.KeyNext)
	if err := s.RotateSigningKeys(ctx, cur["RS256"].ID, rsNext, time.Hour); err != nil {
		t.Fatalf("rotate RS256 keys: %v", err)
	}
	keys = listSigningKeys(t, s)
	expectKeys(t, keysOf("RS256", keys), "current:"+next["RS256"].ID, "next:"+rsNext.ID, "retired:"+cur["RS256"].ID)
	expectKeys(t, keysOf("ES256", keys), "current:"+next["ES256"].ID, "next:"+newNext.ID, "retired:"+cur["ES256"].ID)
}

func testSigningKeyRotateAlgorithmMismatch(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{Now: NewClock(flowEpoch).Now})
	cur, next := perAlgorithmKeys(t, s, "RS256", "ES256")
	gen := signingKeysGeneration(t, s)

	// Retiring the ES256 key for a new RS256 key would leave ES256 without
	// a current key and RS256 with two.
	err := s.RotateSigningKeys(ctx, cur["ES256"].ID, exampleSigningKeyFor("RS256", store.KeyNext), time.Hour)
	if err == nil {
		t.Fatal("rotate accepted a new RS256 key for the current ES256 key")
	}
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rotate with mismatched algorithms: %v; want an error of its own, not one a replica retries or ignores", err)
	}
	if !strings.Contains(err.Error(), cur["ES256"].ID) {
		t.Fatalf("rotate with mismatched algorithms: %v, want the error to name %s", err, cur["ES256"].ID)
	}
	keys := listSigningKeys(t, s)
	for _, alg := range []string{"RS256", "ES256"} {
		expectKeys(t, keysOf(alg, keys), "current:"+cur[alg].ID, "next:"+next[alg].ID)
	}
	if len(keys) != 4 {
		t.Fatalf("keys after a refused rotation = %v, want the 4 from before", keysByState(keys))
	}
	if g := signingKeysGeneration(t, s); g != gen {
		t.Fatalf("generation after a refused rotation = %d, want %d", g, gen)
	}
	// A stale current key of the right algorithm is still a conflict.
	if err := s.RotateSigningKeys(ctx, cur["RS256"].ID, exampleSigningKeyFor("RS256", store.KeyNext), time.Hour); err != nil {
		t.Fatal(err)
	}
	expectErr(t, "rotate RS256 from a stale current key", s.RotateSigningKeys(ctx, cur["RS256"].ID, exampleSigningKeyFor("RS256", store.KeyNext), time.Hour), store.ErrConflict)
}

func testSigningKeyConcurrentBootstrapPerAlgorithm(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	algs := []string{"RS256", "ES256", "EdDSA"}
	const replicas = 4
	// Every replica creates a current and then a next key for every
	// algorithm, the way a provider starting on an empty database does.
	errs := inParallel(replicas*len(algs), func(i int) error {
		alg := algs[i%len(algs)]
		return errors.Join(
			s.CreateSigningKey(ctx, exampleSigningKeyFor(alg, store.KeyCurrent)),
			s.CreateSigningKey(ctx, exampleSigningKeyFor(alg, store.KeyNext)))
	})
	for i, err := range errs {
		if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			t.Errorf("replica %d: %v, want ErrAlreadyExists", i, err)
		}
	}
	keys := listSigningKeys(t, s)
	for _, alg := range algs {
		mine := keysOf(alg, keys)
		if len(mine) != 2 || mine[0].State != store.KeyCurrent || mine[1].State != store.KeyNext {
			t.Errorf("%s keys after concurrent bootstrap = %v, want one current and one next key", alg, keysByState(mine))
		}
	}
	if len(keys) != 2*len(algs) {
		t.Fatalf("keys after concurrent bootstrap = %v, want %d", keysByState(keys), 2*len(algs))
	}
}
