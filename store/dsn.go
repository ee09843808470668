package store

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	_ "github.com/lib/pq"  // PostgreSQL driver
	_ "modernc.org/sqlite" // SQLite driver, pure Go
)

type dialect string

const (
	postgres dialect = "postgres"
	sqlite   dialect = "sqlite"
)

// target is a parsed database URL.
type target struct {
	dialect  dialect
	driver   string
	dsn      string
	display  string // safe to print: no password
	password string
}

// sqlitePragmas make SQLite behave under concurrent use: WAL lets readers run
// beside the writer, busy_timeout makes writers queue instead of failing with
// "database is locked", and immediate transactions take the write lock up
// front so two transactions never deadlock upgrading read locks.
const sqlitePragmas = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate&_time_format=sqlite"

func parseURL(raw string) (target, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return target{}, errors.New("database URL is empty")
	}
	scheme, _, hasScheme := strings.Cut(raw, "://")
	if !hasScheme {
		if strings.HasPrefix(raw, "sqlite:") {
			return sqliteTarget(strings.TrimPrefix(raw, "sqlite:"))
		}
		if strings.HasPrefix(raw, "postgres:") || strings.HasPrefix(raw, "postgresql:") {
			return target{}, errors.New("database URL: postgres URLs start with postgres://")
		}
		return sqliteTarget(raw)
	}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		u, err := url.Parse(raw)
		if err != nil {
			// url.Parse quotes the whole URL, password included, so its
			// message is not passed on.
			return target{}, errors.New("database URL is not a valid postgres URL (special characters in the user or password must be percent-encoded)")
		}
		if u.Host == "" {
			return target{}, errors.New("database URL: postgres URL has no host")
		}
		pw, _ := u.User.Password()
		return target{
			dialect:  postgres,
			driver:   "postgres",
			dsn:      raw,
			display:  "postgres database " + u.Redacted(),
			password: pw,
		}, nil
	case "sqlite", "sqlite3", "file":
		return sqliteTarget(raw[len(scheme)+3:])
	default:
		return target{}, fmt.Errorf("database URL scheme %q is not supported (use postgres:// or a SQLite file path)", scheme)
	}
}

func sqliteTarget(path string) (target, error) {
	path, query, _ := strings.Cut(path, "?")
	if path == "" {
		return target{}, errors.New("database URL: SQLite file path is empty")
	}
	if path == ":memory:" || strings.Contains(path, "mode=memory") {
		return target{}, errors.New("database URL: in-memory SQLite is not supported; every connection would see its own database")
	}
	dsn := "file:" + path + "?" + sqlitePragmas
	if query != "" {
		dsn += "&" + query
	}
	return target{dialect: sqlite, driver: "sqlite", dsn: dsn, display: "SQLite file " + path}, nil
}

// redact removes a password from a message a driver produced.
func redact(msg, password string) string {
	if password == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, password, "xxxxx")
	return strings.ReplaceAll(msg, url.QueryEscape(password), "xxxxx")
}
