// Package chromium drives a real headless Chromium over the DevTools
// protocol for browser tests: pages' forms, cookies, redirects, iframes,
// cross-origin checks and scripts run as they do for people. The login
// app's tests and the relying-party tests (conformance/rp) share it.
//
// The browser is found as LATCHKEY_CHROMIUM or on $PATH; without one a
// test that asks for a Tab skips. .ci/run installs it and fails on any skip.
package chromium

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// Path finds the browser: $LATCHKEY_CHROMIUM, else the usual names on
// $PATH. Without one the test skips.
func Path(t testing.TB) string {
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

// Tab is one headless Chromium with one tab, its own profile and a
// deadline for the whole test.
type Tab struct {
	T testing.TB
	// Ctx is the tab with the test's deadline: run actions with it, and
	// give up waiting when it is done.
	Ctx context.Context
	// root is the tab without the deadline, for reporting where the
	// browser was after the deadline passed.
	root context.Context

	mu      sync.Mutex
	visited []string
}

// NewTab starts a browser for t, which every action must finish within
// timeout of. The browser exits when the test ends.
func NewTab(t testing.TB, timeout time.Duration) *Tab {
	t.Helper()
	path := Path(t)
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
	ctx, cancel := context.WithTimeout(root, timeout)
	t.Cleanup(cancel)
	b := &Tab{T: t, Ctx: ctx, root: root}
	if err := chromedp.Listen(root, b.record); err != nil {
		t.Fatalf("listen to the tab: %v", err)
	}
	return b
}

// record keeps the address of every document the tab shows.
func (b *Tab) record(ev any) {
	if e, ok := ev.(*page.EventFrameNavigated); ok && e.Frame.ParentID == "" {
		b.mu.Lock()
		b.visited = append(b.visited, e.Frame.URL+e.Frame.URLFragment)
		b.mu.Unlock()
	}
}

// Visited returns the address of every page the tab has shown, in order:
// documents it loaded, not the redirects that led to them, nor frames.
func (b *Tab) Visited() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.visited)
}

// Do runs actions, failing the test with where the browser is if one fails.
func (b *Tab) Do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.T.Helper()
	if err := chromedp.Do(b.Ctx, actions...); err != nil {
		b.Fatalf("%s: %v", what, err)
	}
}

// Fatalf fails the test, adding the browser's address and page text.
func (b *Tab) Fatalf(format string, args ...any) {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.root, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if len(text) > 2000 {
		text = text[:2000] + "…"
	}
	b.T.Fatalf("%s\nbrowser at %s, showing:\n%s", fmt.Sprintf(format, args...), loc, text)
}

// Open navigates to u and waits for the page to load.
func (b *Tab) Open(u string) {
	b.T.Helper()
	b.Do("open "+u, chromedp.Navigate(u))
}

// At waits until the page with the element sel is shown and has loaded,
// so its deferred scripts have run. sel must be on no page before it, or
// the wait would end on the old page.
func (b *Tab) At(sel string) {
	b.T.Helper()
	b.Do("wait for "+sel,
		chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Poll[bool](`document.readyState === "complete"`,
				chromedp.WithPollingInterval(20*time.Millisecond))(ctx, t)
			return err
		}),
	)
}

// Has reports whether the page shown has an element matching sel.
func (b *Tab) Has(sel string) bool {
	b.T.Helper()
	js, _ := json.Marshal(sel) // a string always encodes
	ok, err := chromedp.Run(b.Ctx, chromedp.Evaluate[bool](`document.querySelector(`+string(js)+`) !== null`))
	if err != nil {
		b.Fatalf("look for %s: %v", sel, err)
	}
	return ok
}

// Fill types value into the input with id, as a person would.
func (b *Tab) Fill(id, value string) {
	b.T.Helper()
	b.Do("fill #"+id, chromedp.WaitVisible(chromedp.ID(id)), chromedp.SendKeys(chromedp.ID(id), value))
}

// Click clicks the element sel; a submit button submits its form with the
// page's own handlers.
func (b *Tab) Click(sel string) {
	b.T.Helper()
	b.Do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// Text is the visible text of the element sel.
func (b *Tab) Text(sel string) string {
	b.T.Helper()
	s, err := chromedp.Run(b.Ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// Value is the value of the input with id.
func (b *Tab) Value(id string) string {
	b.T.Helper()
	s, err := chromedp.Run(b.Ctx, chromedp.Value(chromedp.ID(id)))
	if err != nil {
		b.Fatalf("value of #%s: %v", id, err)
	}
	return s
}

// WaitText polls until the element sel shows want; pages can share
// selectors, so the text tells them apart.
func (b *Tab) WaitText(sel, want string) {
	b.T.Helper()
	for {
		ctx, cancel := context.WithTimeout(b.Ctx, time.Second)
		got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		cancel()
		if err == nil && strings.TrimSpace(got) == want {
			return
		}
		if b.Ctx.Err() != nil {
			b.Fatalf("waiting for %s to show %q: last %q, %v", sel, want, got, err)
		}
		select {
		case <-b.Ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// SignIn fills in and submits the sign-in form of Latchkey's login app.
func (b *Tab) SignIn(username, pw string) {
	b.T.Helper()
	b.At("#password-form")
	b.Fill("username", username)
	b.Fill("password", pw)
	b.Click("#password-form button[type=submit]")
}

// ClearCookies ends every session the browser has, as a new browser would
// start, keeping its authenticators.
func (b *Tab) ClearCookies() {
	b.T.Helper()
	if _, err := chromedp.Call(b.Ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		b.Fatalf("clear cookies: %v", err)
	}
}

// AddAuthenticator gives the tab a virtual platform authenticator that
// holds discoverable credentials, verifies the user and needs no touch.
func (b *Tab) AddAuthenticator() webauthn.AuthenticatorID {
	b.T.Helper()
	if _, err := chromedp.Call(b.Ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		b.Fatalf("enable WebAuthn: %v", err)
	}
	res, err := chromedp.Call(b.Ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
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
		b.Fatalf("add virtual authenticator: %v", err)
	}
	return res.AuthenticatorID
}

// Credentials are the credentials an authenticator holds.
func (b *Tab) Credentials(id webauthn.AuthenticatorID) []*webauthn.Credential {
	b.T.Helper()
	res, err := chromedp.Call(b.Ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
	if err != nil {
		b.Fatalf("authenticator credentials: %v", err)
	}
	return res.Credentials
}
