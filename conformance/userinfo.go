package conformance

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// callUserinfo calls the userinfo endpoint with an access token the way
// the OIDCCUserInfo* modules do: "get" (bearer header), "post-header"
// (POST, bearer header) or "post-body" (POST, access_token in the body).
func (t *T) callUserinfo(accessToken, how string) (int, http.Header, []byte) {
	if t.r.meta.UserinfoEndpoint == "" {
		t.Fatal("CheckDiscEndpointUserinfoEndpoint", "the provider publishes no userinfo_endpoint")
	}
	var req *http.Request
	var err error
	switch how {
	case "get":
		req, err = http.NewRequestWithContext(t.ctx, http.MethodGet, t.r.meta.UserinfoEndpoint, nil)
	case "post-header":
		req, err = http.NewRequestWithContext(t.ctx, http.MethodPost, t.r.meta.UserinfoEndpoint, nil)
	case "post-body":
		body := url.Values{"access_token": {accessToken}}.Encode()
		req, err = http.NewRequestWithContext(t.ctx, http.MethodPost, t.r.meta.UserinfoEndpoint, strings.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	if err != nil {
		t.Fatal("CallProtectedResource", "%v", err)
	}
	if how != "post-body" {
		req.Header.Set("Authorization", "Bearer "+accessToken)
	}
	status, header, body, err := t.r.do(req)
	if err != nil {
		t.Fatal("CallProtectedResource", "%v", err)
	}
	return status, header, body
}

// expectUserinfo calls userinfo and runs AbstractOIDCCUserInfoTest's
// checks: 200, JSON, sub present and equal to the ID token's, standard
// claim types.
func (t *T) expectUserinfo(accessToken, how string, idt *idToken) claims {
	status, header, body := t.callUserinfo(accessToken, how)
	if status != http.StatusOK {
		t.Fatal("EnsureHttpStatusCodeIs200", "userinfo (%s) answered %d: %.200s", how, status, body)
	}
	if t.signedUserinfo {
		return t.expectSignedUserinfo(header, body, idt)
	}
	t.checkJSON("EnsureContentTypeJson", header)
	var c claims
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal("EnsureContentTypeJson", "userinfo is not a JSON object: %v", err)
	}
	t.checkUserinfoClaims(c, idt)
	return c
}

// checkUserinfoClaims checks what every userinfo answer holds, signed or
// not: a sub, the same as the ID token's, and well-formed standard claims.
func (t *T) checkUserinfoClaims(c claims, idt *idToken) {
	t.Check(c.str("sub") != "", "EnsureUserInfoContainsSub", "userinfo has no sub")
	if idt != nil {
		t.Check(c.str("sub") == idt.claims.str("sub"), "VerifyUserInfoAndIdTokenSameSub",
			"userinfo sub %q differs from the ID token's %q", c.str("sub"), idt.claims.str("sub"))
	}
	t.checkStandardClaims("ValidateUserInfoStandardClaims", "userinfo", c)
}
