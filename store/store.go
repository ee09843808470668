// Package store is the only package of Latchkey that speaks SQL. It keeps
// clients, every token and code fosite issues, device and PAR requests, and the
// tables the provider and the login app build on, in SQLite (the embedded
// default) or PostgreSQL, through sqlx.
//
// Tokens and codes are stored under their HMAC signatures only; the store never
// sees a token in clear except the raw authorization codes fosite uses as
// OpenID Connect session keys, which it reduces to their signature part.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Store implements every storage interface of Latchkey's fosite composition
// plus the application tables. It is safe for concurrent use.
type Store struct {
	db      *sqlx.DB
	dialect dialect
	opts    Options

	stmtMu  sync.RWMutex
	stmts   map[string]*sqlx.Stmt
	warming map[string]struct{} // statements being prepared in the background
	warmers sync.WaitGroup
	closed  bool

	clients      *clientCache
	keySeal      *Sealer // nil without a system secret
	totpSeal     *Sealer
	pairwiseSeal *Sealer

	// statements counts statements sent to the database, so tests and
	// metrics can see what a request costs.
	statements atomic.Int64

	// tokens coalesces the token INSERTs of concurrent requests.
	tokens *tokenInserts

	// writeLock admits one SQLite write transaction of this process at a
	// time, so requests queue here instead of holding pool connections
	// while SQLite's busy handler waits for the file lock. nil on PostgreSQL.
	writeLock chan struct{}
}

// Options tune a Store. The zero value is usable.
type Options struct {
	// RefreshGracePeriod is how long a rotated refresh token still works, so
	// that a client refreshing from two places at once is not logged out. Zero
	// means strict rotation: the second use revokes the whole family.
	RefreshGracePeriod time.Duration
	// CodeReuseWindow is how long an exchanged authorization code is kept, past
	// its own expiry, so a replay is recognised and revokes what the code issued.
	// Defaults to 30 minutes.
	CodeReuseWindow time.Duration
	// ClientCacheTTL bounds how long a cached client is trusted without a
	// check for changes made by another replica. Defaults to 30 seconds; a
	// negative value disables the cache.
	ClientCacheTTL time.Duration
	// NewSession returns the empty session that stored requests are decoded
	// into when fosite does not supply one (PAR, device lookups, revocation).
	// Defaults to openid.NewDefaultSession.
	NewSession func() fosite.Session
	// PasswordChecker verifies resource-owner credentials for the password
	// grant. The provider sets it to a call to the login side; without it the
	// password grant rejects every credential.
	PasswordChecker PasswordChecker
	// SystemSecret (at least 32 bytes) seals private signing keys, TOTP
	// seeds and the pairwise subject key at rest; OldSystemSecrets still
	// open what earlier secrets sealed.
	SystemSecret     []byte
	OldSystemSecrets [][]byte
	// MaxOpenConns caps the connection pool. Defaults to 32 for PostgreSQL and
	// 8 for SQLite.
	MaxOpenConns int
	// Now returns the current time; tests move it. Defaults to time.Now.
	Now func() time.Time
}

// PasswordChecker checks a username and password and returns the subject.
// Wrong credentials are reported as fosite.ErrNotFound.
type PasswordChecker interface {
	CheckPassword(ctx context.Context, username, password string) (subject string, err error)
}

// Open connects to the database named by url: a postgres:// URL (lib/pq), a
// sqlite:// URL or a plain SQLite file path. It checks the connection but does
// not migrate; call Migrate for that. Errors never contain the password.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	target, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	db, err := sqlx.Open(target.driver, target.dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", target.display, err)
	}
	opts = opts.withDefaults(target.dialect)
	db.SetMaxOpenConns(opts.MaxOpenConns)
	db.SetMaxIdleConns(opts.MaxOpenConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connect to %s: %s", target.display, redact(err.Error(), target.password))
	}
	s := &Store{
		db:      db,
		dialect: target.dialect,
		opts:    opts,
		stmts:   make(map[string]*sqlx.Stmt),
		warming: make(map[string]struct{}),
	}
	s.clients = newClientCache(opts.ClientCacheTTL, opts.Now)
	s.tokens = newTokenInserts(s, 4, 64)
	if target.dialect == sqlite {
		s.writeLock = make(chan struct{}, 1)
		s.tokens = newTokenInserts(s, 1, 64)
	}
	if len(opts.SystemSecret) > 0 {
		if s.keySeal, err = NewSealer("signing-keys", opts.SystemSecret, opts.OldSystemSecrets...); err != nil {
			_ = db.Close()
			return nil, err
		}
		if s.totpSeal, err = NewSealer("totp", opts.SystemSecret, opts.OldSystemSecrets...); err != nil {
			_ = db.Close()
			return nil, err
		}
		if s.pairwiseSeal, err = NewSealer("pairwise-subjects", opts.SystemSecret, opts.OldSystemSecrets...); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	return s, nil
}

func (o Options) withDefaults(d dialect) Options {
	if o.CodeReuseWindow == 0 {
		o.CodeReuseWindow = 30 * time.Minute
	}
	if o.ClientCacheTTL == 0 {
		o.ClientCacheTTL = 30 * time.Second
	}
	if o.NewSession == nil {
		o.NewSession = func() fosite.Session { return openid.NewDefaultSession() }
	}
	if o.MaxOpenConns == 0 {
		o.MaxOpenConns = 32
		if d == sqlite {
			o.MaxOpenConns = 8
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Close closes the prepared statements and the connection pool.
func (s *Store) Close() error {
	s.stmtMu.Lock()
	s.closed = true
	s.stmtMu.Unlock()
	s.warmers.Wait()
	s.stmtMu.Lock()
	for _, st := range s.stmts {
		_ = st.Close()
	}
	s.stmts = map[string]*sqlx.Stmt{}
	s.stmtMu.Unlock()
	return s.db.Close()
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.db.PingContext(ctx)
}

// Dialect names the backend: "postgres" or "sqlite".
func (s *Store) Dialect() string { return string(s.dialect) }

// Statements returns how many statements the store has sent to the
// database (not counting BEGIN and COMMIT).
func (s *Store) Statements() int64 { return s.statements.Load() }

// PoolCollector exports the connection pool statistics as Prometheus
// metrics (go_sql_*, with db_name="latchkey").
func (s *Store) PoolCollector() prometheus.Collector {
	return collectors.NewDBStatsCollector(s.db.DB, "latchkey")
}

func (s *Store) now() time.Time { return utc(s.opts.Now()) }

// utc normalises a time to what both backends store: UTC, microseconds.
func utc(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// stmt returns a prepared statement for query (written with ? placeholders),
// bound to the transaction in ctx when there is one. It starts that
// transaction in the database if this is its first statement, and sends the
// token rows the transaction deferred first.
//
// Inside a transaction it never takes a second connection from the pool: if
// every other connection is held by requests waiting for this transaction's
// locks, that would deadlock. A statement not yet prepared is then prepared
// on the transaction's own connection, for this use only.
func (s *Store) stmt(ctx context.Context, query string) (*sqlx.Stmt, error) {
	s.stmtMu.RLock()
	st, ok := s.stmts[query]
	s.stmtMu.RUnlock()
	tx, err := s.begun(ctx)
	if err != nil {
		return nil, err
	}
	if tx != nil {
		// The rows the transaction deferred go before its statement.
		if err := s.sendTokenRows(ctx); err != nil {
			return nil, err
		}
		if ok {
			return tx.StmtxContext(ctx, st), nil
		}
		st, err := tx.PreparexContext(ctx, tx.Rebind(query))
		if err != nil {
			return nil, fmt.Errorf("prepare %q: %w", query, s.mapErr(err))
		}
		s.prepareInBackground(query)
		return st, nil
	}
	if ok {
		return st, nil
	}
	// Prepared without holding stmtMu: preparing waits for a pool
	// connection, and the transactions holding the connections need stmtMu
	// to go on. Concurrent first uses may each prepare; one is kept.
	st, err = s.db.PreparexContext(ctx, s.db.Rebind(query))
	if err != nil {
		return nil, fmt.Errorf("prepare %q: %w", query, s.mapErr(err))
	}
	s.stmtMu.Lock()
	cached, dup := s.stmts[query]
	if !dup && !s.closed {
		s.stmts[query] = st
	}
	s.stmtMu.Unlock()
	if dup {
		_ = st.Close()
		return cached, nil
	}
	return st, nil
}

// prepareInBackground caches a statement first seen inside a transaction,
// from a pool connection of its own, so later transactions reuse it. The
// transaction that asked does not wait for it.
func (s *Store) prepareInBackground(query string) {
	s.stmtMu.Lock()
	if _, busy := s.warming[query]; busy || s.closed {
		s.stmtMu.Unlock()
		return
	}
	s.warming[query] = struct{}{}
	s.warmers.Add(1)
	s.stmtMu.Unlock()
	go func() {
		defer s.warmers.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := s.db.PreparexContext(ctx, s.db.Rebind(query))
		s.stmtMu.Lock()
		defer s.stmtMu.Unlock()
		delete(s.warming, query)
		if err != nil {
			return // the next use inside a transaction tries again
		}
		if _, ok := s.stmts[query]; ok || s.closed {
			_ = st.Close()
			return
		}
		s.stmts[query] = st
	}()
}

func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	unlock, err := s.lockWrite(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := s.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	s.statements.Add(1)
	res, err := st.ExecContext(ctx, args...)
	return res, s.mapErr(err)
}

// execOne runs a statement that must change exactly one row; zero rows is
// fosite.ErrNotFound.
func (s *Store) execOne(ctx context.Context, query string, args ...any) error {
	res, err := s.exec(ctx, query, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fosite.ErrNotFound
	}
	return nil
}

// getWrite runs a writing statement that returns a row (RETURNING).
func (s *Store) getWrite(ctx context.Context, dest any, query string, args ...any) error {
	unlock, err := s.lockWrite(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return s.get(ctx, dest, query, args...)
}

// lockWrite takes SQLite's in-process write lock for a statement that
// writes outside a transaction. Without it such a statement competes for
// the file lock through SQLite's busy handler, which polls: behind a
// steady queue of transactions it can lose for the whole busy timeout.
// Inside a transaction, and on PostgreSQL, it does nothing.
func (s *Store) lockWrite(ctx context.Context) (func(), error) {
	if s.writeLock == nil || txFrom(ctx) != nil {
		return func() {}, nil
	}
	select {
	case s.writeLock <- struct{}{}:
		return s.unlockWrites, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait to write: %w", s.mapErr(ctx.Err()))
	}
}

func (s *Store) get(ctx context.Context, dest any, query string, args ...any) error {
	st, err := s.stmt(ctx, query)
	if err != nil {
		return err
	}
	s.statements.Add(1)
	err = st.GetContext(ctx, dest, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return fosite.ErrNotFound
	}
	return s.mapErr(err)
}

func (s *Store) selectAll(ctx context.Context, dest any, query string, args ...any) error {
	st, err := s.stmt(ctx, query)
	if err != nil {
		return err
	}
	s.statements.Add(1)
	return s.mapErr(st.SelectContext(ctx, dest, args...))
}
