package provider_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/ory/fosite/token/jwt"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
)

// Pairwise subject identifiers (OpenID Connect Core §8.1), from the
// outside: what each client sees as sub, wherever it sees it.

// rpHost is the host of rpRedirect: the sector of a pairwise client that
// redirects there and registers no sector_identifier_uri.
const rpHost = "rp.example.test"

// pairwiseSub is the sub a client of sector gets for subject:
// base64url(HMAC-SHA256(the store's pairwise secret, sector NUL subject)).
func pairwiseSub(t *testing.T, e *env, sector, subject string) string {
	t.Helper()
	key, err := e.store.PairwiseSecret(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(sector + "\x00" + subject))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// subOf returns the sub of an ID token the provider signed.
func (e *env) subOf(raw string) string {
	e.t.Helper()
	claims, _ := e.idTokenClaims(raw)
	sub, _ := claims["sub"].(string)
	if sub == "" {
		e.t.Fatalf("ID token without sub: %v", claims)
	}
	return sub
}

// relyingPartyHost is an https server for sector identifier documents that
// answers as rpHost as well as at its own address. Its client trusts it,
// and reaches it for rpHost: the relying party's own host serves the
// document.
func relyingPartyHost(t *testing.T, docs map[string]any) (*httptest.Server, *http.Client) {
	srv := jsonDocuments(t, docs)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == rpHost+":443" {
			addr = srv.Listener.Addr().String()
		}
		return d.DialContext(ctx, network, addr)
	}
	// httptest's certificate names example.com (and the loopback
	// addresses); every connection of this client checks for that name.
	tr.TLSClientConfig.ServerName = "example.com"
	return srv, &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// registerThroughAdmin creates a confidential code-flow client with
// testSecret through the admin API, held to the registrar's rules.
func registerThroughAdmin(t *testing.T, e *env, metadata map[string]any) *store.Client {
	t.Helper()
	metadata["client_secret"] = testSecret
	metadata["scope"] = "openid"
	var c adminClient
	adminDecode(t, adminCall(t, e, http.MethodPost, "/admin/clients", metadata), http.StatusCreated, &c)
	return &c.Client
}

// TestPairwiseSubjectsBySector signs one user in to clients of several
// sectors: pairwise clients of one sector (whether it comes from the
// redirect URIs or a sector_identifier_uri) agree on sub, clients of
// different sectors do not, and a public client gets the login app's
// subject.
func TestPairwiseSubjectsBySector(t *testing.T) {
	srv, client := relyingPartyHost(t, map[string]any{"/sector.json": []string{rpRedirect}})
	e := newEnv(t, func(c *provider.Config) { c.HTTPClient = client })
	public := registerThroughAdmin(t, e, map[string]any{"client_id": "public-rp", "redirect_uris": []string{rpRedirect}})
	byRedirect := registerThroughAdmin(t, e, map[string]any{"client_id": "pairwise-by-redirect",
		"redirect_uris": []string{rpRedirect}, "subject_type": "pairwise"})
	byDocument := registerThroughAdmin(t, e, map[string]any{"client_id": "pairwise-by-document",
		"redirect_uris": []string{rpRedirect}, "subject_type": "pairwise",
		"sector_identifier_uri": "https://" + rpHost + "/sector.json"})
	otherSector := registerThroughAdmin(t, e, map[string]any{"client_id": "pairwise-other-sector",
		"redirect_uris": []string{rpRedirect}, "subject_type": "pairwise",
		"sector_identifier_uri": srv.URL + "/sector.json"})
	srvHost, _, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t)
	subs := map[string]string{}
	for _, c := range []*store.Client{public, byRedirect, byDocument, otherSector} {
		subs[c.ID] = e.subOf(e.signIn(b, c))
	}
	want := map[string]string{
		public.ID:      alice.subject,
		byRedirect.ID:  pairwiseSub(t, e, rpHost, alice.subject),
		byDocument.ID:  pairwiseSub(t, e, rpHost, alice.subject),
		otherSector.ID: pairwiseSub(t, e, srvHost, alice.subject),
	}
	for id, sub := range subs {
		if sub != want[id] {
			t.Errorf("%s got sub %q, want %q", id, sub, want[id])
		}
	}
	if subs[byRedirect.ID] == alice.subject || subs[byRedirect.ID] == subs[otherSector.ID] {
		t.Errorf("pairwise subs %q and %q of two sectors are not distinct from each other and from %q",
			subs[byRedirect.ID], subs[otherSector.ID], alice.subject)
	}

	// Another user of the same client gets another sub.
	bob := user{subject: "bob-subject", password: "bob's password", claims: map[string]any{"name": "Bob"}}
	e.login.user = bob
	if got, wantBob := e.subOf(e.signIn(newBrowser(t), byRedirect)), pairwiseSub(t, e, rpHost, bob.subject); got != wantBob || got == subs[byRedirect.ID] {
		t.Errorf("bob's pairwise sub = %q, want %q (and not alice's %q)", got, wantBob, subs[byRedirect.ID])
	}
}

// TestPairwiseSubjectEverywhere follows one user of one pairwise client
// through every place the client sees sub: the authorization endpoint's
// ID token (hybrid), the token endpoint's, a refreshed one, userinfo,
// introspection and the back-channel logout token. id_token_hint carries
// that sub back: prompt=none accepts it, and RP-initiated logout skips
// the confirmation with it, while the login app still gets the internal
// subject.
func TestPairwiseSubjectEverywhere(t *testing.T) {
	e := newEnv(t, fastLogouts(prometheus.NewRegistry()), loopbackRPs)
	rc := newLogoutReceiver(t)
	c := webClient(e, func(c *store.Client) {
		c.SubjectType = "pairwise"
		c.BackchannelLogoutURI = rc.uri()
		c.PostLogoutRedirectURIs = []string{loggedOut}
	})
	e.run()
	// Consent is remembered, so prompt=none can succeed later.
	e.login.consent = func(v provider.ChallengeView) any {
		return provider.ConsentAccept{GrantScope: v.RequestedScope, Remember: true, Session: provider.ConsentSession{Claims: alice.claims}}
	}
	want := pairwiseSub(t, e, rpHost, alice.subject)
	b := newBrowser(t)

	params := codeParams(c.ID)
	params.Set("response_type", "code id_token")
	res := b.authorize(e.issuer(), params)
	hint := res.Params.Get("id_token")
	if hint == "" {
		t.Fatalf("hybrid response without an ID token: %d %v %.300s", res.Status, res.Params, res.Body)
	}
	tr := e.exchange(c.ID, testSecret, mustCode(t, res))
	if tr.Status != http.StatusOK || tr.IDToken == "" || tr.RefreshToken == "" {
		t.Fatalf("exchange: %+v", tr)
	}
	refreshed := e.postToken(c.ID, testSecret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}})
	if refreshed.Status != http.StatusOK || refreshed.IDToken == "" {
		t.Fatalf("refresh: %+v", refreshed)
	}
	auth := clientAuth{id: c.ID, secret: testSecret, basic: true}
	seen := map[string]any{
		"authorization endpoint ID token": e.subOf(hint),
		"token endpoint ID token":         e.subOf(tr.IDToken),
		"refreshed ID token":              e.subOf(refreshed.IDToken),
		"userinfo":                        e.userinfo(refreshed.AccessToken)["sub"],
		"introspected access token":       assertActive(t, introspect(t, e, auth, refreshed.AccessToken))["sub"],
		"introspected refresh token":      assertActive(t, introspect(t, e, auth, refreshed.RefreshToken))["sub"],
	}
	for where, sub := range seen {
		if sub != want {
			t.Errorf("%s: sub %v, want %s", where, sub, want)
		}
	}

	// prompt=none with the client's own ID token as hint: the signed-in
	// user is the one it names.
	logins := countKind(e.login.seenKinds(), "login")
	p := codeParams(c.ID)
	p.Set("prompt", "none")
	p.Set("id_token_hint", hint)
	mustCode(t, b.authorize(e.issuer(), p))
	if n := countKind(e.login.seenKinds(), "login"); n != logins {
		t.Errorf("prompt=none with a pairwise hint showed the login app")
	}
	// A hint naming the user by the internal subject is not this
	// client's: it names nobody this client knows.
	forged := e.mintIDToken(e, jwt.MapClaims{"iss": e.issuer(), "sub": alice.subject, "aud": []string{c.ID},
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	p.Set("id_token_hint", forged)
	if res := b.authorize(e.issuer(), p); res.Params.Get("error") != "login_required" {
		t.Errorf("prompt=none with a hint carrying the internal subject: %v, want login_required", res.Params)
	}

	claims, _ := e.idTokenClaims(hint)
	sid, _ := claims["sid"].(string)
	if sid == "" {
		t.Fatalf("the ID token has no sid: %v", claims)
	}
	// Without the session cookie (a cross-site POST) the pairwise sub
	// cannot be turned back into the subject; the hint's sid finds it.
	res = newBrowser(t).postForm(e.issuer()+"/oauth2/logout", url.Values{"id_token_hint": {hint}})
	if v := e.login.lastSeen("logout"); res.Status != http.StatusOK || v.Subject != alice.subject || v.Skip {
		t.Errorf("logout without the session cookie: %d, view subject %q skip %v; want %q, not skipped", res.Status, v.Subject, v.Skip, alice.subject)
	}

	res = b.get(e.logoutURL(url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {loggedOut}, "state": {"pw-state"}}))
	if res.Mode != "query" || res.Params.Get("state") != "pw-state" {
		t.Fatalf("logout: %d %v %.300s", res.Status, res.Params, res.Body)
	}
	if v := e.login.lastSeen("logout"); !v.Skip || v.Subject != alice.subject || v.SessionID != sid {
		t.Errorf("logout view = %+v, want skip for %s in session %s", v, alice.subject, sid)
	}
	if q := queued(t, e.store); len(q) > 0 && q[0].Subject != alice.subject {
		t.Errorf("the queued logout keeps subject %q, want the internal %q", q[0].Subject, alice.subject)
	}
	waitFor(t, "the back-channel logout is delivered", func() bool {
		return len(rc.requests()) > 0 && len(queued(t, e.store)) == 0
	})
	got := rc.requests()
	if len(got) != 1 {
		t.Fatalf("%d logout requests, want 1", len(got))
	}
	checkLogoutRequestFor(t, e, publishedKeys(t, e), got[0], c.ID, sid, want)

	// Once the session is gone, a cookie-less logout cannot tell whom
	// the pairwise hint names, and the login app must ask.
	newBrowser(t).postForm(e.issuer()+"/oauth2/logout", url.Values{"id_token_hint": {hint}})
	if v := e.login.lastSeen("logout"); v.Subject != "" {
		t.Errorf("logout for an ended session: view subject %q, want none", v.Subject)
	}
}

// TestPairwiseSubjectOtherGrants checks the grants without an ID token: a
// password grant token tells its pairwise client's sub at userinfo and
// introspection, and a client_credentials token names the client itself.
func TestPairwiseSubjectOtherGrants(t *testing.T) {
	e := newEnv(t)
	c := e.createClient(&store.Client{ID: "legacy", SubjectType: "pairwise",
		GrantTypes: []string{"password", "client_credentials", "refresh_token"}, Scope: "openid profile offline_access"}, testSecret)
	want := pairwiseSub(t, e, rpHost, alice.subject)
	auth := clientAuth{id: c.ID, secret: testSecret, basic: true}

	tr := e.postToken(c.ID, testSecret, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alice.password}, "scope": {"openid"}})
	if tr.Status != http.StatusOK {
		t.Fatalf("password grant: %+v", tr)
	}
	if sub := e.userinfo(tr.AccessToken)["sub"]; sub != want {
		t.Errorf("userinfo of a password grant token: sub %v, want %s", sub, want)
	}
	if sub := assertActive(t, introspect(t, e, auth, tr.AccessToken))["sub"]; sub != want {
		t.Errorf("introspection of a password grant token: sub %v, want %s", sub, want)
	}
	// A refresh of a password grant with openid gets an ID token for the
	// client's sub (it used to fail with server_error: no ID token subject).
	pw := e.postToken(c.ID, testSecret, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alice.password}, "scope": {"openid offline_access"}})
	if pw.Status != http.StatusOK || pw.RefreshToken == "" {
		t.Fatalf("password grant with offline_access: %+v", pw)
	}
	refreshed := e.postToken(c.ID, testSecret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {pw.RefreshToken}})
	if refreshed.Status != http.StatusOK {
		t.Fatalf("refresh of a password grant: %+v", refreshed)
	}
	if sub := e.subOf(refreshed.IDToken); sub != want {
		t.Errorf("refreshed ID token of a password grant: sub %v, want %s", sub, want)
	}
	if sub := e.userinfo(refreshed.AccessToken)["sub"]; sub != want {
		t.Errorf("userinfo of a refreshed password grant token: sub %v, want %s", sub, want)
	}

	cc := e.postToken(c.ID, testSecret, url.Values{"grant_type": {"client_credentials"}})
	if cc.Status != http.StatusOK {
		t.Fatalf("client_credentials: %+v", cc)
	}
	if sub := assertActive(t, introspect(t, e, auth, cc.AccessToken))["sub"]; sub != c.ID {
		t.Errorf("introspection of a client_credentials token: sub %v, want the client %s", sub, c.ID)
	}
}

// TestPairwiseSubjectSurvivesSystemSecretRotation restarts the provider
// with a new system secret, the old one kept as an old secret: relying
// parties key their accounts on sub, and it stays the same.
func TestPairwiseSubjectSurvivesSystemSecretRotation(t *testing.T) {
	e := newEnv(t)
	c := e.createClient(&store.Client{SubjectType: "pairwise", GrantTypes: []string{"authorization_code"},
		ResponseTypes: []string{"code"}, Scope: "openid"}, testSecret)
	before := e.subOf(e.signIn(newBrowser(t), c))
	if before == alice.subject {
		t.Fatalf("the pairwise client got the internal subject %q", before)
	}
	e.restart(func(cfg *provider.Config) {
		cfg.OldSystemSecrets = [][]byte{cfg.SystemSecret}
		cfg.SystemSecret = []byte("the-rotated-system-secret-of-the-provider-0123")
	})
	if after := e.subOf(e.signIn(newBrowser(t), c)); after != before {
		t.Errorf("sub after rotating the system secret = %q, before %q", after, before)
	}
}

// TestPairwiseRevocationBySubject revokes a subject's tokens through the
// admin API, which names the internal subject: the pairwise client's
// tokens go too.
func TestPairwiseRevocationBySubject(t *testing.T) {
	e := newEnv(t)
	c := e.createClient(&store.Client{ID: "rp", SubjectType: "pairwise", GrantTypes: []string{"authorization_code", "refresh_token"},
		ResponseTypes: []string{"code"}, Scope: "openid offline_access"}, testSecret)
	tok := codeFlowTokens(t, e, c, testSecret, []string{"openid", "offline_access"})
	auth := clientAuth{id: c.ID, secret: testSecret, basic: true}
	if sub := assertActive(t, introspect(t, e, auth, tok.AccessToken))["sub"]; sub == alice.subject || sub == nil {
		t.Fatalf("introspection names %v, want the pairwise sub", sub)
	}
	var res provider.TokensRevoked
	adminDecode(t, adminCall(t, e, http.MethodDelete, "/admin/subjects/"+url.PathEscape(alice.subject)+"/tokens", nil), http.StatusOK, &res)
	if res.RevokedTokens != 2 {
		t.Errorf("revoked %d tokens, want 2 (access and refresh)", res.RevokedTokens)
	}
	assertInactive(t, introspect(t, e, auth, tok.AccessToken))
	refreshFails(t, e, c, testSecret, tok)
}
