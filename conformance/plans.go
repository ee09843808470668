package conformance

// The OpenID Foundation's OP certification plans with static clients,
// module by module, as the suite's *TestPlan classes list them
// (../shared/notes/oidf-op-plans.md has the map). Each run is one
// variant's modules in the suite's order; they share a browser.

const (
	basicAuth = "client_secret_basic"
	postAuth  = "client_secret_post"
)

// The basic plan's main module list (OIDCCBasicTestPlan, code flow).
var basicModules = []string{
	"oidcc-server", "oidcc-response-type-missing",
	"oidcc-userinfo-get", "oidcc-userinfo-post-header", "oidcc-userinfo-post-body",
	"oidcc-ensure-request-without-nonce-succeeds-for-code-flow",
	"oidcc-scope-profile", "oidcc-scope-email", "oidcc-scope-address", "oidcc-scope-phone", "oidcc-scope-all",
	"oidcc-alternate-happy-flow", "oidcc-display-page", "oidcc-display-popup",
	"oidcc-prompt-login", "oidcc-prompt-none-not-logged-in", "oidcc-prompt-none-logged-in",
	"oidcc-max-age-1", "oidcc-max-age-10000",
	"oidcc-ensure-request-with-unknown-parameter-succeeds", "oidcc-id-token-hint", "oidcc-login-hint",
	"oidcc-ui-locales", "oidcc-claims-locales", "oidcc-ensure-request-with-acr-values-succeeds",
	"oidcc-codereuse", "oidcc-codereuse-30seconds", "oidcc-ensure-registered-redirect-uri",
	"oidcc-ensure-post-request-succeeds",
}

// The modules every flow plan runs after the client_secret_post one.
var requestObjectModules = []string{
	"oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported",
	"oidcc-claims-essential", "oidcc-ensure-request-object-with-redirect-uri",
}

func basicPlan(plan, mode string) []run {
	code := Variant{ResponseType: "code", ResponseMode: mode, ClientAuth: basicAuth}
	post := code
	post.ClientAuth = postAuth
	return []run{
		{plan, code, basicModules},
		{plan, post, []string{"oidcc-server-client-secret-post"}},
		{plan, code, append(append([]string{}, requestObjectModules...),
			"oidcc-refresh-token", "oidcc-ensure-request-with-valid-pkce-succeeds")},
	}
}

func implicitPlan(plan, mode string) []run {
	var runs []run
	for _, rt := range []string{"id_token", "id_token token"} {
		v := Variant{ResponseType: rt, ResponseMode: mode, ClientAuth: basicAuth}
		modules := []string{
			"oidcc-server", "oidcc-ensure-request-without-nonce-fails",
			"oidcc-scope-profile", "oidcc-scope-email", "oidcc-scope-address", "oidcc-scope-phone", "oidcc-scope-all",
			"oidcc-alternate-happy-flow", "oidcc-display-page", "oidcc-display-popup",
			"oidcc-prompt-login", "oidcc-prompt-none-not-logged-in", "oidcc-prompt-none-logged-in",
			"oidcc-max-age-1", "oidcc-max-age-10000",
			"oidcc-ensure-request-with-unknown-parameter-succeeds", "oidcc-id-token-hint", "oidcc-login-hint",
			"oidcc-ui-locales", "oidcc-claims-locales", "oidcc-ensure-request-with-acr-values-succeeds",
			"oidcc-ensure-registered-redirect-uri",
		}
		modules = append(modules, requestObjectModules...)
		if rt == "id_token token" {
			modules = append(modules, "oidcc-userinfo-get", "oidcc-userinfo-post-header", "oidcc-userinfo-post-body",
				"oidcc-response-type-missing")
		}
		runs = append(runs, run{plan, v, modules})
	}
	return runs
}

func hybridPlan(plan, mode string) []run {
	var runs []run
	for i, rt := range []string{"code id_token", "code token", "code id_token token"} {
		v := Variant{ResponseType: rt, ResponseMode: mode, ClientAuth: basicAuth}
		modules := []string{"oidcc-server"}
		if i == 0 {
			modules = append(modules, "oidcc-response-type-missing")
		}
		modules = append(modules, "oidcc-userinfo-get", "oidcc-userinfo-post-header", "oidcc-userinfo-post-body")
		if rt == "code token" {
			modules = append(modules, "oidcc-ensure-request-without-nonce-succeeds-for-code-flow")
		} else {
			modules = append(modules, "oidcc-ensure-request-without-nonce-fails")
		}
		modules = append(modules, "oidcc-scope-profile", "oidcc-scope-email", "oidcc-scope-address", "oidcc-scope-phone", "oidcc-scope-all")
		if i == 0 {
			modules = append(modules, "oidcc-alternate-happy-flow")
		}
		modules = append(modules, "oidcc-display-page", "oidcc-display-popup",
			"oidcc-prompt-login", "oidcc-prompt-none-not-logged-in", "oidcc-prompt-none-logged-in",
			"oidcc-max-age-1", "oidcc-max-age-10000",
			"oidcc-ensure-request-with-unknown-parameter-succeeds", "oidcc-id-token-hint", "oidcc-login-hint",
			"oidcc-ui-locales", "oidcc-claims-locales", "oidcc-ensure-request-with-acr-values-succeeds",
			"oidcc-codereuse", "oidcc-codereuse-30seconds", "oidcc-ensure-registered-redirect-uri")
		post := v
		post.ClientAuth = postAuth
		last := append(append([]string{}, requestObjectModules...), "oidcc-refresh-token")
		if i == 0 {
			last = append(last, "oidcc-ensure-request-with-valid-pkce-succeeds")
		}
		runs = append(runs, run{plan, v, modules}, run{plan, post, []string{"oidcc-server-client-secret-post"}}, run{plan, v, last})
	}
	return runs
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
	runs := []run{{plan, code, []string{"oidcc-rp-initiated-logout-discovery-endpoint-verification"}}}
	for _, m := range logoutModules {
		runs = append(runs, run{plan, code, []string{m}})
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
	"oidcc-config-certification-test-plan": {{"oidcc-config-certification-test-plan",
		Variant{ResponseType: "code", ResponseMode: "default", ClientAuth: basicAuth},
		[]string{"oidcc-discovery-endpoint-verification"}}},
	"oidcc-rp-initiated-logout-certification-test-plan": logoutPlan("oidcc-rp-initiated-logout-certification-test-plan"),
}

// Plans lists the plan names the runner knows.
func Plans() []string { return planNames(nil) }
