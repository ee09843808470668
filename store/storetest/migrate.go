package storetest

import (
	"context"
	"testing"

	"github.com/latchkey-oidc/latchkey/store"
)

var _ = register(
	test{"MigrateIsIdempotent", testMigrateIsIdempotent},
)

func testMigrateIsIdempotent(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v < 1 {
		t.Fatalf("schema version after migrate = %d, want >= 1", v)
	}
	n, err := s.Migrate(ctx)
	if err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if n != 0 {
		t.Fatalf("second migrate applied %d migrations, want 0", n)
	}
}
