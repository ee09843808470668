package conformance

import (
	"slices"
	"strings"
)

// The OpenID Foundation's OP certification plans with static clients,
// module by module, as the suite's *TestPlan classes list them
// (../shared/notes/oidf-op-plans.md has the map). Each run is one
// variant's modules in the suite's order; they share a browser.

const (
	basicAuth     = "client_secret_basic"
	postAuth      = "client_secret_post"
	privateKeyJWT = "private_key_jwt"
)

// Module groups that several plans run in the same order.
var (
	userinfoModules = []string{"oidcc-userinfo-get", "oidcc-userinfo-post-header", "oidcc-userinfo-post-body"}
	scopeModules    = []string{"oidcc-scope-profile", "oidcc-scope-email", "oidcc-scope-address", "oidcc-scope-phone", "oidcc-scope-all"}
	// requestModules vary the authorization request and the session.
	requestModules = []string{
		"oidcc-display-page", "oidcc-display-popup",
		"oidcc-prompt-login", "oidcc-prompt-none-not-logged-in", "oidcc-prompt-none-logged-in",
		"oidcc-max-age-1", "oidcc-max-age-10000",
		"oidcc-ensure-request-with-unknown-parameter-succeeds", "oidcc-id-token-hint", "oidcc-login-hint",
		"oidcc-ui-locales", "oidcc-claims-locales", "oidcc-ensure-request-with-acr-values-succeeds",
	}
	codeReuseModules = []string{"oidcc-codereuse", "oidcc-codereuse-30seconds"}
	// requestObjectModules run after the client_secret_post module.
	requestObjectModules = []string{
		"oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported",
		"oidcc-claims-essential", "oidcc-ensure-request-object-with-redirect-uri",
	}
)

// modules joins module lists and names into one new list.
func modules(parts ...any) []string {
	var out []string
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			out = append(out, p)
		case []string:
			out = append(out, p...)
		}
	}
	return out
}

// basicModules is the basic plan's main module list (OIDCCBasicTestPlan).
var basicModules = modules("oidcc-server", "oidcc-response-type-missing", userinfoModules,
	"oidcc-ensure-request-without-nonce-succeeds-for-code-flow", scopeModules, "oidcc-alternate-happy-flow",
	requestModules, codeReuseModules, "oidcc-ensure-registered-redirect-uri", "oidcc-ensure-post-request-succeeds")

func basicPlan(plan, mode string) []run {
	code := Variant{ResponseType: "code", ResponseMode: mode, ClientAuth: basicAuth}
	post := code
	post.ClientAuth = postAuth
	return append([]run{
		{plan: plan, variant: code, modules: basicModules},
		{plan: plan, variant: post, modules: []string{"oidcc-server-client-secret-post"}},
		{plan: plan, variant: code, modules: modules(requestObjectModules,
			"oidcc-refresh-token", "oidcc-ensure-request-with-valid-pkce-succeeds")},
	}, dynamicOnly(plan, mode, "code")...)
}

func implicitPlan(plan, mode string) []run {
	var runs []run
	for _, rt := range []string{"id_token", "id_token token"} {
		v := Variant{ResponseType: rt, ResponseMode: mode, ClientAuth: basicAuth}
		list := modules("oidcc-server", "oidcc-ensure-request-without-nonce-fails", scopeModules,
			"oidcc-alternate-happy-flow", requestModules, "oidcc-ensure-registered-redirect-uri", requestObjectModules)
		if rt == "id_token token" {
			list = modules(list, userinfoModules, "oidcc-response-type-missing")
		}
		runs = append(runs, run{plan: plan, variant: v, modules: list})
	}
	return append(runs, dynamicOnly(plan, mode, "id_token", "id_token token")...)
}

func hybridPlan(plan, mode string) []run {
	var runs []run
	for i, rt := range []string{"code id_token", "code token", "code id_token token"} {
		v := Variant{ResponseType: rt, ResponseMode: mode, ClientAuth: basicAuth}
		first := func(m string) []string {
			if i == 0 {
				return []string{m}
			}
			return nil
		}
		nonce := "oidcc-ensure-request-without-nonce-fails"
		if rt == "code token" {
			nonce = "oidcc-ensure-request-without-nonce-succeeds-for-code-flow"
		}
		post := v
		post.ClientAuth = postAuth
		runs = append(runs,
			run{plan: plan, variant: v, modules: modules("oidcc-server", first("oidcc-response-type-missing"), userinfoModules,
				nonce, scopeModules, first("oidcc-alternate-happy-flow"), requestModules, codeReuseModules,
				"oidcc-ensure-registered-redirect-uri")},
			run{plan: plan, variant: post, modules: []string{"oidcc-server-client-secret-post"}},
			run{plan: plan, variant: v, modules: modules(requestObjectModules, "oidcc-refresh-token",
				first("oidcc-ensure-request-with-valid-pkce-succeeds"))})
	}
	return append(runs, dynamicOnly(plan, mode, "code id_token", "code token", "code id_token token")...)
}

// logoutModules are the RP-initiated logout plan's modules after its
// discovery check; each ends the session, so each gets its own browser.
var logoutModules = []string{
	"oidcc-rp-initiated-logout", "oidcc-rp-initiated-logout-bad-post-logout-redirect-uri",
	"oidcc-rp-initiated-logout-modified-id-token-hint", "oidcc-rp-initiated-logout-no-id-token-hint",
	"oidcc-rp-initiated-logout-no-params", "oidcc-rp-initiated-logout-no-post-logout-redirect-uri",
	"oidcc-rp-initiated-logout-no-state", "oidcc-rp-initiated-logout-only-state",
	"oidcc-rp-initiated-logout-query-added-to-post-logout-redirect-uri", "oidcc-rp-initiated-logout-bad-id-token-hint",
}

func logoutPlan(plan string) []run {
	code := Variant{ResponseType: "code", ResponseMode: "default", ClientAuth: basicAuth}
	runs := []run{{plan: plan, variant: code, modules: []string{"oidcc-rp-initiated-logout-discovery-endpoint-verification"}}}
	for _, m := range logoutModules {
		runs = append(runs, run{plan: plan, variant: code, modules: []string{m}})
	}
	return runs
}

// channelLogoutPlan is the back- or front-channel logout plan: its
// discovery check and its logout module, with that plan's client.
func channelLogoutPlan(plan, channel string) []run {
	code := Variant{ResponseType: "code", ResponseMode: "default", ClientAuth: basicAuth}
	return []run{
		{plan: plan, variant: code, modules: []string{"oidcc-" + channel + "-logout-discovery-endpoint-verification"}},
		{plan: plan, variant: code, modules: []string{"oidcc-" + channel + "-rp-initiated-logout"}, client: channel},
	}
}

// responseTypes are the six response types, in the suite's order.
var responseTypes = []string{"code", "id_token", "id_token token", "code id_token", "code token", "code id_token token"}

// returnsIDTokenFront reports whether a response type returns an ID token
// from the authorization endpoint.
func returnsIDTokenFront(rt string) bool { return slices.Contains(strings.Fields(rt), "id_token") }

// dynamicPlan is OIDCCDynamicTestPlan with each response type (the suite
// lets the tester choose one): private_key_jwt, dynamic registration. The
// discovery check and the server key rotation do not depend on the
// response type and run once. oidcc-userinfo-rs256 needs an access token,
// which response type id_token does not give.
func dynamicPlan(plan string) []run {
	once := Variant{ResponseType: "code", ResponseMode: "default", ClientAuth: privateKeyJWT, Dynamic: true}
	runs := []run{
		{plan: plan, variant: once, modules: []string{"oidcc-discovery-endpoint-verification"}},
		{plan: plan, variant: once, modules: []string{"oidcc-server-rotate-keys"}},
	}
	for _, rt := range responseTypes {
		v := once
		v.ResponseType = rt
		code := strings.Contains(rt, "code")
		only := func(ok bool, m string) []string {
			if ok {
				return []string{m}
			}
			return nil
		}
		runs = append(runs,
			run{plan: plan, variant: v, modules: modules("oidcc-idtoken-rs256", only(!returnsIDTokenFront(rt), "oidcc-idtoken-unsigned"),
				only(rt != "id_token", "oidcc-userinfo-rs256"), "oidcc-ensure-redirect-uri-in-authorization-request", "oidcc-redirect-uri-query-OK",
				"oidcc-redirect-uri-query-mismatch", "oidcc-redirect-uri-query-added", "oidcc-redirect-uri-regfrag")},
			run{plan: plan, variant: v, modules: []string{"oidcc-server", "oidcc-registration-logo-uri", "oidcc-registration-policy-uri",
				"oidcc-registration-tos-uri", "oidcc-registration-jwks-uri", "oidcc-registration-sector-uri", "oidcc-registration-sector-bad"}},
			run{plan: plan, variant: v, modules: modules(only(code, "oidcc-refresh-token-rp-key-rotation"), "oidcc-request-uri-unsigned",
				"oidcc-request-uri-signed-rs256", "oidcc-ensure-request-object-with-redirect-uri", only(code, "oidcc-refresh-token"),
				"oidcc-ensure-client-assertion-with-iss-aud-succeeds")})
	}
	return runs
}

// dynamicOnly are the basic, implicit and hybrid plans' modules that apply
// only with dynamic_client registration (@VariantNotApplicable static_client),
// run with the plan's response types and client_secret_basic.
func dynamicOnly(plan, mode string, rts ...string) []run {
	var runs []run
	for _, rt := range rts {
		v := Variant{ResponseType: rt, ResponseMode: mode, ClientAuth: basicAuth, Dynamic: true}
		list := []string{"oidcc-idtoken-signature"}
		if !returnsIDTokenFront(rt) {
			list = append(list, "oidcc-idtoken-unsigned")
		}
		list = append(list, "oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported")
		runs = append(runs, run{plan: plan, variant: v, modules: list})
	}
	return runs
}

// testPlans are the plans the runner knows, by the suite's names.
var testPlans = map[string][]run{
	"oidcc-basic-certification-test-plan":             basicPlan("oidcc-basic-certification-test-plan", "default"),
	"oidcc-implicit-certification-test-plan":          implicitPlan("oidcc-implicit-certification-test-plan", "default"),
	"oidcc-hybrid-certification-test-plan":            hybridPlan("oidcc-hybrid-certification-test-plan", "default"),
	"oidcc-formpost-basic-certification-test-plan":    basicPlan("oidcc-formpost-basic-certification-test-plan", "form_post"),
	"oidcc-formpost-implicit-certification-test-plan": implicitPlan("oidcc-formpost-implicit-certification-test-plan", "form_post"),
	"oidcc-formpost-hybrid-certification-test-plan":   hybridPlan("oidcc-formpost-hybrid-certification-test-plan", "form_post"),
	"oidcc-config-certification-test-plan": {{plan: "oidcc-config-certification-test-plan",
		variant: Variant{ResponseType: "code", ResponseMode: "default", ClientAuth: basicAuth},
		modules: []string{"oidcc-discovery-endpoint-verification"}}},
	"oidcc-dynamic-certification-test-plan":             dynamicPlan("oidcc-dynamic-certification-test-plan"),
	"oidcc-rp-initiated-logout-certification-test-plan": logoutPlan("oidcc-rp-initiated-logout-certification-test-plan"),
	"oidcc-backchannel-rp-initiated-logout-certification-test-plan": channelLogoutPlan(
		"oidcc-backchannel-rp-initiated-logout-certification-test-plan", "backchannel"),
	"oidcc-frontchannel-rp-initiated-logout-certification-test-plan": channelLogoutPlan(
		"oidcc-frontchannel-rp-initiated-logout-certification-test-plan", "frontchannel"),
}

// Plans lists the plan names the runner knows.
func Plans() []string { return planNames(nil) }
