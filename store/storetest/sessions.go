package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/store"
)

var _ = register(
	test{"LoginSessionCRUD", testLoginSessionCRUD},
	test{"LoginSessionExpiry", testLoginSessionExpiry},
	test{"LoginSessionTimeZones", testLoginSessionTimeZones},
	test{"LoginSessionClients", testLoginSessionClients},
	test{"LoginSessionsBySubject", testLoginSessionsBySubject},
	test{"LoginSessionsListedBySubject", testLoginSessionsListedBySubject},
	test{"LoginSessionEndBySID", testLoginSessionEndBySID},
)

var _ = registerShared(
	sharedTest{"LoginSessionStoredHashed", testLoginSessionStoredHashed},
)

func exampleLoginSession(subject string, exp time.Time) *store.LoginSession {
	return &store.LoginSession{
		ID:        randomID("cookie"),
		SID:       randomID("sid"),
		Subject:   subject,
		ACR:       "urn:latchkey:pwd",
		AMR:       []string{"pwd"},
		ExpiresAt: exp,
	}
}

func createLoginSession(t *testing.T, s *store.Store, ls *store.LoginSession) {
	t.Helper()
	if err := s.CreateLoginSession(context.Background(), ls); err != nil {
		t.Fatalf("create login session: %v", err)
	}
}

func sessionClients(t *testing.T, s *store.Store, sid string) string {
	t.Helper()
	ids, err := s.ListSessionClients(context.Background(), sid)
	if err != nil {
		t.Fatalf("list session clients: %v", err)
	}
	return strings.Join(ids, " ")
}

func testLoginSessionCRUD(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(flowEpoch)
	s := open(t, store.Options{Now: clock.Now})
	ls := exampleLoginSession("alice", flowEpoch.Add(time.Hour))
	ls.Remember = true
	createLoginSession(t, s, ls)
	wantInstant(t, ls.AuthenticatedAt, flowEpoch, "authenticated_at defaults to now")

	dup := exampleLoginSession("bob", flowEpoch.Add(time.Hour))
	dup.ID = ls.ID
	expectErr(t, "create with a taken cookie value", s.CreateLoginSession(ctx, dup), store.ErrAlreadyExists)
	dup = exampleLoginSession("bob", flowEpoch.Add(time.Hour))
	dup.SID = ls.SID
	expectErr(t, "create with a taken SID", s.CreateLoginSession(ctx, dup), store.ErrAlreadyExists)
	if err := s.CreateLoginSession(ctx, exampleLoginSession("", flowEpoch.Add(time.Hour))); err == nil {
		t.Fatal("a session without subject was accepted")
	}

	got, err := s.GetLoginSession(ctx, ls.ID)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.ID != ls.ID || got.SID != ls.SID || got.Subject != "alice" || got.ACR != "urn:latchkey:pwd" ||
		!slices.Equal(got.AMR, []string{"pwd"}) || !got.Remember {
		t.Fatalf("get returned %+v", got)
	}
	wantInstant(t, got.AuthenticatedAt, flowEpoch, "authenticated_at")
	wantInstant(t, got.CreatedAt, flowEpoch, "created_at")
	wantInstant(t, got.ExpiresAt, flowEpoch.Add(time.Hour), "expires_at")
	bySID, err := s.GetLoginSessionBySID(ctx, ls.SID)
	if err != nil {
		t.Fatalf("get by SID: %v", err)
	}
	if bySID.ID != "" || bySID.SID != ls.SID || bySID.Subject != "alice" {
		t.Fatalf("get by SID returned %+v; want the session without its cookie value", bySID)
	}
	_, err = s.GetLoginSession(ctx, "no-such-cookie")
	expectErr(t, "get unknown", err, store.ErrNotFound)
	_, err = s.GetLoginSession(ctx, ls.SID)
	expectErr(t, "get with the SID as cookie", err, store.ErrNotFound)
	_, err = s.GetLoginSessionBySID(ctx, "no-such-sid")
	expectErr(t, "get unknown SID", err, store.ErrNotFound)

	// Sliding expiry.
	clock.Add(10 * time.Minute)
	if err := s.TouchLoginSession(ctx, ls.ID, flowEpoch.Add(2*time.Hour)); err != nil {
		t.Fatalf("touch: %v", err)
	}
	expectErr(t, "touch unknown", s.TouchLoginSession(ctx, "no-such-cookie", flowEpoch.Add(2*time.Hour)), store.ErrNotFound)
	if got, err = s.GetLoginSession(ctx, ls.ID); err != nil {
		t.Fatal(err)
	}
	wantInstant(t, got.ExpiresAt, flowEpoch.Add(2*time.Hour), "expires_at after touch")
	wantInstant(t, got.AuthenticatedAt, flowEpoch, "authenticated_at after touch")

	// Step-up authentication of the same user.
	clock.Add(10 * time.Minute)
	re := &store.LoginSession{ID: ls.ID, Subject: "alice", ACR: "urn:latchkey:mfa", AMR: []string{"pwd", "otp"}, ExpiresAt: flowEpoch.Add(3 * time.Hour)}
	if err := s.ReauthenticateLoginSession(ctx, re); err != nil {
		t.Fatalf("reauthenticate: %v", err)
	}
	if got, err = s.GetLoginSession(ctx, ls.ID); err != nil {
		t.Fatal(err)
	}
	if got.ACR != "urn:latchkey:mfa" || !slices.Equal(got.AMR, []string{"pwd", "otp"}) || got.Remember || got.SID != ls.SID {
		t.Fatalf("after reauthentication: %+v", got)
	}
	wantInstant(t, got.AuthenticatedAt, flowEpoch.Add(20*time.Minute), "authenticated_at after reauthentication")
	wantInstant(t, got.ExpiresAt, flowEpoch.Add(3*time.Hour), "expires_at after reauthentication")
	wantInstant(t, got.CreatedAt, flowEpoch, "created_at after reauthentication")

	// Another user cannot take the session over.
	other := &store.LoginSession{ID: ls.ID, Subject: "mallory", ACR: "x", ExpiresAt: flowEpoch.Add(9 * time.Hour)}
	expectErr(t, "reauthenticate as another subject", s.ReauthenticateLoginSession(ctx, other), store.ErrNotFound)
	if got, err = s.GetLoginSession(ctx, ls.ID); err != nil || got.Subject != "alice" || got.ACR != "urn:latchkey:mfa" {
		t.Fatalf("after a refused takeover: %+v, %v", got, err)
	}

	if err := s.DeleteLoginSession(ctx, ls.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = s.GetLoginSession(ctx, ls.ID)
	expectErr(t, "get deleted", err, store.ErrNotFound)
	_, err = s.GetLoginSessionBySID(ctx, ls.SID)
	expectErr(t, "get deleted by SID", err, store.ErrNotFound)
	expectErr(t, "delete twice", s.DeleteLoginSession(ctx, ls.ID), store.ErrNotFound)
}

func testLoginSessionExpiry(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(flowEpoch)
	s := open(t, store.Options{Now: clock.Now})
	ls := exampleLoginSession("alice", flowEpoch.Add(time.Hour))
	createLoginSession(t, s, ls)
	if err := s.AddSessionClient(ctx, ls.SID, "client-a"); err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Hour - time.Microsecond)
	if _, err := s.GetLoginSession(ctx, ls.ID); err != nil {
		t.Fatalf("get just before expiry: %v", err)
	}
	clock.Add(time.Microsecond)
	_, err := s.GetLoginSession(ctx, ls.ID)
	expectErr(t, "get expired", err, store.ErrNotFound)
	_, err = s.GetLoginSessionBySID(ctx, ls.SID)
	expectErr(t, "get expired by SID", err, store.ErrNotFound)
	expectErr(t, "touch expired", s.TouchLoginSession(ctx, ls.ID, flowEpoch.Add(5*time.Hour)), store.ErrNotFound)
	expectErr(t, "reauthenticate expired",
		s.ReauthenticateLoginSession(ctx, &store.LoginSession{ID: ls.ID, Subject: "alice", ExpiresAt: flowEpoch.Add(5 * time.Hour)}),
		store.ErrNotFound)
	expectErr(t, "add a client to an expired session", s.AddSessionClient(ctx, ls.SID, "client-b"), store.ErrNotFound)

	clock.Add(time.Second)
	removed, err := s.Janitor(ctx, store.JanitorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if removed["login_sessions"] != 1 || removed["login_session_clients"] != 1 {
		t.Fatalf("janitor removed %d sessions and %d session clients, want 1 and 1", removed["login_sessions"], removed["login_session_clients"])
	}
}

func testLoginSessionTimeZones(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(flowEpoch)
	clock.In(time.FixedZone("UTC-03:00", -3*3600))
	s := open(t, store.Options{Now: clock.Now})
	east := time.FixedZone("UTC+10:00", 10*3600)
	ls := exampleLoginSession("alice", flowEpoch.Add(30*time.Minute).In(east))
	ls.AuthenticatedAt = flowEpoch.Add(-time.Minute).In(east)
	createLoginSession(t, s, ls)
	got, err := s.GetLoginSession(ctx, ls.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantInstant(t, got.AuthenticatedAt, flowEpoch.Add(-time.Minute), "authenticated_at")
	wantInstant(t, got.CreatedAt, flowEpoch, "created_at")
	wantInstant(t, got.ExpiresAt, flowEpoch.Add(30*time.Minute), "expires_at")
	if err := s.TouchLoginSession(ctx, ls.ID, flowEpoch.Add(45*time.Minute).In(east)); err != nil {
		t.Fatal(err)
	}
	clock.Add(45*time.Minute - time.Microsecond)
	if _, err := s.GetLoginSession(ctx, ls.ID); err != nil {
		t.Fatalf("get just before expiry: %v", err)
	}
	clock.Add(time.Microsecond)
	_, err = s.GetLoginSession(ctx, ls.ID)
	expectErr(t, "get at expiry", err, store.ErrNotFound)
}

func testLoginSessionClients(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	a := exampleLoginSession("alice", time.Now().Add(time.Hour))
	b := exampleLoginSession("alice", time.Now().Add(time.Hour))
	createLoginSession(t, s, a)
	createLoginSession(t, s, b)
	if got := sessionClients(t, s, a.SID); got != "" {
		t.Fatalf("clients of a new session = %q, want none", got)
	}
	for _, c := range []string{"client-b", "client-a", "client-b"} {
		if err := s.AddSessionClient(ctx, a.SID, c); err != nil {
			t.Fatalf("add %s: %v", c, err)
		}
	}
	if err := s.AddSessionClient(ctx, b.SID, "client-c"); err != nil {
		t.Fatal(err)
	}
	expectErr(t, "add a client to an unknown session", s.AddSessionClient(ctx, "no-such-sid", "client-a"), store.ErrNotFound)
	if got := sessionClients(t, s, a.SID); got != "client-a client-b" {
		t.Fatalf("clients of a = %q, want client-a client-b", got)
	}
	if got := sessionClients(t, s, b.SID); got != "client-c" {
		t.Fatalf("clients of b = %q, want client-c", got)
	}
	if got := sessionClients(t, s, "no-such-sid"); got != "" {
		t.Fatalf("clients of an unknown session = %q", got)
	}
	if err := s.DeleteLoginSession(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if got := sessionClients(t, s, a.SID); got != "" {
		t.Fatalf("clients of a deleted session = %q, want none", got)
	}
	if got := sessionClients(t, s, b.SID); got != "client-c" {
		t.Fatalf("clients of b after deleting a = %q, want client-c", got)
	}
}

func testLoginSessionsBySubject(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(flowEpoch)
	s := open(t, store.Options{Now: clock.Now})
	var aliceSIDs []string
	for _, exp := range []time.Duration{time.Minute, time.Hour, 2 * time.Hour} {
		ls := exampleLoginSession("alice", flowEpoch.Add(exp))
		createLoginSession(t, s, ls)
		if err := s.AddSessionClient(ctx, ls.SID, "client-a"); err != nil {
			t.Fatal(err)
		}
		aliceSIDs = append(aliceSIDs, ls.SID)
	}
	slices.Sort(aliceSIDs)
	bob := exampleLoginSession("bob", flowEpoch.Add(time.Hour))
	createLoginSession(t, s, bob)
	if err := s.AddSessionClient(ctx, bob.SID, "client-a"); err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * time.Minute) // one of alice's sessions has expired; it is ended too

	sids, err := s.DeleteLoginSessionsBySubject(ctx, "alice")
	if err != nil {
		t.Fatalf("delete alice's sessions: %v", err)
	}
	if !slices.Equal(sids, aliceSIDs) {
		t.Fatalf("deleted SIDs = %v, want %v", sids, aliceSIDs)
	}
	for _, sid := range aliceSIDs {
		if _, err := s.GetLoginSessionBySID(ctx, sid); err == nil {
			t.Fatalf("session %s survived", sid)
		}
		if got := sessionClients(t, s, sid); got != "" {
			t.Fatalf("clients of deleted session %s = %q", sid, got)
		}
	}
	if _, err := s.GetLoginSessionBySID(ctx, bob.SID); err != nil {
		t.Fatalf("bob's session: %v", err)
	}
	if got := sessionClients(t, s, bob.SID); got != "client-a" {
		t.Fatalf("clients of bob's session = %q", got)
	}
	if sids, err := s.DeleteLoginSessionsBySubject(ctx, "alice"); err != nil || len(sids) != 0 {
		t.Fatalf("delete again: %v, %v; want nothing and no error", sids, err)
	}
}

func testLoginSessionStoredHashed(t *testing.T, fresh FreshDB) {
	url := fresh(t)
	s := OpenURL(t, url, store.Options{})
	ls := exampleLoginSession("alice", time.Now().Add(time.Hour))
	createLoginSession(t, s, ls)
	db := openRawDB(t, url)
	var ids []string
	if err := db.Select(&ids, `SELECT id FROM login_sessions`); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(ls.ID))
	if len(ids) != 1 || ids[0] != hex.EncodeToString(sum[:]) {
		t.Fatalf("session IDs stored as %q, want only the SHA-256 of the cookie value", ids)
	}
}

// testLoginSessionsListedBySubject lists a subject's live sessions, oldest
// first, each with its own clients.
func testLoginSessionsListedBySubject(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(flowEpoch)
	s := open(t, store.Options{Now: clock.Now})
	older := exampleLoginSession("alice", flowEpoch.Add(time.Hour))
	older.AMR = []string{"pwd", "otp", "mfa"}
	older.Remember = true
	createLoginSession(t, s, older)
	clock.Add(time.Second)
	newer := exampleLoginSession("alice", flowEpoch.Add(2*time.Hour))
	createLoginSession(t, s, newer)
	expiring := exampleLoginSession("alice", flowEpoch.Add(2*time.Minute))
	createLoginSession(t, s, expiring)
	bob := exampleLoginSession("bob", flowEpoch.Add(time.Hour))
	createLoginSession(t, s, bob)
	for _, add := range []struct{ sid, client string }{
		{older.SID, "zeta"}, {older.SID, "alpha"}, {expiring.SID, "beta"}, {bob.SID, "gamma"},
	} {
		if err := s.AddSessionClient(ctx, add.sid, add.client); err != nil {
			t.Fatalf("add session client: %v", err)
		}
	}
	clock.Add(2 * time.Minute) // expiring has expired: it is not listed

	got, err := s.ListLoginSessionsBySubject(ctx, "alice")
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(got) != 2 || got[0].SID != older.SID || got[1].SID != newer.SID {
		t.Fatalf("listed %+v, want the older then the newer live session", got)
	}
	o := got[0]
	if o.ID != "" || o.Subject != "alice" || o.ACR != older.ACR || !slices.Equal(o.AMR, older.AMR) || !o.Remember ||
		!o.AuthenticatedAt.Equal(older.AuthenticatedAt) || !o.CreatedAt.Equal(older.CreatedAt) || !o.ExpiresAt.Equal(older.ExpiresAt) {
		t.Errorf("listed %+v, want %+v without its cookie value", o.LoginSession, *older)
	}
	if !slices.Equal(o.ClientIDs, []string{"alpha", "zeta"}) {
		t.Errorf("clients of the older session %q, want alpha zeta", o.ClientIDs)
	}
	if got[1].ClientIDs == nil || len(got[1].ClientIDs) != 0 {
		t.Errorf("clients of the newer session %#v, want an empty list", got[1].ClientIDs)
	}
	if none, err := s.ListLoginSessionsBySubject(ctx, "nobody"); err != nil || len(none) != 0 {
		t.Errorf("list for nobody: %v, %v", none, err)
	}
}

// testLoginSessionEndBySID ends one session, only for its own subject, and
// hands back its clients like EndLoginSession.
func testLoginSessionEndBySID(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	a := exampleLoginSession("alice", time.Now().Add(time.Hour))
	b := exampleLoginSession("alice", time.Now().Add(time.Hour))
	createLoginSession(t, s, a)
	createLoginSession(t, s, b)
	for _, c := range []string{"zeta", "alpha"} {
		if err := s.AddSessionClient(ctx, a.SID, c); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.EndLoginSessionBySID(ctx, "bob", a.SID)
	expectErr(t, "end another subject's session", err, store.ErrNotFound)
	_, err = s.EndLoginSessionBySID(ctx, "alice", "no-such-sid")
	expectErr(t, "end an unknown session", err, store.ErrNotFound)

	ended, err := s.EndLoginSessionBySID(ctx, "alice", a.SID)
	if err != nil {
		t.Fatalf("end: %v", err)
	}
	if ended.SID != a.SID || ended.Subject != "alice" || strings.Join(ended.ClientIDs, " ") != "alpha zeta" {
		t.Fatalf("end returned %+v", ended)
	}
	_, err = s.GetLoginSession(ctx, a.ID)
	expectErr(t, "get the ended session", err, store.ErrNotFound)
	if got := sessionClients(t, s, a.SID); got != "" {
		t.Fatalf("clients of the ended session: %q", got)
	}
	if _, err := s.GetLoginSession(ctx, b.ID); err != nil {
		t.Fatalf("the other session: %v", err)
	}
	_, err = s.EndLoginSessionBySID(ctx, "alice", a.SID)
	expectErr(t, "end twice", err, store.ErrNotFound)
}
