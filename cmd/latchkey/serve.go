package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/latchkey-oidc/latchkey/provider"
)

// shutdownTimeout bounds how long serve waits for requests in flight when
// it is told to stop.
const shutdownTimeout = 10 * time.Second

var serveSettings = withLog(
	"database-url", "data-dir", "system-secret", "old-system-secrets", "dev",
	"issuer", "login-url", "admin-token", "public-addr", "admin-addr",
)

// runServe runs the provider until ctx ends: "serve" and "serve provider"
// are the same until the login app exists.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s := newSettings("serve", stderr, serveSettings...)
	pos, err := s.parse(args)
	if err != nil {
		return err
	}
	for i, a := range pos {
		if i > 0 || a != "provider" {
			fmt.Fprintf(stderr, "latchkey serve: unexpected argument %q; run \"latchkey serve\" or \"latchkey serve provider\"\n", a)
			return errUsage
		}
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
		issuer = defaultIssuer(publicLn.Addr())
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
	}
	st, err := s.openStore(ctx, provider.StoreOptions(cfg), true)
	if err != nil {
		return err
	}
	defer st.Close()
	p, err := provider.New(ctx, st, cfg)
	if err != nil {
		return err
	}

	dbURL, postgres, _ := s.databaseURL()
	database := "SQLite file " + dbURL
	if postgres {
		database = "PostgreSQL" // the URL may hold a password
	}
	publicURL, adminURL := "http://"+publicLn.Addr().String(), "http://"+adminLn.Addr().String()
	fmt.Fprintf(stdout, "Latchkey %s is serving.\n  issuer       %s\n  public       %s\n  admin API    %s\n  admin token  %s\n  database     %s\n",
		version, p.Issuer(), publicURL, adminURL, tokenWhere, database)
	log.Info("serving", "version", version, "issuer", p.Issuer(), "public", publicURL, "admin", adminURL, "dev", dev)

	return serveUntilDone(ctx, log, p, []listener{
		{"public", publicLn, p.PublicHandler()},
		{"admin", adminLn, p.AdminHandler()},
	})
}

type listener struct {
	name    string
	ln      net.Listener
	handler http.Handler
}

// serveUntilDone serves every listener and runs the provider's background
// work until ctx ends or a listener fails, then shuts the servers down
// gracefully and stops the background work. A shutdown asked for through
// ctx is not an error.
func serveUntilDone(ctx context.Context, log *slog.Logger, p *provider.Provider, listeners []listener) error {
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan struct{})
	go func() {
		p.Run(runCtx)
		close(runDone)
	}()

	errc := make(chan error, len(listeners))
	servers := make([]*http.Server, len(listeners))
	for i, l := range listeners {
		srv := &http.Server{
			Handler:           l.handler,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
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
			log.Warn("requests were cut off by the shutdown", "listener", listeners[i].name, "err", serr)
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

// defaultIssuer is http:// and the public listener's address, loopback
// when it listens on every interface.
func defaultIssuer(addr net.Addr) string {
	ta := addr.(*net.TCPAddr)
	host := ta.IP.String()
	if ta.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, fmt.Sprint(ta.Port))
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
