package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/store"
)

var _ = register(
	test{"OneTimeCodeVerify", testOneTimeCodeVerify},
	test{"OneTimeCodeAttempts", testOneTimeCodeAttempts},
	test{"OneTimeCodeExpiry", testOneTimeCodeExpiry},
	test{"OneTimeCodeSuperseded", testOneTimeCodeSuperseded},
	test{"OneTimeCodeRateLimit", testOneTimeCodeRateLimit},
	test{"OneTimeCodeJanitor", testOneTimeCodeJanitor},
	test{"OneTimeCodeVerifyRace", testOneTimeCodeVerifyRace},
	test{"OneTimeCodeWrongGuessRace", testOneTimeCodeWrongGuessRace},
	test{"OneTimeCodeCreateRace", testOneTimeCodeCreateRace},
)

func testOneTimeCodeVerify(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	u := createUser(t, s, "alice")
	other := createUser(t, s, "bob")

	expectErr(t, "verify with no code", s.VerifyOneTimeCode(ctx, u.ID, "login", "h", 5), store.ErrNotFound)
	expectErr(t, "create", s.CreateOneTimeCode(ctx, u.ID, "login", "hash-1", 10*time.Minute, 5, time.Hour), nil)
	expectErr(t, "verify for another purpose", s.VerifyOneTimeCode(ctx, u.ID, "verify-email", "hash-1", 5), store.ErrNotFound)
	expectErr(t, "verify as another user", s.VerifyOneTimeCode(ctx, other.ID, "login", "hash-1", 5), store.ErrNotFound)
	expectErr(t, "verify", s.VerifyOneTimeCode(ctx, u.ID, "login", "hash-1", 5), nil)
	expectErr(t, "verify again", s.VerifyOneTimeCode(ctx, u.ID, "login", "hash-1", 5), store.ErrNotFound)

	for _, bad := range []func() error{
		func() error { return s.CreateOneTimeCode(ctx, u.ID, "login", "", time.Minute, 5, time.Hour) },
		func() error { return s.CreateOneTimeCode(ctx, u.ID, "login", "h", 0, 5, time.Hour) },
		func() error { return s.CreateOneTimeCode(ctx, u.ID, "login", "h", time.Minute, 0, time.Hour) },
		func() error { return s.CreateOneTimeCode(ctx, u.ID, "login", "h", time.Minute, 5, 0) },
		func() error { return s.VerifyOneTimeCode(ctx, u.ID, "login", "h", 0) },
	} {
		if err := bad(); err == nil {
			t.Fatal("a call with invalid limits succeeded")
		}
	}
}

func testOneTimeCodeAttempts(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	u := createUser(t, s, "alice")
	if err := s.CreateOneTimeCode(ctx, u.ID, "login", "right", 10*time.Minute, 5, time.Hour); err != nil {
		t.Fatal(err)
	}
	expectErr(t, "wrong 1", s.VerifyOneTimeCode(ctx, u.ID, "login", "wrong", 3), store.ErrOneTimeCodeMismatch)
	expectErr(t, "wrong 2", s.VerifyOneTimeCode(ctx, u.ID, "login", "wrong", 3), store.ErrOneTimeCodeMismatch)
	expectErr(t, "wrong 3 uses the last attempt", s.VerifyOneTimeCode(ctx, u.ID, "login", "wrong", 3), store.ErrOneTimeCodeExhausted)
	expectErr(t, "right after exhaustion", s.VerifyOneTimeCode(ctx, u.ID, "login", "right", 3), store.ErrOneTimeCodeExhausted)

	// Wrong guesses are committed even though they return an error, and a
	// right code within the limit still works.
	if err := s.CreateOneTimeCode(ctx, u.ID, "login", "right-2", 10*time.Minute, 5, time.Hour); err != nil {
		t.Fatal(err)
	}
	expectErr(t, "wrong", s.VerifyOneTimeCode(ctx, u.ID, "login", "wrong", 2), store.ErrOneTimeCodeMismatch)
	expectErr(t, "right on the last attempt", s.VerifyOneTimeCode(ctx, u.ID, "login", "right-2", 2), nil)
}

func testOneTimeCodeExpiry(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(loginEpoch.In(time.FixedZone("PST", -8*3600)))
	s := open(t, store.Options{Now: clock.Now})
	u := createUser(t, s, "alice")
	if err := s.CreateOneTimeCode(ctx, u.ID, "login", "a", 10*time.Minute, 5, time.Hour); err != nil {
		t.Fatal(err)
	}
	clock.Add(10*time.Minute - time.Microsecond)
	expectErr(t, "verify just before expiry", s.VerifyOneTimeCode(ctx, u.ID, "login", "a", 5), nil)

	if err := s.CreateOneTimeCode(ctx, u.ID, "login", "b", 10*time.Minute, 5, time.Hour); err != nil {
		t.Fatal(err)
	}
	clock.Add(10 * time.Minute)
	expectErr(t, "verify at expiry", s.VerifyOneTimeCode(ctx, u.ID, "login", "b", 5), store.ErrOneTimeCodeExpired)
	expectErr(t, "a wrong code at expiry", s.VerifyOneTimeCode(ctx, u.ID, "login", "x", 5), store.ErrOneTimeCodeExpired)
}

func testOneTimeCodeSuperseded(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(loginEpoch)
	s := open(t, store.Options{Now: clock.Now})
	u := createUser(t, s, "alice")
	if err := s.CreateOneTimeCode(ctx, u.ID, "login", "first", 10*time.Minute, 5, time.Hour); err != nil {
		t.Fatal(err)
	}
	// Issued at the same instant: the newer code must still win.
	if err := s.CreateOneTimeCode(ctx, u.ID, "login", "second", 10*time.Minute, 5, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateOneTimeCode(ctx, u.ID, "verify-email", "other-purpose", 10*time.Minute, 5, time.Hour); err != nil {
		t.Fatal(err)
	}
	expectErr(t, "the superseded code", s.VerifyOneTimeCode(ctx, u.ID, "login", "first", 5), store.ErrOneTimeCodeMismatch)
	expectErr(t, "the latest code", s.VerifyOneTimeCode(ctx, u.ID, "login", "second", 5), nil)
	expectErr(t, "the superseded code once the latest is used", s.VerifyOneTimeCode(ctx, u.ID, "login", "first", 5), store.ErrNotFound)
	expectErr(t, "another purpose is not superseded", s.VerifyOneTimeCode(ctx, u.ID, "verify-email", "other-purpose", 5), nil)
}

func testOneTimeCodeRateLimit(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(loginEpoch)
	s := open(t, store.Options{Now: clock.Now})
	u := createUser(t, s, "alice")
	other := createUser(t, s, "bob")
	create := func(user *store.User, purpose string) error {
		return s.CreateOneTimeCode(ctx, user.ID, purpose, "h", 5*time.Minute, 3, time.Hour)
	}
	for i := range 3 {
		expectErr(t, fmt.Sprintf("code %d", i+1), create(u, "login"), nil)
		clock.Add(10 * time.Minute)
	}
	expectErr(t, "fourth code in the window", create(u, "login"), store.ErrTooManyOneTimeCodes)
	// Refused requests are not stored, so they do not count either.
	expectErr(t, "another purpose", create(u, "verify-email"), nil)
	expectErr(t, "another user", create(other, "login"), nil)
	// The first code was sent at 0, the clock is at 30m, the window is an hour.
	clock.Add(30*time.Minute - time.Microsecond)
	expectErr(t, "still inside the window", create(u, "login"), store.ErrTooManyOneTimeCodes)
	clock.Add(time.Microsecond)
	expectErr(t, "first code left the window", create(u, "login"), nil)
	expectErr(t, "and only one slot opened", create(u, "login"), store.ErrTooManyOneTimeCodes)
}

// testOneTimeCodeJanitor checks the janitor removes codes only once the
// rate limit no longer counts them, even when the codes expire sooner.
func testOneTimeCodeJanitor(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(loginEpoch)
	s := open(t, store.Options{Now: clock.Now})
	u := createUser(t, s, "alice")
	for range 2 {
		if err := s.CreateOneTimeCode(ctx, u.ID, "login", "h", 5*time.Minute, 2, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	clock.Add(30 * time.Minute) // both codes expired, both still in the window
	removed, err := s.Janitor(ctx, store.JanitorOptions{})
	if err != nil {
		t.Fatalf("janitor: %v", err)
	}
	if removed["one_time_codes"] != 0 {
		t.Fatalf("janitor removed %d codes still counted by the rate limit", removed["one_time_codes"])
	}
	expectErr(t, "limit after janitor", s.CreateOneTimeCode(ctx, u.ID, "login", "h", 5*time.Minute, 2, time.Hour), store.ErrTooManyOneTimeCodes)

	clock.Add(30*time.Minute + time.Second)
	removed, err = s.Janitor(ctx, store.JanitorOptions{})
	if err != nil {
		t.Fatalf("janitor: %v", err)
	}
	if removed["one_time_codes"] != 2 {
		t.Fatalf("janitor removed %d stale codes, want 2", removed["one_time_codes"])
	}
	expectErr(t, "pending code after janitor", s.VerifyOneTimeCode(ctx, u.ID, "login", "h", 5), store.ErrNotFound)
}

func testOneTimeCodeVerifyRace(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	u := createUser(t, s, "alice")
	if err := s.CreateOneTimeCode(ctx, u.ID, "login", "right", 10*time.Minute, 5, time.Hour); err != nil {
		t.Fatal(err)
	}
	const n = 16
	errs := inParallel(n, func(int) error { return s.VerifyOneTimeCode(ctx, u.ID, "login", "right", 5) })
	ok, refused := countErrs(t, errs, store.ErrNotFound)
	if ok != 1 || refused != n-1 {
		t.Fatalf("%d concurrent verifications of one code: %d succeeded, %d refused; want 1 and %d", n, ok, refused, n-1)
	}
}

func testOneTimeCodeWrongGuessRace(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	u := createUser(t, s, "alice")
	if err := s.CreateOneTimeCode(ctx, u.ID, "login", "right", 10*time.Minute, 5, time.Hour); err != nil {
		t.Fatal(err)
	}
	const n, maxAttempts = 16, 10
	errs := inParallel(n, func(i int) error {
		return s.VerifyOneTimeCode(ctx, u.ID, "login", fmt.Sprintf("guess-%d", i), maxAttempts)
	})
	var mismatch, exhausted int
	for _, err := range errs {
		switch {
		case errors.Is(err, store.ErrOneTimeCodeMismatch):
			mismatch++
		case errors.Is(err, store.ErrOneTimeCodeExhausted):
			exhausted++
		default:
			t.Fatalf("concurrent wrong guess: %v", err)
		}
	}
	// Every guess is counted: exactly maxAttempts-1 are told to try again.
	if mismatch != maxAttempts-1 || exhausted != n-maxAttempts+1 {
		t.Fatalf("%d concurrent wrong guesses, limit %d: %d mismatches, %d exhausted; want %d and %d",
			n, maxAttempts, mismatch, exhausted, maxAttempts-1, n-maxAttempts+1)
	}
	expectErr(t, "right code after the race", s.VerifyOneTimeCode(ctx, u.ID, "login", "right", maxAttempts), store.ErrOneTimeCodeExhausted)
}

func testOneTimeCodeCreateRace(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	u := createUser(t, s, "alice")
	const n, limit = 16, 5
	errs := inParallel(n, func(i int) error {
		return s.CreateOneTimeCode(ctx, u.ID, "login", fmt.Sprintf("h-%d", i), 10*time.Minute, limit, time.Hour)
	})
	ok, refused := countErrs(t, errs, store.ErrTooManyOneTimeCodes)
	if ok != limit || refused != n-limit {
		t.Fatalf("%d concurrent code requests, limit %d: %d created, %d refused", n, limit, ok, refused)
	}
}
