package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/store"
)

var _ = register(
	test{"AttemptCounterLockout", testAttemptCounterLockout},
	test{"AttemptCounterWindow", testAttemptCounterWindow},
	test{"AttemptCounterReset", testAttemptCounterReset},
	test{"AttemptCounterUndo", testAttemptCounterUndo},
	test{"AttemptCounterJanitor", testAttemptCounterJanitor},
	test{"AttemptCounterTimezone", testAttemptCounterTimezone},
	test{"AttemptCounterRace", testAttemptCounterRace},
)

// The policy of the attempt tests: 3 failures within 10 minutes lock the
// key for 15.
const (
	attemptWindow    = 10 * time.Minute
	attemptThreshold = 3
	attemptLock      = 15 * time.Minute
)

// recordFailure records a failure under the test policy and checks the result.
func recordFailure(t *testing.T, s *store.Store, key string, wantFailures int, wantLockedUntil time.Time) store.AttemptState {
	t.Helper()
	st, err := s.RecordFailure(context.Background(), key, attemptWindow, attemptThreshold, attemptLock)
	if err != nil {
		t.Fatalf("record failure for %q: %v", key, err)
	}
	if st.Failures != wantFailures || !st.LockedUntil.Equal(wantLockedUntil) {
		t.Fatalf("after failure for %q: %d failures, locked until %v; want %d, %v", key, st.Failures, st.LockedUntil, wantFailures, wantLockedUntil)
	}
	return st
}

// expectLock checks CheckLock's answer for key.
func expectLock(t *testing.T, s *store.Store, key string, want time.Time) {
	t.Helper()
	got, err := s.CheckLock(context.Background(), key)
	if err != nil {
		t.Fatalf("check lock of %q: %v", key, err)
	}
	if !got.Equal(want) {
		t.Fatalf("lock of %q ends %v, want %v", key, got, want)
	}
}

func testAttemptCounterLockout(t *testing.T, open Opener) {
	clock := NewClock(loginEpoch)
	s := open(t, store.Options{Now: clock.Now})
	t0 := loginEpoch.Truncate(time.Microsecond)
	none := time.Time{}

	expectLock(t, s, "user:alice", none)
	st := recordFailure(t, s, "user:alice", 1, none)
	if !st.WindowStart.Equal(t0) {
		t.Fatalf("window starts %v, want %v", st.WindowStart, t0)
	}
	clock.Add(time.Minute)
	recordFailure(t, s, "user:alice", 2, none)
	expectLock(t, s, "user:alice", none)
	clock.Add(time.Minute)
	lockEnd := t0.Add(2*time.Minute + attemptLock)
	recordFailure(t, s, "user:alice", 3, lockEnd)
	expectLock(t, s, "user:alice", lockEnd)
	// Other keys are independent.
	expectLock(t, s, "ip:203.0.113.9", none)
	recordFailure(t, s, "ip:203.0.113.9", 1, none)

	// Failures during the lock are counted but do not extend it, so an
	// attacker cannot keep a victim locked out by hammering.
	clock.Add(5 * time.Minute)
	recordFailure(t, s, "user:alice", 4, lockEnd)
	clock.Add(9 * time.Minute)
	recordFailure(t, s, "user:alice", 1, lockEnd) // the window restarted; the lock stays
	expectLock(t, s, "user:alice", lockEnd)

	// The lock ends by itself, and counting starts afresh.
	clock.Add(time.Minute - time.Microsecond)
	expectLock(t, s, "user:alice", lockEnd)
	clock.Add(time.Microsecond)
	expectLock(t, s, "user:alice", none)
	recordFailure(t, s, "user:alice", 1, none)
	recordFailure(t, s, "user:alice", 2, none)
	now := clock.Now().UTC().Truncate(time.Microsecond)
	recordFailure(t, s, "user:alice", 3, now.Add(attemptLock))

	// A threshold of one locks on the first failure.
	st, err := s.RecordFailure(context.Background(), "otp:bob", time.Minute, 1, time.Minute)
	if err != nil || st.Failures != 1 || !st.LockedUntil.Equal(now.Add(time.Minute)) {
		t.Fatalf("threshold 1: %+v, %v", st, err)
	}
	for _, bad := range [][3]int{{0, 1, 1}, {1, 0, 1}, {1, 1, 0}} {
		if _, err := s.RecordFailure(context.Background(), "k", time.Duration(bad[0]), bad[1], time.Duration(bad[2])); err == nil {
			t.Fatalf("RecordFailure%v succeeded", bad)
		}
	}
}

func testAttemptCounterWindow(t *testing.T, open Opener) {
	clock := NewClock(loginEpoch)
	s := open(t, store.Options{Now: clock.Now})
	none := time.Time{}
	recordFailure(t, s, "user:alice", 1, none)
	clock.Add(attemptWindow - time.Microsecond)
	recordFailure(t, s, "user:alice", 2, none)
	// The window began with the first failure and has now passed.
	clock.Add(time.Microsecond)
	st := recordFailure(t, s, "user:alice", 1, none)
	if want := loginEpoch.Truncate(time.Microsecond).Add(attemptWindow); !st.WindowStart.Equal(want) {
		t.Fatalf("new window starts %v, want %v", st.WindowStart, want)
	}
	recordFailure(t, s, "user:alice", 2, none)
	expectLock(t, s, "user:alice", none)
}

func testAttemptCounterReset(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(loginEpoch)
	s := open(t, store.Options{Now: clock.Now})
	none := time.Time{}
	recordFailure(t, s, "user:alice", 1, none)
	recordFailure(t, s, "user:alice", 2, none)
	recordFailure(t, s, "user:bob", 1, none)
	expectErr(t, "reset", s.ResetFailures(ctx, "user:alice"), nil)
	expectErr(t, "reset unknown key", s.ResetFailures(ctx, "user:nobody"), nil)
	recordFailure(t, s, "user:alice", 1, none)
	recordFailure(t, s, "user:bob", 2, none)
}

func testAttemptCounterUndo(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(loginEpoch)
	s := open(t, store.Options{Now: clock.Now})
	none := time.Time{}
	undo := func(key string) {
		t.Helper()
		expectErr(t, "undo "+key, s.UndoFailure(ctx, key, attemptThreshold), nil)
	}

	// An undone attempt is not counted.
	recordFailure(t, s, "ip:198.51.100.1", 1, none)
	recordFailure(t, s, "ip:198.51.100.1", 2, none)
	undo("ip:198.51.100.1")
	recordFailure(t, s, "ip:198.51.100.1", 2, none)

	// Undoing the attempt that reached the threshold lifts its lock; the
	// next failure locks again.
	lockEnd := clock.Now().UTC().Truncate(time.Microsecond).Add(attemptLock)
	recordFailure(t, s, "ip:198.51.100.1", 3, lockEnd)
	undo("ip:198.51.100.1")
	expectLock(t, s, "ip:198.51.100.1", none)
	clock.Add(time.Second)
	lockEnd = lockEnd.Add(time.Second)
	recordFailure(t, s, "ip:198.51.100.1", 3, lockEnd)

	// With an attempt counted after it, the lock stays.
	recordFailure(t, s, "ip:198.51.100.1", 4, lockEnd)
	undo("ip:198.51.100.1")
	expectLock(t, s, "ip:198.51.100.1", lockEnd)
	recordFailure(t, s, "ip:198.51.100.1", 4, lockEnd)

	// Nothing to undo: no count goes below zero, no row appears.
	undo("ip:198.51.100.2")
	expectLock(t, s, "ip:198.51.100.2", none)
	recordFailure(t, s, "ip:198.51.100.2", 1, none)
	undo("ip:198.51.100.2")
	undo("ip:198.51.100.2")
	recordFailure(t, s, "ip:198.51.100.2", 1, none)
	if err := s.UndoFailure(ctx, "ip:198.51.100.2", 0); err == nil {
		t.Fatal("UndoFailure with threshold 0 succeeded")
	}
}

func testAttemptCounterJanitor(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(loginEpoch)
	s := open(t, store.Options{Now: clock.Now})
	none := time.Time{}
	recordFailure(t, s, "user:locked", 1, none)
	recordFailure(t, s, "user:locked", 2, none)
	lockEnd := loginEpoch.Truncate(time.Microsecond).Add(attemptLock)
	recordFailure(t, s, "user:locked", 3, lockEnd)
	recordFailure(t, s, "user:counting", 1, none)

	// Past the window but inside the lock: the lock must survive a sweep.
	clock.Add(attemptWindow + time.Minute)
	removed, err := s.Janitor(ctx, store.JanitorOptions{})
	if err != nil {
		t.Fatalf("janitor: %v", err)
	}
	if removed["attempt_counters"] != 0 {
		t.Fatalf("janitor removed %d counters before they were stale", removed["attempt_counters"])
	}
	expectLock(t, s, "user:locked", lockEnd)

	clock.Add(attemptLock)
	removed, err = s.Janitor(ctx, store.JanitorOptions{})
	if err != nil {
		t.Fatalf("janitor: %v", err)
	}
	if removed["attempt_counters"] != 2 {
		t.Fatalf("janitor removed %d stale counters, want 2", removed["attempt_counters"])
	}
	recordFailure(t, s, "user:locked", 1, none)

	// A failure recorded under a shorter policy while a long lock holds
	// must not let the janitor remove the lock early.
	st, err := s.RecordFailure(ctx, "user:long", time.Minute, 1, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordFailure(ctx, "user:long", time.Minute, 100, time.Minute); err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Hour)
	if _, err := s.Janitor(ctx, store.JanitorOptions{}); err != nil {
		t.Fatalf("janitor: %v", err)
	}
	expectLock(t, s, "user:long", st.LockedUntil)
}

func testAttemptCounterTimezone(t *testing.T, open Opener) {
	zone := time.FixedZone("NPT", 5*3600+45*60)
	clock := NewClock(loginEpoch.In(zone))
	s := open(t, store.Options{Now: clock.Now})
	want := loginEpoch.Truncate(time.Microsecond).Add(time.Hour)
	st, err := s.RecordFailure(context.Background(), "user:zoned", time.Minute, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if st.LockedUntil.Location() != time.UTC || !st.LockedUntil.Equal(want) || st.WindowStart.Location() != time.UTC {
		t.Fatalf("state = %+v, want lock until %v in UTC", st, want)
	}
	got, err := s.CheckLock(context.Background(), "user:zoned")
	if err != nil || got.Location() != time.UTC || !got.Equal(want) {
		t.Fatalf("check lock = %v, %v; want %v in UTC", got, err, want)
	}
}

func testAttemptCounterRace(t *testing.T, open Opener) {
	s := open(t, store.Options{})
	const n = 16
	counts := make([]int, n)
	errs := inParallel(n, func(i int) error {
		st, err := s.RecordFailure(context.Background(), "ip:198.51.100.7", time.Hour, 100, time.Hour)
		counts[i] = st.Failures
		return err
	})
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent failure: %v", err)
		}
	}
	// Each failure saw its own count: 1..n in some order, none lost.
	slices.Sort(counts)
	for i, c := range counts {
		if c != i+1 {
			t.Fatalf("counts seen by %d concurrent failures = %v, want 1..%d", n, counts, n)
		}
	}
	st, err := s.RecordFailure(context.Background(), "ip:198.51.100.7", time.Hour, 100, time.Hour)
	if err != nil || st.Failures != n+1 {
		t.Fatalf("failure after the race = %+v, %v; want %d failures", st, err, n+1)
	}
}
