package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ory/fosite"
)

var _ fosite.ClientManager = (*Store)(nil)

type clientRow struct {
	ID                    string    `db:"id"`
	SecretHash            string    `db:"secret_hash"`
	RotatedSecretHashes   string    `db:"rotated_secret_hashes"`
	RegistrationTokenHash string    `db:"registration_token_hash"`
	Metadata              string    `db:"metadata"`
	CreatedAt             time.Time `db:"created_at"`
	UpdatedAt             time.Time `db:"updated_at"`
}

func (r clientRow) client() (*Client, error) {
	c := &Client{}
	if err := json.Unmarshal([]byte(r.Metadata), c); err != nil {
		return nil, fmt.Errorf("decode client %q: %w", r.ID, err)
	}
	if err := json.Unmarshal([]byte(r.RotatedSecretHashes), &c.RotatedSecretHashes); err != nil {
		return nil, fmt.Errorf("decode client %q rotated secrets: %w", r.ID, err)
	}
	c.ID = r.ID
	c.SecretHash = r.SecretHash
	c.RegistrationTokenHash = r.RegistrationTokenHash
	c.CreatedAt, c.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	return c, nil
}

func newClientRow(c *Client) (clientRow, error) {
	meta, err := json.Marshal(c)
	if err != nil {
		return clientRow{}, fmt.Errorf("encode client %q: %w", c.ID, err)
	}
	rotated := c.RotatedSecretHashes
	if rotated == nil {
		rotated = []string{}
	}
	rot, err := json.Marshal(rotated)
	if err != nil {
		return clientRow{}, err
	}
	return clientRow{
		ID:                    c.ID,
		SecretHash:            c.SecretHash,
		RotatedSecretHashes:   string(rot),
		RegistrationTokenHash: c.RegistrationTokenHash,
		Metadata:              string(meta),
		CreatedAt:             utc(c.CreatedAt),
		UpdatedAt:             utc(c.UpdatedAt),
	}, nil
}

const clientColumns = `id, secret_hash, rotated_secret_hashes, registration_token_hash, metadata, created_at, updated_at`

// CreateClient stores a new client. The caller hashes the secret first.
// A taken ID gives ErrAlreadyExists.
func (s *Store) CreateClient(ctx context.Context, c *Client) error {
	if strings.TrimSpace(c.ID) == "" {
		return errors.New("create client: client_id is empty")
	}
	now := s.now()
	c.CreatedAt, c.UpdatedAt = now, now
	row, err := newClientRow(c)
	if err != nil {
		return err
	}
	return s.InTx(ctx, func(ctx context.Context) error {
		if _, err := s.exec(ctx, `INSERT INTO clients (`+clientColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			row.ID, row.SecretHash, row.RotatedSecretHashes, row.RegistrationTokenHash, row.Metadata, row.CreatedAt, row.UpdatedAt); err != nil {
			return fmt.Errorf("create client %q: %w", c.ID, err)
		}
		return s.bumpGeneration(ctx, topicClients)
	})
}

// UpdateClient replaces a client's metadata and secret hashes.
func (s *Store) UpdateClient(ctx context.Context, c *Client) error {
	c.UpdatedAt = s.now()
	row, err := newClientRow(c)
	if err != nil {
		return err
	}
	err = s.InTx(ctx, func(ctx context.Context) error {
		if err := s.execOne(ctx, `UPDATE clients SET secret_hash = ?, rotated_secret_hashes = ?, registration_token_hash = ?, metadata = ?, updated_at = ? WHERE id = ?`,
			row.SecretHash, row.RotatedSecretHashes, row.RegistrationTokenHash, row.Metadata, row.UpdatedAt, row.ID); err != nil {
			return fmt.Errorf("update client %q: %w", c.ID, err)
		}
		return s.bumpGeneration(ctx, topicClients)
	})
	s.clients.forget(c.ID)
	return err
}

// DeleteClient removes a client. Its tokens stop working at once: every
// stored request loads its client, and a missing client is not found.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	err := s.InTx(ctx, func(ctx context.Context) error {
		if err := s.execOne(ctx, `DELETE FROM clients WHERE id = ?`, id); err != nil {
			return fmt.Errorf("delete client %q: %w", id, err)
		}
		if _, err := s.exec(ctx, `DELETE FROM consent_grants WHERE client_id = ?`, id); err != nil {
			return fmt.Errorf("delete client %q consents: %w", id, err)
		}
		return s.bumpGeneration(ctx, topicClients)
	})
	s.clients.forget(id)
	return err
}

// ListClients returns clients ordered by ID, after the given ID, at most limit.
func (s *Store) ListClients(ctx context.Context, after string, limit int) ([]*Client, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	var rows []clientRow
	if err := s.selectAll(ctx, &rows, `SELECT `+clientColumns+` FROM clients WHERE id > ? ORDER BY id LIMIT ?`, after, limit); err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	out := make([]*Client, 0, len(rows))
	for _, r := range rows {
		c, err := r.client()
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// LoadClient reads a client from the database, bypassing the cache. The
// result is the caller's to change.
func (s *Store) LoadClient(ctx context.Context, id string) (*Client, error) {
	var row clientRow
	if err := s.get(ctx, &row, `SELECT `+clientColumns+` FROM clients WHERE id = ?`, id); err != nil {
		return nil, fmt.Errorf("load client %q: %w", id, err)
	}
	return row.client()
}

// GetClient returns the client with that ID, from the cache when it is
// fresh. The returned client is shared: callers must not modify it.
func (s *Store) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	if c, ok := s.clients.get(id); ok {
		return c, nil
	}
	epoch := s.clients.currentEpoch()
	c, err := s.LoadClient(ctx, id)
	if err != nil {
		return nil, err
	}
	s.clients.put(c, epoch)
	return c, nil
}

// ClientAssertionJWTValid reports fosite.ErrJTIKnown when a client assertion
// with this jti was already used and has not expired.
func (s *Store) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	var exp time.Time
	err := s.get(ctx, &exp, `SELECT expires_at FROM jtis WHERE jti_hash = ?`, hashKey(jti))
	if errors.Is(err, fosite.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check jti: %w", err)
	}
	if exp.After(s.now()) {
		return fosite.ErrJTIKnown
	}
	return nil
}

// SetClientAssertionJWT records a jti until exp. It is one conditional
// insert, so two concurrent uses of one assertion cannot both succeed: the
// loser gets fosite.ErrJTIKnown. An expired record is replaced.
func (s *Store) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	res, err := s.exec(ctx, `INSERT INTO jtis (jti_hash, expires_at) VALUES (?, ?)
		ON CONFLICT (jti_hash) DO UPDATE SET expires_at = excluded.expires_at WHERE jtis.expires_at <= ?`,
		hashKey(jti), utc(exp), s.now())
	if err != nil {
		return fmt.Errorf("record jti: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("record jti: %w", err)
	} else if n == 0 {
		return fosite.ErrJTIKnown
	}
	return nil
}

// IsJWTUsed is the RFC 7523 name for ClientAssertionJWTValid.
func (s *Store) IsJWTUsed(ctx context.Context, jti string) (bool, error) {
	err := s.ClientAssertionJWTValid(ctx, jti)
	if errors.Is(err, fosite.ErrJTIKnown) {
		return true, nil
	}
	return false, err
}

// MarkJWTUsedForTime is the RFC 7523 name for SetClientAssertionJWT.
func (s *Store) MarkJWTUsedForTime(ctx context.Context, jti string, exp time.Time) error {
	return s.SetClientAssertionJWT(ctx, jti, exp)
}

// clientCache keeps clients in memory. An entry is trusted for ttl and until
// the clients generation in the database moves: every client write bumps it,
// and WatchCaches brings other replicas' bumps in.
type clientCache struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.RWMutex
	epoch   int64 // moves on every local flush, so racing loads are not cached
	dbGen   int64 // last database generation seen
	entries map[string]cacheEntry
}

type cacheEntry struct {
	client   *Client
	loadedAt time.Time
}

func newClientCache(ttl time.Duration, now func() time.Time) *clientCache {
	return &clientCache{ttl: ttl, now: now, entries: map[string]cacheEntry{}}
}

func (c *clientCache) get(id string) (*Client, bool) {
	if c.ttl < 0 {
		return nil, false
	}
	c.mu.RLock()
	e, ok := c.entries[id]
	c.mu.RUnlock()
	if !ok || c.now().Sub(e.loadedAt) > c.ttl {
		return nil, false
	}
	return e.client, true
}

// currentEpoch is passed to put by a load, so a flush during the load
// keeps its result out of the cache.
func (c *clientCache) currentEpoch() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.epoch
}

// put caches a client loaded while the cache was at epoch; if the cache was
// flushed meanwhile the client may be stale and is not kept.
func (c *clientCache) put(cl *Client, epoch int64) {
	if c.ttl < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch == c.epoch {
		c.entries[cl.ID] = cacheEntry{client: cl, loadedAt: c.now()}
	}
}

func (c *clientCache) forget(id string) {
	c.mu.Lock()
	delete(c.entries, id)
	c.epoch++
	c.mu.Unlock()
}

// observe flushes the cache when the database generation moved.
func (c *clientCache) observe(dbGen int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if dbGen != c.dbGen {
		c.dbGen = dbGen
		c.epoch++
		c.entries = map[string]cacheEntry{}
	}
}
