package login

import (
	"io/fs"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/latchkey-oidc/latchkey/provider/observe"
)

// routes is the login app's whole surface, relative to its base path.
func (a *App) routes() http.Handler {
	r := mux.NewRouter()
	// mux would answer a path with dot segments or doubled slashes with a
	// redirect to the cleaned path, which drops the base path the app is
	// mounted under. Such a path matches no route here and gets the 404
	// page; the file server cleans its own paths within static/.
	r.SkipClean(true)
	static, _ := fs.Sub(assets, "static")
	for _, rt := range []struct {
		method, path string
		handler      http.HandlerFunc
	}{
		// Sign-in: first factor, second factor, upstream providers.
		{"GET", "/login", a.signInPage},
		{"POST", "/login", a.signInPassword},
		{"POST", "/login/passkey", a.signInPasskey},
		{"GET", "/login/second-factor", a.secondFactorPage},
		{"POST", "/login/totp", a.verifyTOTP},
		{"POST", "/login/webauthn", a.verifyPasskey},
		{"POST", "/login/email/send", a.sendEmailCode},
		{"POST", "/login/email", a.verifyEmailCode},
		{"POST", "/login/recovery", a.verifyRecoveryCode},
		{"GET", "/login/setup-totp", a.signInTOTPSetupPage},
		{"POST", "/login/setup-totp", a.signInTOTPSetup},
		{"GET", "/login/upstream/{name}", a.upstreamStart},
		{"GET", "/login/upstream/{name}/callback", a.upstreamReturn},
		// The provider's other challenges.
		{"GET", "/consent", a.consentPage},
		{"POST", "/consent", a.consentDecision},
		{"GET", "/device", a.devicePage},
		{"POST", "/device", a.deviceCode},
		{"GET", "/logout", a.logoutPage},
		{"POST", "/logout", a.logoutDecision},
		// The account page.
		{"GET", "/account", a.accountPage},
		{"POST", "/account/password", a.accountForm(false, a.changePassword)},
		{"GET", "/account/totp", a.totpSetupPage},
		{"POST", "/account/totp", a.accountForm(true, a.totpSetup)},
		{"POST", "/account/totp/remove", a.accountForm(true, a.removeTOTP)},
		{"GET", "/account/passkeys/new", a.passkeyNewPage},
		{"POST", "/account/passkeys", a.accountForm(true, a.passkeyRegister)},
		{"POST", "/account/passkeys/remove", a.accountForm(true, a.passkeyRemove)},
		{"POST", "/account/recovery-codes", a.accountForm(true, a.regenerateRecoveryCodes)},
		{"POST", "/account/unlink", a.accountForm(true, a.unlinkUpstream)},
		{"POST", "/account/signout", a.accountSignOut},
		// Server to server: the provider's password grant.
		{"POST", "/internal/password", a.passwordCheck},
	} {
		r.Handle(rt.path, rt.handler).Methods(rt.method)
	}
	r.PathPrefix("/static/").Handler(http.StripPrefix("/static/", http.FileServerFS(static))).Methods("GET", "HEAD")
	r.Handle("/", http.RedirectHandler(a.url("/account"), http.StatusFound)).Methods("GET")
	// Metrics and logs name routes as browsers see them, under the base.
	r.Use(observe.NameRoutes(func(t string) string { return a.base + t }))
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.pages.fail(w, r, http.StatusNotFound, "There is no such page.")
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.pages.fail(w, r, http.StatusMethodNotAllowed, "That request is not allowed here.")
	})
	return r
}
