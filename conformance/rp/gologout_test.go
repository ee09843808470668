package rp_test

import (
	"crypto/rand"
	"net/url"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
)

// TestGoRPInitiatedLogout signs in with "keep me signed in", then logs out
// through the end_session_endpoint found by discovery (OpenID Connect
// RP-Initiated Logout 1.0) with an id_token_hint, a registered
// post_logout_redirect_uri and a state. The browser must come back to that
// URI with the state, and the SSO session must be gone: a prompt=none
// request, which the session answered before, then gets login_required.
func TestGoRPInitiatedLogout(t *testing.T) {
	r := startGoRP(t, latchkeytest.Options{})
	c := r.register(t, map[string]any{
		"client_name":               "Go RP (logout)",
		"redirect_uris":             []string{goCallback},
		"grant_types":               []string{"authorization_code"},
		"response_types":            []string{"code"},
		"scope":                     "openid profile",
		"post_logout_redirect_uris": []string{goLoggedOut},
	})
	if r.endpoints.EndSession == "" {
		t.Fatal("the discovery document has no end_session_endpoint")
	}
	ctx := t.Context()
	a := r.browser()
	f := r.codeFlow(t, a, c)

	// silent makes a prompt=none authorization request (Core §3.1.2.1) in
	// the browser and returns the response at the redirect URI, which
	// carries a code or an error; either way it carries the state.
	silent := func() url.Values {
		t.Helper()
		state := rand.Text()
		page, err := a.Get(ctx, c.oauth.AuthCodeURL(state, oauth2.SetAuthURLParam("prompt", "none"), oidc.Nonce(rand.Text())))
		if err != nil {
			t.Fatal(err)
		}
		params := redirectParams(t, page, goCallback, false)
		if params.Get("state") != state {
			t.Fatalf("state %q, want %q", params.Get("state"), state)
		}
		return params
	}
	// The check after the logout means something only if the session
	// answers prompt=none before it.
	if params := silent(); params.Get("code") == "" {
		t.Fatalf("prompt=none while signed in: %v, want a code", params)
	}

	u, err := url.Parse(r.endpoints.EndSession)
	if err != nil {
		t.Fatal(err)
	}
	state := rand.Text()
	q := u.Query()
	q.Set("id_token_hint", f.RawIDToken)
	q.Set("post_logout_redirect_uri", goLoggedOut)
	q.Set("state", state)
	u.RawQuery = q.Encode()
	page, _ := r.browse(t, a, u.String())
	back := redirectParams(t, page, goLoggedOut, false)
	if back.Get("state") != state {
		t.Errorf("state %q at the post-logout URI, want %q", back.Get("state"), state)
	}

	params := silent()
	if params.Get("error") != "login_required" || params.Get("code") != "" {
		t.Errorf("prompt=none after the logout: %v, want error=login_required and no code", params)
	}
}
