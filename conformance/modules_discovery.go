package conformance

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

const wellKnown = "/.well-known/openid-configuration"

// fetchDiscovery fetches the discovery document again, checking the
// answer (EnsureDiscoveryEndpointResponseStatusCodeIs200,
// CheckDiscoveryEndpointReturnedJsonContentType).
func (t *T) fetchDiscovery() (string, map[string]any) {
	u := strings.TrimSuffix(t.r.cfg.Issuer, "/") + wellKnown
	status, header, body, err := t.r.get(t.ctx, u)
	if err != nil {
		t.Fatal("GetDynamicServerConfiguration", "%v", err)
	}
	if status != http.StatusOK {
		t.Fatal("EnsureDiscoveryEndpointResponseStatusCodeIs200", "status %d", status)
	}
	t.checkJSON("CheckDiscoveryEndpointReturnedJsonContentType", header)
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal("ValidateServerMetadataAgainstSchema", "the discovery document is not a JSON object: %v", err)
	}
	return u, doc
}

// strings returns a metadata value as a string list, failing when it is
// present and not one.
func (t *T) stringList(doc map[string]any, name string) ([]string, bool) {
	v, present := doc[name]
	if !present {
		return nil, false
	}
	arr, ok := v.([]any)
	if !ok {
		t.Fail("ValidateServerMetadataAgainstSchema", "%s is not a JSON array", name)
		return nil, true
	}
	var out []string
	for _, e := range arr {
		s, ok := e.(string)
		if !ok {
			t.Fail("ValidateServerMetadataAgainstSchema", "%s has a non-string element %v", name, e)
			continue
		}
		out = append(out, s)
	}
	return out, true
}

// httpsURL checks that a metadata value is an https URL (CheckDiscEndpoint*,
// CheckDiscEndpointAllEndpointsAreHttps).
func (t *T) httpsURL(doc map[string]any, name, condition string, required bool) {
	v, present := doc[name]
	if !present {
		if required {
			t.Fail(condition, "%s is missing", name)
		}
		return
	}
	s, _ := v.(string)
	u, err := url.Parse(s)
	if !t.Check(err == nil && u.IsAbs() && u.Host != "", condition, "%s %q is not an absolute URL", name, v) {
		return
	}
	t.Check(u.Scheme == "https", "CheckDiscEndpointAllEndpointsAreHttps", "%s %q is not https", name, s)
}

// knownMetadata are the metadata names of OpenID Connect Discovery 1.0,
// RFC 8414 and the registered extensions a provider may publish; others
// only warn (CheckForUnexpectedParametersInServerMetadata).
var knownMetadata = strings.Fields(`issuer authorization_endpoint token_endpoint userinfo_endpoint jwks_uri
registration_endpoint scopes_supported response_types_supported response_modes_supported grant_types_supported
acr_values_supported subject_types_supported id_token_signing_alg_values_supported id_token_encryption_alg_values_supported
id_token_encryption_enc_values_supported userinfo_signing_alg_values_supported userinfo_encryption_alg_values_supported
userinfo_encryption_enc_values_supported request_object_signing_alg_values_supported request_object_encryption_alg_values_supported
request_object_encryption_enc_values_supported token_endpoint_auth_methods_supported token_endpoint_auth_signing_alg_values_supported
display_values_supported claim_types_supported claims_supported service_documentation claims_locales_supported
ui_locales_supported claims_parameter_supported request_parameter_supported request_uri_parameter_supported
require_request_uri_registration op_policy_uri op_tos_uri revocation_endpoint revocation_endpoint_auth_methods_supported
revocation_endpoint_auth_signing_alg_values_supported introspection_endpoint introspection_endpoint_auth_methods_supported
introspection_endpoint_auth_signing_alg_values_supported code_challenge_methods_supported end_session_endpoint
check_session_iframe frontchannel_logout_supported frontchannel_logout_session_supported backchannel_logout_supported
backchannel_logout_session_supported device_authorization_endpoint pushed_authorization_request_endpoint
require_pushed_authorization_requests authorization_response_iss_parameter_supported prompt_values_supported
tls_client_certificate_bound_access_tokens mtls_endpoint_aliases dpop_signing_alg_values_supported
authorization_signing_alg_values_supported authorization_encryption_alg_values_supported
authorization_encryption_enc_values_supported backchannel_token_delivery_modes_supported
backchannel_authentication_endpoint backchannel_authentication_request_signing_alg_values_supported
backchannel_user_code_parameter_supported require_signed_request_object`)

var oidcResponseTypes = []string{"code", "id_token", "id_token token", "code id_token", "code token", "code id_token token"}

// bcp47 is the shape of a language tag (CheckDiscEndpointLocalesSyntax).
var bcp47 = regexp.MustCompile(`^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$`)

// moduleDiscovery is OIDCCDiscoveryEndpointVerification.
func moduleDiscovery(t *T) {
	u, doc := t.fetchDiscovery()
	t.Check(strings.HasPrefix(u, "https://") && strings.HasSuffix(u, wellKnown), "CheckDiscEndpointDiscoveryUrl",
		"the discovery URL %s is not https ending in %s", u, wellKnown)
	iss, _ := doc["issuer"].(string)
	t.Check(strings.TrimSuffix(iss, "/") == strings.TrimSuffix(strings.TrimSuffix(u, wellKnown), "/"), "CheckDiscEndpointIssuer",
		"issuer %q does not match the discovery URL %s", iss, u)
	pu, err := url.Parse(iss)
	t.Check(err == nil && pu.Scheme == "https" && pu.Host != "" && pu.RawQuery == "" && pu.Fragment == "",
		"CheckDiscEndpointIssuerIsValidUrl", "issuer %q is not an https URL without query and fragment", iss)

	rts, _ := t.stringList(doc, "response_types_supported")
	found := false
	for _, rt := range rts {
		found = found || slices.Contains(oidcResponseTypes, normalizeResponseType(rt))
	}
	t.Check(found, "OIDCCCheckDiscEndpointResponseTypesSupported", "response_types_supported %v has no OpenID Connect response type", rts)
	if t.v.Dynamic {
		// The dynamic profile needs code, id_token and id_token token.
		for _, want := range []string{"code", "id_token", "id_token token"} {
			t.Check(slices.ContainsFunc(rts, func(rt string) bool { return normalizeResponseType(rt) == want }),
				"OIDCCCheckDiscEndpointResponseTypesSupportedDynamic", "response_types_supported %v lacks %s", rts, want)
		}
	}

	subs, _ := t.stringList(doc, "subject_types_supported")
	t.Check(slices.Contains(subs, "public") || slices.Contains(subs, "pairwise"), "CheckDiscEndpointSubjectTypesSupported",
		"subject_types_supported %v has neither public nor pairwise", subs)
	for _, s := range subs {
		t.Check(s == "public" || s == "pairwise", "CheckDiscEndpointSubjectTypesSupported", "unknown subject type %q", s)
	}
	algs, _ := t.stringList(doc, "id_token_signing_alg_values_supported")
	t.Check(slices.Contains(algs, "RS256"), "OIDCCCheckDiscEndpointIdTokenSigningAlgValuesSupported", "id_token_signing_alg_values_supported %v lacks RS256", algs)
	t.stringList(doc, "userinfo_signing_alg_values_supported")

	t.httpsURL(doc, "authorization_endpoint", "CheckDiscEndpointAuthorizationEndpoint", true)
	t.httpsURL(doc, "token_endpoint", "CheckDiscEndpointTokenEndpoint", true)
	if _, ok := doc["userinfo_endpoint"]; !ok {
		t.Warn("CheckDiscEndpointUserinfoEndpoint", "no userinfo_endpoint")
	} else {
		t.httpsURL(doc, "userinfo_endpoint", "CheckDiscEndpointUserinfoEndpoint", false)
	}
	t.httpsURL(doc, "registration_endpoint", "CheckDiscEndpointRegistrationEndpoint", false)
	t.httpsURL(doc, "jwks_uri", "CheckJwksUri", true)
	for _, name := range []string{"end_session_endpoint", "revocation_endpoint", "introspection_endpoint",
		"device_authorization_endpoint", "pushed_authorization_request_endpoint", "check_session_iframe"} {
		t.httpsURL(doc, name, "CheckDiscEndpointAllEndpointsAreHttps", false)
	}
	if _, err := t.r.jwks(t.ctx, true); err != nil {
		t.Fatal("FetchServerKeys", "%v", err)
	}

	if grants, present := t.stringList(doc, "grant_types_supported"); present {
		t.Check(len(grants) > 0, "OIDCCCheckDiscEndpointGrantTypesSupported", "grant_types_supported is empty")
		if t.v.Dynamic {
			for _, want := range []string{"authorization_code", "implicit"} {
				t.Check(slices.Contains(grants, want), "OIDCCCheckDiscEndpointGrantTypesSupportedDynamic", "grant_types_supported %v lacks %s", grants, want)
			}
		}
	}
	if scopes, present := t.stringList(doc, "scopes_supported"); !present || !slices.Contains(scopes, "openid") {
		t.Warn("CheckDiscEndpointScopesSupportedContainsOpenId", "scopes_supported %v lacks openid", scopes)
	} else {
		for _, s := range scopes {
			t.Check(s != "" && !strings.ContainsAny(s, " \"\\"), "CheckDiscEndpointScopesSupportedSyntax", "scope %q has invalid characters", s)
		}
	}
	for _, name := range []string{"claims_locales_supported", "ui_locales_supported"} {
		locales, _ := t.stringList(doc, name)
		for _, l := range locales {
			t.Check(bcp47.MatchString(l), "CheckDiscEndpointLocalesSyntax", "%s has %q, not a language tag", name, l)
		}
	}
	t.stringList(doc, "code_challenge_methods_supported")

	for name := range doc {
		if !slices.Contains(knownMetadata, name) {
			t.Warn("CheckForUnexpectedParametersInServerMetadata", "unknown metadata %s", name)
		}
	}
	if claims, _ := t.stringList(doc, "claims_supported"); len(claims) == 0 {
		t.Warn("OIDCCCheckDiscEndpointClaimsSupported", "no claims_supported")
	}
	if ro, present := t.stringList(doc, "request_object_signing_alg_values_supported"); present && !slices.Contains(ro, "RS256") {
		t.Warn("CheckDiscEndpointRequestObjectSigningAlgValuesSupportedIncludesRS256", "request_object_signing_alg_values_supported %v lacks RS256", ro)
	}
}

// normalizeResponseType orders a response type's values as the suite's
// list does.
func normalizeResponseType(rt string) string {
	f := strings.Fields(rt)
	has := func(s string) bool { return slices.Contains(f, s) }
	var out []string
	for _, s := range []string{"code", "id_token", "token"} {
		if has(s) {
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}

// moduleLogoutDiscovery is OIDCCRpInitiatedLogoutDiscoveryEndpointVerification:
// end_session_endpoint present, every endpoint https.
func moduleLogoutDiscovery(t *T) {
	_, doc := t.fetchDiscovery()
	t.httpsURL(doc, "end_session_endpoint", "CheckDiscEndSessionEndpoint", true)
	for _, name := range []string{"authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"} {
		t.httpsURL(doc, name, "CheckDiscEndpointAllEndpointsAreHttps", false)
	}
}
