package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/latchkey-oidc/latchkey/store"
)

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	set := newSettings("migrate", stderr, dbSettings...)
	status := set.fs.Bool("status", false, "list applied and pending migrations instead of applying them")
	if err := noArgs(set, args); err != nil {
		return err
	}
	s, err := set.openStore(ctx, store.Options{}, false)
	if err != nil {
		return err
	}
	defer s.Close()
	if *status {
		applied, pending, err := s.MigrationStatus(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "applied: %s\npending: %s\n", list(applied), list(pending))
		return nil
	}
	n, err := s.Migrate(ctx)
	if err != nil {
		return err
	}
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "applied %d migration(s); %s schema is at version %d\n", n, s.Dialect(), v)
	return nil
}

func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
