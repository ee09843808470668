package login

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"

	"github.com/latchkey-oidc/latchkey/login/passkey"
	"github.com/latchkey-oidc/latchkey/login/upstream"
	"github.com/latchkey-oidc/latchkey/store"
)

//go:embed templates static
var assets embed.FS

// App is the login app. Its handler serves every page; it keeps no state
// between requests beyond the database and the browser's cookies, so any
// number of replicas can serve one user.
type App struct {
	cfg       *Config
	store     *store.Store
	admin     *adminClient
	cookies   *cookieJar
	pages     *pages
	throttle  *throttle
	passkeys  *passkey.Passkeys // nil when the issuer's host cannot have passkeys
	upstreams map[string]*upstream.Upstream
	metrics   *metrics
	// base is the path the app is served under (e.g. "/login"), without
	// a trailing slash; routes are matched after it is stripped.
	base string
}

// New builds the login app on st. It checks the configuration but does not
// contact the provider; the first page that needs it does.
func New(ctx context.Context, st *store.Store, c Config) (*App, error) {
	cfg, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	pub, _ := url.Parse(cfg.PublicURL)
	iss, _ := url.Parse(cfg.Issuer)
	secure := pub.Scheme == "https"
	base := strings.TrimRight(pub.EscapedPath(), "/")
	cookies, err := newCookieJar(base+"/", secure, cfg.Secret, cfg.OldSecrets, cfg.Now)
	if err != nil {
		return nil, err
	}
	pg, err := loadPages(cfg.ProductName, cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	// Browsers refuse WebAuthn for IP-address hosts, so an issuer like
	// http://127.0.0.1:8080 has no passkeys (http://localhost:8080 has).
	var pk *passkey.Passkeys
	if net.ParseIP(iss.Hostname()) == nil {
		if pk, err = passkey.New(passkey.Config{
			RPID:          iss.Hostname(),
			RPDisplayName: cfg.ProductName,
			Origins:       []string{pub.Scheme + "://" + pub.Host},
		}); err != nil {
			return nil, fmt.Errorf("login: passkeys: %w", err)
		}
	} else {
		cfg.Log.InfoContext(ctx, "passkeys are off: the issuer's host is an IP address, which browsers refuse for WebAuthn; use a host name such as localhost", "issuer", cfg.Issuer)
	}
	ups := make(map[string]*upstream.Upstream, len(cfg.Upstreams))
	for _, uc := range cfg.Upstreams {
		if uc.HTTPClient == nil {
			uc.HTTPClient = cfg.HTTPClient
		}
		u, err := upstream.New(uc)
		if err != nil {
			return nil, fmt.Errorf("login: upstream %q: %w", uc.Name, err)
		}
		if _, dup := ups[uc.Name]; dup {
			return nil, fmt.Errorf("login: upstream %q configured twice", uc.Name)
		}
		ups[uc.Name] = u
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &App{
		cfg:       cfg,
		store:     st,
		admin:     &adminClient{base: cfg.AdminURL, token: cfg.AdminToken, http: cfg.HTTPClient},
		cookies:   cookies,
		pages:     pg,
		throttle:  &throttle{store: st, metrics: m, now: cfg.Now},
		passkeys:  pk,
		upstreams: ups,
		metrics:   m,
		base:      base,
	}, nil
}

// BasePath is the path the app expects to be mounted under, e.g. "/login";
// its Handler serves paths with that prefix already stripped.
func (a *App) BasePath() string { return a.base }

// PublicURL is where browsers reach the app.
func (a *App) PublicURL() string { return a.cfg.PublicURL }

// Mount serves the app under its base path, and everything else with rest
// (the provider's public handler when both run in one process).
func (a *App) Mount(rest http.Handler) http.Handler {
	if a.base == "" {
		return a.Handler()
	}
	mux := http.NewServeMux()
	mux.Handle(a.base+"/", http.StripPrefix(a.base, a.Handler()))
	mux.Handle(a.base, http.RedirectHandler(a.base+"/account", http.StatusFound))
	mux.Handle("/", rest)
	return mux
}

// Ready reports whether the app can serve: its database answers.
func (a *App) Ready(ctx context.Context) error {
	if err := a.store.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	return nil
}

// url returns the absolute URL of one of the app's own paths.
func (a *App) url(path string) string { return a.cfg.PublicURL + path }

// Handler serves the login app: its routes (routes.go), wrapped in the
// security headers and the cross-origin check every page gets.
func (a *App) Handler() http.Handler {
	cop := http.NewCrossOriginProtection()
	// The password check is called by the provider, server to server, with
	// the admin token and no cookies; browsers' cross-origin rules do not
	// apply to it.
	cop.AddInsecureBypassPattern("POST /internal/password")
	// A refusal is one of the app's pages, like every other answer.
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.pages.fail(w, r, http.StatusForbidden, "This form was sent from another site (a cross-origin request) and was refused. Go back, reload the page and try again.")
	}))
	return securityHeaders(cop.Handler(a.routes()))
}

// securityHeaders keeps the pages out of frames, caches and referrers
// (their URLs carry challenge IDs), and allows only the app's own scripts.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// redirect sends the browser on after a form (303) or a link (302 for GET).
func redirect(w http.ResponseWriter, r *http.Request, to string) {
	code := http.StatusFound
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		code = http.StatusSeeOther
	}
	http.Redirect(w, r, to, code)
}

// parseForm reads a form post of bounded size and checks its CSRF token;
// on failure it has answered the request.
func (a *App) parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		a.pages.fail(w, r, http.StatusBadRequest, "The form could not be read.")
		return false
	}
	if !a.cookies.checkCSRF(r) {
		a.pages.fail(w, r, http.StatusForbidden, "This form expired or did not come from this site. Go back, reload the page and try again.")
		return false
	}
	return true
}

// passkeysOff answers a passkey request on a server without passkeys; it
// reports whether it did.
func (a *App) passkeysOff(w http.ResponseWriter, r *http.Request) bool {
	if a.passkeys != nil {
		return false
	}
	a.pages.fail(w, r, http.StatusNotFound, "Passkeys are not available on this server.")
	return true
}

// serverError logs err and shows a page that reveals nothing about it.
func (a *App) serverError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	a.cfg.Log.ErrorContext(r.Context(), "login app request failed", "path", r.URL.Path, "error", err)
	if unavailable(err) {
		w.Header().Set("Retry-After", retryAfter)
		a.pages.fail(w, r, http.StatusServiceUnavailable, "This service is unavailable for a moment. Please try again shortly.")
		return
	}
	a.pages.fail(w, r, http.StatusInternalServerError, "Something went wrong on our side. Please try again.")
}

// retryAfter is the Retry-After, in seconds, of an answer given while the
// database or the provider is unavailable.
const retryAfter = "5"

// unavailable tells a failure that may pass if tried again shortly: the
// database is down or restarting, or the provider is, or says its own
// database is.
func unavailable(err error) bool {
	var ae *adminError
	return errors.Is(err, store.ErrUnavailable) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable
}

// challengeError answers a failed admin API call: a gone challenge is the
// user's problem (a stale tab), anything else is ours.
func (a *App) challengeError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errChallengeGone) {
		a.pages.fail(w, r, http.StatusNotFound, "This sign-in request expired or was already used. Go back to the application and start again.")
		return
	}
	a.serverError(w, r, err)
}
