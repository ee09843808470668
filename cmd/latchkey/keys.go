package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/latchkey-oidc/latchkey/provider"
)

const keysUsage = `Usage:
  latchkey keys list                 list the published signing keys (no key material)
  latchkey keys rotate [--alg ALG]   rotate the signing keys of ALG, or of every algorithm

A rotation makes the next key (already published) current, retires the current
key (still published until what it signed expires) and creates a new next key.
A running server picks the change up within a minute.
Run "latchkey keys <command> -h" for the flags.
`

// runKeys lists and rotates signing keys on the store, through the same
// keyring the server uses.
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args, err := subcommand(stderr, "keys", keysUsage, args, map[string]int{"list": 0, "rotate": 0})
	if err != nil {
		return err
	}
	s := newSettings("keys "+sub, stderr, withLog(slices.Concat(dbSettings, secretSettings)...)...)
	asJSON := s.fs.Bool("json", false, "print the keys as JSON")
	var alg *string
	if sub == "rotate" {
		alg = s.fs.String("alg", "", "the algorithm to rotate, e.g. RS256 (default: every algorithm)")
	}
	if err := noArgs(s, args); err != nil {
		return err
	}
	log, err := s.newLogger(stderr)
	if err != nil {
		return err
	}
	st, secret, old, err := s.openSealedStore(ctx, log)
	if err != nil {
		return err
	}
	defer st.Close()
	ring := provider.NewKeyRing(st, provider.Config{SystemSecret: secret, OldSystemSecrets: old, Log: log})
	if err := ring.Load(ctx); err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	if sub == "rotate" {
		algs := ring.Algs()
		if *alg != "" {
			if !slices.Contains(algs, *alg) {
				return fmt.Errorf("--alg %q: the keys are for %s", *alg, strings.Join(algs, ", "))
			}
			algs = []string{*alg}
		}
		for _, a := range algs {
			if err := ring.Rotate(ctx, a); err != nil {
				return fmt.Errorf("rotate %s keys: %w", a, err)
			}
		}
	}
	views := provider.SigningKeyViews(ring.Keys())
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(views)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tSTATE\tCREATED\tACTIVATED\tRETIRED\tEXPIRES")
	for _, k := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.KID, k.Alg, k.State,
			k.CreatedAt.Format(time.RFC3339), when(k.ActivatedAt), when(k.RetiredAt), when(k.ExpiresAt))
	}
	return tw.Flush()
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}
