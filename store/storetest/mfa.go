package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/store"
)

var _ = register(
	test{"TOTPEnrolment", testTOTPEnrolment},
	test{"TOTPNoSystemSecret", testTOTPNoSystemSecret},
	test{"TOTPStepRace", testTOTPStepRace},
	test{"WebAuthnCredentials", testWebAuthnCredentials},
	test{"WebAuthnSignCount", testWebAuthnSignCount},
	test{"WebAuthnSignCountRace", testWebAuthnSignCountRace},
	test{"RecoveryCodes", testRecoveryCodes},
	test{"RecoveryCodeRace", testRecoveryCodeRace},
	test{"ResetMFA", testResetMFA},
)

func testTOTPEnrolment(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(loginEpoch)
	s := open(t, store.Options{Now: clock.Now})
	u := createUser(t, s, "alice")

	_, err := s.GetTOTPEnrolment(ctx, u.ID)
	expectErr(t, "get before enrolment", err, store.ErrNotFound)
	expectErr(t, "use step before enrolment", s.UseTOTPStep(ctx, u.ID, 1), store.ErrNotFound)
	expectErr(t, "confirm before enrolment", s.ConfirmTOTP(ctx, u.ID, 1), store.ErrNotFound)
	if err := s.SaveTOTPEnrolment(ctx, u.ID, nil); err == nil {
		t.Fatal("saving an empty seed succeeded")
	}

	expectErr(t, "save", s.SaveTOTPEnrolment(ctx, u.ID, []byte("first seed")), nil)
	// The user restarts enrolment: an unconfirmed seed is replaced.
	clock.Add(time.Minute)
	seed := []byte("12345678901234567890")
	expectErr(t, "save again", s.SaveTOTPEnrolment(ctx, u.ID, seed), nil)
	e, err := s.GetTOTPEnrolment(ctx, u.ID)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if !bytes.Equal(e.Secret, seed) || e.Confirmed || e.LastStep != 0 || e.UserID != u.ID {
		t.Fatalf("enrolment = %+v, want the second seed, unconfirmed", e)
	}
	if want := loginEpoch.Add(time.Minute).Truncate(time.Microsecond); !e.CreatedAt.Equal(want) || e.CreatedAt.Location() != time.UTC {
		t.Fatalf("created_at = %v, want %v UTC", e.CreatedAt, want)
	}
	// An unconfirmed enrolment is no second factor yet.
	expectErr(t, "use step while unconfirmed", s.UseTOTPStep(ctx, u.ID, 5), store.ErrNotFound)

	expectErr(t, "confirm", s.ConfirmTOTP(ctx, u.ID, 100), nil)
	expectErr(t, "confirm twice", s.ConfirmTOTP(ctx, u.ID, 101), store.ErrNotFound)
	e, err = s.GetTOTPEnrolment(ctx, u.ID)
	if err != nil || !e.Confirmed || e.LastStep != 100 {
		t.Fatalf("after confirm = %+v, %v; want confirmed at step 100", e, err)
	}
	expectErr(t, "overwrite a confirmed enrolment", s.SaveTOTPEnrolment(ctx, u.ID, []byte("attacker seed")), store.ErrAlreadyExists)
	if e, _ := s.GetTOTPEnrolment(ctx, u.ID); !bytes.Equal(e.Secret, seed) || !e.Confirmed {
		t.Fatalf("refused overwrite changed the enrolment: %+v", e)
	}

	// The code that confirmed the enrolment, and older ones, are spent.
	expectErr(t, "replay the confirming step", s.UseTOTPStep(ctx, u.ID, 100), store.ErrTOTPStepUsed)
	expectErr(t, "use an older step", s.UseTOTPStep(ctx, u.ID, 99), store.ErrTOTPStepUsed)
	expectErr(t, "use the next step", s.UseTOTPStep(ctx, u.ID, 101), nil)
	expectErr(t, "replay it", s.UseTOTPStep(ctx, u.ID, 101), store.ErrTOTPStepUsed)
	expectErr(t, "skip ahead", s.UseTOTPStep(ctx, u.ID, 200), nil)
	if e, _ := s.GetTOTPEnrolment(ctx, u.ID); e.LastStep != 200 {
		t.Fatalf("last step = %d, want 200", e.LastStep)
	}
	expectErr(t, "use step of another user", s.UseTOTPStep(ctx, "nobody", 300), store.ErrNotFound)

	expectErr(t, "delete", s.DeleteTOTPEnrolment(ctx, u.ID), nil)
	expectErr(t, "delete twice", s.DeleteTOTPEnrolment(ctx, u.ID), store.ErrNotFound)
	_, err = s.GetTOTPEnrolment(ctx, u.ID)
	expectErr(t, "get after delete", err, store.ErrNotFound)
	expectErr(t, "enrol again after delete", s.SaveTOTPEnrolment(ctx, u.ID, []byte("new seed")), nil)
}

func testTOTPNoSystemSecret(t *testing.T, open Opener) {
	ctx := context.Background()
	// A non-nil empty secret keeps the opener from supplying TestSecret.
	s := open(t, store.Options{SystemSecret: []byte{}})
	u := createUser(t, s, "alice")
	expectErr(t, "save without secret", s.SaveTOTPEnrolment(ctx, u.ID, []byte("seed")), store.ErrNoSystemSecret)
	_, err := s.GetTOTPEnrolment(ctx, u.ID)
	expectErr(t, "get without secret", err, store.ErrNoSystemSecret)
}

func testTOTPStepRace(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	u := createUser(t, s, "alice")
	if err := s.SaveTOTPEnrolment(ctx, u.ID, []byte("seed")); err != nil {
		t.Fatal(err)
	}
	if err := s.ConfirmTOTP(ctx, u.ID, 10); err != nil {
		t.Fatal(err)
	}
	const n = 16
	errs := inParallel(n, func(int) error { return s.UseTOTPStep(ctx, u.ID, 11) })
	ok, replayed := countErrs(t, errs, store.ErrTOTPStepUsed)
	if ok != 1 || replayed != n-1 {
		t.Fatalf("%d concurrent uses of one step: %d succeeded, %d refused; want 1 and %d", n, ok, replayed, n-1)
	}
}

func testWebAuthnCredentials(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(loginEpoch)
	s := open(t, store.Options{Now: clock.Now})
	alice := createUser(t, s, "alice")
	bob := createUser(t, s, "bob")

	cred := json.RawMessage(`{"ID":"AQID","PublicKey":"pQECAyYgASFY","Authenticator":{"SignCount":3}}`)
	expectErr(t, "add", s.AddWebAuthnCredential(ctx, alice.ID, "AQID", "YubiKey", cred, 3), nil)
	clock.Add(time.Second)
	expectErr(t, "add second", s.AddWebAuthnCredential(ctx, alice.ID, "BAUG", "Phone", json.RawMessage(`{}`), 0), nil)
	expectErr(t, "add a taken ID", s.AddWebAuthnCredential(ctx, bob.ID, "AQID", "Copy", cred, 0), store.ErrAlreadyExists)
	if err := s.AddWebAuthnCredential(ctx, alice.ID, "CQoL", "Bad", json.RawMessage(`{not json`), 0); err == nil {
		t.Fatal("adding a credential that is not JSON succeeded")
	}
	if err := s.AddWebAuthnCredential(ctx, alice.ID, "", "NoID", json.RawMessage(`{}`), 0); err == nil {
		t.Fatal("adding a credential without ID succeeded")
	}

	got, err := s.GetWebAuthnCredential(ctx, "AQID")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.UserID != alice.ID || got.Name != "YubiKey" || got.SignCount != 3 || !bytes.Equal(got.Credential, cred) || !got.LastUsedAt.IsZero() {
		t.Fatalf("credential = %+v", got)
	}
	if want := loginEpoch.Truncate(time.Microsecond); !got.CreatedAt.Equal(want) || got.CreatedAt.Location() != time.UTC {
		t.Fatalf("created_at = %v, want %v UTC", got.CreatedAt, want)
	}
	_, err = s.GetWebAuthnCredential(ctx, "nope")
	expectErr(t, "get unknown", err, store.ErrNotFound)

	list, err := s.ListWebAuthnCredentials(ctx, alice.ID)
	if err != nil || len(list) != 2 || list[0].ID != "AQID" || list[1].ID != "BAUG" {
		t.Fatalf("alice's credentials = %+v, %v; want AQID then BAUG", list, err)
	}
	if list, err := s.ListWebAuthnCredentials(ctx, bob.ID); err != nil || len(list) != 0 {
		t.Fatalf("bob's credentials = %+v, %v; want none", list, err)
	}

	expectErr(t, "rename another user's credential", s.RenameWebAuthnCredential(ctx, bob.ID, "AQID", "Mine"), store.ErrNotFound)
	expectErr(t, "rename", s.RenameWebAuthnCredential(ctx, alice.ID, "AQID", "Work key"), nil)
	if got, _ := s.GetWebAuthnCredential(ctx, "AQID"); got.Name != "Work key" {
		t.Fatalf("name after rename = %q", got.Name)
	}

	expectErr(t, "delete another user's credential", s.DeleteWebAuthnCredential(ctx, bob.ID, "AQID"), store.ErrNotFound)
	expectErr(t, "delete", s.DeleteWebAuthnCredential(ctx, alice.ID, "AQID"), nil)
	expectErr(t, "delete twice", s.DeleteWebAuthnCredential(ctx, alice.ID, "AQID"), store.ErrNotFound)
	_, err = s.GetWebAuthnCredential(ctx, "AQID")
	expectErr(t, "get deleted", err, store.ErrNotFound)
}

func testWebAuthnSignCount(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(loginEpoch)
	s := open(t, store.Options{Now: clock.Now})
	u := createUser(t, s, "alice")
	if err := s.AddWebAuthnCredential(ctx, u.ID, "counting", "", json.RawMessage(`{"n":5}`), 5); err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Hour)
	expectErr(t, "increase", s.UpdateWebAuthnSignCount(ctx, "counting", 6, json.RawMessage(`{"n":6}`)), nil)
	got, err := s.GetWebAuthnCredential(ctx, "counting")
	if err != nil || got.SignCount != 6 || string(got.Credential) != `{"n":6}` {
		t.Fatalf("after update = %+v, %v", got, err)
	}
	if want := loginEpoch.Add(time.Hour).Truncate(time.Microsecond); !got.LastUsedAt.Equal(want) || got.LastUsedAt.Location() != time.UTC {
		t.Fatalf("last_used_at = %v, want %v UTC", got.LastUsedAt, want)
	}
	expectErr(t, "same count", s.UpdateWebAuthnSignCount(ctx, "counting", 6, json.RawMessage(`{"n":6}`)), store.ErrSignCountNotIncreased)
	expectErr(t, "lower count", s.UpdateWebAuthnSignCount(ctx, "counting", 2, json.RawMessage(`{"n":2}`)), store.ErrSignCountNotIncreased)
	expectErr(t, "zero after counting", s.UpdateWebAuthnSignCount(ctx, "counting", 0, json.RawMessage(`{"n":0}`)), store.ErrSignCountNotIncreased)
	if got, _ := s.GetWebAuthnCredential(ctx, "counting"); got.SignCount != 6 || string(got.Credential) != `{"n":6}` {
		t.Fatalf("refused update changed the credential: %+v", got)
	}
	expectErr(t, "highest count", s.UpdateWebAuthnSignCount(ctx, "counting", 1<<32-1, json.RawMessage(`{}`)), nil)
	if got, _ := s.GetWebAuthnCredential(ctx, "counting"); got.SignCount != 1<<32-1 {
		t.Fatalf("sign count = %d, want %d", got.SignCount, uint32(1<<32-1))
	}

	// An authenticator without a counter reports zero every time.
	if err := s.AddWebAuthnCredential(ctx, u.ID, "passkey", "", json.RawMessage(`{}`), 0); err != nil {
		t.Fatal(err)
	}
	expectErr(t, "zero, zero", s.UpdateWebAuthnSignCount(ctx, "passkey", 0, json.RawMessage(`{}`)), nil)
	expectErr(t, "zero, zero again", s.UpdateWebAuthnSignCount(ctx, "passkey", 0, json.RawMessage(`{}`)), nil)
	expectErr(t, "starts counting", s.UpdateWebAuthnSignCount(ctx, "passkey", 1, json.RawMessage(`{}`)), nil)

	expectErr(t, "unknown credential", s.UpdateWebAuthnSignCount(ctx, "nope", 9, json.RawMessage(`{}`)), store.ErrNotFound)
	if err := s.UpdateWebAuthnSignCount(ctx, "passkey", 9, json.RawMessage(`nope`)); err == nil {
		t.Fatal("update with a credential that is not JSON succeeded")
	}
}

func testWebAuthnSignCountRace(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	u := createUser(t, s, "alice")
	if err := s.AddWebAuthnCredential(ctx, u.ID, "key", "", json.RawMessage(`{}`), 1); err != nil {
		t.Fatal(err)
	}
	const n = 16
	// The same assertion (counter 2) presented n times at once.
	errs := inParallel(n, func(int) error { return s.UpdateWebAuthnSignCount(ctx, "key", 2, json.RawMessage(`{}`)) })
	ok, refused := countErrs(t, errs, store.ErrSignCountNotIncreased)
	if ok != 1 || refused != n-1 {
		t.Fatalf("%d concurrent assertions: %d accepted, %d refused; want 1 and %d", n, ok, refused, n-1)
	}
}

func testRecoveryCodes(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	alice := createUser(t, s, "alice")
	bob := createUser(t, s, "bob")

	count := func(u *store.User, want int) {
		t.Helper()
		n, err := s.CountUnusedRecoveryCodes(ctx, u.ID)
		if err != nil || n != want {
			t.Fatalf("unused recovery codes of %s = %d, %v; want %d", u.Username, n, err, want)
		}
	}
	count(alice, 0)
	expectErr(t, "use before any", s.UseRecoveryCode(ctx, alice.ID, "h1"), store.ErrNotFound)
	expectErr(t, "replace", s.ReplaceRecoveryCodes(ctx, alice.ID, []string{"h1", "h2", "h3"}), nil)
	expectErr(t, "replace bob's", s.ReplaceRecoveryCodes(ctx, bob.ID, []string{"h1", "b2"}), nil)
	count(alice, 3)

	expectErr(t, "use", s.UseRecoveryCode(ctx, alice.ID, "h2"), nil)
	count(alice, 2)
	expectErr(t, "use twice", s.UseRecoveryCode(ctx, alice.ID, "h2"), store.ErrNotFound)
	expectErr(t, "wrong code", s.UseRecoveryCode(ctx, alice.ID, "zz"), store.ErrNotFound)
	expectErr(t, "another user's code", s.UseRecoveryCode(ctx, alice.ID, "b2"), store.ErrNotFound)
	count(alice, 2)
	count(bob, 2)

	// A failed replacement keeps the old set: it is one transaction.
	expectErr(t, "replace with a repeated hash", s.ReplaceRecoveryCodes(ctx, alice.ID, []string{"n1", "n1"}), store.ErrAlreadyExists)
	count(alice, 2)
	expectErr(t, "old code still works after failed replace", s.UseRecoveryCode(ctx, alice.ID, "h1"), nil)

	expectErr(t, "replace again", s.ReplaceRecoveryCodes(ctx, alice.ID, []string{"n1", "n2", "n3", "n4"}), nil)
	count(alice, 4)
	expectErr(t, "old code after replace", s.UseRecoveryCode(ctx, alice.ID, "h3"), store.ErrNotFound)
	expectErr(t, "new code", s.UseRecoveryCode(ctx, alice.ID, "n4"), nil)
	count(alice, 3)
	count(bob, 2)

	expectErr(t, "replace with none", s.ReplaceRecoveryCodes(ctx, alice.ID, nil), nil)
	count(alice, 0)
}

func testRecoveryCodeRace(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	u := createUser(t, s, "alice")
	if err := s.ReplaceRecoveryCodes(ctx, u.ID, []string{"h1", "h2", "h3"}); err != nil {
		t.Fatal(err)
	}
	const n = 16
	errs := inParallel(n, func(int) error { return s.UseRecoveryCode(ctx, u.ID, "h2") })
	ok, refused := countErrs(t, errs, store.ErrNotFound)
	if ok != 1 || refused != n-1 {
		t.Fatalf("%d concurrent uses of one recovery code: %d succeeded, %d refused; want 1 and %d", n, ok, refused, n-1)
	}
	if left, err := s.CountUnusedRecoveryCodes(ctx, u.ID); err != nil || left != 2 {
		t.Fatalf("unused codes = %d, %v; want 2", left, err)
	}
}

func testResetMFA(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	alice := createUser(t, s, "alice")
	bob := createUser(t, s, "bob")
	for _, u := range []*store.User{alice, bob} {
		if err := s.SaveTOTPEnrolment(ctx, u.ID, []byte("seed")); err != nil {
			t.Fatal(err)
		}
		if err := s.AddWebAuthnCredential(ctx, u.ID, "cred-"+u.Username, "", json.RawMessage(`{}`), 0); err != nil {
			t.Fatal(err)
		}
		if err := s.ReplaceRecoveryCodes(ctx, u.ID, []string{"h1"}); err != nil {
			t.Fatal(err)
		}
		if err := s.LinkFederatedIdentity(ctx, "google", "sub-"+u.Username, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	expectErr(t, "reset", s.ResetMFA(ctx, alice.ID), nil)

	_, err := s.GetTOTPEnrolment(ctx, alice.ID)
	expectErr(t, "TOTP after reset", err, store.ErrNotFound)
	if creds, err := s.ListWebAuthnCredentials(ctx, alice.ID); err != nil || len(creds) != 0 {
		t.Fatalf("credentials after reset = %v, %v", creds, err)
	}
	if n, err := s.CountUnusedRecoveryCodes(ctx, alice.ID); err != nil || n != 0 {
		t.Fatalf("recovery codes after reset = %d, %v", n, err)
	}
	// The account itself and its sign-in links are not second factors.
	if _, err := s.GetUser(ctx, alice.ID); err != nil {
		t.Fatalf("user after reset: %v", err)
	}
	if _, err := s.GetUserByFederatedIdentity(ctx, "google", "sub-alice"); err != nil {
		t.Fatalf("federated identity after reset: %v", err)
	}
	// Bob is untouched.
	if _, err := s.GetTOTPEnrolment(ctx, bob.ID); err != nil {
		t.Fatalf("bob's TOTP: %v", err)
	}
	if creds, err := s.ListWebAuthnCredentials(ctx, bob.ID); err != nil || len(creds) != 1 {
		t.Fatalf("bob's credentials = %v, %v", creds, err)
	}
	if n, err := s.CountUnusedRecoveryCodes(ctx, bob.ID); err != nil || n != 1 {
		t.Fatalf("bob's recovery codes = %d, %v", n, err)
	}
	expectErr(t, "reset again", s.ResetMFA(ctx, alice.ID), nil)
}
