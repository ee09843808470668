package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// KeyState is where a signing key is in its life. A key is published in the
// JWKS as next before it signs anything, so relying parties that cache the
// JWKS already know it when it becomes current; a retired key stays
// published until the tokens it signed have expired. Each algorithm has
// keys of its own and its own rotation.
type KeyState string

// The states of a signing key. Per algorithm, at most one key is next and at
// most one is current at any time.
const (
	KeyNext    KeyState = "next"
	KeyCurrent KeyState = "current"
	KeyRetired KeyState = "retired"
)

func (k KeyState) rank() int {
	switch k {
	case KeyCurrent:
		return 0
	case KeyNext:
		return 1
	case KeyRetired:
		return 2
	}
	return -1
}

// SigningKey is a key pair the provider signs tokens with, as JSON Web Keys.
// The private JWK is sealed with the system secret in the database and is
// only ever in clear in memory.
type SigningKey struct {
	ID          string // the JWK "kid"
	Alg         string // e.g. RS256, ES256
	State       KeyState
	PublicJWK   []byte // JSON
	PrivateJWK  []byte // JSON
	CreatedAt   time.Time
	ActivatedAt *time.Time // when it became current
	RetiredAt   *time.Time
	ExpiresAt   *time.Time // when a retired key stops being published
}

type signingKeyRow struct {
	ID          string     `db:"id"`
	Alg         string     `db:"alg"`
	State       string     `db:"state"`
	PublicJWK   string     `db:"public_jwk"`
	PrivateJWK  []byte     `db:"private_jwk"`
	CreatedAt   time.Time  `db:"created_at"`
	ActivatedAt *time.Time `db:"activated_at"`
	RetiredAt   *time.Time `db:"retired_at"`
	ExpiresAt   *time.Time `db:"expires_at"`
}

const signingKeyColumns = `id, alg, state, public_jwk, private_jwk, created_at, activated_at, retired_at, expires_at`

// optUTC normalises an optional time like utc.
func optUTC(t *time.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	u := utc(*t)
	return &u
}

func timeOrZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

func checkSigningKey(k *SigningKey) error {
	switch {
	case strings.TrimSpace(k.ID) == "":
		return errors.New("key ID is empty")
	case k.Alg == "":
		return fmt.Errorf("key %q has no algorithm", k.ID)
	case k.State.rank() < 0:
		return fmt.Errorf("key %q has unknown state %q", k.ID, k.State)
	case !json.Valid(k.PublicJWK):
		return fmt.Errorf("key %q: public JWK is not JSON", k.ID)
	case !json.Valid(k.PrivateJWK):
		return fmt.Errorf("key %q: private JWK is not JSON", k.ID)
	}
	return nil
}

// lockSigningKeys bumps the signing_keys generation as the first statement of
// a key-changing transaction. Besides telling other replicas to reload, the
// row lock it takes on PostgreSQL serialises every key change, so the checks
// that follow in the same transaction see what the previous writer
// committed (under READ COMMITTED each statement reads the latest commits).
// SQLite serialises writers already: every transaction begins IMMEDIATE.
func (s *Store) lockSigningKeys(ctx context.Context) error {
	return s.bumpGeneration(ctx, topicSigningKeys)
}

// insertSigningKey seals k's private key and inserts it.
func (s *Store) insertSigningKey(ctx context.Context, k *SigningKey) error {
	sealed, err := s.keySeal.Seal(k.PrivateJWK, []byte(k.ID))
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, `INSERT INTO signing_keys (`+signingKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.Alg, string(k.State), string(k.PublicJWK), sealed, k.CreatedAt, k.ActivatedAt, k.RetiredAt, k.ExpiresAt)
	return err
}

// CreateSigningKey stores a new key, sealing its private JWK. It is how the
// first current and next keys of an algorithm are made, and how keys are
// imported. A taken ID, or a second key of the same algorithm in state next
// or current, gives ErrAlreadyExists, so replicas that start at once on an
// empty database create one current key per algorithm between them: the
// others reload. A current key without ActivatedAt and a retired key without
// RetiredAt get the current time.
func (s *Store) CreateSigningKey(ctx context.Context, k *SigningKey) error {
	if err := checkSigningKey(k); err != nil {
		return fmt.Errorf("create signing key: %w", err)
	}
	if s.keySeal == nil {
		return fmt.Errorf("create signing key: %w", ErrNoSystemSecret)
	}
	now := s.now()
	key := *k
	key.CreatedAt = now
	key.ActivatedAt, key.RetiredAt, key.ExpiresAt = optUTC(k.ActivatedAt), optUTC(k.RetiredAt), optUTC(k.ExpiresAt)
	if key.State == KeyCurrent && key.ActivatedAt == nil {
		key.ActivatedAt = &now
	}
	if key.State == KeyRetired && key.RetiredAt == nil {
		key.RetiredAt = &now
	}
	err := s.InTx(ctx, func(ctx context.Context) error {
		if err := s.lockSigningKeys(ctx); err != nil {
			return err
		}
		if key.State != KeyRetired {
			var n int
			if err := s.get(ctx, &n, `SELECT COUNT(*) FROM signing_keys WHERE state = ? AND alg = ?`, string(key.State), key.Alg); err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("a %s %s key exists already: %w", key.State, key.Alg, ErrAlreadyExists)
			}
		}
		return s.insertSigningKey(ctx, &key)
	})
	if err != nil {
		return fmt.Errorf("create signing key %q: %w", k.ID, err)
	}
	*k = key
	return nil
}

// ListSigningKeys returns every key that is still published (next, current,
// and retired keys not yet expired) of every algorithm with its private JWK
// opened: current keys first, then next keys, then retired keys, most
// recently retired first. A private key the system secret cannot open is an
// error, never a key with garbage in it.
func (s *Store) ListSigningKeys(ctx context.Context) ([]*SigningKey, error) {
	if s.keySeal == nil {
		return nil, fmt.Errorf("list signing keys: %w", ErrNoSystemSecret)
	}
	var rows []signingKeyRow
	if err := s.selectAll(ctx, &rows, `SELECT `+signingKeyColumns+` FROM signing_keys WHERE expires_at IS NULL OR expires_at > ?`, s.now()); err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	keys := make([]*SigningKey, 0, len(rows))
	for _, r := range rows {
		priv, err := s.keySeal.Open(r.PrivateJWK, []byte(r.ID))
		if err != nil {
			return nil, fmt.Errorf("list signing keys: private key %q: %w", r.ID, err)
		}
		keys = append(keys, &SigningKey{
			ID:          r.ID,
			Alg:         r.Alg,
			State:       KeyState(r.State),
			PublicJWK:   []byte(r.PublicJWK),
			PrivateJWK:  priv,
			CreatedAt:   r.CreatedAt.UTC(),
			ActivatedAt: optUTC(r.ActivatedAt),
			RetiredAt:   optUTC(r.RetiredAt),
			ExpiresAt:   optUTC(r.ExpiresAt),
		})
	}
	// Sorted here rather than in SQL so both backends agree whatever the
	// database collation.
	slices.SortFunc(keys, func(a, b *SigningKey) int {
		if c := a.State.rank() - b.State.rank(); c != 0 {
			return c
		}
		if c := timeOrZero(b.RetiredAt).Compare(timeOrZero(a.RetiredAt)); c != 0 {
			return c
		}
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return keys, nil
}

// RotateSigningKeys moves the keys of one algorithm, newNext's, one step in
// one transaction: the current key currentID is retired (published for
// retiredKeepFor more, for tokens it signed), the next key of that algorithm
// becomes current, and newNext is stored as its next key. Keys of other
// algorithms are left alone; a currentID of another algorithm than newNext's
// is an error and changes nothing. currentID is the current key the caller
// saw when it decided to rotate: when several replicas decide at once, the
// first rotation takes effect and the others get ErrConflict and change
// nothing, instead of rotating again and signing with a key no relying party
// has seen yet. A missing next key is ErrNotFound. Other replicas learn of
// the rotation through the signing_keys cache generation.
func (s *Store) RotateSigningKeys(ctx context.Context, currentID string, newNext *SigningKey, retiredKeepFor time.Duration) error {
	key := *newNext
	if key.State == "" {
		key.State = KeyNext
	}
	if key.State != KeyNext {
		return fmt.Errorf("rotate signing keys: new key %q must be in state next, not %q", key.ID, key.State)
	}
	if err := checkSigningKey(&key); err != nil {
		return fmt.Errorf("rotate signing keys: %w", err)
	}
	if retiredKeepFor <= 0 {
		return errors.New("rotate signing keys: a retired key must stay published for a positive duration")
	}
	if s.keySeal == nil {
		return fmt.Errorf("rotate signing keys: %w", ErrNoSystemSecret)
	}
	now := s.now()
	expires := now.Add(retiredKeepFor)
	key.CreatedAt = now
	key.ActivatedAt, key.RetiredAt, key.ExpiresAt = nil, nil, nil
	err := s.InTx(ctx, func(ctx context.Context) error {
		if err := s.lockSigningKeys(ctx); err != nil {
			return err
		}
		// Conditional on the state as well as the ID, so the check holds
		// on its own: a concurrent rotation that retired this key first
		// leaves nothing for this UPDATE to change.
		if err := s.execOne(ctx, `UPDATE signing_keys SET state = ?, retired_at = ?, expires_at = ? WHERE id = ? AND state = ? AND alg = ?`,
			string(KeyRetired), now, expires, currentID, string(KeyCurrent), key.Alg); err != nil {
			if errors.Is(err, ErrNotFound) {
				return s.whyNotRotated(ctx, currentID, key.Alg)
			}
			return err
		}
		res, err := s.exec(ctx, `UPDATE signing_keys SET state = ?, activated_at = ? WHERE state = ? AND alg = ?`,
			string(KeyCurrent), now, string(KeyNext), key.Alg)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("no next %s key to promote: %w", key.Alg, ErrNotFound)
		} else if n > 1 {
			return fmt.Errorf("%d next %s keys to promote, want 1", n, key.Alg)
		}
		return s.insertSigningKey(ctx, &key)
	})
	if err != nil {
		return fmt.Errorf("rotate signing keys: %w", err)
	}
	*newNext = key
	return nil
}

// whyNotRotated explains why the key currentID could not be retired for a
// rotation of alg's keys. Only the happy path's statements run on every
// rotation; this one runs when that path found nothing to retire.
func (s *Store) whyNotRotated(ctx context.Context, currentID, alg string) error {
	var keyAlg string
	err := s.get(ctx, &keyAlg, `SELECT alg FROM signing_keys WHERE id = ?`, currentID)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return err
	case keyAlg != alg:
		return fmt.Errorf("key %q is for %s, the new next key for %s: rotate each algorithm's keys on their own", currentID, keyAlg, alg)
	}
	return fmt.Errorf("key %q is no longer current: %w", currentID, ErrConflict)
}
