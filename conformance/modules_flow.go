package conformance

import (
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/latchkey-oidc/latchkey/conformance/useragent"
)

// moduleServer is OIDCCServerTest: the standard flow, plus the
// authorization code's length and entropy; claims nobody asked for in the
// ID token only warn.
func moduleServer(t *T) {
	f := t.flow(t.newAuthRequest(), useragent.Interaction{Remember: true})
	if code := f.front.code; code != "" {
		t.Check(len(code)*6 >= 128 || entropyBits(code) >= 128, "EnsureMinimumAuthorizationCodeLength",
			"the code has %d characters, too short for 128 bits", len(code))
		t.Check(entropyBits(code) >= 96, "EnsureMinimumAuthorizationCodeEntropy",
			"the code's estimated entropy is %.0f bits, want at least 96", entropyBits(code))
	}
	if _, ok := f.idToken.claims["name"]; ok {
		t.Warn("EnsureIdTokenDoesNotContainName", "the ID token has name though only openid was requested")
	}
	for _, c := range []string{"email", "address", "phone_number", "given_name", "family_name"} {
		if _, ok := f.idToken.claims[c]; ok {
			t.Warn("EnsureIdTokenDoesNotContainNonRequestedClaims", "the ID token has %s though only openid was requested", c)
		}
	}
}

// entropyBits estimates a string's entropy as the suite does: the Shannon
// entropy of its characters times its length.
func entropyBits(s string) float64 {
	counts := map[rune]int{}
	n := 0
	for _, r := range s {
		counts[r]++
		n++
	}
	var h float64
	for _, c := range counts {
		p := float64(c) / float64(n)
		h -= p * math.Log2(p)
	}
	return h * float64(n)
}

// moduleResponseTypeMissing is OIDCCResponseTypeMissing: no
// response_type. An error page passes (the suite asks for a screenshot);
// a redirect must carry invalid_request or unsupported_response_type.
func moduleResponseTypeMissing(t *T) {
	req := t.newAuthRequest()
	req.params.Del("response_type")
	res := t.send(req, useragent.Interaction{Remember: true})
	if res.where == "" {
		return
	}
	e := t.expectError(req, res)
	t.Check(e == "invalid_request" || e == "unsupported_response_type",
		"CheckErrorFromAuthorizationEndpointErrorInvalidRequestOrUnsupportedResponseType", "error %q", e)
}

// moduleUserinfo is OIDCCUserInfoGet / PostHeader / PostBody. For the
// body, a refusal only warns (UserInfoEndpointWithAccessTokenInBodyNotSupported).
func moduleUserinfo(t *T, how string) {
	f := t.flow(t.newAuthRequest(), useragent.Interaction{Remember: true})
	if how == "post-body" {
		if status, _, _ := t.callUserinfo(f.accessToken, how); status < 200 || status > 299 {
			t.Warn("UserInfoEndpointWithAccessTokenInBodyNotSupported", "userinfo answered %d to an access token in the body", status)
			return
		}
	}
	t.expectUserinfo(f.accessToken, how, f.idToken)
}

// moduleNoNonceSucceeds is OIDCCEnsureRequestWithoutNonceSucceedsForCodeFlow:
// the authorization step alone must succeed without a nonce.
func moduleNoNonceSucceeds(t *T) {
	req := t.newAuthRequest().withoutNonce()
	t.expectSuccess(req, t.send(req, useragent.Interaction{Remember: true}))
}

// moduleNoNonceFails is OIDCCEnsureRequestWithoutNonceFails: a response
// type that returns an ID token from the authorization endpoint needs a
// nonce; an error page or invalid_request passes.
func moduleNoNonceFails(t *T) {
	req := t.newAuthRequest().withoutNonce()
	res := t.send(req, useragent.Interaction{Remember: true})
	if res.where == "" {
		return
	}
	if e := t.expectError(req, res); e != "invalid_request" {
		t.Fail("CheckErrorFromAuthorizationEndpointErrorInvalidRequest", "error %q, want invalid_request", e)
	}
}

// scopeClaims are the claims each scope asks for (OpenID Connect Core §5.4).
// The provider has the same table; the runner restates the spec on
// purpose, so that a mistake in the provider's table cannot pass its own
// test.
var scopeClaims = map[string][]string{
	"profile": {"name", "family_name", "given_name", "middle_name", "nickname", "preferred_username",
		"profile", "picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at"},
	"email":   {"email", "email_verified"},
	"address": {"address"},
	"phone":   {"phone_number", "phone_number_verified"},
}

// moduleScope is OIDCCScopeProfile ... OIDCCScopeAll: the claims of the
// scopes are returned from userinfo, or in the ID token when no access
// token is issued; missing claims only warn.
func moduleScope(t *T, scopes ...string) {
	for _, s := range scopes {
		if !slices.Contains(t.r.meta.ScopesSupported, s) {
			t.Skip("scopes_supported lacks %s (OIDCCCheckScopesSupportedContainScopeTest)", s)
		}
	}
	req := t.newAuthRequest()
	req.params.Set("scope", "openid "+strings.Join(scopes, " "))
	t.checkScopeClaims(t.flow(req, useragent.Interaction{Remember: true}), scopes)
}

// checkScopeClaims warns about scopes none of whose claims came back.
func (t *T) checkScopeClaims(f *flowResult, scopes []string) {
	got, where := f.userinfo, "userinfo"
	if f.accessToken == "" {
		got, where = f.idToken.claims, "ID token"
	}
	for _, s := range scopes {
		found := false
		for _, c := range scopeClaims[s] {
			if _, ok := got[c]; ok {
				found = true
			}
		}
		if !found {
			t.Warn("VerifyScopesReturnedIn"+map[string]string{"userinfo": "UserInfoClaims", "ID token": "AuthorizationEndpointIdToken"}[where],
				"no claim of scope %s in the %s", s, where)
		}
	}
	if slices.Contains(scopes, "email") && len(scopes) == 1 {
		if _, ok := got["name"]; ok {
			t.Warn("EnsureUserInfoDoesNotContainName", "the %s has name though only email was requested", where)
		}
		if _, ok := f.idToken.claims["email"]; ok && f.accessToken != "" {
			t.Warn("EnsureIdTokenDoesNotContainEmailForScopeEmail", "the ID token has email though an access token was issued")
		}
	}
}

// moduleAlternateHappyFlow is OIDCCAlternateHappyFlow: scope email with
// the scope values reversed and the parameters in another order.
func moduleAlternateHappyFlow(t *T) {
	req := t.newAuthRequest()
	req.params.Set("scope", "email openid")
	// url.Values.Encode sorts the names; send them in reverse order.
	keys := make([]string, 0, len(req.params))
	for k := range req.params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	slices.Reverse(keys)
	pairs := make([]string, len(keys))
	for i, k := range keys {
		pairs[i] = url.QueryEscape(k) + "=" + url.QueryEscape(req.params.Get(k))
	}
	req.rawQuery = strings.Join(pairs, "&")
	t.checkScopeClaims(t.flow(req, useragent.Interaction{Remember: true}), []string{"email"})
}

// moduleWithParam runs the standard flow with one more parameter, which
// must not cause an error (OIDCCDisplayPage, OIDCCDisplayPopup,
// OIDCCUiLocales, OIDCCClaimsLocales, the unknown-parameter module).
func moduleWithParam(t *T, name, value string) {
	req := t.newAuthRequest()
	req.params.Set(name, value)
	t.flow(req, useragent.Interaction{Remember: true})
}

// moduleLoginHint is OIDCCLoginHint: login_hint (the suite's default is
// buffy@ the issuer's host) must not cause an error.
func moduleLoginHint(t *T) {
	host := strings.TrimPrefix(strings.TrimPrefix(t.r.meta.Issuer, "https://"), "http://")
	if i := strings.IndexAny(host, ":/"); i >= 0 {
		host = host[:i]
	}
	moduleWithParam(t, "login_hint", "buffy@"+host)
}

// moduleAcrValues is OIDCCEnsureRequestWithAcrValuesSucceeds: acr_values
// from acr_values_supported (or "1 2"); an acr outside them only warns.
func moduleAcrValues(t *T) {
	values := t.r.meta.AcrValues
	if len(values) == 0 {
		values = []string{"1", "2"}
	}
	req := t.newAuthRequest()
	req.params.Set("acr_values", strings.Join(values, " "))
	f := t.flow(req, useragent.Interaction{Remember: true})
	if acr := f.idToken.claims.str("acr"); !slices.Contains(values, acr) {
		t.Warn("ValidateIdTokenACRClaimAgainstAcrValuesRequest", "acr %q is not among the requested %v", acr, values)
	}
}

// moduleCodeReuse is OIDCCAuthCodeReuse and OIDCCAuthCodeReuseAfter30Seconds:
// the code is redeemed again (after wait). Immediately, a success only
// warns; after 30 seconds it fails, and the first access token should
// then be revoked (a warning).
func moduleCodeReuse(t *T, wait time.Duration) {
	req := t.newAuthRequest()
	f := t.flow(req, useragent.Interaction{Remember: true})
	if wait > 0 {
		t.sleep(wait)
	}
	tr := t.redeem(req.client, f.front.code, nil)
	if tr.status == http.StatusOK && wait == 0 {
		t.Warn("ServerAllowedReusingAuthorizationCode", "the code was redeemed twice")
		return
	}
	t.Check(tr.status == http.StatusBadRequest, "CheckTokenEndpointHttpStatus400", "status %d for a used code", tr.status)
	t.checkJSON("CheckTokenEndpointReturnedJsonContentType", tr.header)
	t.Check(tr.body.str("error") == "invalid_grant", "CheckErrorFromTokenEndpointResponseErrorInvalidGrant", "error %v, want invalid_grant", tr.body["error"])
	_, hasURI := tr.body["error_uri"]
	t.checkErrorFields("TokenEndpointResponseError", tr.body.str("error_description"), tr.body.str("error_uri"), hasURI)
	if wait > 0 {
		if status, _, _ := t.callUserinfo(f.accessToken, "get"); status < 400 || status > 499 {
			t.Warn("EnsureHttpStatusCodeIs4xx", "userinfo still accepts the access token of a reused code (status %d; RFC 6749 §4.1.2 says it should be revoked)", status)
		}
	}
}

// moduleRegisteredRedirectURI is OIDCCEnsureRegisteredRedirectUri: a
// redirect_uri the client did not register must get an error page; a
// redirect to it or to the registered one fails.
func moduleRegisteredRedirectURI(t *T) {
	req := t.newAuthRequest()
	bad := req.client.RedirectURI + random()
	req.params.Set("redirect_uri", bad)
	res := t.send(req, useragent.Interaction{Remember: true})
	if res.where != "" {
		t.Fail("ExpectRedirectUriErrorPage", "the provider answered the client at %s instead of showing an error page", res.target)
	}
}

// modulePostRequest is OIDCCEnsurePostRequestSucceeds: the authorization
// request as a form POST.
func modulePostRequest(t *T) {
	req := t.newAuthRequest()
	req.post = true
	t.flow(req, useragent.Interaction{Remember: true})
}

// modulePKCE is OIDCCEnsureRequestWithValidPkceSucceeds: S256 challenge
// and verifier.
func modulePKCE(t *T) {
	req := t.newAuthRequest()
	req.verifier = random() + random()
	req.params.Set("code_challenge", s256(req.verifier))
	req.params.Set("code_challenge_method", "S256")
	t.flow(req, useragent.Interaction{Remember: true})
}

// moduleClaimsEssential is OIDCCClaimsEssential: name requested as an
// essential userinfo claim (in the ID token for response_type=id_token);
// a missing name only warns.
func moduleClaimsEssential(t *T) {
	req := t.newAuthRequest()
	target := "userinfo"
	if t.v.ResponseType == "id_token" {
		target = "id_token"
	}
	req.params.Set("claims", `{"`+target+`":{"name":{"essential":true}}}`)
	f := t.flow(req, useragent.Interaction{Remember: true})
	got := f.userinfo
	if target == "id_token" {
		got = f.idToken.claims
	} else if _, ok := f.idToken.claims["name"]; ok {
		t.Warn("EnsureIdTokenDoesNotContainName", "name is in the ID token though it was requested for userinfo")
	}
	if _, ok := got["name"]; !ok {
		t.Warn("EnsureUserInfoContainsName", "the essential claim name is missing from the %s", target)
	}
}

// sleep waits as the suite's WaitFor* conditions do.
func (t *T) sleep(d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.ctx.Done():
		t.Fatal("Runner", "cancelled: %v", t.ctx.Err())
	case <-timer.C:
	}
}

// moduleRefreshToken is OIDCCRefreshToken: a flow with offline_access
// (and prompt=consent) when advertised, a refresh with the same scope a
// second later, then the first client presents a second client's refresh
// token, which must fail with invalid_grant. No refresh token skips.
func moduleRefreshToken(t *T) {
	// A registered client asks for the refresh_token grant
	// (AddRefreshTokenGrantTypeToDynamicRegistrationRequest).
	withRefresh := func() *registration {
		reg := t.newRegistration()
		reg.addGrant("refresh_token")
		return reg
	}
	if t.v.Dynamic {
		t.useRegistered(withRefresh())
	}
	req := t.newAuthRequest()
	if slices.Contains(t.r.meta.ScopesSupported, "offline_access") {
		req.params.Set("scope", "openid offline_access")
		if slices.Contains(t.r.meta.PromptValues, "consent") {
			req.params.Set("prompt", "consent")
		}
	}
	f := t.flow(req, useragent.Interaction{Remember: true})
	rt := f.tokens.refreshToken
	advertised := slices.Contains(t.r.meta.GrantTypes, "refresh_token")
	if rt == "" {
		if advertised {
			t.Warn("EnsureServerConfigurationDoesNotSupportRefreshToken", "refresh_token is in grant_types_supported, but no refresh token was issued")
		}
		t.Skip("the provider issued no refresh token")
	}
	if len(t.r.meta.GrantTypes) > 0 && !advertised {
		t.Warn("EnsureServerConfigurationSupportsRefreshToken", "a refresh token was issued, but grant_types_supported lacks refresh_token")
	}
	checkTokenChars(t, "EnsureRefreshTokenContainsAllowedCharactersOnly", rt)
	t.sleep(time.Second)
	tr := t.tokenRequest(req.client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {req.params.Get("scope")}})
	refreshed := t.expectTokens(req.client, tr, anyNonce, false)
	t.Check(entropyBits(refreshed.accessToken) >= 128, "EnsureMinimumAccessTokenEntropy",
		"the access token's estimated entropy is %.0f bits", entropyBits(refreshed.accessToken))
	if refreshed.refreshToken != "" {
		checkTokenChars(t, "EnsureRefreshTokenContainsAllowedCharactersOnly", refreshed.refreshToken)
		t.Check(entropyBits(refreshed.refreshToken) >= 128, "EnsureMinimumRefreshTokenEntropy",
			"the refresh token's estimated entropy is %.0f bits", entropyBits(refreshed.refreshToken))
	}
	if refreshed.idToken != nil {
		t.compareRefreshedIDToken(f.idToken, refreshed.idToken)
	}

	// The second client's refresh token is not the first client's to use.
	req2 := t.authRequestFor(t.client2(withRefresh))
	req2.params.Set("scope", req.params.Get("scope"))
	if p := req.params.Get("prompt"); p != "" {
		req2.params.Set("prompt", p)
	}
	f2 := t.flow(req2, useragent.Interaction{Remember: true})
	if f2.tokens.refreshToken == "" {
		t.Fatal("CheckForRefreshTokenValue", "the second client got no refresh token")
	}
	wrong := t.tokenRequest(req.client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {f2.tokens.refreshToken}})
	t.Check(wrong.status == http.StatusBadRequest, "CheckTokenEndpointHttpStatus400", "status %d for another client's refresh token", wrong.status)
	t.Check(wrong.body.str("error") == "invalid_grant", "CheckErrorFromTokenEndpointResponseErrorInvalidGrant",
		"error %v for another client's refresh token, want invalid_grant", wrong.body["error"])
}

// compareRefreshedIDToken applies OpenID Connect Core §12.2 to an ID
// token from a refresh (CompareIdTokenClaims).
func (t *T) compareRefreshedIDToken(old, fresh *idToken) {
	for _, c := range []string{"iss", "sub", "azp"} {
		t.Check(old.claims.str(c) == fresh.claims.str(c), "CompareIdTokenClaims", "%s changed from %q to %q", c, old.claims.str(c), fresh.claims.str(c))
	}
	t.Check(strings.Join(old.claims.audience(), " ") == strings.Join(fresh.claims.audience(), " "), "CompareIdTokenClaims",
		"aud changed from %v to %v", old.claims["aud"], fresh.claims["aud"])
	if a, ok := old.claims.time("auth_time"); ok {
		b, ok := fresh.claims.time("auth_time")
		t.Check(ok && a.Equal(b), "CompareIdTokenClaims", "auth_time changed from %s to %v", a, fresh.claims["auth_time"])
	}
	i1, _ := old.claims.time("iat")
	i2, _ := fresh.claims.time("iat")
	t.Check(!i2.Before(i1), "CompareIdTokenClaims", "the refreshed ID token's iat %s is before the original's %s", i2, i1)
}
