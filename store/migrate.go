package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations
var migrationFiles embed.FS

// migrationLockID is the PostgreSQL advisory lock that serialises migrations
// across processes ("latchkey" in ASCII, folded into an int64).
const migrationLockID = 0x6c617463686b6579

type migration struct {
	version int
	name    string
	sql     string
}

// sqliteTypes rewrites the PostgreSQL column types of the shared migrations
// for SQLite. The modernc driver stores TIMESTAMP columns as sortable UTC
// text and reads them back as time.Time.
var sqliteTypes = strings.NewReplacer("TIMESTAMPTZ", "TIMESTAMP", "BYTEA", "BLOB")

// loadMigrations returns the migrations for d in version order. Each is
// migrations/NNNN_name.sql, written once for both backends, unless
// migrations/<dialect>/NNNN_name.sql overrides it for a change that cannot
// be written portably.
func loadMigrations(d dialect) ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, _ := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("migration %s: name must start with its version number", e.Name())
		}
		body, err := fs.ReadFile(migrationFiles, path.Join("migrations", string(d), e.Name()))
		if err != nil {
			if body, err = fs.ReadFile(migrationFiles, path.Join("migrations", e.Name())); err != nil {
				return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
			}
			if d == sqlite {
				body = []byte(sqliteTypes.Replace(string(body)))
			}
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// Migrate applies the embedded migrations that the database lacks, each in
// its own transaction, and returns how many it applied. Concurrent callers in
// other processes wait for each other: PostgreSQL through an advisory lock,
// SQLite through its write lock (every transaction begins IMMEDIATE).
func (s *Store) Migrate(ctx context.Context) (applied int, err error) {
	ms, err := loadMigrations(s.dialect)
	if err != nil {
		return 0, err
	}
	conn, err := s.db.Connx(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	if s.dialect == postgres {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLockID)); err != nil {
			return 0, fmt.Errorf("migrate: take advisory lock: %w", err)
		}
		defer func() {
			// A fresh context: the lock must be released even if ctx ended.
			_, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, int64(migrationLockID))
		}()
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		name TEXT NOT NULL,
		applied_at TEXT NOT NULL)`); err != nil {
		return 0, fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	for _, m := range ms {
		tx, err := conn.BeginTxx(ctx, nil)
		if err != nil {
			return applied, fmt.Errorf("migrate %s: begin: %w", m.name, err)
		}
		var n int
		if err := tx.GetContext(ctx, &n, s.db.Rebind(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), m.version); err != nil {
			_ = tx.Rollback()
			return applied, fmt.Errorf("migrate %s: %w", m.name, err)
		}
		if n > 0 {
			_ = tx.Rollback()
			continue
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			_ = tx.Rollback()
			return applied, fmt.Errorf("migrate %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
			m.version, m.name, time.Now().UTC().Format(time.RFC3339)); err != nil {
			_ = tx.Rollback()
			return applied, fmt.Errorf("migrate %s: record: %w", m.name, err)
		}
		if err := tx.Commit(); err != nil {
			return applied, fmt.Errorf("migrate %s: commit: %w", m.name, err)
		}
		applied++
	}
	return applied, nil
}

// MigrationStatus lists the embedded migrations already applied to the
// database and those still pending, by file name.
func (s *Store) MigrationStatus(ctx context.Context) (applied, pending []string, err error) {
	ms, err := loadMigrations(s.dialect)
	if err != nil {
		return nil, nil, err
	}
	var done []int
	if err := s.db.SelectContext(ctx, &done, `SELECT version FROM schema_migrations`); err != nil && !strings.Contains(err.Error(), "schema_migrations") {
		return nil, nil, fmt.Errorf("migration status: %w", err)
	}
	have := make(map[int]bool, len(done))
	for _, v := range done {
		have[v] = true
	}
	for _, m := range ms {
		if have[m.version] {
			applied = append(applied, m.name)
		} else {
			pending = append(pending, m.name)
		}
	}
	return applied, pending, nil
}

// SchemaVersion returns the highest applied migration, 0 for an empty database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v *int
	err := s.db.GetContext(ctx, &v, `SELECT MAX(version) FROM schema_migrations`)
	if err != nil {
		if strings.Contains(err.Error(), "schema_migrations") {
			return 0, nil
		}
		return 0, fmt.Errorf("schema version: %w", err)
	}
	if v == nil {
		return 0, nil
	}
	return *v, nil
}
