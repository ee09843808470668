package login_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey-oidc/latchkey/conformance/chromium"
)

// The browser tests drive a real headless Chromium over the DevTools
// protocol (package chromium): the pages' forms, cookies, redirects,
// cross-origin checks and webauthn.js run as they do for people.

// browserTimeout bounds each browser test.
const browserTimeout = 60 * time.Second

// onLocalhost serves the issuer at http://localhost:PORT: WebAuthn refuses
// IP hosts, and Chrome treats localhost as a secure context.
func onLocalhost(o *envOptions) { o.host = "localhost" }

// newTab starts Chromium for a browser test.
func newTab(t *testing.T) *chromium.Tab { return chromium.NewTab(t, browserTimeout) }

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
func (l *landing) wait(b *chromium.Tab) *url.URL {
	b.T.Helper()
	select {
	case u := <-l.callbacks:
		return u
	case <-b.Ctx.Done():
		b.Fatalf("the browser never came back to the client")
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
func (c *rp) start(b *chromium.Tab, extra ...oauth2.AuthCodeOption) authRequest {
	b.T.Helper()
	ar := authRequest{state: oauth2.GenerateVerifier(), verifier: oauth2.GenerateVerifier(), nonce: oauth2.GenerateVerifier()}
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(ar.verifier), oidc.Nonce(ar.nonce)}, extra...)
	b.Open(c.oauth.AuthCodeURL(ar.state, opts...))
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
