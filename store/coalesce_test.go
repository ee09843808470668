package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// openSQLite opens a fresh migrated SQLite store. The storage suite
// (storetest) covers both backends through the exported API; this test
// looks inside the coalescer, so it lives in the package.
func openSQLite(t *testing.T) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "latchkey.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func tokenArgs(signature string) []any {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return []any{kindAccess, signature, "req-" + signature, "client", "", true, "", now, now.Add(time.Hour), `{}`}
}

// holdWrites takes SQLite's in-process write lock, so the first flush
// waits for it and every other insert queues; it returns the release.
func holdWrites(s *Store) func() {
	s.writeLock <- struct{}{}
	return s.unlockWrites
}

// waitQueued waits until one flush is in flight and n rows are queued.
func waitQueued(t *testing.T, ti *tokenInserts, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ti.mu.Lock()
		flushing, queued := ti.flushing, len(ti.queue)
		ti.mu.Unlock()
		if flushing == 1 && queued == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d flushes in flight and %d rows queued, want 1 and %d", flushing, queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func countTokens(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.db.Get(&n, `SELECT COUNT(*) FROM oauth2_tokens`); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTokenInsertsCoalesce: inserts that arrive while a write is in flight
// are written together, in batches of at most maxBatch rows, and every
// row is stored.
func TestTokenInsertsCoalesce(t *testing.T) {
	s := openSQLite(t)
	ctx := context.Background()
	release := holdWrites(s)
	const n = 200
	before := s.Statements()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() { errs <- s.tokens.insert(ctx, tokenArgs(fmt.Sprintf("sig-%d", i))...) })
	}
	// One flush (SQLite allows one) took the first row and waits for the
	// lock; the other rows queue behind it.
	waitQueued(t, s.tokens, n-1)
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("insert: %v", err)
		}
	}
	if got := countTokens(t, s); got != n {
		t.Fatalf("%d rows stored, want %d", got, n)
	}
	// The first row alone, then 199 rows in batches of 64.
	if got, want := s.Statements()-before, int64(1+4); got != want {
		t.Errorf("%d rows took %d statements, want %d", n, got, want)
	}
	s.tokens.mu.Lock()
	defer s.tokens.mu.Unlock()
	if s.tokens.flushing != 0 || len(s.tokens.queue) != 0 {
		t.Errorf("after the writes: %d flushes in flight, %d rows queued; want none", s.tokens.flushing, len(s.tokens.queue))
	}
}

// TestTokenInsertsBadRowFailsAlone: a batch with a duplicate signature
// fails as a statement; its rows are then written one by one, so only the
// duplicate fails. A request whose context ends while its row waits still
// learns whether the row was stored.
func TestTokenInsertsBadRowFailsAlone(t *testing.T) {
	s := openSQLite(t)
	ctx := context.Background()
	if err := s.tokens.insert(ctx, tokenArgs("taken")...); err != nil {
		t.Fatal(err)
	}
	release := holdWrites(s)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	sigs := []string{"first", "a", "taken", "b", "gone", "c"}
	errs := make([]error, len(sigs))
	var wg sync.WaitGroup
	wg.Go(func() { errs[0] = s.tokens.insert(ctx, tokenArgs(sigs[0])...) })
	waitQueued(t, s.tokens, 0) // the first row is the flush waiting for the lock
	for i := 1; i < len(sigs); i++ {
		c := ctx
		if sigs[i] == "gone" {
			c = cancelled
		}
		wg.Go(func() { errs[i] = s.tokens.insert(c, tokenArgs(sigs[i])...) })
		waitQueued(t, s.tokens, i)
	}
	release()
	wg.Wait()
	for i, sig := range sigs {
		switch {
		case sig == "taken" && !errors.Is(errs[i], ErrAlreadyExists):
			t.Errorf("duplicate %q: %v, want ErrAlreadyExists", sig, errs[i])
		case sig != "taken" && errs[i] != nil:
			t.Errorf("row %q: %v", sig, errs[i])
		}
	}
	if got := countTokens(t, s); got != len(sigs) { // the five new rows and the first "taken"
		t.Errorf("%d rows stored, want %d", got, len(sigs))
	}
}

// TestFlushDeadline: a batch's write lasts as long as the latest deadline
// of its requests, never longer than insertFlushTimeout, and the full
// timeout when one of them has no deadline.
func TestFlushDeadline(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *pendingInsert { return &pendingInsert{deadline: now.Add(d)} }
	cases := []struct {
		name  string
		batch []*pendingInsert
		want  time.Duration
	}{
		{"one request", []*pendingInsert{at(300 * time.Millisecond)}, 300 * time.Millisecond},
		{"the latest of several", []*pendingInsert{at(time.Second), at(3 * time.Second), at(2 * time.Second)}, 3 * time.Second},
		{"capped", []*pendingInsert{at(time.Minute)}, insertFlushTimeout},
		{"one without a deadline", []*pendingInsert{at(time.Second), {}}, insertFlushTimeout},
	}
	for _, tc := range cases {
		if got := flushDeadline(tc.batch, now).Sub(now); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
