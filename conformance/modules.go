package conformance

import (
	"crypto/sha256"
	"encoding/base64"
	"time"
)

// moduleFuncs are the modules by the suite's names: the table to read
// to see what the runner implements. Each function's comment names the
// suite's class and says what it sends and which checks fail or warn.
var moduleFuncs = map[string]func(*T){
	// Flows and client authentication (modules_flow.go).
	"oidcc-server":                                  moduleServer,
	"oidcc-server-client-secret-post":               moduleServer,
	"oidcc-ensure-post-request-succeeds":            modulePostRequest,
	"oidcc-ensure-request-with-valid-pkce-succeeds": modulePKCE,
	"oidcc-alternate-happy-flow":                    moduleAlternateHappyFlow,
	// Request validation.
	"oidcc-response-type-missing":                               moduleResponseTypeMissing,
	"oidcc-ensure-request-without-nonce-succeeds-for-code-flow": moduleNoNonceSucceeds,
	"oidcc-ensure-request-without-nonce-fails":                  moduleNoNonceFails,
	"oidcc-ensure-registered-redirect-uri":                      moduleRegisteredRedirectURI,
	"oidcc-ensure-request-with-unknown-parameter-succeeds":      func(t *T) { moduleWithParam(t, "extra", "foobar") },
	"oidcc-display-page":                                        func(t *T) { moduleWithParam(t, "display", "page") },
	"oidcc-display-popup":                                       func(t *T) { moduleWithParam(t, "display", "popup") },
	"oidcc-login-hint":                                          moduleLoginHint,
	"oidcc-ui-locales":                                          func(t *T) { moduleWithParam(t, "ui_locales", "se") },
	"oidcc-claims-locales":                                      func(t *T) { moduleWithParam(t, "claims_locales", "se") },
	"oidcc-ensure-request-with-acr-values-succeeds":             moduleAcrValues,
	// UserInfo and claims.
	"oidcc-userinfo-get":         func(t *T) { moduleUserinfo(t, "get") },
	"oidcc-userinfo-post-header": func(t *T) { moduleUserinfo(t, "post-header") },
	"oidcc-userinfo-post-body":   func(t *T) { moduleUserinfo(t, "post-body") },
	"oidcc-scope-profile":        func(t *T) { moduleScope(t, "profile") },
	"oidcc-scope-email":          func(t *T) { moduleScope(t, "email") },
	"oidcc-scope-address":        func(t *T) { moduleScope(t, "address") },
	"oidcc-scope-phone":          func(t *T) { moduleScope(t, "phone") },
	"oidcc-scope-all":            func(t *T) { moduleScope(t, "profile", "email", "address", "phone") },
	"oidcc-claims-essential":     moduleClaimsEssential,
	// Codes and refresh tokens.
	"oidcc-codereuse":           func(t *T) { moduleCodeReuse(t, 0) },
	"oidcc-codereuse-30seconds": func(t *T) { moduleCodeReuse(t, 30*time.Second) },
	"oidcc-refresh-token":       moduleRefreshToken,
	// Sessions and re-authentication (modules_session.go).
	"oidcc-prompt-login":              modulePromptLogin,
	"oidcc-prompt-none-not-logged-in": modulePromptNoneNotLoggedIn,
	"oidcc-prompt-none-logged-in":     modulePromptNoneLoggedIn,
	"oidcc-max-age-1":                 moduleMaxAge1,
	"oidcc-max-age-10000":             moduleMaxAge10000,
	"oidcc-id-token-hint":             moduleIDTokenHint,
	// Request objects (modules_request.go).
	"oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported": moduleUnsignedRequestObject,
	"oidcc-ensure-request-object-with-redirect-uri":                                moduleRequestObjectRedirectURI,
	// Discovery (modules_discovery.go).
	"oidcc-discovery-endpoint-verification":                     moduleDiscovery,
	"oidcc-rp-initiated-logout-discovery-endpoint-verification": moduleLogoutDiscovery,
	// RP-initiated logout (modules_logout.go).
	"oidcc-rp-initiated-logout":                                         moduleLogout,
	"oidcc-rp-initiated-logout-no-state":                                moduleLogoutNoState,
	"oidcc-rp-initiated-logout-bad-post-logout-redirect-uri":            moduleLogoutBadPostLogoutURI,
	"oidcc-rp-initiated-logout-query-added-to-post-logout-redirect-uri": moduleLogoutQueryAdded,
	"oidcc-rp-initiated-logout-modified-id-token-hint":                  moduleLogoutModifiedHint,
	"oidcc-rp-initiated-logout-bad-id-token-hint":                       moduleLogoutBadHint,
	"oidcc-rp-initiated-logout-no-id-token-hint":                        moduleLogoutNoHint,
	"oidcc-rp-initiated-logout-no-params":                               moduleLogoutNoParams,
	"oidcc-rp-initiated-logout-no-post-logout-redirect-uri":             moduleLogoutNoPostLogoutURI,
	"oidcc-rp-initiated-logout-only-state":                              moduleLogoutOnlyState,
	// Dynamic registration (modules_dynamic.go).
	"oidcc-idtoken-signature":                                                   moduleIDTokenSignature,
	"oidcc-idtoken-rs256":                                                       moduleIDTokenRS256,
	"oidcc-idtoken-unsigned":                                                    moduleIDTokenUnsigned,
	"oidcc-userinfo-rs256":                                                      moduleUserinfoRS256,
	"oidcc-ensure-redirect-uri-in-authorization-request":                        moduleRedirectURIMissing,
	"oidcc-redirect-uri-query-OK":                                               func(t *T) { moduleRedirectURIQuery(t, "ok") },
	"oidcc-redirect-uri-query-mismatch":                                         func(t *T) { moduleRedirectURIQuery(t, "mismatch") },
	"oidcc-redirect-uri-query-added":                                            func(t *T) { moduleRedirectURIQuery(t, "added") },
	"oidcc-redirect-uri-regfrag":                                                moduleRedirectURIRegFrag,
	"oidcc-registration-logo-uri":                                               func(t *T) { moduleRegistrationURI(t, "logo_uri") },
	"oidcc-registration-policy-uri":                                             func(t *T) { moduleRegistrationURI(t, "policy_uri") },
	"oidcc-registration-tos-uri":                                                func(t *T) { moduleRegistrationURI(t, "tos_uri") },
	"oidcc-registration-jwks-uri":                                               moduleRegistrationJWKSURI,
	"oidcc-registration-sector-uri":                                             moduleRegistrationSectorURI,
	"oidcc-registration-sector-bad":                                             moduleRegistrationSectorBad,
	"oidcc-server-rotate-keys":                                                  moduleServerRotateKeys,
	"oidcc-refresh-token-rp-key-rotation":                                       moduleRefreshTokenRPKeyRotation,
	"oidcc-request-uri-unsigned":                                                func(t *T) { moduleRequestURI(t, false) },
	"oidcc-request-uri-signed-rs256":                                            func(t *T) { moduleRequestURI(t, true) },
	"oidcc-ensure-client-assertion-with-iss-aud-succeeds":                       moduleClientAssertionIssAud,
	"oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported": moduleRequestURIUnsignedOrRejected,
	// Back- and front-channel logout (modules_channels.go).
	"oidcc-backchannel-logout-discovery-endpoint-verification":  func(t *T) { moduleChannelDiscovery(t, "backchannel") },
	"oidcc-backchannel-rp-initiated-logout":                     moduleBackchannelLogout,
	"oidcc-frontchannel-logout-discovery-endpoint-verification": func(t *T) { moduleChannelDiscovery(t, "frontchannel") },
	"oidcc-frontchannel-rp-initiated-logout":                    moduleFrontchannelLogout,
}

// s256 is the PKCE S256 code challenge of a verifier (RFC 7636 §4.2).
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
