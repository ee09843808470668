package conformance

import (
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// The back- and front-channel logout plans: the client of the run (the
// plan's) registered a back-channel logout URI on the runner's
// relying-party server, or a front-channel logout URI, with
// *_session_required.

// backchannelEvent is the event a logout token carries (Back-Channel
// Logout 1.0 §2.4).
const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// moduleChannelDiscovery is OIDCCBackChannelLogoutDiscoveryEndpointVerification
// and its front-channel twin: both support flags true (session support is
// required for certification), end_session_endpoint present, https.
func moduleChannelDiscovery(t *T, channel string) {
	_, doc := t.fetchDiscovery()
	prefix := map[string]string{"backchannel": "Backchannel", "frontchannel": "Frontchannel"}[channel]
	for name, condition := range map[string]string{
		channel + "_logout_supported":         "CheckDiscEndpoint" + prefix + "LogoutSupported",
		channel + "_logout_session_supported": "CheckDiscEndpoint" + prefix + "LogoutSessionSupported",
	} {
		v, _ := doc[name].(bool)
		t.Check(v, condition, "%s is %v, want true", name, doc[name])
	}
	t.httpsURL(doc, "end_session_endpoint", "CheckDiscEndSessionEndpoint", true)
	for _, name := range []string{"authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"} {
		t.httpsURL(doc, name, "CheckDiscEndpointAllEndpointsAreHttps", false)
	}
}

// moduleBackchannelLogout is OIDCCBackChannelRpInitiatedLogout: sign in,
// log out at the end_session_endpoint, and the provider must POST a valid
// logout token for the session to the client's back-channel logout URI;
// the browser comes back with state, and the session is over.
func moduleBackchannelLogout(t *T) {
	c := t.client()
	if !t.r.rpServed {
		t.Skip("the runner has no relying-party listener (rp_listen) to receive back-channel logout requests")
	}
	idt := t.signedIn()
	sid := idt.claims.str("sid")
	t.Check(sid != "", "ExtractSidFromIdToken", "the ID token has no sid, which a client with backchannel_logout_session_required needs")
	state := random()
	res := t.endSession(url.Values{"id_token_hint": {idt.raw}, "post_logout_redirect_uri": {c.PostLogoutRedirectURI}, "state": {state}})
	t.expectPostLogoutRedirect(res, state)

	req, err := t.r.rp.waitBackchannel(t.ctx, func(r backchannelRequest) bool {
		tok := peekLogoutToken(r.form.Get("logout_token"))
		if tok == nil || !slices.Contains(tok.claims.audience(), c.ID) {
			return false
		}
		if s := tok.claims.str("sid"); s != "" {
			return s == sid
		}
		return tok.claims.str("sub") == idt.claims.str("sub")
	}, 30*time.Second)
	if err != nil {
		t.Fatal("ExtractLogoutTokenFromBackchannelLogoutRequest", "%v", err)
	}
	t.Check(req.method == http.MethodPost, "ExtractLogoutTokenFromBackchannelLogoutRequest", "method %s, want POST", req.method)
	mt, _, _ := mime.ParseMediaType(req.contentType)
	t.Check(mt == "application/x-www-form-urlencoded", "ExtractLogoutTokenFromBackchannelLogoutRequest", "Content-Type %q", req.contentType)
	lt := t.validateLogoutToken(req.form.Get("logout_token"), c.ID)
	if s := lt.claims.str("sid"); s != "" || sid != "" {
		t.Check(s == sid, "CheckIdTokenSidMatchesLogoutToken", "logout token sid %q, ID token sid %q", s, sid)
	}
	if s := lt.claims.str("sub"); s != "" {
		t.Check(s == idt.claims.str("sub"), "CheckIdTokenSubMatchesLogoutToken", "logout token sub %q, ID token sub %q", s, idt.claims.str("sub"))
	}
	t.expectLoggedOut()
}

// logoutToken is a verified logout token.
type logoutToken struct {
	typ    string
	claims claims
}

// peekLogoutToken decodes a logout token's claims without checking it,
// to find the one for a session among the requests received.
func peekLogoutToken(raw string) *logoutToken {
	jws, err := jose.ParseSigned(raw, signingAlgs)
	if err != nil {
		return nil
	}
	var c claims
	if json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c) != nil {
		return nil
	}
	return &logoutToken{claims: c}
}

// validateLogoutToken runs ValidateLogoutTokenSignature,
// ValidateLogoutTokenClaims, CheckLogoutTokenNoNonce and
// CheckLogoutTokenHasSubOrSid (Back-Channel Logout 1.0 §2.4, §2.6).
func (t *T) validateLogoutToken(raw, clientID string) *logoutToken {
	h, payload := t.verifyJWS(raw, "ValidateLogoutTokenSignature", "the logout token")
	lt := &logoutToken{}
	if typ, ok := h.ExtraHeaders[jose.HeaderType].(string); ok {
		lt.typ = typ
	}
	if err := json.Unmarshal(payload, &lt.claims); err != nil {
		t.Fatal("ValidateLogoutTokenClaims", "the logout token payload is not a JSON object: %v", err)
	}
	c := lt.claims
	now := time.Now()
	t.Check(c.str("iss") == t.r.meta.Issuer, "ValidateLogoutTokenClaims", "iss %q, want %q", c["iss"], t.r.meta.Issuer)
	t.Check(slices.Contains(c.audience(), clientID), "ValidateLogoutTokenClaims", "aud %v lacks %s", c["aud"], clientID)
	if iat, ok := c.time("iat"); t.Check(ok, "ValidateLogoutTokenClaims", "no numeric iat") {
		t.Check(iat.Before(now.Add(5*time.Minute)) && iat.After(now.Add(-5*time.Minute)), "ValidateLogoutTokenClaims", "iat %s is not recent", iat)
	}
	if exp, ok := c.time("exp"); t.Check(ok, "ValidateLogoutTokenClaims", "no numeric exp") {
		t.Check(exp.After(now.Add(-5*time.Minute)), "ValidateLogoutTokenClaims", "the logout token expired at %s", exp)
	}
	t.Check(c.str("jti") != "", "ValidateLogoutTokenClaims", "no jti")
	events, _ := c["events"].(map[string]any)
	_, isObject := events[backchannelEvent].(map[string]any)
	t.Check(isObject, "ValidateLogoutTokenClaims", "events %v lacks %s with an object value", c["events"], backchannelEvent)
	_, hasNonce := c["nonce"]
	t.Check(!hasNonce, "CheckLogoutTokenNoNonce", "the logout token has a nonce")
	t.Check(c.str("sub") != "" || c.str("sid") != "", "CheckLogoutTokenHasSubOrSid", "the logout token has neither sub nor sid")
	if lt.typ != "logout+jwt" {
		t.Warn("CheckLogoutTokenTyp", "typ header %q, the spec recommends logout+jwt", lt.typ)
	}
	return lt
}

// moduleFrontchannelLogout is OIDCCFrontChannelRpInitiatedLogout: after
// the logout the provider's page must load the client's
// frontchannel_logout_uri in an iframe with iss and sid, then send the
// browser to the post-logout redirect URI with state.
func moduleFrontchannelLogout(t *T) {
	c := t.client()
	if c.FrontchannelLogoutURI == "" {
		t.Skip("the frontchannel_client has no frontchannel_logout_uri in the configuration")
	}
	idt := t.signedIn()
	state := random()
	res := t.endSession(url.Values{"id_token_hint": {idt.raw}, "post_logout_redirect_uri": {c.PostLogoutRedirectURI}, "state": {state}})
	if res.where != "" {
		t.Fatal("ExpectFrontchannelLogoutIframe", "the provider redirected to %s without loading the frontchannel_logout_uri", res.target)
	}
	var frame *url.URL
	for _, f := range res.page.Frames() {
		if strings.HasPrefix(f, c.FrontchannelLogoutURI) {
			frame, _ = url.Parse(f)
		}
	}
	if frame == nil {
		t.Fatal("ExpectFrontchannelLogoutIframe", "the logout page has no iframe for %s: %s", c.FrontchannelLogoutURI, snippet(res.page))
	}
	q := frame.Query()
	t.Check(q.Get("iss") == t.r.meta.Issuer, "ValidateFrontchannelLogoutIss", "iss %q, want %q", q.Get("iss"), t.r.meta.Issuer)
	t.Check(q.Get("sid") != "" && q.Get("sid") == idt.claims.str("sid"), "CheckIdTokenSidMatchesFrontChannelLogoutRequest",
		"sid %q, ID token sid %q", q.Get("sid"), idt.claims.str("sid"))
	for k := range q {
		if k != "iss" && k != "sid" && !strings.Contains(c.FrontchannelLogoutURI, k+"=") {
			t.Warn("CheckForUnexpectedParametersInFrontchannelLogoutRequest", "unexpected parameter %s", k)
		}
	}
	// The page then continues to the client, by refresh or link.
	next := res.page.Refresh()
	if next == "" {
		for _, l := range res.page.Links() {
			if strings.HasPrefix(l, c.PostLogoutRedirectURI) {
				next = l
			}
		}
	}
	if next == "" {
		t.Fatal("ExpectRedirectToPostLogoutRedirectUri", "the logout page does not continue to the post_logout_redirect_uri")
	}
	page, err := t.ua.Navigate(t.ctx, next)
	if err != nil {
		t.Fatal("ExpectRedirectToPostLogoutRedirectUri", "%v", err)
	}
	t.expectPostLogoutRedirect(classify(page, res.seen, t.ua.Stop), state)
	t.expectLoggedOut()
}
