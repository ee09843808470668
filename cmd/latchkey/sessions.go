package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
)

const sessionsUsage = `Usage:
  latchkey sessions list SUBJECT          print the subject's SSO sessions that have not expired, as JSON
  latchkey sessions revoke SUBJECT [SID] [--revoke-tokens]
                                          end one SSO session of the subject, or all of them

SUBJECT is the sub claim of the subject's ID tokens (with Latchkey's login app,
the user's ID, which "latchkey users get" prints). A revoked session's browser
must sign in again, and its clients with a backchannel_logout_uri get a logout
token, sent by the running server within its poll interval. --revoke-tokens
also revokes the codes, access tokens and refresh tokens issued in the ended
sessions. The commands work on the server's database directly, also while it runs.
Run "latchkey sessions <command> -h" for the flags.
`

// runSessions lists and ends a subject's SSO sessions on the store, as the
// admin API's /admin/subjects/{subject}/sessions does.
func runSessions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args, err := subcommand(stderr, "sessions", sessionsUsage, args, map[string]int{"list": 0, "revoke": 0})
	if err != nil {
		return err
	}
	s := newSettings("sessions "+sub, stderr, dbSettings...)
	var revokeTokens *bool
	if sub == "revoke" {
		revokeTokens = s.fs.Bool("revoke-tokens", false, "also revoke the tokens issued in the ended sessions")
	}
	pos, err := s.parse(args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 || (sub == "list" && len(pos) != 1) {
		fmt.Fprintf(stderr, "latchkey sessions %s: wrong number of arguments (%d)\n\n%s", sub, len(pos), sessionsUsage)
		return errUsage
	}
	subject := pos[0]
	st, err := s.openStore(ctx, store.Options{}, true)
	if err != nil {
		return err
	}
	defer st.Close()
	sessions := provider.NewSSOSessions(st)
	out := json.NewEncoder(stdout)
	out.SetIndent("", "  ")
	if sub == "list" {
		list, err := sessions.List(ctx, subject)
		if err != nil {
			return err
		}
		return out.Encode(list)
	}
	sid := ""
	if len(pos) == 2 {
		sid = pos[1]
	}
	res, err := sessions.Revoke(ctx, subject, sid, *revokeTokens)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%q has no session %q", subject, sid)
	}
	if err != nil {
		return err
	}
	return out.Encode(res)
}
