package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/store"
)

var _ = register(
	test{"ChallengeLifecycle", testChallengeLifecycle},
	test{"ChallengeReject", testChallengeReject},
	test{"ChallengeExpiry", testChallengeExpiry},
	test{"ChallengeTimeZones", testChallengeTimeZones},
	test{"ChallengeConcurrentDecide", testChallengeConcurrentDecide},
	test{"ChallengeConcurrentConsume", testChallengeConcurrentConsume},
)

var _ = registerShared(
	sharedTest{"ChallengeStoredHashed", testChallengeStoredHashed},
)

func exampleChallenge(kind store.ChallengeKind, exp time.Time) *store.Challenge {
	return &store.Challenge{
		ID:        randomID("challenge"),
		Kind:      kind,
		ClientID:  "client-1",
		SessionID: "sid-1",
		Request:   json.RawMessage(`{"scope":"openid profile","redirect_uri":"https://app.example.test/cb"}`),
		ExpiresAt: exp,
	}
}

// jsonEqual reports whether a and b hold the same JSON value, however
// formatted (PostgreSQL and SQLite give back the text they were given, but
// a future JSONB column would not).
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("decode %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

func createChallenge(t *testing.T, s *store.Store, c *store.Challenge) {
	t.Helper()
	if err := s.CreateChallenge(context.Background(), c); err != nil {
		t.Fatalf("create %s challenge: %v", c.Kind, err)
	}
}

func testChallengeLifecycle(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(flowEpoch)
	s := open(t, store.Options{Now: clock.Now})
	c := exampleChallenge(store.ChallengeLogin, flowEpoch.Add(10*time.Minute))
	createChallenge(t, s, c)
	if c.State != store.ChallengePending {
		t.Fatalf("new challenge state = %q, want pending", c.State)
	}
	dup := exampleChallenge(store.ChallengeConsent, flowEpoch.Add(time.Minute))
	dup.ID = c.ID
	expectErr(t, "create with a taken ID", s.CreateChallenge(ctx, dup), store.ErrAlreadyExists)
	bad := exampleChallenge("password", flowEpoch.Add(time.Minute))
	if err := s.CreateChallenge(ctx, bad); err == nil {
		t.Fatal("a challenge of unknown kind was accepted")
	}
	bad = exampleChallenge(store.ChallengeLogin, time.Time{})
	if err := s.CreateChallenge(ctx, bad); err == nil {
		t.Fatal("a challenge without expiry was accepted")
	}
	bad = exampleChallenge(store.ChallengeLogin, flowEpoch.Add(time.Minute))
	bad.Request = json.RawMessage(`{"broken"`)
	if err := s.CreateChallenge(ctx, bad); err == nil {
		t.Fatal("a request that is not JSON was accepted")
	}

	got, err := s.GetChallenge(ctx, store.ChallengeLogin, c.ID)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.ID != c.ID || got.Kind != store.ChallengeLogin || got.State != store.ChallengePending ||
		got.ClientID != "client-1" || got.SessionID != "sid-1" || got.Subject != "" || got.DecidedAt != nil ||
		!jsonEqual(t, got.Request, c.Request) || !jsonEqual(t, got.Result, []byte(`{}`)) {
		t.Fatalf("get returned %+v", got)
	}
	wantInstant(t, got.CreatedAt, flowEpoch, "created_at")
	wantInstant(t, got.ExpiresAt, flowEpoch.Add(10*time.Minute), "expires_at")
	_, err = s.GetChallenge(ctx, store.ChallengeConsent, c.ID)
	expectErr(t, "get as another kind", err, store.ErrNotFound)
	_, err = s.GetChallenge(ctx, store.ChallengeLogin, "no-such-challenge")
	expectErr(t, "get unknown", err, store.ErrNotFound)

	// Nothing to consume before a decision.
	_, err = s.ConsumeChallenge(ctx, store.ChallengeLogin, c.ID)
	expectErr(t, "consume pending", err, store.ErrConflict)
	if _, err := s.DecideChallenge(ctx, store.ChallengeLogin, c.ID, store.ChallengeUsed, nil, "alice"); err == nil {
		t.Fatal("decide accepted state used")
	}
	_, err = s.DecideChallenge(ctx, store.ChallengeConsent, c.ID, store.ChallengeAccepted, nil, "alice")
	expectErr(t, "decide as another kind", err, store.ErrNotFound)
	_, err = s.DecideChallenge(ctx, store.ChallengeLogin, "no-such-challenge", store.ChallengeAccepted, nil, "alice")
	expectErr(t, "decide unknown", err, store.ErrNotFound)

	clock.Add(time.Minute)
	result := json.RawMessage(`{"remember":true,"acr":"urn:mfa","amr":["pwd","otp"]}`)
	dec, err := s.DecideChallenge(ctx, store.ChallengeLogin, c.ID, store.ChallengeAccepted, result, "alice")
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	if dec.ID != c.ID || dec.State != store.ChallengeAccepted || dec.Subject != "alice" || !jsonEqual(t, dec.Result, result) ||
		dec.DecidedAt == nil || !jsonEqual(t, dec.Request, c.Request) {
		t.Fatalf("accept returned %+v", dec)
	}
	wantInstant(t, *dec.DecidedAt, flowEpoch.Add(time.Minute), "decided_at")
	_, err = s.DecideChallenge(ctx, store.ChallengeLogin, c.ID, store.ChallengeRejected, nil, "mallory")
	expectErr(t, "decide twice", err, store.ErrConflict)
	got, err = s.GetChallenge(ctx, store.ChallengeLogin, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.ChallengeAccepted || got.Subject != "alice" || !jsonEqual(t, got.Result, result) {
		t.Fatalf("after a refused second decision: %+v", got)
	}

	_, err = s.ConsumeChallenge(ctx, store.ChallengeConsent, c.ID)
	expectErr(t, "consume as another kind", err, store.ErrNotFound)
	used, err := s.ConsumeChallenge(ctx, store.ChallengeLogin, c.ID)
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	if used.ID != c.ID || used.State != store.ChallengeAccepted || used.Subject != "alice" || !jsonEqual(t, used.Result, result) {
		t.Fatalf("consume returned %+v, want the accepted challenge", used)
	}
	_, err = s.ConsumeChallenge(ctx, store.ChallengeLogin, c.ID)
	expectErr(t, "consume twice", err, store.ErrConflict)
	_, err = s.DecideChallenge(ctx, store.ChallengeLogin, c.ID, store.ChallengeAccepted, nil, "alice")
	expectErr(t, "decide a used challenge", err, store.ErrConflict)
	if got, err = s.GetChallenge(ctx, store.ChallengeLogin, c.ID); err != nil || got.State != store.ChallengeUsed {
		t.Fatalf("get a used challenge: %+v, %v; want state used", got, err)
	}
}

func testChallengeReject(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	c := exampleChallenge(store.ChallengeConsent, time.Now().Add(time.Hour))
	c.Subject = "bob"
	createChallenge(t, s, c)
	result := json.RawMessage(`{"error":"access_denied"}`)
	dec, err := s.DecideChallenge(ctx, store.ChallengeConsent, c.ID, store.ChallengeRejected, result, "")
	if err != nil {
		t.Fatalf("reject: %v", err)
	}
	if dec.State != store.ChallengeRejected || dec.Subject != "bob" {
		t.Fatalf("reject returned %+v; want rejected and the subject kept", dec)
	}
	used, err := s.ConsumeChallenge(ctx, store.ChallengeConsent, c.ID)
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	if used.State != store.ChallengeRejected || !jsonEqual(t, used.Result, result) {
		t.Fatalf("consume returned %+v, want the rejection", used)
	}

	// Every kind is kept apart.
	for _, kind := range []store.ChallengeKind{store.ChallengeLogin, store.ChallengeConsent, store.ChallengeLogout, store.ChallengeDevice} {
		c := exampleChallenge(kind, time.Now().Add(time.Hour))
		createChallenge(t, s, c)
		if got, err := s.GetChallenge(ctx, kind, c.ID); err != nil || got.Kind != kind {
			t.Fatalf("get %s challenge: %+v, %v", kind, got, err)
		}
	}
}

func testChallengeExpiry(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(flowEpoch)
	s := open(t, store.Options{Now: clock.Now})
	pending := exampleChallenge(store.ChallengeLogin, flowEpoch.Add(10*time.Minute))
	decided := exampleChallenge(store.ChallengeLogin, flowEpoch.Add(10*time.Minute))
	later := exampleChallenge(store.ChallengeLogin, flowEpoch.Add(time.Hour))
	for _, c := range []*store.Challenge{pending, decided, later} {
		createChallenge(t, s, c)
	}
	if _, err := s.DecideChallenge(ctx, store.ChallengeLogin, decided.ID, store.ChallengeAccepted, nil, "alice"); err != nil {
		t.Fatal(err)
	}
	clock.Add(10*time.Minute - time.Microsecond)
	if _, err := s.GetChallenge(ctx, store.ChallengeLogin, pending.ID); err != nil {
		t.Fatalf("get just before expiry: %v", err)
	}
	clock.Add(time.Microsecond)
	_, err := s.GetChallenge(ctx, store.ChallengeLogin, pending.ID)
	expectErr(t, "get expired", err, store.ErrNotFound)
	_, err = s.DecideChallenge(ctx, store.ChallengeLogin, pending.ID, store.ChallengeAccepted, nil, "alice")
	expectErr(t, "decide expired", err, store.ErrNotFound)
	_, err = s.ConsumeChallenge(ctx, store.ChallengeLogin, decided.ID)
	expectErr(t, "consume expired", err, store.ErrNotFound)
	if _, err := s.GetChallenge(ctx, store.ChallengeLogin, later.ID); err != nil {
		t.Fatalf("a challenge that expires later: %v", err)
	}
	clock.Add(time.Second)
	removed, err := s.Janitor(ctx, store.JanitorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if removed["challenges"] != 2 {
		t.Fatalf("janitor removed %d challenges, want the 2 expired", removed["challenges"])
	}
}

func testChallengeTimeZones(t *testing.T, open Opener) {
	ctx := context.Background()
	west := time.FixedZone("UTC-07:00", -7*3600)
	clock := NewClock(flowEpoch.In(west))
	s := open(t, store.Options{Now: clock.Now})
	exp := flowEpoch.Add(5 * time.Minute).In(time.FixedZone("UTC+09:00", 9*3600))
	c := exampleChallenge(store.ChallengeDevice, exp)
	createChallenge(t, s, c)
	wantInstant(t, c.ExpiresAt, exp, "expires_at as created")
	got, err := s.GetChallenge(ctx, store.ChallengeDevice, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantInstant(t, got.CreatedAt, flowEpoch, "created_at")
	wantInstant(t, got.ExpiresAt, exp, "expires_at")
	// Expiry compares instants: seven or nine hours of zone offset make no
	// difference.
	clock.Add(5*time.Minute - time.Microsecond)
	if _, err := s.GetChallenge(ctx, store.ChallengeDevice, c.ID); err != nil {
		t.Fatalf("get just before expiry: %v", err)
	}
	clock.Add(time.Microsecond)
	_, err = s.GetChallenge(ctx, store.ChallengeDevice, c.ID)
	expectErr(t, "get at expiry", err, store.ErrNotFound)
}

// raceRounds is how many challenges each race test fights over; later rounds
// run on warm connections and prepared statements, where overlap is likeliest.
const raceRounds = 4

func testChallengeConcurrentDecide(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	for range raceRounds {
		c := exampleChallenge(store.ChallengeLogin, time.Now().Add(time.Hour))
		createChallenge(t, s, c)
		errs := inParallel(16, func(i int) error {
			state := store.ChallengeAccepted
			if i%2 == 1 {
				state = store.ChallengeRejected
			}
			_, err := s.DecideChallenge(ctx, store.ChallengeLogin, c.ID, state,
				json.RawMessage(fmt.Sprintf(`{"decider":%d}`, i)), fmt.Sprintf("user-%d", i))
			return err
		})
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("decisions %d and %d both succeeded", winner, i)
				}
				winner = i
			default:
				expectErr(t, fmt.Sprintf("decision %d", i), err, store.ErrConflict)
			}
		}
		if winner < 0 {
			t.Fatal("no decision succeeded")
		}
		got, err := s.GetChallenge(ctx, store.ChallengeLogin, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Subject != fmt.Sprintf("user-%d", winner) || !jsonEqual(t, got.Result, []byte(fmt.Sprintf(`{"decider":%d}`, winner))) {
			t.Fatalf("stored decision %+v is not the winner's (%d)", got, winner)
		}
	}
}

func testChallengeConcurrentConsume(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	for range raceRounds {
		c := exampleChallenge(store.ChallengeConsent, time.Now().Add(time.Hour))
		createChallenge(t, s, c)
		if _, err := s.DecideChallenge(ctx, store.ChallengeConsent, c.ID, store.ChallengeAccepted, json.RawMessage(`{"scope":"openid"}`), "alice"); err != nil {
			t.Fatal(err)
		}
		const n = 16
		got := make([]*store.Challenge, n)
		errs := inParallel(n, func(i int) error {
			var err error
			got[i], err = s.ConsumeChallenge(ctx, store.ChallengeConsent, c.ID)
			return err
		})
		won := 0
		for i, err := range errs {
			if err == nil {
				won++
				if got[i].State != store.ChallengeAccepted || got[i].Subject != "alice" {
					t.Fatalf("consumer %d got %+v", i, got[i])
				}
				continue
			}
			expectErr(t, fmt.Sprintf("consumer %d", i), err, store.ErrConflict)
		}
		if won != 1 {
			t.Fatalf("%d consumers got the decision, want exactly 1", won)
		}
	}
}

func testChallengeStoredHashed(t *testing.T, fresh FreshDB) {
	url := fresh(t)
	s := OpenURL(t, url, store.Options{})
	c := exampleChallenge(store.ChallengeLogin, time.Now().Add(time.Hour))
	createChallenge(t, s, c)
	db := openRawDB(t, url)
	var ids []string
	if err := db.Select(&ids, `SELECT id FROM challenges`); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(c.ID))
	if len(ids) != 1 || ids[0] != hex.EncodeToString(sum[:]) {
		t.Fatalf("challenge IDs stored as %q, want only the SHA-256 of the challenge", ids)
	}
}
