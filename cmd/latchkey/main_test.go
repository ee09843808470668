package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latchkey-oidc/latchkey/provider"
)

func TestMigrateAndJanitorOnSQLite(t *testing.T) {
	cleanEnv(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"migrate", "--data-dir", dir}, &out, &errOut); err != nil {
		t.Fatalf("migrate: %v (%s)", err, errOut.String())
	}
	if !strings.Contains(out.String(), "sqlite schema is at version") {
		t.Fatalf("migrate printed %q", out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"migrate", "--data-dir", dir, "--status"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "pending: none") || !strings.Contains(out.String(), "0001_init.sql") || !strings.Contains(out.String(), "0002_token_subject_index.sql") {
		t.Fatalf("migrate --status printed %q", out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"janitor", "--data-dir", dir}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "janitor removed 0 expired row(s)") {
		t.Fatalf("janitor printed %q", out.String())
	}
}

func TestDatabaseURLFromEnvironment(t *testing.T) {
	cleanEnv(t)
	t.Setenv("LATCHKEY_DATABASE_URL", "mysql://nope")
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"migrate"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("migrate with LATCHKEY_DATABASE_URL=mysql://: got %v", err)
	}
}

func TestUnknownCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"frobnicate"}, &out, &errOut); err == nil {
		t.Fatal("unknown command succeeded")
	}
	if !strings.Contains(errOut.String(), "unknown command") {
		t.Fatalf("stderr %q", errOut.String())
	}
}

func TestDefaultDataDir(t *testing.T) {
	cleanEnv(t)
	t.Chdir(t.TempDir())
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"migrate"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join("latchkey-data", "latchkey.db")); err != nil {
		t.Errorf("migrate without flags did not use ./latchkey-data: %v", err)
	}
}

// TestClientsCommands covers the clients commands without a server: the
// admin API's validation, and errors that name the problem.
func TestClientsCommands(t *testing.T) {
	cleanEnv(t)
	dir := filepath.Join(t.TempDir(), "data")
	write := func(name, body string) string {
		f := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	tests := []struct {
		name string
		args []string
		want string // in the error; "" for a usage error
	}{
		{"no subcommand", []string{"clients"}, ""},
		{"unknown subcommand", []string{"clients", "frob"}, ""},
		{"create without --file", []string{"clients", "create", "--data-dir", dir}, ""},
		{"get without ID", []string{"clients", "get", "--data-dir", dir}, ""},
		{"missing file", []string{"clients", "create", "--file", filepath.Join(dir, "nope.json"), "--data-dir", dir}, "nope.json"},
		{"invalid redirect", []string{"clients", "create", "--file", write("c.json", `{"redirect_uris":["http://app.example.test/cb"]}`), "--data-dir", dir}, "invalid_redirect_uri"},
		{"not JSON", []string{"clients", "create", "--file", write("c.json", `client_id: yaml`), "--data-dir", dir}, "invalid_client_metadata"},
		{"get missing", []string{"clients", "get", "nope", "--data-dir", dir}, `no client "nope"`},
		{"delete missing", []string{"clients", "delete", "nope", "--data-dir", dir}, `no client "nope"`},
		{"postgres without secret", []string{"clients", "create", "--file", write("c.json", `{}`), "--database-url", "postgres://127.0.0.1:1/x"}, "--system-secret"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, &out, &errOut)
			switch {
			case err == nil:
				t.Fatalf("succeeded: %s", out.String())
			case tc.want == "" && !errors.Is(err, errUsage):
				t.Fatalf("got %v, want a usage error", err)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("got %v, want it to mention %q", err, tc.want)
			}
		})
	}

	// --dev allows http redirect URIs off loopback, as the server does.
	f := write("dev.json", `{"client_id":"dev-app","redirect_uris":["http://app.example.test/cb"],"token_endpoint_auth_method":"none"}`)
	out := cli(t, "clients", "create", "--file", f, "--data-dir", dir, "--dev")
	if !strings.Contains(out, `"dev-app"`) || strings.Contains(out, `"client_secret"`) {
		t.Errorf("public dev client: %s", out)
	}
	var out2, errOut bytes.Buffer
	if err := run(context.Background(), []string{"clients", "create", "--file", f, "--data-dir", dir, "--dev"}, &out2, &errOut); err == nil || !strings.Contains(err.Error(), "taken") {
		t.Errorf("a taken client_id: %v", err)
	}
}

func TestKeysCommands(t *testing.T) {
	cleanEnv(t)
	dir := filepath.Join(t.TempDir(), "data")
	var before, after []provider.SigningKeyView
	if err := json.Unmarshal([]byte(cli(t, "keys", "list", "--json", "--data-dir", dir)), &before); err != nil || len(before) != 6 {
		t.Fatalf("keys list on a fresh database: %v %v", before, err)
	}
	if err := json.Unmarshal([]byte(cli(t, "keys", "rotate", "--json", "--data-dir", dir)), &after); err != nil {
		t.Fatal(err)
	}
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		if currentKID(t, after, alg) == currentKID(t, before, alg) {
			t.Errorf("keys rotate kept the current %s key", alg)
		}
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"keys", "rotate", "--alg", "HS256", "--data-dir", dir}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "RS256") {
		t.Errorf("rotate HS256: %v", err)
	}
	if err := run(context.Background(), []string{"keys", "list", "--data-dir", dir, "--system-secret", "another-secret-0123456789-0123456789"}, &out, &errOut); err == nil {
		t.Error("keys list with another system secret could read the keys")
	}
}
