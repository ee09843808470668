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
	test{"ConsentGrantCRUD", testConsentGrantCRUD},
	test{"ConsentGrantExpiry", testConsentGrantExpiry},
	test{"ConsentGrantTimeZones", testConsentGrantTimeZones},
	test{"ConsentGrantsBySubject", testConsentGrantsBySubject},
)

func saveConsent(t *testing.T, s *store.Store, g *store.ConsentGrant) {
	t.Helper()
	if err := s.SaveConsentGrant(context.Background(), g); err != nil {
		t.Fatalf("save consent: %v", err)
	}
}

func consentClients(t *testing.T, s *store.Store, subject string) []string {
	t.Helper()
	gs, err := s.ListConsentGrants(context.Background(), subject)
	if err != nil {
		t.Fatalf("list consents: %v", err)
	}
	out := make([]string, len(gs))
	for i, g := range gs {
		if g.Subject != subject {
			t.Fatalf("consents of %s include one of %s", subject, g.Subject)
		}
		out[i] = g.ClientID
	}
	return out
}

func testConsentGrantCRUD(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(flowEpoch)
	s := open(t, store.Options{Now: clock.Now})
	_, err := s.GetConsentGrant(ctx, "alice", "client-a")
	expectErr(t, "get before saving", err, store.ErrNotFound)

	claims := json.RawMessage(`{"id_token":{"email":{"essential":true}}}`)
	g := &store.ConsentGrant{
		Subject:  "alice",
		ClientID: "client-a",
		Scopes:   []string{"openid", "profile", "email"},
		Audience: []string{"https://api.example.test"},
		Claims:   claims,
	}
	saveConsent(t, s, g)
	wantInstant(t, g.GrantedAt, flowEpoch, "granted_at as saved")
	got, err := s.GetConsentGrant(ctx, "alice", "client-a")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.Subject != "alice" || got.ClientID != "client-a" || !slices.Equal(got.Scopes, g.Scopes) ||
		!slices.Equal(got.Audience, g.Audience) || !jsonEqual(t, got.Claims, claims) || got.ExpiresAt != nil {
		t.Fatalf("get returned %+v", got)
	}
	wantInstant(t, got.GrantedAt, flowEpoch, "granted_at")
	_, err = s.GetConsentGrant(ctx, "alice", "client-b")
	expectErr(t, "get for another client", err, store.ErrNotFound)
	_, err = s.GetConsentGrant(ctx, "bob", "client-a")
	expectErr(t, "get for another subject", err, store.ErrNotFound)

	// Saving again replaces the grant.
	clock.Add(time.Hour)
	exp := flowEpoch.Add(48 * time.Hour)
	saveConsent(t, s, &store.ConsentGrant{Subject: "alice", ClientID: "client-a", Scopes: []string{"openid"}, ExpiresAt: &exp})
	if got, err = s.GetConsentGrant(ctx, "alice", "client-a"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Scopes, []string{"openid"}) || len(got.Audience) != 0 || !jsonEqual(t, got.Claims, []byte(`{}`)) || got.ExpiresAt == nil {
		t.Fatalf("after saving again: %+v", got)
	}
	wantInstant(t, got.GrantedAt, flowEpoch.Add(time.Hour), "granted_at after saving again")
	wantInstant(t, *got.ExpiresAt, exp, "expires_at")
	if cs := consentClients(t, s, "alice"); !slices.Equal(cs, []string{"client-a"}) {
		t.Fatalf("alice's consents after saving twice = %v, want one", cs)
	}

	for _, bad := range []*store.ConsentGrant{
		{Subject: "alice", ClientID: "client-a", Scopes: []string{"openid profile"}},
		{Subject: "alice", ClientID: "client-a", Scopes: []string{""}},
		{Subject: "alice", ClientID: "client-a", Audience: []string{"a\tb"}},
		{Subject: "alice", ClientID: "client-a", Claims: json.RawMessage(`{`)},
		{Subject: "", ClientID: "client-a"},
		{Subject: "alice", ClientID: ""},
	} {
		if err := s.SaveConsentGrant(ctx, bad); err == nil {
			t.Fatalf("invalid consent %+v was accepted", bad)
		}
	}

	if err := s.DeleteConsentGrant(ctx, "alice", "client-a"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = s.GetConsentGrant(ctx, "alice", "client-a")
	expectErr(t, "get deleted", err, store.ErrNotFound)
	expectErr(t, "delete twice", s.DeleteConsentGrant(ctx, "alice", "client-a"), store.ErrNotFound)
}

func testConsentGrantExpiry(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(flowEpoch)
	s := open(t, store.Options{Now: clock.Now})
	exp := flowEpoch.Add(time.Hour)
	saveConsent(t, s, &store.ConsentGrant{Subject: "alice", ClientID: "client-a", Scopes: []string{"openid"}, ExpiresAt: &exp})
	saveConsent(t, s, &store.ConsentGrant{Subject: "alice", ClientID: "client-b", Scopes: []string{"openid"}})
	clock.Add(time.Hour - time.Microsecond)
	if _, err := s.GetConsentGrant(ctx, "alice", "client-a"); err != nil {
		t.Fatalf("get just before expiry: %v", err)
	}
	clock.Add(time.Microsecond)
	_, err := s.GetConsentGrant(ctx, "alice", "client-a")
	expectErr(t, "get expired", err, store.ErrNotFound)
	if cs := consentClients(t, s, "alice"); !slices.Equal(cs, []string{"client-b"}) {
		t.Fatalf("alice's consents after one expired = %v, want client-b", cs)
	}
	clock.Add(100 * 365 * 24 * time.Hour)
	if _, err := s.GetConsentGrant(ctx, "alice", "client-b"); err != nil {
		t.Fatalf("a grant without expiry expired: %v", err)
	}
	// Consenting again brings an expired grant back.
	saveConsent(t, s, &store.ConsentGrant{Subject: "alice", ClientID: "client-a", Scopes: []string{"openid", "email"}})
	if got, err := s.GetConsentGrant(ctx, "alice", "client-a"); err != nil || !slices.Equal(got.Scopes, []string{"openid", "email"}) {
		t.Fatalf("get after consenting again: %+v, %v", got, err)
	}
}

func testConsentGrantTimeZones(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(flowEpoch)
	clock.In(time.FixedZone("UTC+01:00", 3600))
	s := open(t, store.Options{Now: clock.Now})
	exp := flowEpoch.Add(20 * time.Minute).In(time.FixedZone("UTC-11:00", -11*3600))
	saveConsent(t, s, &store.ConsentGrant{Subject: "alice", ClientID: "client-a", Scopes: []string{"openid"}, ExpiresAt: &exp})
	got, err := s.GetConsentGrant(ctx, "alice", "client-a")
	if err != nil {
		t.Fatal(err)
	}
	wantInstant(t, got.GrantedAt, flowEpoch, "granted_at")
	wantInstant(t, *got.ExpiresAt, exp, "expires_at")
	clock.Add(20*time.Minute - time.Microsecond)
	if _, err := s.GetConsentGrant(ctx, "alice", "client-a"); err != nil {
		t.Fatalf("get just before expiry: %v", err)
	}
	clock.Add(time.Microsecond)
	_, err = s.GetConsentGrant(ctx, "alice", "client-a")
	expectErr(t, "get at expiry", err, store.ErrNotFound)
}

func testConsentGrantsBySubject(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	for _, c := range []string{"client-c", "client-a", "client-b"} {
		saveConsent(t, s, &store.ConsentGrant{Subject: "alice", ClientID: c, Scopes: []string{"openid"}})
	}
	saveConsent(t, s, &store.ConsentGrant{Subject: "bob", ClientID: "client-a", Scopes: []string{"openid"}})
	if cs := consentClients(t, s, "alice"); !slices.Equal(cs, []string{"client-a", "client-b", "client-c"}) {
		t.Fatalf("alice's consents = %v, want client-a, client-b, client-c", cs)
	}
	if cs := consentClients(t, s, "nobody"); len(cs) != 0 {
		t.Fatalf("consents of an unknown subject = %v", cs)
	}
	if err := s.DeleteConsentGrantsBySubject(ctx, "alice"); err != nil {
		t.Fatalf("delete alice's consents: %v", err)
	}
	if cs := consentClients(t, s, "alice"); len(cs) != 0 {
		t.Fatalf("alice's consents after deleting them = %v", cs)
	}
	if cs := consentClients(t, s, "bob"); !slices.Equal(cs, []string{"client-a"}) {
		t.Fatalf("bob's consents after deleting alice's = %v", cs)
	}
	if err := s.DeleteConsentGrantsBySubject(ctx, "alice"); err != nil {
		t.Fatalf("delete again: %v", err)
	}
}
