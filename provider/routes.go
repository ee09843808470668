package provider

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/latchkey-oidc/latchkey/provider/observe"
)

// The public endpoints, relative to the issuer URL.
const (
	pathDiscovery          = "/.well-known/openid-configuration"
	pathJWKS               = "/.well-known/jwks.json"
	pathAuthorize          = "/oauth2/auth"
	pathAuthorizeContinue  = "/oauth2/auth/continue"
	pathToken              = "/oauth2/token"
	pathPAR                = "/oauth2/par"
	pathDeviceAuthorize    = "/oauth2/device/auth"
	pathDeviceVerification = "/oauth2/device"
	pathDeviceContinue     = "/oauth2/device/continue"
	pathIntrospect         = "/oauth2/introspect"
	pathRevoke             = "/oauth2/revoke"
	pathUserinfo           = "/userinfo"
	pathEndSession         = "/oauth2/logout"
	pathEndSessionContinue = "/oauth2/logout/continue"
	pathRegister           = "/oauth2/register"
	pathRegisterClient     = "/oauth2/register/{client_id}"
)

// PublicHandler serves the endpoints relying parties and browsers use, under
// the issuer URL's path.
func (p *Provider) PublicHandler() http.Handler {
	return securityHeaders(validPath(p.publicRouter()))
}

// publicRouter routes the public endpoints. The whole public surface is
// this table.
func (p *Provider) publicRouter() *mux.Router {
	r := mux.NewRouter()
	s := r.PathPrefix(p.urls.prefix).Subrouter()
	if p.urls.prefix == "" {
		s = r
	}
	routes := []struct {
		path    string
		methods []string
		handler http.HandlerFunc
	}{
		{pathDiscovery, get, p.discovery},
		{pathJWKS, get, p.jwks},
		{pathAuthorize, getPost, p.authorize},
		{pathAuthorizeContinue, get, p.authorizeContinue},
		{pathToken, post, p.token},
		{pathPAR, post, p.pushedAuthorize},
		{pathDeviceAuthorize, post, p.deviceAuthorize},
		{pathDeviceVerification, get, p.deviceVerification},
		{pathDeviceContinue, get, p.deviceContinue},
		{pathIntrospect, post, p.introspect},
		{pathRevoke, post, p.revoke},
		{pathUserinfo, getPost, p.userinfo},
		{pathEndSession, getPost, p.endSession},
		{pathEndSessionContinue, get, p.endSessionContinue},
	}
	if p.cfg.RegistrationPolicy != RegistrationClosed {
		// Dynamic client registration (RFC 7591, RFC 7592) exists only
		// when the operator opened it.
		routes = append(routes, []struct {
			path    string
			methods []string
			handler http.HandlerFunc
		}{
			{pathRegister, post, p.register},
			{pathRegisterClient, get, p.readRegistration},
			{pathRegisterClient, put, p.updateRegistration},
			{pathRegisterClient, del, p.deleteRegistration},
		}...)
	}
	for _, rt := range routes {
		s.HandleFunc(rt.path, rt.handler).Methods(slices.Clone(rt.methods)...)
	}
	// Metrics and logs name routes relative to the issuer, the same on
	// every deployment.
	r.Use(observe.NameRoutes(func(t string) string { return strings.TrimPrefix(t, p.urls.prefix) }))
	r.MethodNotAllowedHandler = http.HandlerFunc(methodNotAllowed)
	r.NotFoundHandler = http.HandlerFunc(notFound)
	return r
}

// AdminHandler serves the admin API: the login app's challenge calls and
// the operator's clients, keys and subjects. Every route needs the admin
// bearer token.
func (p *Provider) AdminHandler() http.Handler {
	r := p.adminRouter()
	return securityHeaders(observe.NameRoutesBefore(r, nil)(p.requireAdminToken(validPath(r))))
}

// adminRouter routes the admin API. The whole admin surface is this table.
func (p *Provider) adminRouter() *mux.Router {
	r := mux.NewRouter()
	routes := []struct {
		path    string
		methods []string
		handler http.HandlerFunc
	}{
		{"/admin/clients", get, p.adminListClients},
		{"/admin/clients", post, p.adminCreateClient},
		{"/admin/clients/{id}", get, p.adminGetClient},
		{"/admin/clients/{id}", put, p.adminUpdateClient},
		{"/admin/clients/{id}", del, p.adminDeleteClient},
		{"/admin/keys", get, p.adminListKeys},
		{"/admin/keys/rotate", post, p.adminRotateKeys},
		{"/admin/login", get, p.adminGetChallenge(challengeLogin)},
		{"/admin/login/accept", put, p.adminAcceptLogin},
		{"/admin/login/reject", put, p.adminReject(challengeLogin)},
		{"/admin/consent", get, p.adminGetChallenge(challengeConsent)},
		{"/admin/consent/accept", put, p.adminAcceptConsent},
		{"/admin/consent/reject", put, p.adminReject(challengeConsent)},
		{"/admin/logout", get, p.adminGetChallenge(challengeLogout)},
		{"/admin/logout/accept", put, p.adminAcceptLogout},
		{"/admin/logout/reject", put, p.adminReject(challengeLogout)},
		{"/admin/device", get, p.adminGetChallenge(challengeDevice)},
		{"/admin/device/accept", put, p.adminAcceptDevice},
		{"/admin/device/reject", put, p.adminReject(challengeDevice)},
		{"/admin/subjects/{subject}/sessions", get, p.adminListSessions},
		{"/admin/subjects/{subject}/sessions", del, p.adminRevokeSessions},
		{"/admin/subjects/{subject}/sessions/{sid}", del, p.adminRevokeSession},
		{"/admin/subjects/{subject}/tokens", del, p.adminRevokeTokens},
		{"/admin/subjects/{subject}/consents", del, p.adminRevokeConsents},
	}
	for _, rt := range routes {
		r.HandleFunc(rt.path, rt.handler).Methods(slices.Clone(rt.methods)...)
	}
	r.Use(observe.NameRoutes(nil))
	r.MethodNotAllowedHandler = http.HandlerFunc(methodNotAllowed)
	r.NotFoundHandler = http.HandlerFunc(notFound)
	return r
}

// The method lists of the route tables. gorilla/mux upper-cases the slice
// it is given in place and keeps it, so each route gets a copy: two
// providers in one process (the tests) must not share these.
var (
	get     = []string{http.MethodGet, http.MethodHead}
	post    = []string{http.MethodPost}
	put     = []string{http.MethodPut}
	del     = []string{http.MethodDelete}
	getPost = []string{http.MethodGet, http.MethodHead, http.MethodPost}
)

// endpoints are the provider's absolute URLs, derived from the issuer once.
type endpoints struct {
	prefix             string // the issuer URL's path, "" at the root
	cookiePath         string
	secure             bool // cookies get Secure
	authorize          string
	authorizeContinue  string
	token              string
	par                string
	deviceAuth         string
	deviceVerification string
	deviceContinue     string
	introspect         string
	revoke             string
	userinfo           string
	jwks               string
	endSession         string
	endSessionContinue string
}

func endpointsFor(issuer string) endpoints {
	u, _ := url.Parse(issuer) // checked by Config.withDefaults
	prefix := strings.TrimSuffix(u.Path, "/")
	return endpoints{
		prefix:             prefix,
		cookiePath:         prefix + "/",
		secure:             u.Scheme == "https",
		authorize:          issuer + pathAuthorize,
		authorizeContinue:  issuer + pathAuthorizeContinue,
		token:              issuer + pathToken,
		par:                issuer + pathPAR,
		deviceAuth:         issuer + pathDeviceAuthorize,
		deviceVerification: issuer + pathDeviceVerification,
		deviceContinue:     issuer + pathDeviceContinue,
		introspect:         issuer + pathIntrospect,
		revoke:             issuer + pathRevoke,
		userinfo:           issuer + pathUserinfo,
		jwks:               issuer + pathJWKS,
		endSession:         issuer + pathEndSession,
		endSessionContinue: issuer + pathEndSessionContinue,
	}
}

// validPath answers 404 for a path that is not valid UTF-8: no client_id,
// subject or session ID is one, and the store could not look it up.
func validPath(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !utf8.ValidString(r.URL.Path) {
			notFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// securityHeaders sets the headers every response carries: nothing is
// framed, sniffed or cached by accident. HTML pages set their own CSP.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}
