package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/latchkey-oidc/latchkey/store"
)

// dbFlags are the flags every command that opens the store takes.
type dbFlags struct {
	databaseURL string
	dataDir     string
}

// newFlagSet returns a flag set for a command whose flags default to their
// LATCHKEY_* environment variables.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("latchkey "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func (d *dbFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.databaseURL, "database-url", env("LATCHKEY_DATABASE_URL", ""),
		"database URL: postgres://… or a SQLite file path (env LATCHKEY_DATABASE_URL); default: the SQLite file in --data-dir")
	fs.StringVar(&d.dataDir, "data-dir", env("LATCHKEY_DATA_DIR", "data"),
		"directory for the embedded SQLite database and dev files (env LATCHKEY_DATA_DIR)")
}

// url returns the database URL, creating the data directory when the
// embedded SQLite default is used.
func (d *dbFlags) url() (string, error) {
	if d.databaseURL != "" {
		return d.databaseURL, nil
	}
	if err := os.MkdirAll(d.dataDir, 0o700); err != nil {
		return "", fmt.Errorf("create data dir: %w", err)
	}
	return filepath.Join(d.dataDir, "latchkey.db"), nil
}

// open opens the store the flags name.
func (d *dbFlags) open(ctx context.Context) (*store.Store, error) {
	url, err := d.url()
	if err != nil {
		return nil, err
	}
	return store.Open(ctx, url, store.Options{})
}

// env returns the environment variable's value, or def when it is unset.
func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && strings.TrimSpace(v) != "" {
		return v
	}
	return def
}
