package provider

import (
	"encoding/json"
	"net/http"
	"slices"
)

// discoveryDocument is the provider metadata of OpenID Connect Discovery 1.0
// §3 and RFC 8414 §2. Every value is what the provider actually does; a
// capability it lacks is left out rather than advertised as false, except
// where a relying party needs the false to be explicit.
type discoveryDocument struct {
	Issuer                             string   `json:"issuer"`
	AuthorizationEndpoint              string   `json:"authorization_endpoint"`
	TokenEndpoint                      string   `json:"token_endpoint"`
	UserinfoEndpoint                   string   `json:"userinfo_endpoint"`
	JWKSURI                            string   `json:"jwks_uri"`
	EndSessionEndpoint                 string   `json:"end_session_endpoint"`
	RevocationEndpoint                 string   `json:"revocation_endpoint"`
	IntrospectionEndpoint              string   `json:"introspection_endpoint"`
	DeviceAuthorizationEndpoint        string   `json:"device_authorization_endpoint"`
	PushedAuthorizationRequestEndpoint string   `json:"pushed_authorization_request_endpoint"`
	RegistrationEndpoint               string   `json:"registration_endpoint,omitempty"`
	RequirePushedAuthorizationRequests bool     `json:"require_pushed_authorization_requests"`
	ScopesSupported                    []string `json:"scopes_supported"`
	ResponseTypesSupported             []string `json:"response_types_supported"`
	ResponseModesSupported             []string `json:"response_modes_supported"`
	GrantTypesSupported                []string `json:"grant_types_supported"`
	SubjectTypesSupported              []string `json:"subject_types_supported"`
	AcrValuesSupported                 []string `json:"acr_values_supported"`
	IDTokenSigningAlgs                 []string `json:"id_token_signing_alg_values_supported"`
	UserinfoSigningAlgs                []string `json:"userinfo_signing_alg_values_supported"`
	RequestObjectSigningAlgs           []string `json:"request_object_signing_alg_values_supported"`
	TokenEndpointAuthMethods           []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgs       []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	RevocationEndpointAuthMethods      []string `json:"revocation_endpoint_auth_methods_supported"`
	RevocationEndpointAuthSigningAlgs  []string `json:"revocation_endpoint_auth_signing_alg_values_supported"`
	IntrospectionEndpointAuthMethods   []string `json:"introspection_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthSignAlgs  []string `json:"introspection_endpoint_auth_signing_alg_values_supported"`
	CodeChallengeMethodsSupported      []string `json:"code_challenge_methods_supported"`
	ClaimsSupported                    []string `json:"claims_supported"`
	ClaimTypesSupported                []string `json:"claim_types_supported"`
	ClaimsParameterSupported           bool     `json:"claims_parameter_supported"`
	RequestParameterSupported          bool     `json:"request_parameter_supported"`
	RequestURIParameterSupported       bool     `json:"request_uri_parameter_supported"`
	RequireRequestURIRegistration      bool     `json:"require_request_uri_registration"`
	AuthorizationResponseISSParameter  bool     `json:"authorization_response_iss_parameter_supported"`
	PromptValuesSupported              []string `json:"prompt_values_supported"`
	DisplayValuesSupported             []string `json:"display_values_supported"`
	BackchannelLogoutSupported         bool     `json:"backchannel_logout_supported"`
	BackchannelLogoutSessionSupported  bool     `json:"backchannel_logout_session_supported"`
	FrontchannelLogoutSupported        bool     `json:"frontchannel_logout_supported"`
	FrontchannelLogoutSessionSupported bool     `json:"frontchannel_logout_session_supported"`
}

// clientAssertionAlgs are the private_key_jwt signing algorithms fosite
// verifies (client_authentication.go); it refuses HMAC (client_secret_jwt)
// and EdDSA.
var clientAssertionAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}

// requestObjectAlgs are the request object algorithms fosite verifies
// (authorize_request_handler.go): the asymmetric ones, and "none", which a
// client can refuse by registering request_object_signing_alg.
var requestObjectAlgs = append(append([]string{}, clientAssertionAlgs...), "none")

// discoveryMetadata builds the discovery document from the configuration.
func (p *Provider) discoveryMetadata(r *http.Request) discoveryDocument {
	algs := p.keys.Algs()
	// ID tokens may also be unsigned, listed last: only for clients that
	// get them from the token endpoint alone (checkAlgs, idTokenSigner).
	idTokenAlgs := slices.Concat(algs, []string{algNone})
	return discoveryDocument{
		Issuer:                             p.cfg.Issuer,
		AuthorizationEndpoint:              p.urls.authorize,
		TokenEndpoint:                      p.urls.token,
		UserinfoEndpoint:                   p.urls.userinfo,
		JWKSURI:                            p.urls.jwks,
		EndSessionEndpoint:                 p.urls.endSession,
		RevocationEndpoint:                 p.urls.revoke,
		IntrospectionEndpoint:              p.urls.introspect,
		DeviceAuthorizationEndpoint:        p.urls.deviceAuth,
		PushedAuthorizationRequestEndpoint: p.urls.par,
		RegistrationEndpoint:               p.registrationEndpoint(),
		ScopesSupported:                    slices.Clone(supportedScopes),
		ResponseTypesSupported: []string{
			"code", "id_token", "id_token token", "code id_token", "code token", "code id_token token",
			"token",
		},
		ResponseModesSupported: []string{"query", "fragment", "form_post"},
		GrantTypesSupported: []string{
			"authorization_code", "implicit", "refresh_token", "client_credentials",
			// The password grant works only for clients that list it.
			"password",
			deviceGrantType,
		},
		SubjectTypesSupported:        []string{"public", subjectPairwise},
		AcrValuesSupported:           p.cfg.AcrValues,
		IDTokenSigningAlgs:           idTokenAlgs,
		UserinfoSigningAlgs:          algs,
		RequestObjectSigningAlgs:     requestObjectAlgs,
		TokenEndpointAuthMethods:     []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		TokenEndpointAuthSigningAlgs: clientAssertionAlgs,
		// Public clients revoke their own tokens with just their client_id
		// (RFC 7009 §5); introspection is for confidential clients only.
		RevocationEndpointAuthMethods:     []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		RevocationEndpointAuthSigningAlgs: clientAssertionAlgs,
		IntrospectionEndpointAuthMethods:  []string{"client_secret_basic", "client_secret_post", "private_key_jwt"},
		IntrospectionEndpointAuthSignAlgs: clientAssertionAlgs,
		// plain is accepted only from clients registered with
		// latchkey_pkce_plain_allowed; every other client must use S256
		// (checkAuthorizeRequest).
		CodeChallengeMethodsSupported: []string{"S256", "plain"},
		ClaimsSupported:               supportedClaims(),
		ClaimTypesSupported:           []string{"normal"},
		ClaimsParameterSupported:      true,
		RequestParameterSupported:     true,
		RequestURIParameterSupported:  true,
		// resolveRequestURI fetches only request_uris the client registered.
		RequireRequestURIRegistration: true,
		// Every authorization response, success or error, carries iss
		// (RFC 9207): finishAuthorize and writeAuthorizeError add it.
		AuthorizationResponseISSParameter: true,
		PromptValuesSupported:             p.fcfg.GetAllowedPrompts(r.Context()),
		DisplayValuesSupported:            []string{"page"},
		// Logout tokens and front-channel frames carry sid, as ID tokens
		// do (backchannel.go, frontchannel.go).
		BackchannelLogoutSupported:         true,
		BackchannelLogoutSessionSupported:  true,
		FrontchannelLogoutSupported:        true,
		FrontchannelLogoutSessionSupported: true,
	}
}

// discovery serves /.well-known/openid-configuration. The document changes
// only with the configuration, so caches may keep it for a few minutes, and
// any origin may read it: browser-based relying parties fetch it.
func (p *Provider) discovery(w http.ResponseWriter, r *http.Request) {
	writePublicJSON(w, p.discoveryMetadata(r))
}

// writePublicJSON answers with a public, cacheable JSON document.
func writePublicJSON(w http.ResponseWriter, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Access-Control-Allow-Origin", "*")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(v)
}
