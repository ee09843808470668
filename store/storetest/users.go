package storetest

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/store"
)

var _ = register(
	test{"UserCRUD", testUserCRUD},
	test{"UserUsernameCaseInsensitive", testUserUsernameCaseInsensitive},
	test{"UserList", testUserList},
	test{"UserTimezone", testUserTimezone},
	test{"UserDeleteCascades", testUserDeleteCascades},
	test{"UserForeignKeysEnforced", testUserForeignKeysEnforced},
	test{"FederatedIdentities", testFederatedIdentities},
	test{"UsersByEmail", testUsersByEmail},
)

// loginEpoch is the clock start of the login tests: a fixed instant with
// sub-microsecond digits, which the store must truncate.
var loginEpoch = time.Date(2031, 3, 14, 15, 9, 26, 535897932, time.UTC)

// createUser stores a user named username and returns it.
func createUser(t *testing.T, s *store.Store, username string) *store.User {
	t.Helper()
	u := &store.User{Username: username, Email: username + "@example.com", PasswordHash: "$argon2id$" + username}
	if err := s.CreateUser(context.Background(), u); err != nil {
		t.Fatalf("create user %q: %v", username, err)
	}
	return u
}

func testUserCRUD(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(loginEpoch)
	s := open(t, store.Options{Now: clock.Now})

	u := &store.User{
		Username:      "  Alice ",
		Email:         "alice@example.com",
		EmailVerified: true,
		PasswordHash:  "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		Profile:       json.RawMessage(`{"name":"Alice Liddell","given_name":"Alice"}`),
	}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatalf("create user: %v", err)
	}
	if u.ID == "" {
		t.Fatal("create user did not assign an ID")
	}
	if u.Username != "alice" {
		t.Fatalf("stored username = %q, want %q", u.Username, "alice")
	}
	want := loginEpoch.Truncate(time.Microsecond)
	got, err := s.GetUser(ctx, u.ID)
	if err != nil {
		t.Fatalf("get user: %v", err)
	}
	if got.Username != "alice" || got.Email != u.Email || !got.EmailVerified || got.PasswordHash != u.PasswordHash || got.Disabled {
		t.Fatalf("get user = %+v, want the created fields", got)
	}
	if !got.CreatedAt.Equal(want) || !got.UpdatedAt.Equal(want) {
		t.Fatalf("timestamps = %v, %v, want %v", got.CreatedAt, got.UpdatedAt, want)
	}
	var prof map[string]string
	if err := json.Unmarshal(got.Profile, &prof); err != nil || prof["given_name"] != "Alice" {
		t.Fatalf("profile = %s (%v), want given_name Alice", got.Profile, err)
	}

	// A user with its own ID, and an empty profile stored as {}.
	b := &store.User{ID: "user-bob", Username: "bob"}
	if err := s.CreateUser(ctx, b); err != nil {
		t.Fatalf("create bob: %v", err)
	}
	if got, err := s.GetUser(ctx, "user-bob"); err != nil || string(got.Profile) != "{}" {
		t.Fatalf("get bob = %+v, %v; want profile {}", got, err)
	}
	expectErr(t, "create with taken ID", s.CreateUser(ctx, &store.User{ID: "user-bob", Username: "robert"}), store.ErrAlreadyExists)
	if err := s.CreateUser(ctx, &store.User{Username: "  "}); err == nil {
		t.Fatal("create with an empty username succeeded")
	}
	if err := s.CreateUser(ctx, &store.User{Username: "carol", Profile: json.RawMessage(`["not","an","object"]`)}); err == nil {
		t.Fatal("create with a non-object profile succeeded")
	}

	// UpdateUser changes the profile fields and not the password hash.
	clock.Add(time.Minute)
	got.Email = "alice@wonderland.example"
	got.EmailVerified = false
	got.Disabled = true
	got.Profile = json.RawMessage(`{"name":"Alice"}`)
	got.PasswordHash = "ignored"
	got.Username = "Alice.L"
	if err := s.UpdateUser(ctx, got); err != nil {
		t.Fatalf("update user: %v", err)
	}
	again, err := s.GetUser(ctx, u.ID)
	if err != nil {
		t.Fatalf("get updated user: %v", err)
	}
	if again.Email != "alice@wonderland.example" || again.EmailVerified || !again.Disabled || string(again.Profile) != `{"name":"Alice"}` || again.Username != "alice.l" {
		t.Fatalf("updated user = %+v", again)
	}
	if again.PasswordHash != u.PasswordHash {
		t.Fatalf("UpdateUser changed the password hash to %q", again.PasswordHash)
	}
	if !again.UpdatedAt.Equal(want.Add(time.Minute)) || !again.CreatedAt.Equal(want) {
		t.Fatalf("after update created/updated = %v/%v", again.CreatedAt, again.UpdatedAt)
	}
	again.Username = "BOB"
	expectErr(t, "rename to a taken username", s.UpdateUser(ctx, again), store.ErrAlreadyExists)
	expectErr(t, "update missing user", s.UpdateUser(ctx, &store.User{ID: "nobody", Username: "nobody"}), store.ErrNotFound)

	expectErr(t, "set password", s.SetPasswordHash(ctx, u.ID, "$argon2id$new"), nil)
	if got, _ := s.GetUser(ctx, u.ID); got.PasswordHash != "$argon2id$new" {
		t.Fatalf("password hash = %q after SetPasswordHash", got.PasswordHash)
	}
	expectErr(t, "set password of missing user", s.SetPasswordHash(ctx, "nobody", "x"), store.ErrNotFound)

	_, err = s.GetUser(ctx, "nobody")
	expectErr(t, "get missing user", err, store.ErrNotFound)
	_, err = s.GetUserByUsername(ctx, "nobody")
	expectErr(t, "get missing username", err, store.ErrNotFound)

	expectErr(t, "delete user", s.DeleteUser(ctx, u.ID), nil)
	_, err = s.GetUser(ctx, u.ID)
	expectErr(t, "get deleted user", err, store.ErrNotFound)
	expectErr(t, "delete deleted user", s.DeleteUser(ctx, u.ID), store.ErrNotFound)
}

func testUserUsernameCaseInsensitive(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	u := createUser(t, s, "MixedCase")
	for _, name := range []string{"mixedcase", "MIXEDCASE", " MixedCase\t"} {
		got, err := s.GetUserByUsername(ctx, name)
		if err != nil {
			t.Fatalf("get %q: %v", name, err)
		}
		if got.ID != u.ID {
			t.Fatalf("get %q returned user %q, want %q", name, got.ID, u.ID)
		}
	}
	expectErr(t, "create the same name in other case", s.CreateUser(ctx, &store.User{Username: "MIXEDcase "}), store.ErrAlreadyExists)
	if store.NormalizeUsername("  Ärger ") != "ärger" {
		t.Fatalf("NormalizeUsername does not fold non-ASCII letters: %q", store.NormalizeUsername("  Ärger "))
	}
}

func testUserList(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	for _, name := range []string{"dave", "Bob", "alice", "carol", "eve"} {
		createUser(t, s, name)
	}
	var names []string
	after := ""
	for {
		page, err := s.ListUsers(ctx, after, 2)
		if err != nil {
			t.Fatalf("list users: %v", err)
		}
		if len(page) > 2 {
			t.Fatalf("page of %d users, limit 2", len(page))
		}
		if len(page) == 0 {
			break
		}
		for _, u := range page {
			names = append(names, u.Username)
		}
		after = page[len(page)-1].Username
	}
	want := []string{"alice", "bob", "carol", "dave", "eve"}
	if len(names) != len(want) {
		t.Fatalf("listed %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("listed %v, want %v", names, want)
		}
	}
	all, err := s.ListUsers(ctx, "", 0)
	if err != nil || len(all) != 5 {
		t.Fatalf("list with no limit = %d users, %v; want 5", len(all), err)
	}
}

func testUserTimezone(t *testing.T, open Opener) {
	ctx := context.Background()
	zone := time.FixedZone("IST", 5*3600+30*60)
	clock := NewClock(loginEpoch.In(zone))
	s := open(t, store.Options{Now: clock.Now})
	u := createUser(t, s, "zoned")
	got, err := s.GetUser(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := loginEpoch.Truncate(time.Microsecond)
	if got.CreatedAt.Location() != time.UTC || !got.CreatedAt.Equal(want) {
		t.Fatalf("created_at = %v, want %v in UTC", got.CreatedAt, want)
	}
	fed := &store.User{Username: "fed"}
	if err := s.CreateUser(ctx, fed); err != nil {
		t.Fatal(err)
	}
	if err := s.LinkFederatedIdentity(ctx, "google", "sub-1", fed.ID); err != nil {
		t.Fatal(err)
	}
	ids, err := s.ListFederatedIdentities(ctx, fed.ID)
	if err != nil || len(ids) != 1 {
		t.Fatalf("list federated identities = %v, %v", ids, err)
	}
	if ids[0].CreatedAt.Location() != time.UTC || !ids[0].CreatedAt.Equal(want) {
		t.Fatalf("federated created_at = %v, want %v in UTC", ids[0].CreatedAt, want)
	}
}

func testUserDeleteCascades(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	u := createUser(t, s, "leaving")
	other := createUser(t, s, "staying")

	for _, id := range []string{u.ID, other.ID} {
		if err := s.LinkFederatedIdentity(ctx, "github", "gh-"+id, id); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveTOTPEnrolment(ctx, id, []byte("seed-"+id)); err != nil {
			t.Fatal(err)
		}
		if err := s.AddWebAuthnCredential(ctx, id, "cred-"+id, "key", json.RawMessage(`{}`), 0); err != nil {
			t.Fatal(err)
		}
		if err := s.ReplaceRecoveryCodes(ctx, id, []string{"h1", "h2"}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateOneTimeCode(ctx, id, "login", "code-"+id, time.Hour, 5, time.Hour); err != nil {
			t.Fatal(err)
		}
	}

	if err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatalf("delete user: %v", err)
	}
	_, err := s.GetUserByFederatedIdentity(ctx, "github", "gh-"+u.ID)
	expectErr(t, "federated identity of deleted user", err, store.ErrNotFound)
	_, err = s.GetWebAuthnCredential(ctx, "cred-"+u.ID)
	expectErr(t, "credential of deleted user", err, store.ErrNotFound)

	// A new user with the same ID must not inherit anything: with foreign
	// keys off, the old rows would still be there.
	if err := s.CreateUser(ctx, &store.User{ID: u.ID, Username: "leaving"}); err != nil {
		t.Fatalf("re-create user: %v", err)
	}
	_, err = s.GetTOTPEnrolment(ctx, u.ID)
	expectErr(t, "TOTP of re-created user", err, store.ErrNotFound)
	if creds, err := s.ListWebAuthnCredentials(ctx, u.ID); err != nil || len(creds) != 0 {
		t.Fatalf("credentials of re-created user = %v, %v", creds, err)
	}
	if ids, err := s.ListFederatedIdentities(ctx, u.ID); err != nil || len(ids) != 0 {
		t.Fatalf("federated identities of re-created user = %v, %v", ids, err)
	}
	if n, err := s.CountUnusedRecoveryCodes(ctx, u.ID); err != nil || n != 0 {
		t.Fatalf("recovery codes of re-created user = %d, %v", n, err)
	}
	expectErr(t, "one-time code of re-created user", s.VerifyOneTimeCode(ctx, u.ID, "login", "code-"+u.ID, 5), store.ErrNotFound)

	// The other user keeps everything.
	if _, err := s.GetUserByFederatedIdentity(ctx, "github", "gh-"+other.ID); err != nil {
		t.Fatalf("other user's federated identity: %v", err)
	}
	if _, err := s.GetTOTPEnrolment(ctx, other.ID); err != nil {
		t.Fatalf("other user's TOTP: %v", err)
	}
	if _, err := s.GetWebAuthnCredential(ctx, "cred-"+other.ID); err != nil {
		t.Fatalf("other user's credential: %v", err)
	}
	if n, err := s.CountUnusedRecoveryCodes(ctx, other.ID); err != nil || n != 2 {
		t.Fatalf("other user's recovery codes = %d, %v", n, err)
	}
	expectErr(t, "other user's one-time code", s.VerifyOneTimeCode(ctx, other.ID, "login", "code-"+other.ID, 5), nil)
}

func testUserForeignKeysEnforced(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	expectErr(t, "link identity to missing user", s.LinkFederatedIdentity(ctx, "google", "x", "ghost"), store.ErrNotFound)
	expectErr(t, "TOTP for missing user", s.SaveTOTPEnrolment(ctx, "ghost", []byte("seed")), store.ErrNotFound)
	expectErr(t, "credential for missing user", s.AddWebAuthnCredential(ctx, "ghost", "c", "", json.RawMessage(`{}`), 0), store.ErrNotFound)
	expectErr(t, "recovery codes for missing user", s.ReplaceRecoveryCodes(ctx, "ghost", []string{"h"}), store.ErrNotFound)
	expectErr(t, "one-time code for missing user", s.CreateOneTimeCode(ctx, "ghost", "login", "h", time.Minute, 3, time.Hour), store.ErrNotFound)
	expectErr(t, "reset MFA of missing user", s.ResetMFA(ctx, "ghost"), store.ErrNotFound)
}

func testFederatedIdentities(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(loginEpoch)
	s := open(t, store.Options{Now: clock.Now})
	alice := createUser(t, s, "alice")
	bob := createUser(t, s, "bob")

	expectErr(t, "link google", s.LinkFederatedIdentity(ctx, "google", "g-123", alice.ID), nil)
	clock.Add(time.Second)
	expectErr(t, "link github", s.LinkFederatedIdentity(ctx, "github", "123", alice.ID), nil)
	expectErr(t, "link the same account again", s.LinkFederatedIdentity(ctx, "google", "g-123", alice.ID), store.ErrAlreadyExists)
	expectErr(t, "link the account to another user", s.LinkFederatedIdentity(ctx, "google", "g-123", bob.ID), store.ErrAlreadyExists)
	expectErr(t, "same subject at another provider", s.LinkFederatedIdentity(ctx, "gitlab", "g-123", bob.ID), nil)

	got, err := s.GetUserByFederatedIdentity(ctx, "google", "g-123")
	if err != nil || got.ID != alice.ID || got.Username != "alice" {
		t.Fatalf("user of google account = %+v, %v; want alice", got, err)
	}
	_, err = s.GetUserByFederatedIdentity(ctx, "google", "g-999")
	expectErr(t, "unknown upstream account", err, store.ErrNotFound)

	ids, err := s.ListFederatedIdentities(ctx, alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || ids[0].Provider != "google" || ids[1].Provider != "github" || ids[1].UpstreamSubject != "123" || ids[0].UserID != alice.ID {
		t.Fatalf("alice's identities = %+v", ids)
	}

	expectErr(t, "unlink someone else's identity", s.UnlinkFederatedIdentity(ctx, bob.ID, "google", "g-123"), store.ErrNotFound)
	expectErr(t, "unlink", s.UnlinkFederatedIdentity(ctx, alice.ID, "google", "g-123"), nil)
	expectErr(t, "unlink twice", s.UnlinkFederatedIdentity(ctx, alice.ID, "google", "g-123"), store.ErrNotFound)
	_, err = s.GetUserByFederatedIdentity(ctx, "google", "g-123")
	expectErr(t, "unlinked account", err, store.ErrNotFound)
	// Once unlinked, the account may be linked to someone else.
	expectErr(t, "relink to bob", s.LinkFederatedIdentity(ctx, "google", "g-123", bob.ID), nil)
}

func testUsersByEmail(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	for _, u := range []*store.User{
		{Username: "alice", Email: "Alice@Example.com"},
		{Username: "alice2", Email: "alice@example.com"},
		{Username: "bob", Email: "bob@example.com"},
		{Username: "carol"},
	} {
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		email string
		want  []string
	}{
		{"ALICE@example.COM", []string{"alice", "alice2"}},
		{" bob@example.com ", []string{"bob"}},
		{"nobody@example.com", nil},
		{"", nil},
	} {
		got, err := s.GetUsersByEmail(ctx, tc.email)
		if err != nil {
			t.Fatalf("by email %q: %v", tc.email, err)
		}
		var names []string
		for _, u := range got {
			names = append(names, u.Username)
		}
		if !slices.Equal(names, tc.want) {
			t.Errorf("by email %q = %v, want %v", tc.email, names, tc.want)
		}
	}
}
