package conformance

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"

	"github.com/latchkey-oidc/latchkey/conformance/useragent"
)

// unsignedJWT encodes claims as a JWT with alg none (RFC 7519 §6).
func unsignedJWT(claims map[string]any) string {
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`))
	body, _ := json.Marshal(claims)
	return header + "." + base64.RawURLEncoding.EncodeToString(body) + "."
}

// requestObject moves the request's parameters into an unsigned request
// object passed by value, as AbstractBuildRequestObjectRedirectToAuthorizationEndpoint
// does: response_type, client_id, scope and redirect_uri are repeated
// outside; state and nonce are only inside.
func (t *T) requestObject(req *authRequest) {
	obj := map[string]any{"iss": req.client.ID, "aud": t.r.meta.Issuer}
	for k := range req.params {
		obj[k] = req.params.Get(k)
	}
	outside := url.Values{"request": {unsignedJWT(obj)}}
	for _, k := range []string{"response_type", "client_id", "scope", "redirect_uri"} {
		if v := req.params.Get(k); v != "" {
			outside.Set(k, v)
		}
	}
	req.params = outside
}

// skipUnlessUnsignedRequestObjects skips when the provider says it does
// not take unsigned request objects.
func (t *T) skipUnlessUnsignedRequestObjects() {
	if algs := t.r.meta.RequestObjectAlgs; algs != nil && !slices.Contains(algs, "none") {
		t.Skip("request_object_signing_alg_values_supported %v lacks none", algs)
	}
}

// moduleUnsignedRequestObject is
// OIDCCUnsignedRequestObjectSupportedCorrectlyOrRejectedAsUnsupported: the
// request in an alg=none request object. request_not_supported skips;
// otherwise the normal checks apply, so ignoring the object fails on the
// state and nonce it alone carries.
func moduleUnsignedRequestObject(t *T) {
	t.skipUnlessUnsignedRequestObjects()
	if v, ok := t.r.rawMeta["request_parameter_supported"].(bool); ok && !v {
		t.Warn("CheckDiscEndpointRequestParameterSupported", "request_parameter_supported is false")
	}
	req := t.newAuthRequest()
	t.requestObject(req)
	res := t.send(req, useragent.Interaction{Remember: true})
	if res.where != "" && res.params.Get("error") == "request_not_supported" {
		t.Skip("the provider answered request_not_supported")
	}
	t.finish(req, res)
}

// moduleRequestObjectRedirectURI is OIDCCEnsureRequestObjectWithRedirectUri:
// the registered redirect_uri inside the request object and an invalid one
// outside. The provider must use the object's (OpenID Connect Core §6.1)
// or show an error page; it must not answer the invalid URI, nor answer
// request_not_supported at the registered one.
func moduleRequestObjectRedirectURI(t *T) {
	t.skipUnlessUnsignedRequestObjects()
	req := t.newAuthRequest()
	t.requestObject(req)
	req.params.Set("redirect_uri", req.client.RedirectURI+"/invalid-"+random())
	res := t.send(req, useragent.Interaction{Remember: true})
	switch {
	case res.where == "":
		return // an error page
	case res.target != req.client.RedirectURI:
		t.Fatal("AuthorizationEndpointRedirectedToInvalidUri", "the provider answered the unregistered %s", res.target)
	case res.params.Get("error") == "request_not_supported":
		t.Fatal("EnsureOPDoesNotUseDefaultRedirectUriInCaseOfInvalidRedirectUri",
			"the provider answered request_not_supported at the registered redirect URI")
	}
	// The response came to the object's redirect_uri: check it as such.
	req.params.Set("redirect_uri", req.client.RedirectURI)
	t.finish(req, res)
}
