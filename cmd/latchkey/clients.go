package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"

	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
)

const clientsUsage = `Usage:
  latchkey clients create --file client.json   register a client (RFC 7591 JSON); prints it, with its secret this once
  latchkey clients list                        print every client as a JSON array
  latchkey clients get CLIENT_ID               print a client as JSON
  latchkey clients delete CLIENT_ID            delete a client; its tokens stop working

The commands work on the server's database directly, also while it runs.
Run "latchkey clients <command> -h" for the flags.
`

// runClients manages clients on the store, with the same validation and
// secret hashing as the admin API.
func runClients(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	wantArgs := map[string]int{"create": 0, "list": 0, "get": 1, "delete": 1}
	sub, args, err := subcommand(stderr, "clients", clientsUsage, args, wantArgs)
	if err != nil {
		return err
	}
	n := wantArgs[sub]
	names := slices.Concat(dbSettings, secretSettings)
	if sub == "create" {
		// The sector_identifier_uri fetch follows the server's policy.
		names = append(names, "outbound-allow")
	}
	s := newSettings("clients "+sub, stderr, withLog(names...)...)
	var file *string
	if sub == "create" {
		file = s.fs.String("file", "", "the client metadata: an RFC 7591 JSON document (required)")
	}
	pos, err := s.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != n {
		fmt.Fprintf(stderr, "latchkey clients %s takes %d argument(s), got %d\n\n%s", sub, n, len(pos), clientsUsage)
		return errUsage
	}
	log, err := s.newLogger(stderr)
	if err != nil {
		return err
	}
	out := json.NewEncoder(stdout)
	out.SetIndent("", "  ")

	switch sub {
	case "create":
		if *file == "" {
			fmt.Fprintf(stderr, "latchkey clients create: --file is required\n")
			return errUsage
		}
		return createClient(ctx, s, log, *file, out)
	}
	st, err := s.openStore(ctx, store.Options{}, true)
	if err != nil {
		return err
	}
	defer st.Close()
	switch sub {
	case "list":
		all := []*store.Client{}
		for after := ""; ; {
			page, err := st.ListClients(ctx, after, 1000)
			if err != nil {
				return err
			}
			all = append(all, page...)
			if len(page) < 1000 {
				break
			}
			after = page[len(page)-1].ID
		}
		return out.Encode(all)
	case "get":
		c, err := st.LoadClient(ctx, pos[0])
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("there is no client %q", pos[0])
		}
		if err != nil {
			return err
		}
		return out.Encode(c)
	default: // delete
		err := st.DeleteClient(ctx, pos[0])
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("there is no client %q", pos[0])
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted client %s\n", pos[0])
		return nil
	}
}

// createClient registers the client in file and prints it with its secret.
func createClient(ctx context.Context, s *settings, log *slog.Logger, file string, out *json.Encoder) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	req, err := provider.ParseClientRequest(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	secret, old, err := s.systemSecrets(log)
	if err != nil {
		return err
	}
	dev, err := s.bool("dev")
	if err != nil {
		return err
	}
	allow, err := s.outboundAllow()
	if err != nil {
		return err
	}
	st, err := s.openStore(ctx, store.Options{}, true)
	if err != nil {
		return err
	}
	defer st.Close()
	reg, err := provider.NewClientRegistrar(st, provider.Config{SystemSecret: secret, OldSystemSecrets: old, Dev: dev, OutboundAllow: allow})
	if err != nil {
		return err
	}
	c, err := reg.Create(ctx, req)
	if errors.Is(err, store.ErrAlreadyExists) {
		return fmt.Errorf("the client_id %q is taken", req.ID)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return out.Encode(c)
}
