package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/latchkey-oidc/latchkey/store"
)

func runJanitor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	set := newSettings("janitor", stderr, dbSettings...)
	batch := set.fs.Int("batch-size", 1000, "rows deleted per statement")
	pause := set.fs.Duration("pause", 0, "pause between batches")
	every := set.fs.Duration("every", 0, "run again at this interval until stopped (0: run once)")
	if err := noArgs(set, args); err != nil {
		return err
	}
	s, err := set.openStore(ctx, store.Options{}, false)
	if err != nil {
		return err
	}
	defer s.Close()
	opts := store.JanitorOptions{BatchSize: *batch, Pause: *pause}
	for {
		removed, err := s.Janitor(ctx, opts)
		if err != nil {
			return err
		}
		report(stdout, removed)
		if *every <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*every):
		}
	}
}

func report(w io.Writer, removed map[string]int64) {
	tables := make([]string, 0, len(removed))
	var total int64
	for t, n := range removed {
		tables = append(tables, t)
		total += n
	}
	sort.Strings(tables)
	fmt.Fprintf(w, "janitor removed %d expired row(s)", total)
	for _, t := range tables {
		if removed[t] > 0 {
			fmt.Fprintf(w, "; %s: %d", t, removed[t])
		}
	}
	fmt.Fprintln(w)
}
