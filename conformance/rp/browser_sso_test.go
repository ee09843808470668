package rp_test

// Issue 8's proof, single sign-on across applications, in headless
// Chromium: two relying-party web applications, each a real HTTP server
// using x/oauth2 and go-oidc, share one sign-in; RP-initiated logout from
// one ends it for both, through a front-channel iframe for one and a
// back-channel logout token for the other, which arrives even though the
// provider restarted between the logout and the delivery.

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey-oidc/latchkey/conformance/chromium"
	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
	"github.com/latchkey-oidc/latchkey/provider"
)

// ssoTimeout bounds the whole browser test.
const ssoTimeout = time.Minute

// webRP is a relying party web application: a login link that starts the
// authorization code flow (PKCE, nonce), the redirect URI that finishes it
// with x/oauth2 and go-oidc, a logout link (RP-initiated logout with the
// ID token as id_token_hint), the post-logout page, and the logout
// endpoints the provider calls. It has one user, so it keeps its state in
// memory rather than in cookies.
type webRP struct {
	name string
	srv  *httptest.Server
	goClient
	endSession string

	mu sync.Mutex
	// pending are the authorization requests on their way, by state.
	pending map[string]webAuthRequest
	// signIns receives each finished sign-in.
	signIns chan webSignIn
	// idToken is the last ID token, the id_token_hint of a logout.
	idToken string
	// logoutState is the state of the last logout request; loggedOut the
	// states that came back to the post-logout page.
	logoutState string
	loggedOut   []string
	// frontchannel are the queries the frontchannel_logout_uri got.
	frontchannel []url.Values
	// backchannel are the logout tokens POSTed to the
	// backchannel_logout_uri; refuse makes it answer 503 for now.
	backchannel []backchannelPost
	refuse      bool
}

type webAuthRequest struct{ verifier, nonce string }

// webSignIn is what the redirect URI made of a callback.
type webSignIn struct {
	raw string
	idt *oidc.IDToken
	sid string
	err error
}

type backchannelPost struct {
	token    string
	answered int
}

// newWebRP starts the application and registers it as a client with meta
// plus its own redirect and post-logout URIs; meta's values may name the
// application's endpoints as "{origin}".
func newWebRP(t *testing.T, r *goRP, name string, meta map[string]any) *webRP {
	t.Helper()
	rp := &webRP{name: name, endSession: r.endpoints.EndSession, pending: map[string]webAuthRequest{}, signIns: make(chan webSignIn, 4)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", rp.login)
	mux.HandleFunc("GET /callback", rp.callback)
	mux.HandleFunc("GET /logout", rp.logout)
	mux.HandleFunc("GET /logged-out", rp.loggedOutPage)
	mux.HandleFunc("GET /frontchannel-logout", rp.frontchannelLogout)
	mux.HandleFunc("POST /backchannel-logout", rp.backchannelLogout)
	rp.srv = httptest.NewServer(mux)
	t.Cleanup(rp.srv.Close)
	m := map[string]any{
		"client_name":               "Web app " + name,
		"redirect_uris":             []string{rp.url("/callback")},
		"post_logout_redirect_uris": []string{rp.url("/logged-out")},
		"grant_types":               []string{"authorization_code"},
		"response_types":            []string{"code"},
		"scope":                     "openid profile",
	}
	for k, v := range meta {
		if s, ok := v.(string); ok {
			v = strings.ReplaceAll(s, "{origin}", rp.srv.URL)
		}
		m[k] = v
	}
	rp.goClient = r.register(t, m)
	rp.oauth.RedirectURL = rp.url("/callback")
	return rp
}

func (rp *webRP) url(path string) string { return rp.srv.URL + path }

// page answers a small HTML page whose paragraph has the given id.
func page(w http.ResponseWriter, status int, id, text string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><title>%s</title><p id=%q>%s</p>", text, id, text)
}

func (rp *webRP) login(w http.ResponseWriter, r *http.Request) {
	state, ar := rand.Text(), webAuthRequest{verifier: oauth2.GenerateVerifier(), nonce: rand.Text()}
	rp.mu.Lock()
	rp.pending[state] = ar
	rp.mu.Unlock()
	http.Redirect(w, r, rp.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(ar.verifier), oidc.Nonce(ar.nonce)), http.StatusFound)
}

// callback checks state, exchanges the code and verifies the ID token, as
// a relying party must, and hands the outcome to the test.
func (rp *webRP) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	in := func() webSignIn {
		rp.mu.Lock()
		ar, ok := rp.pending[q.Get("state")]
		delete(rp.pending, q.Get("state"))
		rp.mu.Unlock()
		switch {
		case !ok:
			return webSignIn{err: fmt.Errorf("unknown state %q", q.Get("state"))}
		case q.Get("error") != "":
			return webSignIn{err: fmt.Errorf("authorization error %s: %s", q.Get("error"), q.Get("error_description"))}
		}
		tok, err := rp.oauth.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(ar.verifier))
		if err != nil {
			return webSignIn{err: fmt.Errorf("exchange the code: %w", err)}
		}
		raw, _ := tok.Extra("id_token").(string)
		idt, err := rp.verifier.Verify(r.Context(), raw)
		if err != nil {
			return webSignIn{err: fmt.Errorf("verify the ID token: %w", err)}
		}
		if idt.Nonce != ar.nonce {
			return webSignIn{err: fmt.Errorf("ID token nonce %q, want %q", idt.Nonce, ar.nonce)}
		}
		var claims struct {
			SID string `json:"sid"`
		}
		if err := idt.Claims(&claims); err != nil {
			return webSignIn{err: err}
		}
		return webSignIn{raw: raw, idt: idt, sid: claims.SID}
	}()
	rp.signIns <- in
	if in.err != nil {
		page(w, http.StatusBadRequest, "error-"+rp.name, in.err.Error())
		return
	}
	rp.mu.Lock()
	rp.idToken = in.raw
	rp.mu.Unlock()
	page(w, http.StatusOK, "signed-in-"+rp.name, "Signed in to "+rp.name)
}

// logout sends the browser to the end_session_endpoint (RP-Initiated
// Logout 1.0 §2).
func (rp *webRP) logout(w http.ResponseWriter, r *http.Request) {
	u, err := url.Parse(rp.endSession)
	if err != nil {
		page(w, http.StatusInternalServerError, "error-"+rp.name, err.Error())
		return
	}
	rp.mu.Lock()
	rp.logoutState = rand.Text()
	q := u.Query()
	q.Set("id_token_hint", rp.idToken)
	q.Set("post_logout_redirect_uri", rp.url("/logged-out"))
	q.Set("state", rp.logoutState)
	rp.mu.Unlock()
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (rp *webRP) loggedOutPage(w http.ResponseWriter, r *http.Request) {
	rp.mu.Lock()
	rp.loggedOut = append(rp.loggedOut, r.URL.Query().Get("state"))
	rp.mu.Unlock()
	page(w, http.StatusOK, "logged-out-"+rp.name, "Signed out of "+rp.name)
}

func (rp *webRP) frontchannelLogout(w http.ResponseWriter, r *http.Request) {
	rp.mu.Lock()
	rp.frontchannel = append(rp.frontchannel, r.URL.Query())
	rp.mu.Unlock()
	page(w, http.StatusOK, "frontchannel-"+rp.name, "Signed out")
}

func (rp *webRP) backchannelLogout(w http.ResponseWriter, r *http.Request) {
	token := ""
	if err := r.ParseForm(); err == nil {
		token = r.PostForm.Get("logout_token")
	}
	rp.mu.Lock()
	status := http.StatusOK
	if rp.refuse {
		status = http.StatusServiceUnavailable
	}
	rp.backchannel = append(rp.backchannel, backchannelPost{token: token, answered: status})
	rp.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
}

func (rp *webRP) setRefuse(refuse bool) {
	rp.mu.Lock()
	rp.refuse = refuse
	rp.mu.Unlock()
}

// snapshot returns what the application has recorded so far.
func (rp *webRP) snapshot() (logoutState string, loggedOut []string, frontchannel []url.Values, backchannel []backchannelPost) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.logoutState, slices.Clone(rp.loggedOut), slices.Clone(rp.frontchannel), slices.Clone(rp.backchannel)
}

// signedIn waits for the sign-in the browser just brought back.
func (rp *webRP) signedIn(b *chromium.Tab) webSignIn {
	b.T.Helper()
	select {
	case in := <-rp.signIns:
		if in.err != nil {
			b.Fatalf("%s: %v", rp.name, in.err)
		}
		return in
	case <-b.Ctx.Done():
		b.Fatalf("the browser never came back to %s", rp.name)
		return webSignIn{}
	}
}

// waitUntil polls cond until it holds, failing after the test's deadline.
func waitUntil(b *chromium.Tab, what string, cond func() bool) {
	b.T.Helper()
	for !cond() {
		select {
		case <-b.Ctx.Done():
			b.Fatalf("timed out waiting until %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// checkLogoutToken verifies a logout token as the relying party must
// (Back-Channel Logout 1.0 §2.6): signed by a key of the provider's JWKS,
// typ logout+jwt, its iss, aud the client, a recent iat, a jti, the
// back-channel logout event, the session's sid and subject, and no nonce.
// It returns the jti.
func checkLogoutToken(t *testing.T, r *goRP, raw, clientID string, signIn webSignIn, since time.Time) string {
	t.Helper()
	var meta struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := r.op.Claims(&meta); err != nil || meta.JWKS == "" {
		t.Fatalf("discovery has no jwks_uri: %v", err)
	}
	payload, err := oidc.NewRemoteKeySet(t.Context(), meta.JWKS).VerifySignature(t.Context(), raw)
	if err != nil {
		t.Fatalf("the logout token's signature: %v", err)
	}
	header, _, _ := strings.Cut(raw, ".")
	var hdr struct {
		Typ string `json:"typ"`
	}
	if b, err := base64.RawURLEncoding.DecodeString(header); err != nil || json.Unmarshal(b, &hdr) != nil || hdr.Typ != "logout+jwt" {
		t.Errorf("logout token header %q, want typ logout+jwt", header)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	aud := claims["aud"]
	if list, ok := aud.([]any); ok && len(list) == 1 {
		aud = list[0]
	}
	iat, _ := claims["iat"].(float64)
	events, _ := claims["events"].(map[string]any)
	event, isObject := events["http://schemas.openid.net/event/backchannel-logout"].(map[string]any)
	if claims["iss"] != r.srv.Issuer {
		t.Errorf("iss %v, want %s", claims["iss"], r.srv.Issuer)
	}
	if aud != clientID {
		t.Errorf("aud %v, want %s", claims["aud"], clientID)
	}
	if issued := time.Unix(int64(iat), 0); issued.Before(since.Add(-time.Second)) || issued.After(time.Now().Add(time.Minute)) {
		t.Errorf("iat %v, want a time since %s", claims["iat"], since.Format(time.RFC3339))
	}
	jti, _ := claims["jti"].(string)
	if jti == "" {
		t.Errorf("no jti: %v", claims)
	}
	if !isObject || len(event) != 0 || len(events) != 1 {
		t.Errorf("events %v, want only the back-channel logout event with an empty object", claims["events"])
	}
	if claims["sid"] != signIn.sid {
		t.Errorf("sid %v, want the ID token's %q", claims["sid"], signIn.sid)
	}
	if sub, ok := claims["sub"]; ok && sub != signIn.idt.Subject {
		t.Errorf("sub %v, want the ID token's %q", sub, signIn.idt.Subject)
	}
	if _, ok := claims["nonce"]; ok {
		t.Errorf("the logout token has a nonce: %v", claims)
	}
	return jti
}

// TestBrowserSSOAcrossApps is issue 8's proof, in Chromium: sign in once at
// application A (password, TOTP, consent), and application B gets a code
// without a sign-in page; RP-initiated logout from A loads B's
// frontchannel_logout_uri in an iframe and returns to A; A's
// backchannel_logout_uri, refusing until the provider has restarted,
// then receives a valid logout token from the new provider; and A's login
// link shows the sign-in page again.
func TestBrowserSSOAcrossApps(t *testing.T) {
	b := chromium.NewTab(t, ssoTimeout)
	start := time.Now()
	r := startGoRP(t, latchkeytest.Options{Provider: func(c *provider.Config) {
		// Retries within a fraction of a second, so the delivery after
		// the restart is prompt.
		c.BackchannelLogout = provider.BackchannelLogoutConfig{
			PollInterval: 50 * time.Millisecond,
			RetryMin:     50 * time.Millisecond,
			RetryMax:     250 * time.Millisecond,
			Timeout:      2 * time.Second,
		}
		// The relying parties listen on loopback, which the outbound
		// address policy refuses by default.
		c.OutboundAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}})
	a := newWebRP(t, r, "A", map[string]any{
		"backchannel_logout_uri":              "{origin}/backchannel-logout",
		"backchannel_logout_session_required": true,
	})
	bApp := newWebRP(t, r, "B", map[string]any{
		"frontchannel_logout_uri":              "{origin}/frontchannel-logout",
		"frontchannel_logout_session_required": true,
	})
	a.setRefuse(true)
	// The login app's sign-in pages (password, second factor) are under
	// {login URL}/login.
	signInPage := func(u string) bool { return strings.HasPrefix(u, r.srv.Issuer+"/login/login") }
	lap := time.Now()
	timing := func(what string) {
		t.Logf("%s: %s", what, time.Since(lap).Round(time.Millisecond))
		lap = time.Now()
	}

	// Sign in at A through the login app's pages.
	b.Open(a.url("/login"))
	b.SignIn(r.user.Username, r.user.Password)
	b.At("#totp-form")
	code, err := r.user.Authenticator.Code(b.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.Fill("totp-code", code)
	b.Click("#totp-form button[type=submit]")
	b.At("#consent-form")
	b.Click("#allow")
	b.At("#signed-in-A")
	atA := a.signedIn(b)
	if atA.sid == "" || atA.idt.Subject != r.subject {
		t.Fatalf("A's ID token: sub %q sid %q, want %q and a sid", atA.idt.Subject, atA.sid, r.subject)
	}
	checkMFA(t, atA.idt)
	timing("sign-in at A (password, TOTP, consent)")

	// B: the session answers; B is new to the user, so the consent page
	// may ask, but no sign-in page may show.
	before := len(b.Visited())
	b.Open(bApp.url("/login"))
	b.At("#consent-form, #signed-in-B")
	if b.Has("#consent-form") {
		b.Click("#allow")
		b.At("#signed-in-B")
	}
	atB := bApp.signedIn(b)
	for _, u := range b.Visited()[before:] {
		if signInPage(u) {
			t.Errorf("the browser showed a sign-in page on the way to B: %s", u)
		}
	}
	if atB.sid != atA.sid || atB.idt.Subject != atA.idt.Subject {
		t.Fatalf("B's ID token: sub %q sid %q, want A's %q and %q", atB.idt.Subject, atB.sid, atA.idt.Subject, atA.sid)
	}
	timing("single sign-on at B")

	// RP-initiated logout from A, while A's back-channel endpoint refuses.
	before = len(b.Visited())
	b.Open(a.url("/logout"))
	b.At("#logged-out-A")
	state, loggedOut, frontchannel, refused := a.snapshot()
	if !slices.Equal(loggedOut, []string{state}) || state == "" {
		t.Errorf("A's post-logout page got states %q, want %q", loggedOut, state)
	}
	if !slices.ContainsFunc(b.Visited()[before:], func(u string) bool {
		return strings.HasPrefix(u, r.srv.Issuer+"/oauth2/logout/continue")
	}) {
		t.Errorf("the provider's signed-out page with the front-channel frames was not shown: %q", b.Visited()[before:])
	}
	if len(frontchannel) != 0 {
		t.Errorf("A, without a frontchannel_logout_uri, got front-channel requests: %v", frontchannel)
	}
	_, _, frontchannel, _ = bApp.snapshot()
	if len(frontchannel) != 1 || frontchannel[0].Get("iss") != r.srv.Issuer || frontchannel[0].Get("sid") != atA.sid {
		t.Errorf("B's frontchannel_logout_uri got %v, want one request with iss %s and sid %s", frontchannel, r.srv.Issuer, atA.sid)
	}
	timing("RP-initiated logout with the front-channel iframe")
	waitUntil(b, "the provider tried A's back-channel endpoint", func() bool {
		_, _, _, refused = a.snapshot()
		return len(refused) > 0
	})
	for _, p := range refused {
		if p.answered != http.StatusServiceUnavailable {
			t.Fatalf("A's back-channel endpoint answered %d while it refused", p.answered)
		}
	}
	if q, err := r.srv.Store.ListBackchannelLogouts(t.Context()); err != nil || len(q) != 1 || q[0].ClientID != a.ID || q[0].SID != atA.sid {
		t.Fatalf("the queue before the restart: %+v, %v; want A's logout", q, err)
	}

	// The provider restarts on the same database; only then does A accept.
	r.srv.Restart()
	timing("provider restart")
	if q, err := r.srv.Store.ListBackchannelLogouts(b.Ctx); err != nil || len(q) != 1 || q[0].SID != atA.sid {
		t.Fatalf("the new provider's queue: %+v, %v; want A's logout", q, err)
	}
	_, _, _, refused = a.snapshot()
	tried := len(refused)
	a.setRefuse(false)
	var delivered backchannelPost
	waitUntil(b, "the new provider delivers A's logout token", func() bool {
		_, _, _, got := a.snapshot()
		if len(got) > tried && got[len(got)-1].answered == http.StatusOK {
			delivered = got[len(got)-1]
			return true
		}
		return false
	})
	timing(fmt.Sprintf("delivery after the restart (%d refused before)", tried))
	// The first provider's refused attempt carried the same logout, by
	// its jti: the queued one, not a new one.
	if jti := checkLogoutToken(t, r, delivered.token, a.ID, atA, start); jti != checkLogoutToken(t, r, refused[0].token, a.ID, atA, start) {
		t.Errorf("the delivered logout token's jti %s differs from the first attempt's", jti)
	}
	waitUntil(b, "the delivered logout leaves the queue", func() bool {
		q, err := r.srv.Store.ListBackchannelLogouts(b.Ctx)
		return err == nil && len(q) == 0
	})

	// The session ended: A's login link asks for a sign-in again.
	b.Open(a.url("/login"))
	b.At("#password-form")
	timing("sign-in page again")
	t.Logf("the whole test took %s on %s", time.Since(start).Round(time.Millisecond), r.srv.Backend)
}
