package storetest

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/latchkey-oidc/latchkey/store"
)

var _ = register(
	test{"PairwiseSecretNoSystemSecret", testPairwiseSecretNoSystemSecret},
)

var _ = registerShared(
	sharedTest{"PairwiseSecretConcurrentFirstUse", testPairwiseSecretConcurrentFirstUse},
	sharedTest{"PairwiseSecretRotatedSystemSecret", testPairwiseSecretRotatedSystemSecret},
)

func pairwiseSecret(t *testing.T, s *store.Store) []byte {
	t.Helper()
	key, err := s.PairwiseSecret(context.Background())
	if err != nil {
		t.Fatalf("pairwise secret: %v", err)
	}
	return key
}

func testPairwiseSecretNoSystemSecret(t *testing.T, open Opener) {
	s := open(t, store.Options{SystemSecret: []byte{}})
	_, err := s.PairwiseSecret(context.Background())
	expectErr(t, "pairwise secret without a system secret", err, store.ErrNoSystemSecret)
}

// testPairwiseSecretConcurrentFirstUse has two replicas ask for the secret
// of an empty database at once, several times each: they all get the same
// 32 bytes, stored once and sealed.
func testPairwiseSecretConcurrentFirstUse(t *testing.T, fresh FreshDB) {
	url := fresh(t)
	replicas := []*store.Store{OpenURL(t, url, store.Options{}), OpenURL(t, url, store.Options{})}
	const n = 8
	keys := make([][]byte, n)
	errs := inParallel(n, func(i int) error {
		var err error
		keys[i], err = replicas[i%2].PairwiseSecret(context.Background())
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if len(keys[0]) != 32 || bytes.Equal(keys[0], make([]byte, 32)) {
		t.Fatalf("pairwise secret = %x, want 32 random bytes", keys[0])
	}
	for i, k := range keys {
		if !bytes.Equal(k, keys[0]) {
			t.Fatalf("call %d got %x, call 0 got %x: the replicas disagree", i, k, keys[0])
		}
	}
	// A later call, and a replica started later, read the same secret.
	if k := pairwiseSecret(t, replicas[1]); !bytes.Equal(k, keys[0]) {
		t.Fatalf("a later call got %x, want %x", k, keys[0])
	}
	if k := pairwiseSecret(t, OpenURL(t, url, store.Options{})); !bytes.Equal(k, keys[0]) {
		t.Fatalf("a later replica got %x, want %x", k, keys[0])
	}

	db := openRawDB(t, url)
	var rows [][]byte
	if err := db.Select(&rows, `SELECT sealed FROM provider_secrets`); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("%d rows in provider_secrets, want 1", len(rows))
	}
	if bytes.Contains(rows[0], keys[0]) {
		t.Fatal("the pairwise secret is stored in clear")
	}
}

// testPairwiseSecretRotatedSystemSecret rotates the system secret: with
// the old one kept as an old secret the pairwise secret is unchanged; with
// the new one alone it cannot be read, and is not replaced either.
func testPairwiseSecretRotatedSystemSecret(t *testing.T, fresh FreshDB) {
	ctx := context.Background()
	url := fresh(t)
	secretA := TestSecret
	secretB := []byte("the-next-system-secret-also-32-bytes-long")
	want := pairwiseSecret(t, OpenURL(t, url, store.Options{SystemSecret: secretA}))

	rotated := OpenURL(t, url, store.Options{SystemSecret: secretB, OldSystemSecrets: [][]byte{secretA}})
	if got := pairwiseSecret(t, rotated); !bytes.Equal(got, want) {
		t.Fatalf("after rotating the system secret the pairwise secret is %x, want %x", got, want)
	}

	onlyNew := OpenURL(t, url, store.Options{SystemSecret: secretB})
	if got, err := onlyNew.PairwiseSecret(ctx); err == nil || !strings.Contains(err.Error(), "wrong system secret") {
		t.Fatalf("without the old system secret: got %x, error %v; want a wrong-secret error", got, err)
	}
	if got := pairwiseSecret(t, rotated); !bytes.Equal(got, want) {
		t.Fatalf("a failed read replaced the pairwise secret: %x, want %x", got, want)
	}
}
