package conformance

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/latchkey-oidc/latchkey/conformance/useragent"
)

// configure runs the checks every flow module starts with
// (AbstractOIDCCServerTest.configure): the server metadata, its keys, and
// support for the variant's client authentication.
func (t *T) configure() {
	m := t.r.meta
	set, err := t.r.jwks(t.ctx, false)
	if err != nil {
		t.Fatal("FetchServerKeys", "%v", err)
	}
	kids := map[string]bool{}
	for _, k := range set.Keys {
		if k.Use == "enc" {
			continue
		}
		t.Check(k.KeyID != "", "CheckForKeyIdInServerJWKs", "a signing key in the JWKS has no kid (OIDCC-10.1)")
		t.Check(!kids[k.KeyID], "CheckDistinctKeyIdValueInServerJWKs", "kid %q appears twice in the JWKS (RFC 7517 §4.5)", k.KeyID)
		kids[k.KeyID] = true
		t.Check(k.IsPublic(), "CheckServerKeysIsValid", "key %q in the JWKS is not a public key", k.KeyID)
	}
	if len(m.TokenAuthMethods) > 0 {
		t.Check(slices.Contains(m.TokenAuthMethods, t.v.ClientAuth), "EnsureServerConfigurationSupports"+authName(t.v.ClientAuth),
			"token_endpoint_auth_methods_supported %v lacks %s", m.TokenAuthMethods, t.v.ClientAuth)
	} else {
		t.Check(t.v.ClientAuth == "client_secret_basic", "EnsureServerConfigurationSupportsClientSecretPost",
			"token_endpoint_auth_methods_supported is absent, which means client_secret_basic only")
	}
}

func authName(method string) string {
	switch method {
	case postAuth:
		return "ClientSecretPost"
	case privateKeyJWT:
		return "PrivateKeyJwt"
	}
	return "ClientSecretBasic"
}

// random returns an unguessable value for state and nonce.
func random() string {
	b := make([]byte, 18)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// authRequest is an authorization request being built.
type authRequest struct {
	client Client
	params url.Values
	// post sends it as a form POST to the authorization endpoint.
	post bool
	// verifier is the PKCE code_verifier sent with the code.
	verifier string
	// state and nonce are what the response must echo; they are in
	// params unless a request object carries them.
	state, nonce string
	// rawQuery, when set, is sent instead of params encoded (for a
	// parameter order of the module's choosing).
	rawQuery string
}

// withoutNonce drops the nonce from the request.
func (a *authRequest) withoutNonce() *authRequest {
	a.params.Del("nonce")
	a.nonce = ""
	return a
}

// newAuthRequest builds the suite's standard request
// (CreateAuthorizationRequestSteps): scope openid, random state and nonce,
// the variant's response type and mode.
func (t *T) newAuthRequest() *authRequest {
	return t.authRequestFor(t.client())
}

func (t *T) authRequestFor(c Client) *authRequest {
	q := url.Values{
		"client_id":     {c.ID},
		"redirect_uri":  {c.RedirectURI},
		"scope":         {"openid"},
		"state":         {random()},
		"nonce":         {random()},
		"response_type": {t.v.ResponseType},
	}
	if t.v.ResponseMode == "form_post" {
		q.Set("response_mode", "form_post")
	}
	return &authRequest{client: c, params: q, state: q.Get("state"), nonce: q.Get("nonce")}
}

// authResponse is how an authorization request ended in the browser.
type authResponse struct {
	// where is "query", "fragment" or "form_post" for a response to the
	// client, "" when the browser stopped at a page.
	where  string
	params url.Values
	// target is the URI the response went to, without query or fragment
	// (with the query for form_post's action).
	target string
	page   *useragent.Page
	seen   useragent.Seen
}

// send opens the request in the tester's browser and answers the login
// app's pages as in.
func (t *T) send(req *authRequest, in useragent.Interaction) *authResponse {
	return t.sendWith(t.ua, req, in)
}

func (t *T) sendWith(ua *useragent.Agent, req *authRequest, in useragent.Interaction) *authResponse {
	if in.User == nil {
		in.User = t.user
	}
	var err error
	switch {
	case req.post:
		_, err = ua.PostForm(t.ctx, t.r.meta.AuthorizationEndpoint, req.params)
	case req.rawQuery != "":
		_, err = ua.Get(t.ctx, t.r.meta.AuthorizationEndpoint+"?"+req.rawQuery)
	default:
		_, err = ua.Get(t.ctx, t.r.meta.AuthorizationEndpoint+"?"+req.params.Encode())
	}
	if err != nil {
		t.Fatal("CallAuthorizationEndpoint", "%v", err)
	}
	return t.walk(ua, in)
}

// walk answers the login app's pages from the browser's current page on
// and reads where the browser stopped.
func (t *T) walk(ua *useragent.Agent, in useragent.Interaction) *authResponse {
	page, seen, err := ua.Continue(t.ctx, in)
	if err != nil {
		t.Fatal("LoginApp", "%v", err)
	}
	return classify(page, seen, ua.Stop)
}

// classify reads where a response went.
func classify(page *useragent.Page, seen useragent.Seen, stop []string) *authResponse {
	res := &authResponse{page: page, seen: seen}
	if page.Redirect {
		u := *page.URL
		if u.Fragment != "" {
			res.where = "fragment"
			res.params, _ = url.ParseQuery(u.Fragment)
		} else {
			res.where = "query"
			res.params = u.Query()
		}
		u.Fragment, u.RawQuery = "", ""
		res.target = u.String()
		return res
	}
	for _, f := range page.Forms() {
		if f.Method == http.MethodPost && hasAnyPrefix(f.Action, stop) {
			res.where, res.params, res.target = "form_post", f.Fields, f.Action
			return res
		}
	}
	return res
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// snippet shortens a page body for a note.
func snippet(p *useragent.Page) string {
	if p == nil {
		return ""
	}
	s := strings.Join(strings.Fields(p.Body), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return fmt.Sprintf("status %d at %s: %s", p.Status, p.URL.Redacted(), s)
}

// front is what a successful authorization response carried.
type front struct {
	code, accessToken string
	idToken           *idToken
}

// expectSuccess runs the callback checks of AbstractOIDCCServerTest
// (onAuthorizationCallbackResponse) on a response that must be a success.
func (t *T) expectSuccess(req *authRequest, res *authResponse) *front {
	t.checkResponseLocation(req, res)
	if e := res.params.Get("error"); e != "" {
		t.Fatal("CheckIfAuthorizationEndpointError", "the authorization endpoint returned error %s: %s", e, res.params.Get("error_description"))
	}
	t.Check(res.params.Get("state") == req.state, "CheckStateInAuthorizationResponse",
		"state %q, want %q", res.params.Get("state"), req.state)
	rt := strings.Fields(req.params.Get("response_type"))
	f := &front{code: res.params.Get("code"), accessToken: res.params.Get("access_token")}
	if slices.Contains(rt, "code") && f.code == "" {
		t.Fatal("ExtractAuthorizationCodeFromAuthorizationResponse", "no code in the response")
	}
	if slices.Contains(rt, "token") {
		if f.accessToken == "" {
			t.Fatal("ExtractAccessTokenFromAuthorizationResponse", "no access_token in the response")
		}
		t.Check(strings.EqualFold(res.params.Get("token_type"), "Bearer"), "CheckTokenTypeIsBearer",
			"token_type %q in the authorization response", res.params.Get("token_type"))
	}
	if slices.Contains(rt, "id_token") {
		raw := res.params.Get("id_token")
		if raw == "" {
			t.Fatal("ExtractIdTokenFromAuthorizationResponse", "no id_token in the response")
		}
		f.idToken = t.validateIDToken(raw, req.client.ID, req.nonce, "authorization endpoint")
		if f.code != "" {
			t.checkHash(f.idToken, "c_hash", f.code, true, "authorization endpoint")
		}
		if f.accessToken != "" {
			t.checkHash(f.idToken, "at_hash", f.accessToken, true, "authorization endpoint")
		}
	}
	return f
}

// checkResponseLocation checks that the response went to the request's
// redirect URI, in the place its response mode puts it
// (CheckMatchingCallbackParameters, RejectAuthCodeInUrlQuery,
// RejectErrorInUrlQuery, the form_post checks) and that iss, when
// present, is the issuer (RFC 9207).
func (t *T) checkResponseLocation(req *authRequest, res *authResponse) {
	if res.where == "" {
		t.Fatal("CheckIfAuthorizationEndpointError", "the provider showed a page instead of answering the client: %s", snippet(res.page))
	}
	want := req.params.Get("redirect_uri")
	if want == "" {
		want = req.client.RedirectURI
	}
	if res.target != want {
		t.Fatal("CheckMatchingCallbackParameters", "the response went to %s, want the redirect_uri %s", res.target, want)
	}
	rt := req.params.Get("response_type")
	expect := "fragment"
	switch {
	case t.v.ResponseMode == "form_post":
		expect = "form_post"
	case rt == "code" || rt == "":
		expect = "query"
	}
	t.Check(res.where == expect, "CheckMatchingCallbackParameters", "the response came in the %s, want the %s", res.where, expect)
	if expect != "query" && res.page.Redirect {
		q := res.page.URL.Query()
		t.Check(q.Get("code") == "", "RejectAuthCodeInUrlQuery", "a code in the URL query of a %s response", expect)
		t.Check(q.Get("error") == "", "RejectErrorInUrlQuery", "an error in the URL query of a %s response", expect)
	}
	if iss, ok := res.params["iss"]; ok {
		t.Check(len(iss) == 1 && iss[0] == t.r.meta.Issuer, "ValidateIssIfPresentInAuthorizationResponse",
			"iss %v in the authorization response, want %s", iss, t.r.meta.Issuer)
	}
}

// expectError runs the suite's generic checks of an error response
// (performGenericAuthorizationEndpointErrorResponseValidation) and returns
// the error code. A page instead of a redirect fails: use the result of
// send directly when a page is acceptable.
func (t *T) expectError(req *authRequest, res *authResponse) string {
	t.checkResponseLocation(req, res)
	p := res.params
	t.Check(p.Get("state") == req.state, "CheckStateInAuthorizationResponse", "state %q, want %q", p.Get("state"), req.state)
	e := p.Get("error")
	t.Check(e != "", "EnsureErrorFromAuthorizationEndpointResponse", "no error in the response %v", redactParams(p))
	t.Check(p.Get("code") == "", "RejectAuthCodeInAuthorizationEndpointResponse", "an error response with a code")
	t.checkErrorFields("AuthorizationEndpointResponseError", p.Get("error_description"), p.Get("error_uri"), p.Has("error_uri"))
	for k := range p {
		switch k {
		case "error", "error_description", "error_uri", "state", "session_state", "iss":
		default:
			t.Warn("CheckForUnexpectedParametersInErrorResponseFromAuthorizationEndpoint", "unexpected parameter %s in an error response", k)
		}
	}
	if strings.ContainsAny(p.Get("error_description"), "\r\n\t") {
		t.Warn("CheckErrorDescriptionFromAuthorizationEndpointResponseErrorContainsCRLFTAB", "error_description has CR, LF or TAB")
	}
	return e
}

// checkErrorFields checks error_description and error_uri (RFC 6749
// §4.1.2.1, §5.2): printable ASCII without quote and backslash, and a URI.
func (t *T) checkErrorFields(kind, description, uri string, hasURI bool) {
	for _, r := range description {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			t.Fail("ValidateErrorDescriptionFrom"+kind, "error_description %q has the character %q, which RFC 6749 forbids", description, r)
			break
		}
	}
	if hasURI {
		u, err := url.Parse(uri)
		t.Check(err == nil && u.IsAbs(), "ValidateErrorUriFrom"+kind, "error_uri %q is not an absolute URI", uri)
	}
}

// redactParams lists a response's parameter names, not their secrets.
func redactParams(p url.Values) []string {
	var out []string
	for k := range p {
		out = append(out, k)
	}
	return out
}

// tokenResponse is an answer of the token endpoint.
type tokenResponse struct {
	status int
	header http.Header
	body   claims
}

// tokenRequest calls the token endpoint as client c, authenticating with
// the method the configuration says c uses.
func (t *T) tokenRequest(c Client, form url.Values) *tokenResponse {
	form = cloneValues(form)
	method := basicAuth
	switch {
	case c.dynamic != nil:
		method = c.dynamic.auth
	case c.ID == t.r.cfg.ClientSecretPost.ID:
		method = postAuth
	}
	switch method {
	case postAuth:
		form.Set("client_id", c.ID)
		form.Set("client_secret", c.Secret)
	case privateKeyJWT:
		form.Set("client_id", c.ID)
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", t.clientAssertion(c))
	}
	req, err := http.NewRequestWithContext(t.ctx, http.MethodPost, t.r.meta.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal("CallTokenEndpoint", "%v", err)
	}
	if method == basicAuth {
		// RFC 6749 §2.3.1: both parts form-urlencoded before Basic.
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	status, header, body, err := t.r.do(req)
	if err != nil {
		t.Fatal("CallTokenEndpoint", "%v", err)
	}
	tr := &tokenResponse{status: status, header: header}
	if err := json.Unmarshal(body, &tr.body); err != nil {
		t.Fail("CheckTokenEndpointReturnedJsonContentType", "the token endpoint's answer (status %d) is not a JSON object: %.200s", status, body)
	}
	return tr
}

// checkJSON fails unless the answer says it is JSON.
func (t *T) checkJSON(condition string, h http.Header) {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	t.Check(err == nil && mt == "application/json", condition, "Content-Type %q, want application/json", h.Get("Content-Type"))
}

// tokens is a successful token endpoint answer, checked.
type tokens struct {
	accessToken, refreshToken string
	idToken                   *idToken
	body                      claims
}

// expectTokens checks a successful token response
// (requestAuthorizationCode and the refresh checks): 200, JSON, no
// caching, a bearer access token, a valid expires_in, and a valid ID
// token when wantIDToken.
func (t *T) expectTokens(c Client, tr *tokenResponse, nonce string, wantIDToken bool) *tokens {
	if tr.status != http.StatusOK {
		t.Fatal("CheckTokenEndpointHttpStatus200", "status %d: %v %v", tr.status, tr.body["error"], tr.body["error_description"])
	}
	t.checkJSON("CheckTokenEndpointReturnedJsonContentType", tr.header)
	t.Check(strings.Contains(tr.header.Get("Cache-Control"), "no-store"), "CheckTokenEndpointCacheHeaders",
		"Cache-Control %q lacks no-store (RFC 6749 §5.1)", tr.header.Get("Cache-Control"))
	out := &tokens{body: tr.body, accessToken: tr.body.str("access_token"), refreshToken: tr.body.str("refresh_token")}
	if out.accessToken == "" {
		t.Fatal("CheckForAccessTokenValue", "no access_token")
	}
	t.Check(strings.EqualFold(tr.body.str("token_type"), "Bearer"), "CheckTokenTypeIsBearer", "token_type %v", tr.body["token_type"])
	checkTokenChars(t, "EnsureAccessTokenContainsAllowedCharactersOnly", out.accessToken)
	if v, present := tr.body["expires_in"]; !present {
		t.Warn("ExtractExpiresInFromTokenEndpointResponse", "no expires_in")
	} else {
		n, ok := v.(float64)
		t.Check(ok && n > 0 && n == float64(int64(n)), "ValidateExpiresIn", "expires_in %v is not a positive integer", v)
	}
	if raw := tr.body.str("id_token"); raw != "" {
		out.idToken = t.validateIDToken(raw, c.ID, nonce, "token endpoint")
		t.checkHash(out.idToken, "at_hash", out.accessToken, false, "token endpoint")
	} else if wantIDToken {
		t.Fatal("ExtractIdTokenFromTokenResponse", "no id_token in the token response (OIDCC-3.1.3.3)")
	}
	return out
}

// checkTokenChars checks a token has only the characters RFC 6749
// Appendix A allows (VSCHAR).
func checkTokenChars(t *T, condition, tok string) {
	for _, r := range tok {
		if r < 0x20 || r > 0x7e {
			t.Fail(condition, "the token has the character %q", r)
			return
		}
	}
}

// redeem exchanges a code.
func (t *T) redeem(c Client, code string, extra url.Values) *tokenResponse {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.RedirectURI}}
	for k, v := range extra {
		form[k] = v
	}
	return t.tokenRequest(c, form)
}

// flowResult is a finished flow.
type flowResult struct {
	res    *authResponse
	front  *front
	tokens *tokens
	// idToken is the token endpoint's ID token, or the front one.
	idToken     *idToken
	accessToken string
	userinfo    claims
}

// flow runs a whole flow for the variant's response type: the
// authorization request, the code exchange when there is a code, and a
// userinfo call when there is an access token.
func (t *T) flow(req *authRequest, in useragent.Interaction) *flowResult {
	res := t.send(req, in)
	return t.finish(req, res)
}

// finish checks a response and completes the flow.
func (t *T) finish(req *authRequest, res *authResponse) *flowResult {
	f := t.expectSuccess(req, res)
	out := &flowResult{res: res, front: f, idToken: f.idToken, accessToken: f.accessToken}
	if f.code != "" {
		extra := url.Values{}
		if v := req.verifier; v != "" {
			extra.Set("code_verifier", v)
		}
		out.tokens = t.expectTokens(req.client, t.redeem(req.client, f.code, extra), req.nonce, true)
		out.idToken, out.accessToken = out.tokens.idToken, out.tokens.accessToken
		if f.idToken != nil {
			t.Check(f.idToken.claims.str("sub") == out.idToken.claims.str("sub"), "VerifyIdTokenSubConsistentHybridFlow",
				"the front ID token's sub %q differs from the token endpoint's %q", f.idToken.claims.str("sub"), out.idToken.claims.str("sub"))
		}
	}
	if out.accessToken != "" {
		out.userinfo = t.expectUserinfo(out.accessToken, "get", out.idToken)
	}
	return out
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
