// Package keys holds the provider's signing keys: a Ring loads them from the
// store, keeps a current and a next key for every configured algorithm,
// rotates them, publishes them as a JWKS and signs and verifies JWTs with
// them as fosite's jwt.Signer. Signing never touches the database: the keys
// are held in memory and reloaded when another replica changes them.
package keys

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v3"

	"github.com/latchkey-oidc/latchkey/store"
)

// Store is what the ring needs from the store (*store.Store satisfies it).
type Store interface {
	ListSigningKeys(ctx context.Context) ([]*store.SigningKey, error)
	CreateSigningKey(ctx context.Context, k *store.SigningKey) error
	RotateSigningKeys(ctx context.Context, currentID string, newNext *store.SigningKey, retiredKeepFor time.Duration) error
	Generation(ctx context.Context, topic string) (int64, error)
}

var _ Store = (*store.Store)(nil)

// generationTopic is the store's cache topic for signing keys; it moves
// whenever any replica changes them.
const generationTopic = "signing_keys"

// Options configure a Ring.
type Options struct {
	// Algs are the algorithms to keep keys for: RS256 (RSA 2048), ES256
	// (P-256) and EdDSA (Ed25519). The first is the default algorithm.
	// Defaults to RS256, ES256 and EdDSA.
	Algs []string
	// RotateEvery is the age of a current key after which Run rotates it.
	// Defaults to 30 days.
	RotateEvery time.Duration
	// RetiredKeepFor is how long a retired key stays published, so tokens
	// it signed still verify; set it at least to the longest token
	// lifetime. Defaults to 7 days.
	RetiredKeepFor time.Duration
	// Now returns the current time; tests move it. Defaults to time.Now.
	Now func() time.Time
	// Log gets rotations and failed background reloads. Defaults to
	// discarding them.
	Log *slog.Logger
}

// Defaults for Options.
const (
	DefaultRotateEvery    = 30 * 24 * time.Hour
	DefaultRetiredKeepFor = 7 * 24 * time.Hour
)

// DefaultAlgs are the algorithms a ring keeps keys for unless told otherwise.
func DefaultAlgs() []string { return []string{"RS256", "ES256", "EdDSA"} }

// Ring is the provider's set of signing keys. It is safe for concurrent use;
// readers see an immutable snapshot that reloads swap whole.
type Ring struct {
	st             Store
	algs           []string
	optsErr        error
	rotateEvery    time.Duration
	retiredKeepFor time.Duration
	now            func() time.Time
	log            *slog.Logger

	snap atomic.Pointer[snapshot]
	// reloading serialises reloads, so a slow reload never replaces the
	// keys a later one loaded.
	reloading sync.Mutex
}

// New returns a ring on st. It holds no keys until Load; an unusable
// Options.Algs is reported by Load.
func New(st Store, opts Options) *Ring {
	r := &Ring{
		st:             st,
		algs:           slices.Clone(opts.Algs),
		rotateEvery:    cmp.Or(max(opts.RotateEvery, 0), DefaultRotateEvery),
		retiredKeepFor: cmp.Or(max(opts.RetiredKeepFor, 0), DefaultRetiredKeepFor),
		now:            opts.Now,
		log:            opts.Log,
	}
	if len(r.algs) == 0 {
		r.algs = DefaultAlgs()
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	for i, alg := range r.algs {
		if !supported(alg) {
			r.optsErr = errors.Join(r.optsErr, fmt.Errorf("signing algorithm %q is not supported (RS256, ES256, EdDSA are)", alg))
		} else if slices.Index(r.algs, alg) < i {
			r.optsErr = errors.Join(r.optsErr, fmt.Errorf("signing algorithm %q is listed twice", alg))
		}
	}
	r.snap.Store(&snapshot{gen: -1})
	return r
}

// Load makes sure every configured algorithm has a current and a next key,
// creating the missing ones, and then loads every published key. Replicas
// that start at once on an empty database each try to create the keys; the
// store lets one create each key and the others load it.
func (r *Ring) Load(ctx context.Context) error {
	if r.optsErr != nil {
		return fmt.Errorf("load signing keys: %w", r.optsErr)
	}
	listed, err := r.st.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	for _, alg := range r.algs {
		for _, state := range []store.KeyState{store.KeyCurrent, store.KeyNext} {
			if slices.ContainsFunc(listed, func(k *store.SigningKey) bool { return k.Alg == alg && k.State == state }) {
				continue
			}
			k, err := newSigningKey(alg, state)
			if err != nil {
				return fmt.Errorf("load signing keys: %w", err)
			}
			switch err := r.st.CreateSigningKey(ctx, k); {
			case err == nil:
				r.log.Info("created signing key", "alg", alg, "state", state, "kid", k.ID)
			case errors.Is(err, store.ErrAlreadyExists):
				// Another replica created it first; the reload below
				// picks up theirs.
			default:
				return fmt.Errorf("load signing keys: %w", err)
			}
		}
	}
	if err := r.reload(ctx); err != nil {
		return err
	}
	snap := r.snapshot()
	for _, alg := range r.algs {
		if snap.current[alg] == nil || snap.next[alg] == nil {
			return fmt.Errorf("load signing keys: no current and next %s key after creating them", alg)
		}
	}
	return nil
}

// Refresh reloads the keys if another replica (or this one) changed them
// since the last load. It costs one small query when nothing changed.
func (r *Ring) Refresh(ctx context.Context) error {
	gen, err := r.st.Generation(ctx, generationTopic)
	if err != nil {
		return fmt.Errorf("refresh signing keys: %w", err)
	}
	if gen == r.snapshot().gen {
		return nil
	}
	return r.reload(ctx)
}

// reload reads every published key and swaps them in.
func (r *Ring) reload(ctx context.Context) error {
	r.reloading.Lock()
	defer r.reloading.Unlock()
	// The generation is read before the keys: a change in between makes
	// the next Refresh load again rather than miss it.
	gen, err := r.st.Generation(ctx, generationTopic)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	listed, err := r.st.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	snap, err := newSnapshot(gen, listed, r.algs)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	r.snap.Store(snap)
	return nil
}

func (r *Ring) snapshot() *snapshot { return r.snap.Load() }

// Rotate rotates alg's keys ("" is the default algorithm): the next key,
// published since the last rotation, becomes current; the current key is
// retired and stays published for RetiredKeepFor; a new next key is
// generated. The keys are refreshed first, so Rotate rotates from the key
// that is current now; if another replica rotates in between, the store
// keeps only the first rotation and Rotate loads its result.
func (r *Ring) Rotate(ctx context.Context, alg string) error {
	alg, err := r.configuredAlg(alg)
	if err != nil {
		return fmt.Errorf("rotate signing keys: %w", err)
	}
	if err := r.Refresh(ctx); err != nil {
		return err
	}
	cur := r.snapshot().current[alg]
	if cur == nil {
		return fmt.Errorf("rotate %s signing keys: no current key loaded", alg)
	}
	_, err = r.rotateFrom(ctx, alg, cur.meta.ID)
	return err
}

// RotateDue rotates every configured algorithm whose current key has been
// current for RotateEvery or longer, and returns those this ring rotated. It
// decides from the loaded keys: if they are stale because another replica
// rotated already, the store refuses the second rotation and the ring just
// loads the first one's result.
func (r *Ring) RotateDue(ctx context.Context) (rotated []string, err error) {
	snap, now := r.snapshot(), r.now()
	var errs []error
	for _, alg := range r.algs {
		cur := snap.current[alg]
		if cur == nil || cur.meta.ActivatedAt == nil || now.Sub(*cur.meta.ActivatedAt) < r.rotateEvery {
			continue
		}
		ok, err := r.rotateFrom(ctx, alg, cur.meta.ID)
		if err != nil {
			errs = append(errs, err)
		} else if ok {
			rotated = append(rotated, alg)
		}
	}
	return rotated, errors.Join(errs...)
}

// rotateFrom rotates alg's keys if currentID is still its current key, and
// reloads either way. It reports whether this call did the rotation.
func (r *Ring) rotateFrom(ctx context.Context, alg, currentID string) (bool, error) {
	next, err := newSigningKey(alg, store.KeyNext)
	if err != nil {
		return false, fmt.Errorf("rotate %s signing keys: %w", alg, err)
	}
	err = r.st.RotateSigningKeys(ctx, currentID, next, r.retiredKeepFor)
	rotated := err == nil
	switch {
	case rotated:
		r.log.Info("rotated signing keys", "alg", alg, "retired", currentID, "next", next.ID)
	case errors.Is(err, store.ErrConflict):
		r.log.Info("signing keys were rotated by another replica", "alg", alg)
	default:
		return false, fmt.Errorf("rotate %s signing keys: %w", alg, err)
	}
	return rotated, r.reload(ctx)
}

// Run refreshes the keys and rotates those due every interval until ctx
// ends, starting at once. Failures are logged and retried at the next tick.
func (r *Ring) Run(ctx context.Context, every time.Duration) {
	tick := func() {
		if err := r.Refresh(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("signing keys refresh failed", "err", err)
		}
		if _, err := r.RotateDue(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("signing key rotation failed", "err", err)
		}
	}
	tick()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			tick()
		}
	}
}

// Usable reports whether every configured algorithm has a current key to
// sign with.
func (r *Ring) Usable() error {
	snap := r.snapshot()
	if snap == nil {
		return errors.New("signing keys: not loaded")
	}
	for _, alg := range r.algs {
		if snap.current[alg] == nil {
			return fmt.Errorf("signing keys: no current %s key", alg)
		}
	}
	return nil
}

// Algs returns the configured algorithms, the default first.
func (r *Ring) Algs() []string { return slices.Clone(r.algs) }

// DefaultAlg is the algorithm used when a caller names none.
func (r *Ring) DefaultAlg() string { return r.algs[0] }

// configuredAlg resolves "" to the default algorithm and refuses an
// algorithm the ring keeps no keys for.
func (r *Ring) configuredAlg(alg string) (string, error) {
	if alg == "" {
		return r.DefaultAlg(), nil
	}
	if !slices.Contains(r.algs, alg) {
		return "", fmt.Errorf("signing algorithm %q is not configured (%v are)", alg, r.algs)
	}
	return alg, nil
}

// PublicKeys is the JWKS: the public part of every published key of every
// algorithm, next and retired keys included, each with kid, alg and use
// "sig". Current keys come first, the default algorithm's first of all.
func (r *Ring) PublicKeys() jose.JSONWebKeySet {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range r.snapshot().published(r.now()) {
		set.Keys = append(set.Keys, k.public)
	}
	return set
}

// Keys lists the published keys for the admin API and CLI, in the order of
// PublicKeys. The copies carry no private key.
func (r *Ring) Keys() []*store.SigningKey {
	var out []*store.SigningKey
	for _, k := range r.snapshot().published(r.now()) {
		m := *k.meta
		m.PublicJWK = slices.Clone(m.PublicJWK)
		m.ActivatedAt, m.RetiredAt, m.ExpiresAt = cloneTime(m.ActivatedAt), cloneTime(m.RetiredAt), cloneTime(m.ExpiresAt)
		out = append(out, &m)
	}
	return out
}

func cloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

// CurrentKeyAge is how long alg's current key ("" is the default
// algorithm's) has been current; zero if there is none.
func (r *Ring) CurrentKeyAge(alg string) time.Duration {
	if alg == "" {
		alg = r.DefaultAlg()
	}
	cur := r.snapshot().current[alg]
	if cur == nil || cur.meta.ActivatedAt == nil {
		return 0
	}
	return r.now().Sub(*cur.meta.ActivatedAt)
}
