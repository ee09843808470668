package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
)

// TestSessionsCommands lists a subject's SSO sessions and revokes one with
// its tokens, then the rest, on a database the commands share with a test
// store: the revoked session's back-channel client gets a queued logout.
func TestSessionsCommands(t *testing.T) {
	cleanEnv(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	cli(t, "migrate", "--data-dir", dir)
	st, err := store.Open(ctx, filepath.Join(dir, "latchkey.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	app := &store.Client{ID: "bc-app", RedirectURIs: []string{"https://rp.example.test/cb"},
		BackchannelLogoutURI: "https://rp.example.test/backchannel", TokenEndpointAuthMethod: "none"}
	if err := st.CreateClient(ctx, app); err != nil {
		t.Fatal(err)
	}
	// Two sessions of alice, one with a client and an access token issued
	// in it, and an access token in the other; bob's session.
	var sids []string
	for i, subject := range []string{"alice", "alice", "bob"} {
		ls := &store.LoginSession{ID: "cookie-" + subject + string(rune('0'+i)), SID: "sid-" + string(rune('a'+i)),
			Subject: subject, AMR: []string{"pwd"}, ExpiresAt: time.Now().Add(time.Hour)}
		if err := st.CreateLoginSession(ctx, ls); err != nil {
			t.Fatal(err)
		}
		sids = append(sids, ls.SID)
	}
	if err := st.AddSessionClient(ctx, sids[0], app.ID); err != nil {
		t.Fatal(err)
	}
	for i, sid := range sids[:2] {
		sess := openid.NewDefaultSession()
		sess.Subject, sess.Claims.Subject = "alice", "alice"
		sess.Claims.Extra = map[string]any{"sid": sid}
		sess.SetExpiresAt(fosite.AccessToken, time.Now().Add(time.Hour))
		req := fosite.NewRequest()
		req.ID, req.Client, req.Session = "request-"+sid, app, sess
		if err := st.CreateAccessTokenSession(ctx, "at-"+string(rune('1'+i)), req); err != nil {
			t.Fatal(err)
		}
	}

	var list provider.SessionList
	if err := json.Unmarshal([]byte(cli(t, "sessions", "list", "alice", "--data-dir", dir)), &list); err != nil {
		t.Fatal(err)
	}
	if list.Subject != "alice" || len(list.Sessions) != 2 || list.Sessions[0].SID != sids[0] || list.Sessions[1].SID != sids[1] ||
		!slices.Equal(list.Sessions[0].ClientIDs, []string{app.ID}) || len(list.Sessions[1].ClientIDs) != 0 {
		t.Fatalf("sessions list: %+v", list)
	}

	var revoked provider.SessionsRevoked
	if err := json.Unmarshal([]byte(cli(t, "sessions", "revoke", "alice", sids[0], "--revoke-tokens", "--data-dir", dir)), &revoked); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(revoked.SIDs, sids[:1]) || revoked.RevokedTokens == nil || *revoked.RevokedTokens != 1 {
		t.Errorf("revoke one with its tokens: %+v", revoked)
	}
	if _, err := st.GetAccessTokenSession(ctx, "at-1", nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the revoked session's access token: %v, want it gone", err)
	}
	q, err := st.ListBackchannelLogouts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 1 || q[0].ClientID != app.ID || q[0].SID != sids[0] || q[0].Subject != "alice" {
		t.Errorf("queued back-channel logouts: %+v, want one for %s in %s", q, app.ID, sids[0])
	}

	for _, args := range [][]string{{"alice", sids[0]}, {"alice", sids[2]}} {
		var out, errOut bytes.Buffer
		err := run(ctx, append([]string{"sessions", "revoke", "--data-dir", dir}, args...), &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), "no session") {
			t.Errorf("revoke %q: %v, want no such session", args, err)
		}
	}

	out := cli(t, "sessions", "revoke", "alice", "--data-dir", dir)
	revoked = provider.SessionsRevoked{}
	if err := json.Unmarshal([]byte(out), &revoked); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(revoked.SIDs, sids[1:2]) || revoked.RevokedTokens != nil {
		t.Errorf("revoke the rest without tokens: %s", out)
	}
	if _, err := st.GetAccessTokenSession(ctx, "at-2", nil); err != nil {
		t.Errorf("without --revoke-tokens the session's access token must stay: %v", err)
	}
	if _, err := st.GetLoginSessionBySID(ctx, sids[2]); err != nil {
		t.Errorf("bob's session: %v", err)
	}

	for _, args := range [][]string{{"sessions"}, {"sessions", "frob"}, {"sessions", "list"}, {"sessions", "list", "a", "b"}, {"sessions", "revoke", "a", "b", "c"}} {
		var out, errOut bytes.Buffer
		if err := run(ctx, append(args, "--data-dir", dir), &out, &errOut); !errors.Is(err, errUsage) {
			t.Errorf("latchkey %s: %v, want a usage error", strings.Join(args, " "), err)
		}
	}
}
