package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/store"
)

var _ = register(
	test{"AccountSessions", testAccountSessions},
)

func testAccountSessions(t *testing.T, open Opener) {
	ctx := context.Background()
	epoch := loginEpoch.Truncate(time.Microsecond)
	clock := NewClock(epoch)
	s := open(t, store.Options{Now: clock.Now})
	alice := createUser(t, s, "alice")
	bob := createUser(t, s, "bob")

	as := &store.AccountSession{ID: randomID("account"), UserID: alice.ID, AMR: []string{"pwd", "otp", "mfa"}, ExpiresAt: epoch.Add(time.Hour)}
	if err := s.CreateAccountSession(ctx, as); err != nil {
		t.Fatalf("create: %v", err)
	}
	wantInstant(t, as.AuthTime, epoch, "auth_time defaults to now")
	dup := &store.AccountSession{ID: as.ID, UserID: bob.ID, ExpiresAt: epoch.Add(time.Hour)}
	expectErr(t, "create with a taken cookie value", s.CreateAccountSession(ctx, dup), store.ErrAlreadyExists)
	ghost := &store.AccountSession{ID: randomID("account"), UserID: "no-such-user", ExpiresAt: epoch.Add(time.Hour)}
	expectErr(t, "create for a missing user", s.CreateAccountSession(ctx, ghost), store.ErrNotFound)

	got, err := s.GetAccountSession(ctx, as.ID)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.UserID != alice.ID || !slices.Equal(got.AMR, []string{"pwd", "otp", "mfa"}) {
		t.Fatalf("get returned %+v", got)
	}
	wantInstant(t, got.ExpiresAt, epoch.Add(time.Hour), "expires_at")
	_, err = s.GetAccountSession(ctx, "no-such-cookie")
	expectErr(t, "get unknown", err, store.ErrNotFound)

	// Ending the other sessions of a user keeps the current one and leaves
	// other users alone.
	second := &store.AccountSession{ID: randomID("account"), UserID: alice.ID, AMR: []string{"pwd"}, ExpiresAt: epoch.Add(time.Hour)}
	bobs := &store.AccountSession{ID: randomID("account"), UserID: bob.ID, AMR: []string{"pwd"}, ExpiresAt: epoch.Add(time.Hour)}
	for _, x := range []*store.AccountSession{second, bobs} {
		if err := s.CreateAccountSession(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.DeleteAccountSessions(ctx, alice.ID, as.ID); err != nil || n != 1 {
		t.Fatalf("delete alice's other sessions: %d, %v; want 1", n, err)
	}
	if _, err := s.GetAccountSession(ctx, second.ID); err == nil {
		t.Fatal("alice's other session survived")
	}
	if _, err := s.GetAccountSession(ctx, as.ID); err != nil {
		t.Fatalf("the kept session: %v", err)
	}
	if _, err := s.GetAccountSession(ctx, bobs.ID); err != nil {
		t.Fatalf("bob's session: %v", err)
	}

	// Expiry, deletion, and the user's deletion cascading.
	clock.Add(time.Hour + time.Second)
	_, err = s.GetAccountSession(ctx, as.ID)
	expectErr(t, "get expired", err, store.ErrNotFound)
	removed, err := s.Janitor(ctx, store.JanitorOptions{})
	if err != nil || removed["account_sessions"] != 2 {
		t.Fatalf("janitor removed %d account sessions (%v), want 2", removed["account_sessions"], err)
	}
	if err := s.DeleteAccountSession(ctx, as.ID); err != nil {
		t.Fatalf("delete a session that is gone: %v", err)
	}
	fresh := &store.AccountSession{ID: randomID("account"), UserID: bob.ID, ExpiresAt: epoch.Add(3 * time.Hour)}
	if err := s.CreateAccountSession(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, bob.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetAccountSession(ctx, fresh.ID)
	expectErr(t, "get a session of a deleted user", err, store.ErrNotFound)
}
