package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestMigrateAndJanitorOnSQLite(t *testing.T) {
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
	if !strings.Contains(out.String(), "pending: none") || !strings.Contains(out.String(), "0001_init.sql") {
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
