package rp_test

import (
	"crypto/rand"
	"net/http"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
)

// TestGoHybridCodeIDToken runs the hybrid flow with response_type
// "code id_token" (Core §3.3): the code and an ID token arrive in the URL
// fragment, go-oidc verifies the front-channel ID token, its c_hash binds
// the code, and the code is then exchanged for a second ID token about the
// same user.
func TestGoHybridCodeIDToken(t *testing.T) {
	r := startGoRP(t, latchkeytest.Options{})
	c := r.register(t, map[string]any{
		"client_name":    "Go RP (hybrid)",
		"redirect_uris":  []string{goCallback},
		"grant_types":    []string{"authorization_code", "implicit"},
		"response_types": []string{"code id_token"},
		"scope":          "openid email",
	})
	ctx := t.Context()
	verifier, state, nonce := oauth2.GenerateVerifier(), rand.Text(), rand.Text()
	page, seen := r.browse(t, r.browser(), c.oauth.AuthCodeURL(state,
		oauth2.SetAuthURLParam("response_type", "code id_token"),
		oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)))
	if !seen.SignIn || !seen.SecondFactor {
		t.Errorf("the user answered %+v, want sign-in and TOTP", seen)
	}
	// The default response mode of a response with an ID token is the
	// fragment (Core §3.3.2.5): it never reaches the RP's server logs.
	params := callbackParams(t, page, true)
	if params.Get("state") != state {
		t.Fatalf("state %q, want %q", params.Get("state"), state)
	}
	code, raw := params.Get("code"), params.Get("id_token")
	if code == "" || raw == "" {
		t.Fatalf("the fragment lacks the code or the ID token: %v", params)
	}

	front := c.verify(t, raw)
	if front.Nonce != nonce {
		t.Errorf("front-channel ID token nonce %q, want %q", front.Nonce, nonce)
	}
	// c_hash is required here (Core §3.3.2.11): it is what tells the RP the
	// code in the fragment is the one this ID token was issued with.
	if got, want := claimsOf(t, front).CHash, leftHalfHash(t, raw, code); got != want {
		t.Errorf("c_hash %q, want %q", got, want)
	}
	checkMFA(t, front)

	tok, err := c.oauth.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange the code: %v", err)
	}
	back := c.verify(t, rawIDToken(t, tok))
	// Core §3.3.3.6: iss (checked by go-oidc for both) and sub are the same
	// in both ID tokens; the nonce must be in both (§3.3.3.7, §3.1.3.7).
	if front.Subject != r.subject || back.Subject != front.Subject {
		t.Errorf("sub %q in the fragment and %q from the token endpoint, want %q in both", front.Subject, back.Subject, r.subject)
	}
	if back.Nonce != nonce {
		t.Errorf("token endpoint ID token nonce %q, want %q", back.Nonce, nonce)
	}
}

// TestGoImplicitFormPost runs the implicit flow with response_type
// "id_token token" and response_mode=form_post (OAuth 2.0 Form Post
// Response Mode): the provider answers with a page whose form posts the
// response to the redirect URI; go-oidc verifies the ID token and its
// at_hash, and the access token works at userinfo.
func TestGoImplicitFormPost(t *testing.T) {
	r := startGoRP(t, latchkeytest.Options{})
	c := r.register(t, map[string]any{
		"client_name":                "Go RP (implicit)",
		"redirect_uris":              []string{goCallback},
		"grant_types":                []string{"implicit"},
		"response_types":             []string{"id_token token"},
		"scope":                      "openid email",
		"token_endpoint_auth_method": "none",
	})
	ctx := t.Context()
	state, nonce := rand.Text(), rand.Text()
	page, _ := r.browse(t, r.browser(), c.oauth.AuthCodeURL(state,
		oauth2.SetAuthURLParam("response_type", "id_token token"),
		oauth2.SetAuthURLParam("response_mode", "form_post"),
		oidc.Nonce(nonce)))
	if page.Redirect {
		t.Fatalf("form_post answered with a redirect to %s", page.URL.Redacted())
	}
	forms := page.Forms()
	if page.Status != http.StatusOK || len(forms) != 1 {
		t.Fatalf("want one form on a 200 page, got status %d and %d forms: %.500s", page.Status, len(forms), page.Body)
	}
	form := forms[0]
	if form.Method != http.MethodPost || form.Action != goCallback {
		t.Fatalf("the form is %s %s, want POST %s", form.Method, form.Action, goCallback)
	}
	fields := form.Fields
	if fields.Get("state") != state {
		t.Fatalf("state %q, want %q", fields.Get("state"), state)
	}
	raw, accessToken, tokenType := fields.Get("id_token"), fields.Get("access_token"), fields.Get("token_type")
	if raw == "" || accessToken == "" || !strings.EqualFold(tokenType, "Bearer") {
		t.Fatalf("the form lacks id_token, access_token or a Bearer token_type: %v", fields)
	}

	idt := c.verify(t, raw)
	if idt.Nonce != nonce {
		t.Errorf("ID token nonce %q, want %q", idt.Nonce, nonce)
	}
	if idt.Subject != r.subject {
		t.Errorf("ID token sub %q, want %q", idt.Subject, r.subject)
	}
	// at_hash is required with an access token in the same response (Core
	// §3.2.2.10): it binds the access token to the signed ID token.
	if err := idt.VerifyAccessToken(accessToken); err != nil {
		t.Errorf("at_hash: %v", err)
	}

	ui, err := r.op.UserInfo(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: accessToken, TokenType: tokenType}))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	if ui.Subject != idt.Subject || ui.Email != r.email {
		t.Errorf("userinfo sub %q email %q, want %q %q", ui.Subject, ui.Email, idt.Subject, r.email)
	}
}
