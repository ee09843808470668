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

	"github.com/latchkey-oidc/latchkey/conformance/useragent"
)

// The modules of the dynamic plan (OIDCCDynamicTestPlan) and the dynamic-only
// modules of the basic, implicit and hybrid plans. Each registers its own
// client (dynamic.go).

// algsSupported returns a discovery list of algorithms.
func (t *T) algsSupported(name string) []string {
	list, _ := t.stringList(t.r.rawMeta, name)
	return list
}

// moduleIDTokenSignature is OIDCCIdTokenSignature: a client registered
// without id_token_signed_response_alg gets an RS256 ID token with a kid.
func moduleIDTokenSignature(t *T) {
	f := t.flow(t.newAuthRequest(), useragent.Interaction{Remember: true})
	t.checkIDTokenAlg(f, "RS256", "EnsureIdTokenSignatureIsRS256")
}

// moduleIDTokenRS256 is OIDCCIdTokenRS256: id_token_signed_response_alg
// RS256 registered; every ID token must be RS256 with a kid.
func moduleIDTokenRS256(t *T) {
	reg := t.newRegistration()
	reg.meta["id_token_signed_response_alg"] = "RS256"
	t.useRegistered(reg)
	f := t.flow(t.newAuthRequest(), useragent.Interaction{Remember: true})
	t.checkIDTokenAlg(f, "RS256", "CheckIdTokenSignatureAlgorithm")
}

// checkIDTokenAlg checks the algorithm and kid of a flow's ID tokens.
func (t *T) checkIDTokenAlg(f *flowResult, alg, condition string) {
	for _, tok := range []*idToken{f.front.idToken, f.idToken} {
		if tok == nil {
			continue
		}
		t.Check(tok.alg == alg, condition, "the ID token is signed with %s, want %s", tok.alg, alg)
		t.Check(tok.kid != "", "EnsureIdTokenContainsKid", "the ID token's header has no kid (OIDCC-10.1)")
	}
}

// moduleIDTokenUnsigned is OIDCCIdTokenUnsigned (code flows): a client
// registered with id_token_signed_response_alg none gets an unsigned ID
// token from the token endpoint. Skipped when discovery does not list none.
func moduleIDTokenUnsigned(t *T) {
	if !slices.Contains(t.algsSupported("id_token_signing_alg_values_supported"), "none") {
		t.Skip("id_token_signing_alg_values_supported lacks none")
	}
	reg := t.newRegistration()
	reg.meta["id_token_signed_response_alg"] = "none"
	t.useRegistered(reg)
	t.unsignedIDTokens = true
	f := t.flow(t.newAuthRequest(), useragent.Interaction{Remember: true})
	t.Check(f.idToken.alg == "none", "CheckIdTokenSignatureAlgorithm", "the ID token is signed with %s, want none", f.idToken.alg)
}

// moduleUserinfoRS256 is OIDCCUserInfoRS256: userinfo_signed_response_alg
// RS256 registered; userinfo must answer an RS256 JWT signed with a
// published key, without a nonce.
func moduleUserinfoRS256(t *T) {
	t.Check(slices.Contains(t.algsSupported("userinfo_signing_alg_values_supported"), "RS256"),
		"CheckDiscEndpointUserinfoSigningAlgValuesSupportedContainsRS256", "userinfo_signing_alg_values_supported lacks RS256")
	reg := t.newRegistration()
	reg.meta["userinfo_signed_response_alg"] = "RS256"
	t.useRegistered(reg)
	t.signedUserinfo = true
	f := t.flow(t.newAuthRequest(), useragent.Interaction{Remember: true})
	if f.accessToken == "" {
		t.Skip("the response type %s gives no access token to call userinfo with", t.v.ResponseType)
	}
}

// expectSignedUserinfo checks a signed userinfo answer (OIDCCUserInfoRS256's
// extractUserInfoResponse) and returns its claims.
func (t *T) expectSignedUserinfo(header http.Header, body []byte, idt *idToken) claims {
	mt, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	t.Check(mt == "application/jwt", "EnsureContentTypeApplicationJwt", "Content-Type %q, want application/jwt", header.Get("Content-Type"))
	h, payload := t.verifyJWS(string(body), "ValidateUserInfoResponseSignature", "the userinfo JWT")
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal("ExtractSignedUserInfoFromUserInfoEndpointResponse", "the userinfo JWT's payload is not a JSON object: %v", err)
	}
	t.Check(h.Algorithm == "RS256", "ValidateUserInfoSigningAlgIsRS256", "the userinfo JWT is signed with %s", h.Algorithm)
	if c.str("iss") != t.r.meta.Issuer || !slices.Contains(c.audience(), t.client().ID) {
		t.Warn("ValidateSignedUserInfoResponseStandardJWTClaims", "iss %v, aud %v: want the issuer and the client", c["iss"], c["aud"])
	}
	_, hasNonce := c["nonce"]
	t.Check(!hasNonce, "EnsureUserInfoDoesNotContainNonce", "the signed userinfo has a nonce")
	t.checkUserinfoClaims(c, idt)
	return c
}

// moduleRedirectURIMissing is OIDCCEnsureRedirectUriInAuthorizationRequest:
// a client with two redirect URIs sends none; the provider must show an
// error page, or answer with invalid_request (or invalid_request_object).
func moduleRedirectURIMissing(t *T) {
	reg := t.newRegistration()
	reg.meta["redirect_uris"] = []string{dynamicRedirectURI, dynamicRedirectURI + "2"}
	t.useRegistered(reg)
	req := t.newAuthRequest()
	req.params.Del("redirect_uri")
	res := t.send(req, useragent.Interaction{Remember: true})
	if res.where == "" {
		return // an error page
	}
	t.Check(res.params.Get("state") == req.state, "CheckStateInAuthorizationResponse", "state %q, want %q", res.params.Get("state"), req.state)
	e := res.params.Get("error")
	t.Check(e != "", "EnsureErrorFromAuthorizationEndpointResponse", "the provider answered %s without an error", res.target)
	t.Check(e == "invalid_request" || e == "invalid_request_object", "CheckErrorFromAuthorizationEndpointErrorInvalidRequestOrInvalidRequestObject",
		"error %q, want invalid_request", e)
}

// queryRedirectURI is the registered redirect URI with a query
// (AddQueryToRedirectUri).
const queryRedirectURI = dynamicRedirectURI + "?foo=bar"

// moduleRedirectURIQuery is OIDCCRedirectUriQueryOK, -Mismatch and -Added:
// the client registers a redirect URI with a query. Sent as registered,
// the flow must succeed and keep the query; with another query, or any
// query added to a redirect URI registered without one, the provider must
// show an error page and never redirect.
func moduleRedirectURIQuery(t *T, variant string) {
	reg := t.newRegistration()
	sent := queryRedirectURI
	switch variant {
	case "ok", "mismatch":
		reg.meta["redirect_uris"] = []string{queryRedirectURI}
		if variant == "mismatch" {
			sent = dynamicRedirectURI + "?foo=baz" // ReplaceRedirectUriQueryInAuthorizationRequest
		}
	case "added":
		sent = dynamicRedirectURI + "?foo=bar" // AddQueryToRedirectUri on the request only
	}
	c := t.useRegistered(reg)
	c.RedirectURI = sent
	req := t.authRequestFor(c)
	res := t.send(req, useragent.Interaction{Remember: true})
	if variant != "ok" {
		if res.where != "" {
			t.Fatal("ExpectRedirectUriErrorPage", "the provider redirected to %s for the unregistered redirect_uri %s", res.target, sent)
		}
		return
	}
	// A query of the registered URI stays (RFC 6749 §3.1.2) beside the
	// response's parameters.
	if res.where != "" && res.page.Redirect {
		t.Check(res.page.URL.Query().Get("foo") == "bar", "CheckRedirectUriQuery",
			"the redirect to %s lost the registered query foo=bar", res.target)
		res.target += "?foo=bar"
		res.params.Del("foo")
	}
	t.finish(req, res)
}

// moduleRedirectURIRegFrag is OIDCCRedirectUriRegFrag: registering a
// redirect URI with a fragment must fail with 400 and a JSON error;
// another error code than invalid_redirect_uri or invalid_client_metadata
// only warns.
func moduleRedirectURIRegFrag(t *T) {
	reg := t.newRegistration()
	reg.meta["redirect_uris"] = []string{dynamicRedirectURI + "#foobar"}
	t.expectRegistrationRefused(reg, "invalid_redirect_uri", "invalid_client_metadata")
}

// expectRegistrationRefused checks that a registration is refused with 400,
// JSON and one of the error codes (the code only warns).
func (t *T) expectRegistrationRefused(reg *registration, codes ...string) {
	status, header, body := t.callRegistration(reg.meta)
	if status == http.StatusCreated {
		if uri, tok := body.str("registration_client_uri"), body.str("registration_access_token"); uri != "" {
			t.unregister(uri, tok)
		}
	}
	t.checkJSON("EnsureContentTypeJson", header)
	t.Check(status == http.StatusBadRequest, "EnsureHttpStatusCodeIs400", "the registration endpoint answered %d", status)
	if e := body.str("error"); !slices.Contains(codes, e) {
		t.Warn("CheckErrorFromDynamicRegistrationEndpoint", "error %q, want one of %v", e, codes)
	}
}

// moduleRegistrationURI is OIDCCRegistrationLogoUri, -PolicyUri and
// -TosUri: the client registers the URI; the flow must succeed, and the
// login app's pages must show it (the suite asks for a screenshot of the
// sign-in or consent page showing it).
func moduleRegistrationURI(t *T, field string) {
	reg := t.newRegistration()
	u := "https://rp.dynamic.conformance.invalid/" + strings.TrimSuffix(field, "_uri") + "-" + random()
	if field == "logo_uri" {
		u += ".png"
	}
	reg.meta[field] = u
	t.useRegistered(reg)
	shown := false
	in := useragent.Interaction{Remember: true, Look: func(p *useragent.Page) {
		shown = shown || p.Has(u)
	}}
	t.flow(t.newAuthRequest(), in)
	t.Check(shown, "ExpectLoginPageWith"+map[string]string{"logo_uri": "Logo", "policy_uri": "PolicyUri", "tos_uri": "TosUri"}[field],
		"no page of the sign-in showed the registered %s %s", field, u)
}

// moduleRegistrationJWKSURI is OIDCCRegistrationJwksUri: the client's keys
// by jwks_uri; a private_key_jwt flow must succeed.
func moduleRegistrationJWKSURI(t *T) {
	reg := t.newRegistration()
	t.keysByReference(reg)
	t.useRegistered(reg)
	t.flow(t.newAuthRequest(), useragent.Interaction{Remember: true})
}

// skipUnlessPairwise skips when discovery does not list pairwise.
func (t *T) skipUnlessPairwise() {
	if list, _ := t.stringList(t.r.rawMeta, "subject_types_supported"); !slices.Contains(list, "pairwise") {
		t.Skip("subject_types_supported %v lacks pairwise", list)
	}
}

// moduleRegistrationSectorURI is OIDCCRegistrationSectorUri: a pairwise
// client with a sector_identifier_uri listing its redirect URI registers,
// and its flow succeeds.
func moduleRegistrationSectorURI(t *T) {
	t.skipUnlessPairwise()
	reg := t.newRegistration()
	_, u := t.publish("application/json", mustJSON([]string{dynamicRedirectURI}))
	reg.meta["subject_type"], reg.meta["sector_identifier_uri"] = "pairwise", u
	t.useRegistered(reg)
	t.flow(t.newAuthRequest(), useragent.Interaction{Remember: true})
}

// moduleRegistrationSectorBad is OIDCCRegistrationSectorBad: the
// sector_identifier_uri lists other redirect URIs; registration must fail
// with 400 (invalid_client_metadata, else a warning).
func moduleRegistrationSectorBad(t *T) {
	t.skipUnlessPairwise()
	reg := t.newRegistration()
	_, u := t.publish("application/json", mustJSON([]string{"https://other1.conformance.invalid/cb", "https://other2.conformance.invalid/cb"}))
	reg.meta["subject_type"], reg.meta["sector_identifier_uri"] = "pairwise", u
	t.expectRegistrationRefused(reg, "invalid_client_metadata")
}

// moduleServerRotateKeys is OIDCCServerRotateKeys: the JWKS before and
// after the operator rotates the signing keys must have a new signing key
// (FAILURE) and should still have the old ones (WARNING). The runner
// rotates through the configured hook.
func moduleServerRotateKeys(t *T) {
	hook := t.r.cfg.RotateKeys
	if hook == nil {
		t.Skip("the configuration has no rotate_keys hook, so the operator's key rotation cannot be triggered")
	}
	before, err := t.r.jwks(t.ctx, true)
	if err != nil {
		t.Fatal("FetchServerKeys", "%v", err)
	}
	req, err := http.NewRequestWithContext(t.ctx, http.MethodPost, hook.URL, nil)
	if err != nil {
		t.Fatal("TellUserToRotateOpKeys", "%v", err)
	}
	req.Header.Set("Authorization", "Bearer "+hook.Token)
	status, _, body, err := t.r.do(req)
	if err != nil || status/100 != 2 {
		t.Fatal("TellUserToRotateOpKeys", "the rotation hook answered %d (%v): %.200s", status, err, body)
	}
	after, err := t.r.jwks(t.ctx, true)
	if err != nil {
		t.Fatal("FetchServerKeys", "%v", err)
	}
	signing := func(set *jose.JSONWebKeySet) map[string]bool {
		out := map[string]bool{}
		for _, k := range set.Keys {
			if k.Use != "enc" {
				t.Check(k.KeyID != "", "CheckForKeyIdInServerJWKs", "a signing key has no kid")
				t.Check(k.IsPublic(), "EnsureServerJwksDoesNotContainPrivateOrSymmetricKeys", "key %q is not a public key", k.KeyID)
				out[k.KeyID] = true
			}
		}
		return out
	}
	old, fresh := signing(before), signing(after)
	added := false
	for kid := range fresh {
		added = added || !old[kid]
	}
	t.Check(added, "VerifyNewJwksHasNewSigningKey", "the JWKS has no new signing key after the rotation")
	for kid := range old {
		if !fresh[kid] {
			t.Warn("VerifyNewJwksStillHasOldSigningKey", "the old signing key %q is gone from the JWKS", kid)
		}
	}
}

// moduleRefreshTokenRPKeyRotation is OIDCCRefreshTokenRPKeyRotation: a
// client with keys at jwks_uri and the refresh_token grant gets a refresh
// token, replaces its key with a new one (new kid), waits a minute as the
// suite does, and refreshes with an assertion signed by the new key.
func moduleRefreshTokenRPKeyRotation(t *T) {
	reg := t.newRegistration()
	reg.addGrant("refresh_token")
	path := t.keysByReference(reg)
	c := t.useRegistered(reg)
	req := t.newAuthRequest()
	req.params.Set("scope", "openid offline_access")
	req.params.Set("prompt", "consent")
	f := t.flow(req, useragent.Interaction{Remember: true})
	rt := f.tokens.refreshToken
	if rt == "" {
		t.Fatal("ExtractRefreshTokenFromTokenResponse", "no refresh token for scope offline_access")
	}
	checkTokenChars(t, "EnsureRefreshTokenContainsAllowedCharactersOnly", rt)
	c.dynamic.key = newClientKey()
	t.r.rp.publish(path, "application/json", mustJSON(publicSet(c.dynamic.key)))
	t.sleep(rpKeyRotationWait)
	tr := t.tokenRequest(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	refreshed := t.expectTokens(c, tr, anyNonce, false)
	if refreshed.idToken != nil {
		t.compareRefreshedIDToken(f.idToken, refreshed.idToken)
	}
	t.expectUserinfo(refreshed.accessToken, "get", f.idToken)
}

// rpKeyRotationWait is WaitFor60Seconds: the suite waits so that a limit
// on how often a jwks_uri is fetched does not apply.
const rpKeyRotationWait = time.Minute

// moduleRequestURI is OIDCCRequestUriUnsigned and
// OIDCCRequestUriSignedRS256: the request by reference, at a request_uri
// the client registered; unsigned, or signed RS256 with the client's key
// (request_object_signing_alg RS256 registered). The flow must succeed.
func moduleRequestURI(t *T, signed bool) {
	if v, ok := t.r.rawMeta["request_uri_parameter_supported"].(bool); !ok || !v {
		t.Fail("CheckDiscEndpointRequestUriParameterSupported", "request_uri_parameter_supported is %v", t.r.rawMeta["request_uri_parameter_supported"])
	}
	reg := t.newRegistration()
	if signed {
		t.Check(slices.Contains(t.r.meta.RequestObjectAlgs, "RS256"), "CheckDiscEndpointRequestObjectSigningAlgValuesSupportedContainsRS256",
			"request_object_signing_alg_values_supported %v lacks RS256", t.r.meta.RequestObjectAlgs)
		reg.meta["request_object_signing_alg"] = "RS256"
	}
	path, u := t.reserveRequestURI(reg)
	t.useRegistered(reg)
	req := t.newAuthRequest()
	t.requestObjectByReference(req, path, u, signed)
	t.flow(req, useragent.Interaction{Remember: true})
}

// moduleRequestURIUnsignedOrRejected is
// OIDCCRequestUriUnsignedSupportedCorrectlyOrRejectedAsUnsupported: like
// the unsigned request_uri module, but request_uri_not_supported skips.
func moduleRequestURIUnsignedOrRejected(t *T) {
	t.skipUnlessUnsignedRequestObjects()
	reg := t.newRegistration()
	path, u := t.reserveRequestURI(reg)
	t.useRegistered(reg)
	req := t.newAuthRequest()
	t.requestObjectByReference(req, path, u, false)
	res := t.send(req, useragent.Interaction{Remember: true})
	if res.where != "" && res.params.Get("error") == "request_uri_not_supported" {
		t.Skip("the provider answered request_uri_not_supported")
	}
	t.finish(req, res)
}

// moduleClientAssertionIssAud is OIDCCEnsureClientAssertionWithIssAudSucceeds:
// the client assertion's aud is the issuer instead of the token endpoint.
// The token endpoint should accept it; a well-formed invalid_client
// refusal only warns.
func moduleClientAssertionIssAud(t *T) {
	c := t.client()
	c.dynamic.assertionAud = t.r.meta.Issuer
	req := t.newAuthRequest()
	res := t.send(req, useragent.Interaction{Remember: true})
	f := t.expectSuccess(req, res)
	if f.code == "" {
		return
	}
	tr := t.redeem(c, f.code, nil)
	if e := tr.body.str("error"); e != "" {
		t.Warn("CheckIfTokenEndpointResponseError", "the token endpoint refused an assertion with aud = issuer: %s", e)
		t.checkJSON("CheckTokenEndpointReturnedJsonContentType", tr.header)
		t.Check(tr.status == http.StatusBadRequest || tr.status == http.StatusUnauthorized,
			"CheckTokenEndpointHttpStatusIs400Allowing401ForInvalidClientError", "status %d", tr.status)
		t.Check(e == "invalid_client", "CheckErrorFromTokenEndpointResponseErrorInvalidClient", "error %q, want invalid_client", e)
		return
	}
	tok := t.expectTokens(c, tr, req.nonce, true)
	if f.idToken != nil {
		t.Check(f.idToken.claims.str("sub") == tok.idToken.claims.str("sub"), "VerifyIdTokenSubConsistentHybridFlow",
			"the front ID token's sub differs from the token endpoint's")
	}
}
