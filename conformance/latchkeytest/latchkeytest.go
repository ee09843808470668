// Package latchkeytest starts a whole Latchkey inside a test process, the
// way "latchkey serve" runs it: the provider on a loopback listener with
// the login app mounted at /login, and the admin API on a second listener.
// The database is a fresh SQLite file, or a fresh PostgreSQL database when
// LATCHKEY_TEST_PROVIDER_BACKEND=postgres (LATCHKEY_TEST_DATABASE_URL then
// names the server); Server.Restart replaces the provider and login app
// with new instances on that database. The conformance runner and the
// relying-party tests use it; they reach Latchkey over HTTP only, except
// for the operator's set-up (users and clients), which goes through the
// store and the admin API as the CLI does.
package latchkeytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/latchkey-oidc/latchkey/login"
	"github.com/latchkey-oidc/latchkey/login/mail"
	"github.com/latchkey-oidc/latchkey/login/password"
	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
	"github.com/latchkey-oidc/latchkey/store/storetest"
)

// AdminToken is the admin API token of every test server.
const AdminToken = "latchkeytest-admin-token-0123456789abcdef"

// Server is a running Latchkey.
type Server struct {
	Issuer   string
	AdminURL string
	Store    *store.Store
	// Backend is "sqlite" or "postgres".
	Backend string
	// HTTPClient trusts the server's certificate when it serves https.
	HTTPClient *http.Client

	t      testing.TB
	hasher *password.Hasher
	opts   Options
	dbURL  string
	log    *slog.Logger
	outbox string
	// public and admin are what the listeners serve; stop stops the
	// running instance (see Restart).
	public, admin atomic.Pointer[http.Handler]
	stop          func()
}

// Options change a server before it starts.
type Options struct {
	// TLS serves the provider and login app over https with a
	// self-signed certificate (HTTPClient trusts it), as a deployment
	// does; the admin API stays on loopback http.
	TLS      bool
	Provider func(*provider.Config)
	Login    func(*login.Config)
	// Wrap, when set, wraps the public handler (to break the provider on
	// purpose in tests of the tests).
	Wrap func(http.Handler) http.Handler
}

// Start runs a Latchkey until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{
		Backend: "sqlite", t: t, opts: opts,
		// Cheap argon2id parameters: the tests sign in hundreds of times.
		hasher: &password.Hasher{MemoryKiB: 64, Time: 1, Threads: 1},
		outbox: filepath.Join(t.TempDir(), "outbox.jsonl"),
	}
	s.setHandlers(http.NotFoundHandler(), http.NotFoundHandler())
	publicSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*s.public.Load()).ServeHTTP(w, r) }))
	if opts.TLS {
		publicSrv.StartTLS()
	} else {
		publicSrv.Start()
	}
	t.Cleanup(publicSrv.Close)
	adminSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*s.admin.Load()).ServeHTTP(w, r) }))
	t.Cleanup(adminSrv.Close)
	s.Issuer, s.AdminURL, s.HTTPClient = publicSrv.URL, adminSrv.URL, publicSrv.Client()

	// Errors of the provider and the login app go to the test log: a
	// server error in a test is a bug to see.
	tl := &testLog{t: t}
	t.Cleanup(tl.stop)
	s.log = slog.New(slog.NewTextHandler(tl, &slog.HandlerOptions{Level: slog.LevelError}))
	if os.Getenv("LATCHKEY_TEST_PROVIDER_BACKEND") == "postgres" {
		s.dbURL, s.Backend = storetest.FreshPostgres(t), "postgres"
	} else {
		s.dbURL = storetest.FreshSQLite(t)
	}
	s.startInstance()
	return s
}

// Restart replaces the running provider and login app with new instances
// on the same database at the same addresses, as a restart of the process
// (or another replica taking over) does: the old provider's background
// work, the back-channel logout worker among it, stops and its store
// closes, so only what the database holds carries over. The options are
// applied again (an Options.Provider that sets a Registerer must give a
// new one each time); Store is the new instance's. Requests that arrive
// while it restarts are answered 503.
func (s *Server) Restart() {
	s.t.Helper()
	down := http.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "Latchkey is restarting", http.StatusServiceUnavailable)
	}))
	s.setHandlers(down, down)
	s.stopInstance()
	s.startInstance()
}

// startInstance starts a provider and a login app on the server's database
// and serves them.
func (s *Server) startInstance() {
	t := s.t
	t.Helper()
	ctx := context.Background()
	pcfg := provider.Config{
		Log:          s.log,
		Issuer:       s.Issuer,
		AdminToken:   AdminToken,
		SystemSecret: storetest.TestSecret,
		KeyAlgs:      []string{"RS256"},
	}
	if s.opts.Provider != nil {
		s.opts.Provider(&pcfg)
	}
	st := storetest.OpenURL(t, s.dbURL, provider.StoreOptions(pcfg))
	p, err := provider.New(ctx, st, pcfg)
	if err != nil {
		t.Fatalf("start the provider: %v", err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { p.Run(runCtx); close(done) }()
	s.stop = func() {
		stop()
		<-done
		_ = st.Close()
	}
	// Before OpenURL's cleanup closes the store under the running provider.
	t.Cleanup(s.stopInstance)

	lcfg := login.Config{
		PublicURL:  s.Issuer + "/login",
		Issuer:     s.Issuer,
		AdminURL:   s.AdminURL,
		AdminToken: AdminToken,
		Secret:     storetest.TestSecret,
		Mail:       &mail.Outbox{Path: s.outbox},
		Passwords:  s.hasher,
		Registerer: prometheus.NewRegistry(),
		Log:        s.log,
	}
	if s.opts.Login != nil {
		s.opts.Login(&lcfg)
	}
	app, err := login.New(ctx, st, lcfg)
	if err != nil {
		t.Fatalf("start the login app: %v", err)
	}
	public := app.Mount(p.PublicHandler())
	if s.opts.Wrap != nil {
		public = s.opts.Wrap(public)
	}
	s.Store = st
	s.setHandlers(public, p.AdminHandler())
}

// stopInstance stops the running provider's background work and closes
// its store.
func (s *Server) stopInstance() {
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

func (s *Server) setHandlers(public, admin http.Handler) {
	s.public.Store(&public)
	s.admin.Store(&admin)
}

// CreateUser stores a user with a password and, when totpSecret is set, a
// confirmed TOTP authenticator, as "latchkey users create" does.
func (s *Server) CreateUser(username, pw string, totpSecret []byte) *store.User {
	s.t.Helper()
	ctx := context.Background()
	hash, err := s.hasher.Hash(ctx, pw)
	if err != nil {
		s.t.Fatal(err)
	}
	profile, _ := json.Marshal(map[string]any{
		"name": "Test " + username, "given_name": "Test", "family_name": username,
		"preferred_username": username, "locale": "en",
		"phone_number": "+1 555 0100", "phone_number_verified": false,
		"address": map[string]any{"street_address": "1 Main St", "locality": "Springfield", "postal_code": "12345", "country": "US"},
	})
	u := &store.User{Username: username, Email: username + "@example.test", EmailVerified: true, PasswordHash: hash, Profile: profile}
	if err := s.Store.CreateUser(ctx, u); err != nil {
		s.t.Fatalf("create user %s: %v", username, err)
	}
	if totpSecret != nil {
		if err := s.Store.SaveTOTPEnrolment(ctx, u.ID, totpSecret); err != nil {
			s.t.Fatal(err)
		}
		if err := s.Store.ConfirmTOTP(ctx, u.ID, 0); err != nil {
			s.t.Fatal(err)
		}
	}
	return u
}

// Client is a registered client's credentials.
type Client struct {
	ID     string
	Secret string
}

// CreateClient registers a client through the admin API, as an operator
// does with "latchkey clients create --file".
func (s *Server) CreateClient(meta map[string]any) Client {
	s.t.Helper()
	var out map[string]any
	s.Admin(http.MethodPost, "/admin/clients", meta, http.StatusCreated, &out)
	var c Client
	c.ID, _ = out["client_id"].(string)
	c.Secret, _ = out["client_secret"].(string)
	return c
}

// Admin calls the admin API and decodes its JSON answer into out.
func (s *Server) Admin(method, path string, in any, wantStatus int, out any) {
	s.t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			s.t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.AdminURL+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		s.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, wantStatus, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
}

// testLog writes log lines to the test's log while the test runs.
type testLog struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testLog) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}

// String names the server for logs.
func (s *Server) String() string { return fmt.Sprintf("Latchkey at %s on %s", s.Issuer, s.Backend) }
