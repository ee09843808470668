package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
)

// shutdownTimeout bounds how long serve waits for requests in flight when
// it is told to stop.
const shutdownTimeout = 10 * time.Second

var serveSettings = withLog(append([]string{
	"database-url", "data-dir", "system-secret", "old-system-secrets", "dev",
	"issuer", "login-url", "admin-token", "public-addr", "admin-addr", "login-addr", "admin-url",
	"registration", "registration-tokens", "metrics-addr", "metrics-per-client", "key-refresh-interval", "key-rotation-period", "database-max-conns", "password-check-url",
	"access-token-format", "pprof", "max-body-bytes", "max-header-bytes", "tls-cert-file", "tls-key-file",
	"outbound-allow", "token-rate-limit", "request-timeout",
}, loginSettings...)...)

// runServe runs until ctx ends: "serve" runs the provider with the login
// app mounted on its public listener at the login URL's path; "serve
// provider" runs the provider alone and "serve login" the login app alone.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s := newSettings("serve", stderr, serveSettings...)
	pos, err := s.parse(args)
	if err != nil {
		return err
	}
	mode := ""
	if len(pos) > 0 {
		mode = pos[0]
	}
	if len(pos) > 1 || (mode != "" && mode != "provider" && mode != "login") {
		fmt.Fprintf(stderr, "latchkey serve: unexpected arguments %q; run \"latchkey serve\", \"latchkey serve provider\" or \"latchkey serve login\"\n", pos)
		return errUsage
	}
	log, err := s.newLogger(stderr)
	if err != nil {
		return err
	}
	dev, err := s.bool("dev")
	if err != nil {
		return err
	}
	issuer := s.get("issuer")
	if issuer != "" {
		if err := checkIssuer(issuer, dev); err != nil {
			return err
		}
	}
	secret, oldSecrets, err := s.systemSecrets(log)
	if err != nil {
		return err
	}
	adminToken, tokenWhere, err := s.adminToken(log)
	if err != nil {
		return err
	}
	registration, registrationTokens, err := s.registration()
	if err != nil {
		return err
	}
	outboundAllow, err := s.outboundAllow()
	if err != nil {
		return err
	}
	perClient, err := s.bool("metrics-per-client")
	if err != nil {
		return err
	}
	keyRefresh, err := s.duration("key-refresh-interval")
	if err != nil {
		return err
	}
	keyRotation, err := s.duration("key-rotation-period")
	if err != nil {
		return err
	}
	maxConns, err := s.maxConns()
	if err != nil {
		return err
	}
	tokenRate, err := s.rate("token-rate-limit")
	if err != nil {
		return err
	}
	serverTLS, err := s.serverTLS(log)
	if err != nil {
		return err
	}
	if err := checkTLSURLs(serverTLS, mode, issuer, s.get("login-url")); err != nil {
		return err
	}
	if mode == "login" {
		return serveLogin(ctx, s, log, stdout, issuer, adminToken, secret, oldSecrets, dev, maxConns, serverTLS)
	}

	publicLn, err := net.Listen("tcp", s.get("public-addr"))
	if err != nil {
		return fmt.Errorf("public listener: %w", err)
	}
	defer publicLn.Close()
	adminLn, err := net.Listen("tcp", s.get("admin-addr"))
	if err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	defer adminLn.Close()
	if issuer == "" {
		issuer = defaultIssuer(scheme(serverTLS), publicLn.Addr())
		if !provider.IsLoopback(publicLn.Addr().(*net.TCPAddr).IP.String()) {
			log.Warn("no --issuer given: using a loopback issuer while listening beyond loopback; set --issuer to the URL clients use", "issuer", issuer)
		}
	}

	cfg := provider.Config{
		Issuer:           issuer,
		LoginURL:         s.get("login-url"),
		AdminToken:       adminToken,
		SystemSecret:     secret,
		OldSystemSecrets: oldSecrets,
		Dev:              dev,
		Log:              log,

		RegistrationPolicy: registration,
		RegistrationTokens: registrationTokens,
		PasswordCheckURL:   s.get("password-check-url"),
		KeyRefreshInterval: keyRefresh,
		KeyRotateEvery:     keyRotation,
		MetricsPerClient:   perClient,
		AccessTokenFormat:  s.get("access-token-format"),
		TokenRateLimit:     tokenRate,
		OutboundAllow:      outboundAllow,
	}
	storeOpts := provider.StoreOptions(cfg)
	storeOpts.MaxOpenConns = maxConns
	st, err := s.openStore(ctx, storeOpts, true)
	if err != nil {
		return err
	}
	defer st.Close()
	tel, err := newTelemetry(s, log, st)
	if err != nil {
		return err
	}
	cfg.Registerer = tel.reg
	p, err := provider.New(ctx, st, cfg)
	if err != nil {
		return err
	}
	publicURL, adminURL := scheme(serverTLS)+"://"+publicLn.Addr().String(), "http://"+adminLn.Addr().String()
	public := p.PublicHandler()
	loginWhere := "not served here (serve login runs it)"
	if mode == "" {
		loginURL := s.get("login-url")
		if loginURL == "" {
			loginURL = p.Issuer() + "/login"
		}
		app, err := newLoginApp(ctx, s, st, log, tel.reg, p.Issuer(), loginURL, adminURL, adminToken, secret, oldSecrets, dev)
		if err != nil {
			return err
		}
		public = app.Mount(public)
		loginWhere = loginURL
	}

	metricsLn, err := tel.metricsListener(s, p.Ready)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Latchkey %s is serving.\n  issuer       %s\n  public       %s\n  login app    %s\n  admin API    %s\n  admin token  %s\n  metrics      %s\n  database     %s\n",
		version, p.Issuer(), publicURL, loginWhere, adminURL, tokenWhere, metricsWhere(metricsLn), s.databaseName())
	log.Info("serving", "version", version, "issuer", p.Issuer(), "public", publicURL, "admin", adminURL, "dev", dev,
		"registration", string(registration), "metrics", metricsWhere(metricsLn))

	return serveUntilDone(ctx, log, p.Run, append([]listener{
		listenTLS(tel.listener("public", publicLn, public, p.Ready), serverTLS),
		tel.listener("admin", adminLn, p.AdminHandler(), p.Ready),
	}, metricsLn...))
}

// metricsWhere says where /metrics is served, for the start-up message.
func metricsWhere(ls []listener) string {
	if len(ls) == 0 {
		return "off"
	}
	return "http://" + ls[0].ln.Addr().String() + "/metrics"
}

// serveLogin runs the login app alone, against a provider's admin API.
func serveLogin(ctx context.Context, s *settings, log *slog.Logger, stdout io.Writer, issuer, adminToken string, secret []byte, old [][]byte, dev bool, maxConns int, serverTLS *tls.Config) error {
	loginURL := s.get("login-url")
	if issuer == "" || loginURL == "" {
		return errors.New("serve login needs --issuer and --login-url (where browsers reach the login app)")
	}
	ln, err := net.Listen("tcp", s.get("login-addr"))
	if err != nil {
		return fmt.Errorf("login listener: %w", err)
	}
	defer ln.Close()
	st, err := s.openStore(ctx, store.Options{SystemSecret: secret, OldSystemSecrets: old, MaxOpenConns: maxConns}, true)
	if err != nil {
		return err
	}
	defer st.Close()
	tel, err := newTelemetry(s, log, st)
	if err != nil {
		return err
	}
	app, err := newLoginApp(ctx, s, st, log, tel.reg, issuer, loginURL, s.get("admin-url"), adminToken, secret, old, dev)
	if err != nil {
		return err
	}
	metricsLn, err := tel.metricsListener(s, app.Ready)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Latchkey %s login app is serving.\n  login app    %s (listening on %s)\n  admin API    %s\n  metrics      %s\n  database     %s\n",
		version, loginURL, scheme(serverTLS)+"://"+ln.Addr().String(), s.get("admin-url"), metricsWhere(metricsLn), s.databaseName())
	log.Info("serving the login app", "version", version, "login_url", loginURL, "listen", ln.Addr().String(), "metrics", metricsWhere(metricsLn))
	return serveUntilDone(ctx, log, nil, append([]listener{
		listenTLS(tel.listener("login", ln, app.Mount(http.NotFoundHandler()), app.Ready), serverTLS),
	}, metricsLn...))
}

// databaseName says which database serve uses, without a password.
func (s *settings) databaseName() string {
	dbURL, postgres, _ := s.databaseURL()
	if postgres {
		return "PostgreSQL" // the URL may hold a password
	}
	return "SQLite file " + dbURL
}

type listener struct {
	name           string
	ln             net.Listener
	handler        http.Handler
	maxHeaderBytes int
}

// serveUntilDone serves every listener and runs the background work until ctx ends or a listener fails, then shuts the servers down
// gracefully and stops the background work. A shutdown asked for through
// ctx is not an error.
func serveUntilDone(ctx context.Context, log *slog.Logger, background func(context.Context), listeners []listener) error {
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan struct{})
	go func() {
		if background != nil {
			background(runCtx)
		}
		close(runDone)
	}()

	errc := make(chan error, len(listeners))
	servers := make([]*http.Server, len(listeners))
	for i, l := range listeners {
		srv := &http.Server{
			Handler:           l.handler,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    l.maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(log.With("listener", l.name).Handler(), slog.LevelWarn),
		}
		servers[i] = srv
		go func() {
			if err := srv.Serve(l.ln); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s listener: %w", l.name, err)
			}
		}()
	}

	var err error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-errc:
		log.Error("a listener failed; shutting down", "err", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	for i, srv := range servers {
		if serr := srv.Shutdown(shutdownCtx); serr != nil {
			// Out of time: close the connections still open rather than
			// leave them to a store that is about to close.
			log.Warn("requests were cut off by the shutdown", "listener", listeners[i].name, "err", serr)
			_ = srv.Close()
		}
	}
	stopRun()
	<-runDone
	return err
}

// checkIssuer refuses an issuer the provider would refuse, saying why in
// terms of the flags.
func checkIssuer(issuer string, dev bool) error {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("--issuer %q is not an absolute http:// or https:// URL", issuer)
	}
	if u.Scheme == "http" && !dev && !provider.IsLoopback(u.Hostname()) {
		return fmt.Errorf("--issuer %q: a plain http issuer is allowed only on a loopback address (127.0.0.1, [::1], localhost); "+
			"use https (TLS may end at a proxy in front of latchkey), or --dev for local testing", issuer)
	}
	return nil
}

// defaultIssuer is the public listener's scheme and address, loopback
// when it listens on every interface.
func defaultIssuer(scheme string, addr net.Addr) string {
	ta := addr.(*net.TCPAddr)
	host := ta.IP.String()
	if ta.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, fmt.Sprint(ta.Port))
}

// adminToken returns the admin token and where it is, for the start-up
// message: given, or generated once into the data directory.
func (s *settings) adminToken(log *slog.Logger) (token, where string, err error) {
	if v := s.get("admin-token"); v != "" {
		if len(v) < 16 {
			return "", "", errors.New("--admin-token must be at least 16 characters")
		}
		return v, "as configured (--admin-token or LATCHKEY_ADMIN_TOKEN)", nil
	}
	v, path, err := dataDirSecret(s.dataDir(), adminTokenFile, log)
	if err != nil {
		return "", "", err
	}
	return v, "in " + path, nil
}

// registration returns the dynamic client registration policy and its
// initial access tokens. It stays closed unless asked, in dev mode too:
// dev mode relaxes transport rules, not who may create clients.
func (s *settings) registration() (provider.RegistrationPolicy, []string, error) {
	var tokens []string
	for _, t := range strings.Split(s.get("registration-tokens"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			tokens = append(tokens, t)
		}
	}
	policy, err := provider.ParseRegistrationPolicy(strings.TrimSpace(s.get("registration")), tokens)
	if err != nil {
		return "", nil, fmt.Errorf("--registration, --registration-tokens: %w", err)
	}
	return policy, tokens, nil
}
