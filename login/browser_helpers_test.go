package login_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// The browser tests drive a real headless Chromium over the DevTools
// protocol: the pages' forms, cookies, redirects, cross-origin checks and
// webauthn.js run as they do for people. A tab is one such browser.

// browserTimeout bounds each browser test.
const browserTimeout = 60 * time.Second

// chromiumPath finds the browser: $LATCHKEY_CHROMIUM, else the usual names
// on $PATH. Without one the test skips; .ci/run installs it, and fails on
// any skip.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("LATCHKEY_CHROMIUM"); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			t.Fatalf("LATCHKEY_CHROMIUM=%s: %v", p, err)
		}
		return path
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Skip("browser tests need Chromium (Debian package chromium); .ci/run installs it")
	return ""
}

// onLocalhost serves the issuer at http://localhost:PORT: WebAuthn refuses
// IP hosts, and Chrome treats localhost as a secure context.
func onLocalhost(o *envOptions) { o.host = "localhost" }

// tab is one headless Chromium with one tab, its own profile and a
// deadline for the whole test.
type tab struct {
	t *testing.T
	// root is the tab without the deadline, for reporting where the browser
	// was after the deadline passed.
	root context.Context
	ctx  context.Context
}

func newTab(t *testing.T) *tab {
	t.Helper()
	path := chromiumPath(t)
	profile := t.TempDir() // removed after the browser below has exited
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		// Containers often have a small /dev/shm, which crashes Chrome.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile),
	)
	t.Cleanup(cancelAlloc) // kills the browser and waits for it
	root, cancelRoot := chromedp.NewContext(alloc)
	t.Cleanup(cancelRoot)
	// The first call starts the browser; its life is bound to root, not to
	// the deadline below.
	if err := chromedp.Do(root); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	ctx, cancel := context.WithTimeout(root, browserTimeout)
	t.Cleanup(cancel)
	return &tab{t: t, root: root, ctx: ctx}
}

// do runs actions, failing the test with where the browser is if one fails.
func (b *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.fatalf("%s: %v", what, err)
	}
}

// fatalf fails the test, adding the browser's address and page text.
func (b *tab) fatalf(format string, args ...any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.root, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if len(text) > 2000 {
		text = text[:2000] + "…"
	}
	b.t.Fatalf("%s\nbrowser at %s, showing:\n%s", fmt.Sprintf(format, args...), loc, text)
}

// open navigates to u and waits for the page to load.
func (b *tab) open(u string) {
	b.t.Helper()
	b.do("open "+u, chromedp.Navigate(u))
}

// at waits until the page with the element sel is shown and has loaded,
// so its deferred scripts (webauthn.js) have run. sel must be on no page
// before it, or the wait would end on the old page.
func (b *tab) at(sel string) {
	b.t.Helper()
	b.do("wait for "+sel,
		chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Poll[bool](`document.readyState === "complete"`,
				chromedp.WithPollingInterval(20*time.Millisecond))(ctx, t)
			return err
		}),
	)
}

// fill types value into the input with id, as a person would.
func (b *tab) fill(id, value string) {
	b.t.Helper()
	b.do("fill #"+id, chromedp.WaitVisible(chromedp.ID(id)), chromedp.SendKeys(chromedp.ID(id), value))
}

// click clicks the element sel; a submit button submits its form with the
// page's own handlers.
func (b *tab) click(sel string) {
	b.t.Helper()
	b.do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// text is the visible text of the element sel.
func (b *tab) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.fatalf("text of %s: %v", sel, err)
	}
	return s
}

// value is the value of the input with id.
func (b *tab) value(id string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Value(chromedp.ID(id)))
	if err != nil {
		b.fatalf("value of #%s: %v", id, err)
	}
	return s
}

// waitText polls until the element sel shows want; pages can share
// selectors, so the text tells them apart.
func (b *tab) waitText(sel, want string) {
	b.t.Helper()
	for {
		ctx, cancel := context.WithTimeout(b.ctx, time.Second)
		got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		cancel()
		if err == nil && strings.TrimSpace(got) == want {
			return
		}
		if b.ctx.Err() != nil {
			b.fatalf("waiting for %s to show %q: last %q, %v", sel, want, got, err)
		}
		select {
		case <-b.ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// signIn fills in and submits the sign-in form.
func (b *tab) signIn(username, pw string) {
	b.t.Helper()
	b.at("#password-form")
	b.fill("username", username)
	b.fill("password", pw)
	b.click("#password-form button[type=submit]")
}

// clearCookies ends every session the browser has, as a new browser would
// start, keeping its authenticators.
func (b *tab) clearCookies() {
	b.t.Helper()
	if _, err := chromedp.Call(b.ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		b.fatalf("clear cookies: %v", err)
	}
}

// addAuthenticator gives the tab a virtual platform authenticator that
// holds discoverable credentials, verifies the user and needs no touch.
func (b *tab) addAuthenticator() webauthn.AuthenticatorID {
	b.t.Helper()
	if _, err := chromedp.Call(b.ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		b.fatalf("enable WebAuthn: %v", err)
	}
	res, err := chromedp.Call(b.ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol:                    webauthn.AuthenticatorProtocolCtap2,
			Transport:                   webauthn.AuthenticatorTransportInternal,
			HasResidentKey:              true,
			HasUserVerification:         true,
			IsUserVerified:              true,
			AutomaticPresenceSimulation: true,
		},
	})
	if err != nil {
		b.fatalf("add virtual authenticator: %v", err)
	}
	return res.AuthenticatorID
}

// credentials are the credentials an authenticator holds.
func (b *tab) credentials(id webauthn.AuthenticatorID) []*webauthn.Credential {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
	if err != nil {
		b.fatalf("authenticator credentials: %v", err)
	}
	return res.Credentials
}

// landing is a relying party's redirect URI that a browser can reach: it
// hands each callback to the test and shows a page.
type landing struct {
	srv       *httptest.Server
	callbacks chan *url.URL
}

func newLanding(t testing.TB) *landing {
	l := &landing{callbacks: make(chan *url.URL, 8)}
	l.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		u := *r.URL
		u.Scheme, u.Host = "http", r.Host
		select {
		case l.callbacks <- &u:
		default:
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>Back at the client</title><p id="rp-done">Back at the client.</p>`)
	}))
	t.Cleanup(l.srv.Close)
	return l
}

func (l *landing) redirectURI() string { return l.srv.URL + "/callback" }

// wait returns the next callback the browser brought.
func (l *landing) wait(b *tab) *url.URL {
	b.t.Helper()
	select {
	case u := <-l.callbacks:
		return u
	case <-b.ctx.Done():
		b.fatalf("the browser never came back to the client")
		return nil
	}
}

// browserClient registers a code-flow client whose redirect URI is a
// landing the browser can reach; meta is merged as for createClient.
func (e *env) browserClient(meta map[string]any) (*rp, *landing) {
	e.t.Helper()
	l := newLanding(e.t)
	m := map[string]any{"redirect_uris": []string{l.redirectURI()}}
	for k, v := range meta {
		m[k] = v
	}
	c := e.createClient(m)
	c.oauth.RedirectURL = l.redirectURI()
	return c, l
}

// authRequest is what a relying party keeps while the browser is away.
type authRequest struct{ state, verifier, nonce string }

// start sends the browser to the authorization endpoint, as a relying
// party does: code flow with PKCE and a nonce.
func (c *rp) start(b *tab, extra ...oauth2.AuthCodeOption) authRequest {
	b.t.Helper()
	ar := authRequest{state: oauth2.GenerateVerifier(), verifier: oauth2.GenerateVerifier(), nonce: oauth2.GenerateVerifier()}
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(ar.verifier), oidc.Nonce(ar.nonce)}, extra...)
	b.open(c.oauth.AuthCodeURL(ar.state, opts...))
	return ar
}

// redeem checks the callback, exchanges its code and verifies the ID token.
func (c *rp) redeem(t *testing.T, callback *url.URL, ar authRequest) (*oauth2.Token, *oidc.IDToken) {
	t.Helper()
	q := callback.Query()
	if q.Get("error") != "" {
		t.Fatalf("the client got error %s: %s", q.Get("error"), q.Get("error_description"))
	}
	if q.Get("state") != ar.state {
		t.Fatalf("state = %q, want %q", q.Get("state"), ar.state)
	}
	ctx := context.Background()
	tok, err := c.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(ar.verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := c.verifier.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verify ID token: %v", err)
	}
	if idt.Nonce != ar.nonce {
		t.Fatalf("ID token nonce = %q, want %q", idt.Nonce, ar.nonce)
	}
	return tok, idt
}
