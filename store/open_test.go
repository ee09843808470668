package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/store"
)

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name, url, want string
	}{
		{"empty", "", "empty"},
		{"unknown scheme", "mysql://root:hunter2@localhost/db", "not supported"},
		{"memory sqlite", "sqlite://:memory:", "in-memory"},
		{"postgres without host", "postgres:///db", "no host"},
		{"unreachable postgres", "postgres://latchkey:s3cr3t-pw@127.0.0.1:1/latchkey?sslmode=disable&connect_timeout=2", "connect to postgres database"},
		{"sqlite in missing directory", "sqlite:///nonexistent-dir-for-latchkey/x.db", "SQLite file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := store.Open(ctx, tc.url, store.Options{})
			if err == nil {
				_ = s.Close()
				t.Fatalf("Open(%q) succeeded", tc.url)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q does not mention %q", msg, tc.want)
			}
			for _, secret := range []string{"hunter2", "s3cr3t-pw"} {
				if strings.Contains(msg, secret) {
					t.Fatalf("error %q echoes the password", msg)
				}
			}
		})
	}
}

func TestOpenSQLiteForms(t *testing.T) {
	dir := t.TempDir()
	for _, u := range []string{dir + "/a.db", "sqlite://" + dir + "/b.db", "sqlite:" + dir + "/c.db"} {
		s, err := store.Open(context.Background(), u, store.Options{})
		if err != nil {
			t.Fatalf("Open(%q): %v", u, err)
		}
		if s.Dialect() != "sqlite" {
			t.Fatalf("Open(%q) dialect %s", u, s.Dialect())
		}
		if _, err := s.Migrate(context.Background()); err != nil {
			t.Fatalf("migrate %q: %v", u, err)
		}
		_ = s.Close()
	}
}

func TestSystemSecretTooShort(t *testing.T) {
	_, err := store.Open(context.Background(), t.TempDir()+"/x.db", store.Options{SystemSecret: []byte("short")})
	if err == nil || !strings.Contains(err.Error(), "32 bytes") {
		t.Fatalf("short system secret: got %v", err)
	}
}
