// Package storetest is the storage conformance suite: one set of tests that
// every backend of package store must pass. A backend's test calls Run with
// a function that opens a fresh, empty, migrated store.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // PostgreSQL driver for creating test schemas

	"github.com/latchkey-oidc/latchkey/store"
)

// FreshDB creates a fresh, empty database for t and returns its URL.
type FreshDB func(t testing.TB) string

// Opener opens a fresh, empty, migrated store with the given options.
type Opener func(t *testing.T, opts store.Options) *store.Store

// Run runs the whole suite against the backend whose databases fresh creates.
func Run(t *testing.T, fresh FreshDB) {
	open := func(t *testing.T, opts store.Options) *store.Store {
		t.Helper()
		return OpenURL(t, fresh(t), opts)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open) })
	}
	for _, tc := range sharedTests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, fresh) })
	}
}

// test is one test of the suite; it gets a fresh store per call to open.
type test struct {
	name string
	run  func(t *testing.T, open Opener)
}

// sharedTest gets database URLs instead, for tests that open several stores
// on one database (replicas, concurrent migrations).
type sharedTest struct {
	name string
	run  func(t *testing.T, fresh FreshDB)
}

var sharedTests []sharedTest

func registerShared(ts ...sharedTest) bool {
	sharedTests = append(sharedTests, ts...)
	return true
}

// tests is the suite; each file of this package adds its tests in a var
// block so the list reads by concern.
var tests []test

func register(ts ...test) bool {
	tests = append(tests, ts...)
	return true
}

// Clock is a settable time source for Options.Now.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock set to t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// In moves the clock's zone, keeping its instant.
func (c *Clock) In(loc *time.Location) {
	c.mu.Lock()
	c.t = c.t.In(loc)
	c.mu.Unlock()
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestSecret is a system secret for tests.
var TestSecret = []byte("latchkey-storetest-system-secret-0123456789")

// FreshSQLite creates SQLite files in t's temp dir.
func FreshSQLite(t testing.TB) string {
	return filepath.Join(t.TempDir(), "latchkey.db")
}

// PostgresURL returns LATCHKEY_TEST_DATABASE_URL or skips the test.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("LATCHKEY_TEST_DATABASE_URL")
	if u == "" {
		t.Skip("LATCHKEY_TEST_DATABASE_URL is not set; skipping PostgreSQL tests (.ci/run sets it)")
	}
	return u
}

// FreshPostgres creates an empty schema in the database at
// LATCHKEY_TEST_DATABASE_URL and returns a URL whose connections use it; the
// schema is dropped when the test ends.
func FreshPostgres(t testing.TB) string {
	t.Helper()
	return FreshPostgresAt(t, PostgresURL(t))
}

// FreshPostgresAt is FreshPostgres in the database at base.
func FreshPostgresAt(t testing.TB, base string) string {
	t.Helper()
	admin, err := sqlx.Open("postgres", base)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "storetest_" + hex.EncodeToString(b)
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse the database URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// OpenURL opens and migrates the store at dbURL, closed when t ends. It uses
// TestSecret when opts has no system secret.
func OpenURL(t testing.TB, dbURL string, opts store.Options) *store.Store {
	t.Helper()
	ctx := context.Background()
	if opts.SystemSecret == nil {
		opts.SystemSecret = TestSecret
	}
	s, err := store.Open(ctx, dbURL, opts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return s
}

// randomID returns a unique string for keys in tests.
func randomID(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%s", prefix, hex.EncodeToString(b))
}

// expectErr fails the test unless err matches target (nil for success).
func expectErr(t *testing.T, what string, err, target error) {
	t.Helper()
	switch {
	case target == nil && err != nil:
		t.Fatalf("%s: unexpected error %v", what, err)
	case target != nil && !errors.Is(err, target):
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

// inParallel calls fn n times at once, released together, and returns each
// call's error by index.
func inParallel(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// countErrs counts how many errs are nil and how many match target; any
// other error fails the test.
func countErrs(t *testing.T, errs []error, target error) (ok, matched int) {
	t.Helper()
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, target):
			matched++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	return ok, matched
}
