package provider_test

import (
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"

	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
)

// silentAuthorize makes a prompt=none authorization request for c in b and
// returns what reached the relying party: a code while b's SSO session
// lives, login_required once it ended.
func (e *env) silentAuthorize(b *browser, c *store.Client) url.Values {
	e.t.Helper()
	conf := e.oauth2Config(c.ID, testSecret, oauth2.AuthStyleInHeader, oidc.ScopeOpenID)
	res := b.get(conf.AuthCodeURL("state-1234567890", oidc.Nonce("nonce-1234567890"), oauth2.SetAuthURLParam("prompt", "none")))
	if res.Mode != "query" {
		e.t.Fatalf("prompt=none did not return to the client: %d %.300s", res.Status, res.Body)
	}
	return res.Params
}

// sidOf is the sid claim of an ID token the provider issued.
func (e *env) sidOf(tok *oauth2.Token) string {
	e.t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	claims, _ := e.idTokenClaims(raw)
	sid, _ := claims["sid"].(string)
	if sid == "" {
		e.t.Fatalf("the ID token has no sid: %v", claims)
	}
	return sid
}

// TestAdminSubjectSessions lists a subject's SSO sessions in two browsers
// and ends one of them through the admin API: only that browser has to
// sign in again, only that session's back-channel client is told, and with
// revoke_tokens only the tokens issued in that session stop working.
func TestAdminSubjectSessions(t *testing.T) {
	e := newEnv(t, fastLogouts(prometheus.NewRegistry()), loopbackRPs)
	e.login.consent = func(v provider.ChallengeView) any {
		return provider.ConsentAccept{GrantScope: v.RequestedScope, Remember: true,
			Session: provider.ConsentSession{Claims: alice.claims}}
	}
	rc := newLogoutReceiver(t)
	bc := e.logoutClient("bc-app", rc)
	plain := e.logoutClient("plain-app", nil)
	e.run()

	first, second := newBrowser(t), newBrowser(t)
	firstBC := e.signInTokens(first, bc)
	firstPlain := e.signInTokens(first, plain)
	secondBC := e.signInTokens(second, bc)
	sid1, sid2 := e.sidOf(firstBC), e.sidOf(secondBC)
	if sid1 == sid2 || e.sidOf(firstPlain) != sid1 {
		t.Fatalf("sids %q and %q in two browsers, %q for the second client of the first", sid1, sid2, e.sidOf(firstPlain))
	}
	path := "/admin/subjects/" + url.PathEscape(alice.subject) + "/sessions"

	var list provider.SessionList
	adminDecode(t, adminCall(t, e, http.MethodGet, path, nil), http.StatusOK, &list)
	if list.Subject != alice.subject || len(list.Sessions) != 2 {
		t.Fatalf("listed %+v, want alice's two sessions", list)
	}
	bySID := map[string]provider.SessionView{}
	for _, s := range list.Sessions {
		bySID[s.SID] = s
	}
	for sid, clients := range map[string][]string{sid1: {"bc-app", "plain-app"}, sid2: {"bc-app"}} {
		s, ok := bySID[sid]
		switch {
		case !ok:
			t.Errorf("session %s is not listed: %+v", sid, list.Sessions)
		case !slices.Equal(s.ClientIDs, clients):
			t.Errorf("session %s has clients %q, want %q", sid, s.ClientIDs, clients)
		case s.ACR != "1" || !slices.Equal(s.AMR, []string{"pwd"}) || !s.Remember:
			t.Errorf("session %s: acr %q amr %q remember %v, want what the login app said", sid, s.ACR, s.AMR, s.Remember)
		case s.AuthenticatedAt.IsZero() || !s.ExpiresAt.After(s.AuthenticatedAt) || s.CreatedAt.IsZero():
			t.Errorf("session %s times: %+v", sid, s)
		}
	}
	adminDecode(t, adminCall(t, e, http.MethodGet, "/admin/subjects/nobody/sessions", nil), http.StatusOK, &list)
	if list.Subject != "nobody" || list.Sessions == nil || len(list.Sessions) != 0 {
		t.Errorf("sessions of nobody: %+v, want an empty list", list)
	}

	// Sessions that are not the subject's are not found.
	for _, p := range []string{path + "/no-such-sid", "/admin/subjects/bob/sessions/" + sid1} {
		if a := adminCall(t, e, http.MethodDelete, p, nil); a.Status != http.StatusNotFound {
			t.Errorf("DELETE %s: %d %s, want 404", p, a.Status, a.Body)
		}
	}
	if a := adminCall(t, e, http.MethodDelete, path+"/"+sid1+"?revoke_tokens=maybe", nil); a.Status != http.StatusBadRequest {
		t.Errorf("revoke_tokens=maybe: %d %s, want 400", a.Status, a.Body)
	}
	if got := e.silentAuthorize(first, bc); got.Get("code") == "" {
		t.Fatalf("prompt=none in the first browser before any revocation: %v", got)
	}

	var revoked provider.SessionsRevoked
	adminDecode(t, adminCall(t, e, http.MethodDelete, path+"/"+sid1+"?revoke_tokens=true", nil), http.StatusOK, &revoked)
	// The access tokens of the two clients, and the code of the prompt=none
	// request, which was never exchanged.
	if revoked.Subject != alice.subject || !slices.Equal(revoked.SIDs, []string{sid1}) || revoked.RevokedTokens == nil || *revoked.RevokedTokens != 3 {
		t.Errorf("revoked %+v, want session %s and 3 tokens", revoked, sid1)
	}
	if got := e.silentAuthorize(first, bc); got.Get("error") != "login_required" {
		t.Errorf("prompt=none in the browser whose session ended: %v, want login_required", got)
	}
	if got := e.silentAuthorize(second, bc); got.Get("code") == "" {
		t.Errorf("prompt=none in the other browser: %v, want a code", got)
	}
	for name, tok := range map[string]*oauth2.Token{"bc-app": firstBC, "plain-app": firstPlain} {
		if adminIntrospectActive(t, e, name, testSecret, tok.AccessToken) {
			t.Errorf("the %s access token of the revoked session is still active", name)
		}
	}
	if !adminIntrospectActive(t, e, bc.ID, testSecret, secondBC.AccessToken) {
		t.Error("the access token of the other session was revoked")
	}
	waitFor(t, "the revoked session's back-channel logout is delivered", func() bool {
		return len(rc.requests()) > 0 && len(queued(t, e.store)) == 0
	})
	if got := rc.requests(); len(got) != 1 {
		t.Errorf("%d logout requests, want 1", len(got))
	} else {
		checkLogoutRequest(t, e, publishedKeys(t, e), got[0], bc.ID, sid1)
	}
	if a := adminCall(t, e, http.MethodDelete, path+"/"+sid1, nil); a.Status != http.StatusNotFound {
		t.Errorf("revoking the ended session again: %d %s, want 404", a.Status, a.Body)
	}
	adminDecode(t, adminCall(t, e, http.MethodGet, path, nil), http.StatusOK, &list)
	if len(list.Sessions) != 1 || list.Sessions[0].SID != sid2 {
		t.Errorf("after the revocation: %+v, want only %s", list.Sessions, sid2)
	}

	// Every session, with its tokens: the second browser's, and the code
	// its prompt=none request left unused.
	adminDecode(t, adminCall(t, e, http.MethodDelete, path+"?revoke_tokens=true", nil), http.StatusOK, &revoked)
	if !slices.Equal(revoked.SIDs, []string{sid2}) || revoked.RevokedTokens == nil || *revoked.RevokedTokens != 2 {
		t.Errorf("revoked %+v, want session %s and 2 tokens", revoked, sid2)
	}
	if adminIntrospectActive(t, e, bc.ID, testSecret, secondBC.AccessToken) {
		t.Error("the second session's access token is still active")
	}
	if got := e.silentAuthorize(second, bc); got.Get("error") != "login_required" {
		t.Errorf("prompt=none after every session ended: %v, want login_required", got)
	}
}
