package keys_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"

	"github.com/latchkey-oidc/latchkey/provider/keys"
	"github.com/latchkey-oidc/latchkey/store"
	"github.com/latchkey-oidc/latchkey/store/storetest"
)

// db is one database shared by the replicas of a test, with one clock for
// the stores and rings on it.
type db struct {
	url   string
	clock *storetest.Clock
}

func newDB(t testing.TB) *db {
	return &db{url: storetest.FreshSQLite(t), clock: storetest.NewClock(time.Now().UTC().Truncate(time.Second))}
}

// store opens a store on d, as another replica would.
func (d *db) store(t testing.TB) *store.Store {
	t.Helper()
	return storetest.OpenURL(t, d.url, store.Options{Now: d.clock.Now})
}

// ring returns an unloaded ring on a store of its own on d.
func (d *db) ring(t testing.TB, opts keys.Options) *keys.Ring {
	t.Helper()
	opts.Now = d.clock.Now
	return keys.New(d.store(t), opts)
}

// loaded returns a loaded ring on a store of its own on d.
func (d *db) loaded(t testing.TB, opts keys.Options) *keys.Ring {
	t.Helper()
	r := d.ring(t, opts)
	if err := r.Load(context.Background()); err != nil {
		t.Fatalf("load: %v", err)
	}
	return r
}

// keyList is keys as "alg/state/kid", in order.
func keyList(ks []*store.SigningKey) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.Alg + "/" + string(k.State) + "/" + k.ID
	}
	return out
}

// keyOf returns the key of alg in state, failing t unless there is exactly one.
func keyOf(t *testing.T, r *keys.Ring, alg string, state store.KeyState) *store.SigningKey {
	t.Helper()
	var found *store.SigningKey
	for _, k := range r.Keys() {
		if k.Alg == alg && k.State == state {
			if found != nil {
				t.Fatalf("two %s %s keys: %v", state, alg, keyList(r.Keys()))
			}
			found = k
		}
	}
	if found == nil {
		t.Fatalf("no %s %s key: %v", state, alg, keyList(r.Keys()))
	}
	return found
}

func kids(set jose.JSONWebKeySet) []string {
	out := make([]string, len(set.Keys))
	for i, k := range set.Keys {
		out[i] = k.KeyID
	}
	return out
}

func TestLoadCreatesCurrentAndNextPerAlgorithm(t *testing.T) {
	ctx := context.Background()
	d := newDB(t)
	a := d.loaded(t, keys.Options{})
	if got, want := a.Algs(), []string{"RS256", "ES256", "EdDSA"}; !slices.Equal(got, want) || a.DefaultAlg() != "RS256" {
		t.Fatalf("Algs() = %v, DefaultAlg() = %q; want %v, RS256", got, a.DefaultAlg(), want)
	}
	ks := a.Keys()
	if len(ks) != 6 {
		t.Fatalf("keys after Load on an empty database = %v, want a current and a next key for each of 3 algorithms", keyList(ks))
	}
	for _, alg := range a.Algs() {
		cur := keyOf(t, a, alg, store.KeyCurrent)
		keyOf(t, a, alg, store.KeyNext)
		if cur.ActivatedAt == nil {
			t.Fatalf("current %s key has no activation time", alg)
		}
	}
	for _, k := range ks {
		if k.PrivateJWK != nil {
			t.Fatalf("Keys() returned the private JWK of %s", k.ID)
		}
	}
	// The default algorithm's current key leads the JWKS.
	if first := a.PublicKeys().Keys[0]; first.Algorithm != "RS256" || first.KeyID != keyOf(t, a, "RS256", store.KeyCurrent).ID {
		t.Fatalf("first key in the JWKS is %s %s, want the current RS256 key", first.Algorithm, first.KeyID)
	}

	// A second replica loads the same keys and creates none.
	b := d.loaded(t, keys.Options{})
	if got, want := keyList(b.Keys()), keyList(ks); !slices.Equal(got, want) {
		t.Fatalf("second replica loaded %v, want %v", got, want)
	}
	listed, err := d.store(t).ListSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 6 {
		t.Fatalf("stored keys after two loads = %v, want 6", keyList(listed))
	}
}

func TestLoadConcurrentReplicas(t *testing.T) {
	d := newDB(t)
	const n = 4
	rings := make([]*keys.Ring, n)
	for i := range rings {
		rings[i] = d.ring(t, keys.Options{})
	}
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, r := range rings {
		wg.Go(func() {
			<-start
			errs[i] = r.Load(context.Background())
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Load: %v", err)
	}
	want := keyList(rings[0].Keys())
	if len(want) != 6 {
		t.Fatalf("keys after concurrent Load = %v, want 6", want)
	}
	for i, r := range rings[1:] {
		if got := keyList(r.Keys()); !slices.Equal(got, want) {
			t.Fatalf("replica %d loaded %v, replica 0 %v", i+1, got, want)
		}
	}
	listed, err := d.store(t).ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := keyList(listed); len(got) != 6 {
		t.Fatalf("stored keys after concurrent Load = %v, want 6", got)
	}
}

func TestLoadRejectsBadOptions(t *testing.T) {
	d := newDB(t)
	for _, algs := range [][]string{{"HS256"}, {"ES256", "ES256"}, {"RS256", "none"}} {
		if err := d.ring(t, keys.Options{Algs: algs}).Load(context.Background()); err == nil {
			t.Errorf("Load with algorithms %v succeeded", algs)
		}
	}
}

func TestRotatePublishesNextKeyBeforeItSigns(t *testing.T) {
	ctx := context.Background()
	d := newDB(t)
	r := d.loaded(t, keys.Options{Algs: []string{"ES256", "EdDSA"}})
	oldCurrent, oldNext := keyOf(t, r, "ES256", store.KeyCurrent), keyOf(t, r, "ES256", store.KeyNext)
	eddsa := keyOf(t, r, "EdDSA", store.KeyCurrent)
	before := kids(r.PublicKeys())

	d.clock.Add(time.Hour)
	if err := r.Rotate(ctx, "ES256"); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	tok := generate(t, r, "ES256")
	kid := tokenHeader(t, tok)["kid"]
	if kid != oldNext.ID || !slices.Contains(before, oldNext.ID) {
		t.Fatalf("after rotation the token is signed by %v; want the old next key %s, which was published before: %v", kid, oldNext.ID, before)
	}
	after := kids(r.PublicKeys())
	newNext := keyOf(t, r, "ES256", store.KeyNext)
	if !slices.Contains(after, newNext.ID) || !slices.Contains(after, oldCurrent.ID) {
		t.Fatalf("JWKS after rotation = %v, want the new next key %s and the retired %s in it", after, newNext.ID, oldCurrent.ID)
	}
	if retired := keyOf(t, r, "ES256", store.KeyRetired); retired.ID != oldCurrent.ID || retired.ExpiresAt == nil {
		t.Fatalf("retired key = %+v, want %s with an expiry", retired, oldCurrent.ID)
	}
	if cur := keyOf(t, r, "EdDSA", store.KeyCurrent); cur.ID != eddsa.ID {
		t.Fatalf("rotating ES256 changed the current EdDSA key to %s", cur.ID)
	}
	if err := r.Rotate(ctx, "HS256"); err == nil {
		t.Fatal("Rotate accepted an algorithm the ring has no keys for")
	}
}

func TestRetiredKeyLeavesJWKSAfterRetiredKeepFor(t *testing.T) {
	ctx := context.Background()
	d := newDB(t)
	r := d.loaded(t, keys.Options{Algs: []string{"ES256"}, RetiredKeepFor: time.Hour})
	old := keyOf(t, r, "ES256", store.KeyCurrent)
	hint := generate(t, r, "ES256")
	if err := r.Rotate(ctx, ""); err != nil {
		t.Fatal(err)
	}

	d.clock.Add(time.Hour - time.Second)
	if !slices.Contains(kids(r.PublicKeys()), old.ID) {
		t.Fatalf("retired key %s left the JWKS before RetiredKeepFor", old.ID)
	}
	if _, err := r.Decode(ctx, hint); err != nil {
		t.Fatalf("decode a token of the retired key before it expires: %v", err)
	}

	// Gone without a reload, and after one.
	d.clock.Add(2 * time.Second)
	for _, step := range []string{"without a reload", "after Refresh"} {
		if slices.Contains(kids(r.PublicKeys()), old.ID) || slices.ContainsFunc(r.Keys(), func(k *store.SigningKey) bool { return k.ID == old.ID }) {
			t.Fatalf("%s: retired key %s still published after RetiredKeepFor", step, old.ID)
		}
		if _, err := r.Decode(ctx, hint); err == nil {
			t.Fatalf("%s: a token of an expired retired key still decodes", step)
		}
		if err := r.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if fresh := d.loaded(t, keys.Options{Algs: []string{"ES256"}}); slices.Contains(kids(fresh.PublicKeys()), old.ID) {
		t.Fatalf("a freshly loaded ring publishes the expired key %s", old.ID)
	}
}

func TestRotateDueRotatesOnlyOldKeys(t *testing.T) {
	ctx := context.Background()
	d := newDB(t)
	r := d.loaded(t, keys.Options{RotateEvery: 30 * 24 * time.Hour})
	rs := keyOf(t, r, "RS256", store.KeyCurrent)

	d.clock.Add(10 * 24 * time.Hour)
	if rotated, err := r.RotateDue(ctx); err != nil || len(rotated) != 0 {
		t.Fatalf("RotateDue with 10-day-old keys = %v, %v; want nothing rotated", rotated, err)
	}
	if err := r.Rotate(ctx, "RS256"); err != nil {
		t.Fatal(err)
	}
	rsNew := keyOf(t, r, "RS256", store.KeyCurrent)
	if rsNew.ID == rs.ID {
		t.Fatal("Rotate kept the current RS256 key")
	}

	d.clock.Add(25 * 24 * time.Hour)
	if age := r.CurrentKeyAge("ES256"); age != 35*24*time.Hour {
		t.Fatalf("ES256 key age = %v, want 35 days", age)
	}
	if age := r.CurrentKeyAge(""); age != 25*24*time.Hour {
		t.Fatalf("default (RS256) key age = %v, want 25 days", age)
	}
	rotated, err := r.RotateDue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rotated, []string{"ES256", "EdDSA"}) {
		t.Fatalf("RotateDue rotated %v, want ES256 and EdDSA (35 days old) and not RS256 (25 days)", rotated)
	}
	if cur := keyOf(t, r, "RS256", store.KeyCurrent); cur.ID != rsNew.ID {
		t.Fatalf("RotateDue rotated the 25-day-old RS256 key")
	}
	for _, alg := range []string{"ES256", "EdDSA"} {
		if age := r.CurrentKeyAge(alg); age != 0 {
			t.Fatalf("%s key age after RotateDue = %v, want 0", alg, age)
		}
	}
	if age := r.CurrentKeyAge("HS256"); age != 0 {
		t.Fatalf("age of a key for an unconfigured algorithm = %v, want 0", age)
	}
}

func TestRotateDueOnTwoReplicasRotatesOnce(t *testing.T) {
	ctx := context.Background()
	d := newDB(t)
	opts := keys.Options{Algs: []string{"ES256", "EdDSA"}, RotateEvery: time.Hour}
	a, b := d.loaded(t, opts), d.loaded(t, opts)
	d.clock.Add(2 * time.Hour)

	var rotated [2][]string
	var errs [2]error
	var wg sync.WaitGroup
	for i, r := range []*keys.Ring{a, b} {
		wg.Go(func() { rotated[i], errs[i] = r.RotateDue(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		t.Fatalf("RotateDue on two replicas: %v", err)
	}
	all := append(slices.Clone(rotated[0]), rotated[1]...)
	slices.Sort(all)
	if !slices.Equal(all, []string{"ES256", "EdDSA"}) {
		t.Fatalf("replicas rotated %v and %v, want each algorithm rotated exactly once", rotated[0], rotated[1])
	}
	listed, err := d.store(t).ListSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 6 {
		t.Fatalf("stored keys = %v, want current, next and one retired key per algorithm", keyList(listed))
	}
	// Both replicas ended up with the same keys, the loser by reloading.
	if ka, kb := keyList(a.Keys()), keyList(b.Keys()); !slices.Equal(ka, kb) {
		t.Fatalf("replicas disagree after rotating: %v and %v", ka, kb)
	}
}

// countingStore is the real store, counting how often the keys are listed.
type countingStore struct {
	*store.Store
	lists atomic.Int32
}

func (s *countingStore) ListSigningKeys(ctx context.Context) ([]*store.SigningKey, error) {
	s.lists.Add(1)
	return s.Store.ListSigningKeys(ctx)
}

func TestRefreshPicksUpRotationByAnotherReplica(t *testing.T) {
	ctx := context.Background()
	d := newDB(t)
	opts := keys.Options{Algs: []string{"ES256"}, Now: d.clock.Now}
	a := d.loaded(t, opts)
	st := &countingStore{Store: d.store(t)}
	b := keys.New(st, opts)
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}

	// Nothing changed: Refresh does not list the keys.
	lists := st.lists.Load()
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if n := st.lists.Load(); n != lists {
		t.Fatalf("Refresh listed the keys %d times with nothing changed", n-lists)
	}

	// Two rotations on A: B's current key is then one B has never seen.
	for range 2 {
		if err := a.Rotate(ctx, "ES256"); err != nil {
			t.Fatal(err)
		}
	}
	tokA := generate(t, a, "ES256")
	if _, err := b.Decode(ctx, tokA); err == nil {
		t.Fatal("B verified a token of a key it has not loaded yet")
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := keyList(b.Keys()), keyList(a.Keys()); !slices.Equal(got, want) {
		t.Fatalf("B after Refresh = %v, A = %v", got, want)
	}
	if _, err := b.Decode(ctx, tokA); err != nil {
		t.Fatalf("B decoding A's token after Refresh: %v", err)
	}
	if kid := tokenHeader(t, generate(t, b, "ES256"))["kid"]; kid != keyOf(t, a, "ES256", store.KeyCurrent).ID {
		t.Fatalf("B signs with %v after Refresh, want A's current key", kid)
	}
}

func TestRunRotatesWhenDue(t *testing.T) {
	d := newDB(t)
	r := d.loaded(t, keys.Options{Algs: []string{"ES256"}, RotateEvery: time.Hour})
	old := keyOf(t, r, "ES256", store.KeyCurrent)
	d.clock.Add(2 * time.Hour)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, 10*time.Millisecond); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for r.CurrentKeyAge("ES256") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Run did not rotate a key past RotateEvery: %v", keyList(r.Keys()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if cur := keyOf(t, r, "ES256", store.KeyCurrent); cur.ID == old.ID {
		t.Fatal("the current key is still the old one")
	}
	// One rotation, not one per tick.
	if ks := r.Keys(); len(ks) != 3 {
		t.Fatalf("keys after Run = %v, want current, next and one retired", keyList(ks))
	}
}

func TestLoadRejectsInconsistentImportedKey(t *testing.T) {
	ctx := context.Background()
	d := newDB(t)
	r := d.loaded(t, keys.Options{Algs: []string{"ES256"}})
	// A retired key whose public JWK is another key's.
	k, other := importedES256(t), importedES256(t)
	sk := k.stored(t, store.KeyRetired, d.clock.Now().Add(time.Hour))
	sk.PublicJWK = other.stored(t, store.KeyRetired, d.clock.Now()).PublicJWK
	if err := d.store(t).CreateSigningKey(ctx, sk); err != nil {
		t.Fatal(err)
	}
	before := keyList(r.Keys())
	if err := r.Refresh(ctx); err == nil {
		t.Fatal("Refresh loaded a key whose public JWK is not its own")
	}
	if got := keyList(r.Keys()); !slices.Equal(got, before) {
		t.Fatalf("a failed Refresh changed the keys to %v", got)
	}
	if _, err := r.Decode(ctx, generate(t, r, "ES256")); err != nil {
		t.Fatalf("the ring stopped working after a failed Refresh: %v", err)
	}
}
