package conformance

import (
	"net/url"
	"strings"
	"time"

	"github.com/latchkey-oidc/latchkey/conformance/useragent"
)

// twice runs a first flow, waits, and runs a second one with the extra
// parameters; it returns both ID tokens and the second response
// (AbstractOIDCCSameAuthTwiceServerTest and its relatives).
func (t *T) twice(wait time.Duration, first, second url.Values) (*flowResult, *flowResult) {
	req := t.newAuthRequest()
	for k, v := range first {
		req.params[k] = v
	}
	f1 := t.flow(req, useragent.Interaction{Remember: true})
	if wait > 0 {
		t.sleep(wait)
	}
	req2 := t.newAuthRequest()
	for k, v := range second {
		req2.params[k] = v
	}
	f2 := t.flow(req2, useragent.Interaction{Remember: true})
	return f1, f2
}

// authTimes returns both tokens' auth_time where present.
func authTimes(a, b *flowResult) (t1, t2 time.Time, both bool) {
	t1, ok1 := a.idToken.claims.time("auth_time")
	t2, ok2 := b.idToken.claims.time("auth_time")
	return t1, t2, ok1 && ok2
}

// modulePromptLogin is OIDCCPromptLogin: a second request with
// prompt=login after a second must show the sign-in page again (the
// suite's ExpectSecondLoginPage screenshot) and, when both tokens carry
// auth_time, the second is later.
func modulePromptLogin(t *T) {
	f1, f2 := t.twice(time.Second, nil, url.Values{"prompt": {"login"}})
	t.Check(f2.res.seen.SignIn, "ExpectSecondLoginPage", "prompt=login did not show the sign-in page again")
	if a1, a2, ok := authTimes(f1, f2); ok {
		t.Check(a2.After(a1), "CheckSecondIdTokenAuthTimeIsLaterIfPresent", "second auth_time %s is not after the first %s", a2, a1)
	}
}

// modulePromptNoneNotLoggedIn is OIDCCPromptNoneNotLoggedIn: prompt=none
// from a browser without a session, with a 128-character state, must
// come back with an error that asks for user interaction.
func modulePromptNoneNotLoggedIn(t *T) {
	req := t.newAuthRequest()
	req.state = strings.Repeat(random(), 6)[:128]
	req.params.Set("state", req.state)
	req.params.Set("prompt", "none")
	res := t.sendWith(useragent.New(t.r.http, t.ua.Stop...), req, useragent.Interaction{})
	t.Check(res.seen == useragent.Seen{}, "CheckErrorFromAuthorizationEndpointIsOneThatRequiredAUserInterface",
		"prompt=none showed the login app's pages")
	e := t.expectError(req, res)
	switch e {
	case "login_required", "interaction_required", "consent_required", "account_selection_required":
	default:
		t.Fail("CheckErrorFromAuthorizationEndpointIsOneThatRequiredAUserInterface", "error %q, want login_required or another interaction error", e)
	}
}

// expectSilent fails if the second request of a pair showed any page.
func (t *T) expectSilent(f *flowResult, why string) {
	t.Check(f.res.seen == useragent.Seen{}, "ExpectNoUserInteraction", "%s showed the login app's pages (%+v)", why, f.res.seen)
}

// sameSession checks that two ID tokens describe one authentication.
func (t *T) sameSession(f1, f2 *flowResult) {
	if a1, a2, ok := authTimes(f1, f2); ok {
		t.Check(a1.Equal(a2), "CheckIdTokenAuthTimeClaimsSameIfPresent", "auth_time changed from %s to %s", a1, a2)
	}
	t.Check(f1.idToken.claims.str("sub") == f2.idToken.claims.str("sub"), "CheckIdTokenSubConsistentForSecondAuthorization",
		"sub changed from %q to %q", f1.idToken.claims.str("sub"), f2.idToken.claims.str("sub"))
}

// modulePromptNoneLoggedIn is OIDCCPromptNoneLoggedIn: with a session,
// prompt=none succeeds silently for the same authentication.
func modulePromptNoneLoggedIn(t *T) {
	f1, f2 := t.twice(0, nil, url.Values{"prompt": {"none"}})
	t.expectSilent(f2, "prompt=none")
	t.sameSession(f1, f2)
}

// moduleMaxAge1 is OIDCCMaxAge1: after two seconds, max_age=1 forces a new
// sign-in; the second token has a later, recent auth_time.
func moduleMaxAge1(t *T) {
	f1, f2 := t.twice(2*time.Second, nil, url.Values{"max_age": {"1"}})
	t.Check(f2.res.seen.SignIn, "ExpectSecondLoginPage", "max_age=1 did not show the sign-in page again")
	a2, ok := f2.idToken.claims.time("auth_time")
	if !t.Check(ok, "CheckIdTokenAuthTimeClaimPresentDueToMaxAge", "no auth_time though max_age was sent") {
		return
	}
	t.Check(time.Since(a2) < 5*time.Minute, "CheckIdTokenAuthTimeIsRecentIfPresent", "auth_time %s is not recent", a2)
	if a1, ok := f1.idToken.claims.time("auth_time"); ok {
		t.Check(a2.After(a1), "CheckSecondIdTokenAuthTimeIsLaterIfPresent", "second auth_time %s is not after the first %s", a2, a1)
	}
}

// moduleMaxAge10000 is OIDCCMaxAge10000: max_age=15000, then
// max_age=10000; both tokens carry the same auth_time and sub.
func moduleMaxAge10000(t *T) {
	f1, f2 := t.twice(0, url.Values{"max_age": {"15000"}}, url.Values{"max_age": {"10000"}})
	for i, f := range []*flowResult{f1, f2} {
		_, ok := f.idToken.claims.time("auth_time")
		t.Check(ok, "CheckIdTokenAuthTimeClaimPresentDueToMaxAge", "ID token %d has no auth_time though max_age was sent", i+1)
	}
	t.sameSession(f1, f2)
}

// moduleIDTokenHint is OIDCCIdTokenHint: a second request with prompt=none
// and the first ID token as id_token_hint succeeds silently.
func moduleIDTokenHint(t *T) {
	req := t.newAuthRequest()
	f1 := t.flow(req, useragent.Interaction{Remember: true})
	req2 := t.newAuthRequest()
	req2.params.Set("prompt", "none")
	req2.params.Set("id_token_hint", f1.idToken.raw)
	f2 := t.flow(req2, useragent.Interaction{Remember: true})
	t.expectSilent(f2, "prompt=none with id_token_hint")
	t.sameSession(f1, f2)
}
