package conformance

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"net/url"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/latchkey-oidc/latchkey/conformance/useragent"
)

// The RP-initiated logout modules (AbstractOIDCCRpInitiatedLogout): sign
// in, send the browser to the end_session_endpoint with some parameters,
// and check where it ends. Where the suite asks the tester for a
// screenshot of a "logged out" or an error page, the runner checks what
// a screenshot would show: that the browser was not sent to the client,
// and whether the person is still signed in.

// signedIn runs a code flow and returns its ID token.
func (t *T) signedIn() *idToken {
	if t.r.meta.EndSessionEndpoint == "" {
		t.Fatal("CheckDiscEndSessionEndpoint", "the provider publishes no end_session_endpoint")
	}
	return t.flow(t.newAuthRequest(), useragent.Interaction{Remember: true}).idToken
}

// endSession opens the end_session_endpoint with params in the browser
// and answers a logout confirmation with "sign out".
func (t *T) endSession(params url.Values) *authResponse {
	u := t.r.meta.EndSessionEndpoint
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	if _, err := t.ua.Get(t.ctx, u); err != nil {
		t.Fatal("CallEndSessionEndpoint", "%v", err)
	}
	return t.walk(t.ua, useragent.Interaction{User: t.user})
}

// expectLoggedOut checks the session ended: a prompt=none request must
// come back with an interaction error.
func (t *T) expectLoggedOut() {
	req := t.newAuthRequest()
	req.params.Set("prompt", "none")
	res := t.send(req, useragent.Interaction{})
	if res.where == "" {
		t.Fatal("CheckErrorFromAuthorizationEndpointIsOneThatRequiredAUserInterface", "prompt=none after logout showed a page: %s", snippet(res.page))
	}
	switch e := t.expectError(req, res); e {
	case "login_required", "interaction_required", "consent_required", "account_selection_required":
	default:
		t.Fail("CheckErrorFromAuthorizationEndpointIsOneThatRequiredAUserInterface",
			"prompt=none after logout answered error %q; the session was not ended", e)
	}
}

// expectPostLogoutRedirect checks the browser came back to the client's
// post-logout redirect URI with state (or none when none was sent).
func (t *T) expectPostLogoutRedirect(res *authResponse, state string) {
	want := t.client().PostLogoutRedirectURI
	if res.where == "" || !res.page.Redirect {
		t.Fatal("ExpectRedirectToPostLogoutRedirectUri", "the provider did not redirect to the post_logout_redirect_uri: %s", snippet(res.page))
	}
	t.Check(res.target == want, "ExpectRedirectToPostLogoutRedirectUri", "redirected to %s, want %s", res.target, want)
	if state == "" {
		t.Check(!res.params.Has("state"), "CheckNoPostLogoutState", "state %q in the redirect though none was sent", res.params.Get("state"))
	} else {
		t.Check(res.params.Get("state") == state, "CheckPostLogoutState", "state %q, want %q", res.params.Get("state"), state)
	}
	for k := range res.params {
		if k != "state" {
			t.Warn("CheckForUnexpectedParametersInPostLogoutRedirect", "unexpected parameter %s", k)
		}
	}
}

// expectNoPostLogoutRedirect fails if the browser was sent to a client.
func (t *T) expectNoPostLogoutRedirect(res *authResponse, why string) {
	if res.where != "" {
		t.Fail("ExpectNoRedirectToPostLogoutRedirectUri", "%s, yet the provider redirected to %s", why, res.target)
	}
}

func moduleLogout(t *T) {
	idt := t.signedIn()
	state := random()
	res := t.endSession(url.Values{"id_token_hint": {idt.raw}, "post_logout_redirect_uri": {t.client().PostLogoutRedirectURI}, "state": {state}})
	t.expectPostLogoutRedirect(res, state)
	t.expectLoggedOut()
}

func moduleLogoutNoState(t *T) {
	idt := t.signedIn()
	res := t.endSession(url.Values{"id_token_hint": {idt.raw}, "post_logout_redirect_uri": {t.client().PostLogoutRedirectURI}})
	t.expectPostLogoutRedirect(res, "")
	t.expectLoggedOut()
}

func moduleLogoutBadPostLogoutURI(t *T) {
	idt := t.signedIn()
	bad := t.client().PostLogoutRedirectURI + "-unregistered-" + random()
	res := t.endSession(url.Values{"id_token_hint": {idt.raw}, "post_logout_redirect_uri": {bad}, "state": {random()}})
	t.expectNoPostLogoutRedirect(res, "the post_logout_redirect_uri is not registered")
}

func moduleLogoutQueryAdded(t *T) {
	idt := t.signedIn()
	u := t.client().PostLogoutRedirectURI
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	res := t.endSession(url.Values{"id_token_hint": {idt.raw}, "post_logout_redirect_uri": {u + sep + "added=" + random()}, "state": {random()}})
	t.expectNoPostLogoutRedirect(res, "the post_logout_redirect_uri has a query the client did not register")
}

// moduleLogoutModifiedHint sends the ID token re-encoded with alg none and
// no signature (ChangeIdTokenToAlgNone).
func moduleLogoutModifiedHint(t *T) {
	idt := t.signedIn()
	parts := strings.Split(idt.raw, ".")
	hint := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + "."
	res := t.endSession(url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {t.client().PostLogoutRedirectURI}, "state": {random()}})
	t.expectNoPostLogoutRedirect(res, "the id_token_hint is unsigned")
}

// moduleLogoutBadHint sends an ID token with the right claims signed by a
// key the provider never published (SignFakeIdToken).
func moduleLogoutBadHint(t *T) {
	idt := t.signedIn()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal("SignFakeIdToken", "%v", err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", idt.kid))
	if err != nil {
		t.Fatal("SignFakeIdToken", "%v", err)
	}
	parts := strings.Split(idt.raw, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal("SignFakeIdToken", "%v", err)
	}
	hint, _ := jws.CompactSerialize()
	res := t.endSession(url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {t.client().PostLogoutRedirectURI}, "state": {random()}})
	t.expectNoPostLogoutRedirect(res, "the id_token_hint is signed by a key the provider does not have")
}

// moduleLogoutNoHint sends post_logout_redirect_uri without anything that
// names the client: the provider cannot know the URI is the client's.
func moduleLogoutNoHint(t *T) {
	t.signedIn()
	res := t.endSession(url.Values{"post_logout_redirect_uri": {t.client().PostLogoutRedirectURI}, "state": {random()}})
	t.expectNoPostLogoutRedirect(res, "no id_token_hint names the client")
}

// The last three must log the person out and show a "logged out" page.

func moduleLogoutNoParams(t *T) {
	t.signedIn()
	t.expectNoPostLogoutRedirect(t.endSession(nil), "no post_logout_redirect_uri was sent")
	t.expectLoggedOut()
}

func moduleLogoutNoPostLogoutURI(t *T) {
	idt := t.signedIn()
	t.expectNoPostLogoutRedirect(t.endSession(url.Values{"id_token_hint": {idt.raw}, "state": {random()}}), "no post_logout_redirect_uri was sent")
	t.expectLoggedOut()
}

func moduleLogoutOnlyState(t *T) {
	t.signedIn()
	t.expectNoPostLogoutRedirect(t.endSession(url.Values{"state": {random()}}), "no post_logout_redirect_uri was sent")
	t.expectLoggedOut()
}
