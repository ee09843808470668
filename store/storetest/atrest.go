package storetest

import (
	"bytes"
	"context"
	"encoding/base32"
	"testing"

	"github.com/latchkey-oidc/latchkey/store"
)

var _ = registerShared(
	sharedTest{"TOTPSeedSealedAtRest", testTOTPSeedSealedAtRest},
)

// testTOTPSeedSealedAtRest: a TOTP seed is stored sealed with the system
// secret, not as itself nor as the base32 an authenticator app is shown,
// and a store with another system secret cannot open it.
func testTOTPSeedSealedAtRest(t *testing.T, fresh FreshDB) {
	ctx := context.Background()
	url := fresh(t)
	s := OpenURL(t, url, store.Options{})
	u := createUser(t, s, "alice")
	seed := []byte("a twenty-byte seed!!")
	if err := s.SaveTOTPEnrolment(ctx, u.ID, seed); err != nil {
		t.Fatal(err)
	}
	db := openRawDB(t, url)
	var stored []byte
	if err := db.Get(&stored, db.Rebind(`SELECT secret FROM totp_enrolments WHERE user_id = ?`), u.ID); err != nil {
		t.Fatal(err)
	}
	if len(stored) == 0 || bytes.Contains(stored, seed) || bytes.Contains(stored, []byte(base32.StdEncoding.EncodeToString(seed))) {
		t.Fatalf("TOTP seed stored in clear: %q", stored)
	}
	other := OpenURL(t, url, store.Options{SystemSecret: []byte("another-system-secret-0123456789-abcdef")})
	if e, err := other.GetTOTPEnrolment(ctx, u.ID); err == nil {
		t.Fatalf("a store with another system secret opened the seed: %q", e.Secret)
	}
}
