// Command latchkey-bench puts load on a running Latchkey and reports, per
// scenario, requests per second and latency percentiles. It starts
// nothing itself: it points at an issuer, finds every endpoint through
// /.well-known/openid-configuration, and registers the clients it needs
// through the provider's admin API before the load (and deletes them
// afterwards, unless --keep-clients).
//
// Each scenario runs closed-loop: --concurrency workers each send a
// request, wait for the answer and send the next. Requests of the
// --warmup period are made and not recorded; then every request that
// starts and ends inside the --duration window is. With --runs N the
// window is repeated N times (each after its own warm-up) and the median
// run by rps is reported again.
//
// Scenarios (--scenario, repeatable or comma-separated, or "all"):
//
//	client_credentials      token endpoint, client_credentials grant, client_secret_basic, opaque access tokens
//	client_credentials_jwt  the same with JWT access tokens: the client is registered with --jwt-metadata
//	                        (default {"latchkey_access_token_format":"jwt","latchkey_access_token_signing_alg":"ES256"});
//	                        a provider that refuses it or still issues opaque tokens is reported as an error line
//	client_credentials_jwt_rs256
//	                        the same with latchkey_access_token_signing_alg RS256
//	introspection           introspection endpoint: each worker introspects one access token of its client
//	refresh                 refresh_token grant with rotation; each worker's first refresh token comes from
//	                        an authorization code flow (openid offline_access) through the login app
//	authorization_code      one sample is a whole flow in a new browser (empty cookie jar): authorize with
//	                        PKCE S256, state and nonce, the login app's sign-in and consent forms, the
//	                        redirect (not loaded), the code exchanged at the token endpoint
//	device                  device grant polling of authorizations nobody approves; authorization_pending
//	                        and slow_down are the expected answers and the poll interval is ignored
//
// refresh and authorization_code default to 8 workers, the others to 64;
// --concurrency sets every scenario's. Both sign in as --username with
// --password, a user of the login app. authorization_code signs in for
// every flow and the login app accepts a TOTP code once per 30 s step and
// account, so it needs a user without a second factor and refuses to run
// when the login app asks for one. refresh signs in once for its set-up and
// can use a user with TOTP when --totp-secret gives the seed.
//
// The login app's per-account throttle counts a sign-in from before the
// password is checked until it succeeds, so more than a handful of
// simultaneous sign-ins of one account are refused (429, counted as
// sign_in_throttled) even with the right password. Give several users with
// the same password (--username bench1,bench2,…) to spread
// authorization_code's workers over them, as real traffic is.
//
// Output: one JSON line per scenario and run (--out, default stdout):
//
//	{"scenario":"client_credentials","label":"postgres","run":1,"concurrency":64,"duration_s":20,"warmup_s":3,
//	 "requests":41234,"errors":0,"errors_by_kind":{},"rps":2061.7,"p50_ms":29.1,"p90_ms":41.3,
//	 "p99_ms":60.2,"max_ms":95.4,"mean_ms":30.9,"started_at":"…","issuer":"http://127.0.0.1:8080",
//	 "keep_alive":true,"max_idle_conns_per_host":64,"note":"…"}
//
// label is --label copied as given (omitted when empty), to tell apart the
// lines of runs against different set-ups once they are put together, as
// perf-table does with "postgres" and "sqlite".
//
// requests counts every request of the window and errors those without the
// expected answer, by kind: "oauth:<error>" for an RFC 6749 error answer,
// "http_<status>" for another failed status, "transport" or "timeout" when
// no answer came, or the scenario's own ("not_jwt", "inactive",
// "sign_in_throttled", …), with one example message per kind in
// error_examples. rps and the latencies are of successful requests. A
// scenario that could not be set up gets a line with "error" and no
// figures. A short table goes to stderr. All requests share one keep-alive
// transport with an idle connection per worker.
//
// The exit status is 2 for a bad command line, 1 when the issuer cannot be
// reached, a scenario's set-up fails (other than the JWT scenarios on a
// provider without JWT access tokens) or no scenario ran, and 0
// otherwise, whatever the error counts.
//
// cmd/latchkey-bench/perf-table (a script, run from the repository root)
// starts `latchkey serve` on PostgreSQL and on SQLite, runs every scenario
// against each, measures pgbench's ceiling, the server's memory and its
// start-up time, and writes README.md's Performance section with
// cmd/latchkey-bench/perftable.
//
// Against a development server on this machine:
//
//	go run ./cmd/latchkey serve --data-dir bench-data --public-addr 127.0.0.1:8080 --admin-addr 127.0.0.1:8081 --metrics-addr off
//	go run ./cmd/latchkey users create --data-dir bench-data --username bench --password 'correct horse battery staple'
//	go run ./cmd/latchkey-bench --issuer http://127.0.0.1:8080 \
//	    --admin-url http://127.0.0.1:8081 --admin-token "$(cat bench-data/admin-token)" \
//	    --username bench --password 'correct horse battery staple' \
//	    --scenario all --duration 20s --out bench.jsonl
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/latchkey-oidc/latchkey/conformance/useragent"
	"github.com/latchkey-oidc/latchkey/login/totp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	defaultJWTs = `{"latchkey_access_token_format":"jwt","latchkey_access_token_signing_alg":"ES256"}`
)

// config is the command line.
type config struct {
	issuer, adminURL, adminToken string
	scenarios                    []scenario
	concurrency                  int
	concurrencySet               bool
	duration, warmup, timeout    time.Duration
	runs                         int
	usernames                    []string
	password                     string
	totpSeed                     []byte
	clientID, clientSecret       string
	redirectURI                  string
	jwtMetadata                  map[string]any
	out                          string
	label                        string
	keepClients                  bool
}

// scenarioList is the repeatable, comma-separated --scenario flag.
type scenarioList []string

func (l *scenarioList) String() string { return strings.Join(*l, ",") }
func (l *scenarioList) Set(s string) error {
	for name := range strings.SplitSeq(s, ",") {
		if name = strings.TrimSpace(name); name != "" {
			*l = append(*l, name)
		}
	}
	return nil
}

func scenarioNames() []string {
	var names []string
	for _, s := range scenarios {
		names = append(names, s.name)
	}
	return names
}

// parseFlags reads the command line; a nil config with a nil error means
// help was asked for.
func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("latchkey-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		c          config
		names      scenarioList
		totpSecret string
		username   string
		jwtMeta    string
	)
	fs.StringVar(&c.issuer, "issuer", "", "issuer URL of the Latchkey under load (required)")
	fs.StringVar(&c.adminURL, "admin-url", "", "the provider's admin API, to register the clients of the run")
	fs.StringVar(&c.adminToken, "admin-token", "", "bearer token of the admin API (env LATCHKEY_ADMIN_TOKEN)")
	fs.Var(&names, "scenario", "scenario to run, repeatable or comma-separated: "+strings.Join(scenarioNames(), ", ")+", or all")
	fs.IntVar(&c.concurrency, "concurrency", 64, "workers per scenario (default 8 for refresh and authorization_code)")
	fs.DurationVar(&c.duration, "duration", 20*time.Second, "measured window of each run")
	fs.DurationVar(&c.warmup, "warmup", 3*time.Second, "load before each window, not recorded")
	fs.IntVar(&c.runs, "runs", 1, "runs per scenario; with more than one the median run is reported too")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "timeout of one HTTP request")
	fs.StringVar(&username, "username", "", "a user of the login app, for refresh and authorization_code; "+
		"several, comma-separated, with the same password spread authorization_code's sign-ins over them")
	fs.StringVar(&c.password, "password", "", "the user's password")
	fs.StringVar(&totpSecret, "totp-secret", "", "the (first) user's TOTP seed in base32, for the refresh set-up's one sign-in")
	fs.StringVar(&c.clientID, "client-id", "", "use this client instead of registering one per scenario")
	fs.StringVar(&c.clientSecret, "client-secret", "", "the --client-id client's secret (none for a public client)")
	fs.StringVar(&c.redirectURI, "redirect-uri", "http://127.0.0.1:1/callback", "redirect URI of the code flows (never loaded)")
	fs.StringVar(&jwtMeta, "jwt-metadata", defaultJWTs, "client metadata (a JSON object) added to the client_credentials_jwt client")
	fs.StringVar(&c.out, "out", "", "file for the JSON lines (default stdout)")
	fs.StringVar(&c.label, "label", "", `copied into every JSON line as "label", e.g. the database of the run`)
	fs.BoolVar(&c.keepClients, "keep-clients", false, "keep the clients the run registered")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil
		}
		return nil, err
	}
	fs.Visit(func(f *flag.Flag) { c.concurrencySet = c.concurrencySet || f.Name == "concurrency" })
	usage := func(format string, a ...any) (*config, error) {
		return nil, fmt.Errorf(format, a...)
	}
	if fs.NArg() > 0 {
		return usage("unexpected arguments %q", fs.Args())
	}
	if c.issuer == "" {
		return usage("--issuer is required")
	}
	if c.adminToken == "" {
		c.adminToken = os.Getenv("LATCHKEY_ADMIN_TOKEN")
	}
	switch {
	case c.concurrency < 1:
		return usage("--concurrency must be at least 1")
	case c.duration <= 0:
		return usage("--duration must be positive")
	case c.warmup < 0:
		return usage("--warmup must not be negative")
	case c.runs < 1:
		return usage("--runs must be at least 1")
	case c.timeout <= 0:
		return usage("--timeout must be positive")
	case c.clientSecret != "" && c.clientID == "":
		return usage("--client-secret needs --client-id")
	case c.clientID == "" && c.adminURL == "":
		return usage("--admin-url (and --admin-token) is required to register the run's clients, unless --client-id is given")
	case c.clientID == "" && c.adminToken == "":
		return usage("--admin-token (or LATCHKEY_ADMIN_TOKEN) is required with --admin-url")
	}
	if len(names) == 0 {
		return usage("--scenario is required: %s, or all", strings.Join(scenarioNames(), ", "))
	}
	for _, n := range names {
		if n == "all" {
			names = append(names, scenarioNames()...)
		}
	}
	for _, n := range names {
		if n == "all" {
			continue
		}
		s, ok := scenarioNamed(n)
		if !ok {
			return usage("unknown scenario %q; choose among %s, or all", n, strings.Join(scenarioNames(), ", "))
		}
		if !slices.ContainsFunc(c.scenarios, func(o scenario) bool { return o.name == s.name }) {
			c.scenarios = append(c.scenarios, s)
		}
	}
	// Run in the documented order, whatever the order given.
	slices.SortStableFunc(c.scenarios, func(a, b scenario) int {
		return slices.Index(scenarioNames(), a.name) - slices.Index(scenarioNames(), b.name)
	})
	var needUser []string
	for _, s := range c.scenarios {
		if s.needsUser {
			needUser = append(needUser, s.name)
		}
	}
	for name := range strings.SplitSeq(username, ",") {
		if name = strings.TrimSpace(name); name != "" {
			c.usernames = append(c.usernames, name)
		}
	}
	if len(needUser) > 0 && (len(c.usernames) == 0 || c.password == "") {
		return usage("%s sign in through the login app: give --username and --password of a user (latchkey users create), or leave them out of --scenario",
			strings.Join(needUser, " and "))
	}
	if totpSecret != "" {
		seed, err := totp.ParseSecret(totpSecret)
		if err != nil {
			return usage("--totp-secret: %v", err)
		}
		c.totpSeed = seed
	}
	if err := json.Unmarshal([]byte(jwtMeta), &c.jwtMetadata); err != nil {
		return usage("--jwt-metadata must be a JSON object: %v", err)
	}
	return &c, nil
}

// workersFor is the concurrency of scenario s.
func (c *config) workersFor(s scenario) int {
	if c.concurrencySet {
		return c.concurrency
	}
	return s.workers
}

// run is the command; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "latchkey-bench:", err)
		return exitUsage
	}
	if cfg == nil {
		return exitOK
	}
	out := stdout
	if cfg.out != "" {
		f, err := os.Create(cfg.out)
		if err != nil {
			fmt.Fprintln(stderr, "latchkey-bench:", err)
			return exitFailed
		}
		defer f.Close()
		out = f
	}
	idle := 0
	for _, s := range cfg.scenarios {
		idle = max(idle, cfg.workersFor(s))
	}
	t := &target{
		http:        &http.Client{Transport: newTransport(idle), Timeout: cfg.timeout},
		idlePerHost: idle,
		adminURL:    cfg.adminURL,
		adminToken:  cfg.adminToken,
	}
	if err := t.discover(ctx, cfg.issuer); err != nil {
		fmt.Fprintln(stderr, "latchkey-bench:", err)
		return exitFailed
	}
	e := &env{t: t, redirectURI: cfg.redirectURI, jwtMetadata: cfg.jwtMetadata}
	for i, name := range cfg.usernames {
		u := &useragent.User{Username: name, Password: cfg.password}
		if i == 0 && cfg.totpSeed != nil {
			u.Authenticator = useragent.NewAuthenticator(cfg.totpSeed)
		}
		e.users = append(e.users, u)
	}
	if cfg.clientID != "" {
		e.override = &client{ID: cfg.clientID, Secret: cfg.clientSecret}
	}

	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	var all []result
	status, ran := exitOK, 0
	for _, s := range cfg.scenarios {
		if ctx.Err() != nil {
			break
		}
		rs, err := runScenario(ctx, e, cfg, s, stderr)
		for _, r := range rs {
			if werr := enc.Encode(r); werr != nil {
				fmt.Fprintln(stderr, "latchkey-bench: write results:", werr)
				status = exitFailed
			}
		}
		all = append(all, rs...)
		switch {
		case err == nil:
			ran++
		case !errors.Is(err, errUnsupported):
			status = exitFailed
		}
	}
	if !cfg.keepClients {
		// The run's context may be cancelled; deleting takes little.
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		for _, err := range t.deleteClients(cleanup) {
			fmt.Fprintln(stderr, "latchkey-bench: warning:", err)
		}
		cancel()
	}
	fmt.Fprintln(stderr)
	writeSummary(stderr, all, t.idlePerHost)
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "latchkey-bench: interrupted")
		return exitFailed
	}
	if ran == 0 {
		status = exitFailed
	}
	return status
}

// runScenario sets s up and runs it cfg.runs times. A set-up that fails
// gives one result with Error and the error.
func runScenario(ctx context.Context, e *env, cfg *config, s scenario, stderr io.Writer) ([]result, error) {
	n := cfg.workersFor(s)
	base := result{
		Scenario: s.name, Label: cfg.label, Concurrency: n, WarmupS: cfg.warmup.Seconds(), ErrorsByKind: map[string]int{},
		Issuer: e.t.meta.Issuer, KeepAlive: true, IdlePerHost: e.t.idlePerHost, Note: s.note,
	}
	fmt.Fprintf(stderr, "%s: setting up %d workers\n", s.name, n)
	workers, err := s.setUp(ctx, e, n)
	if err != nil {
		r := base
		r.Error = "set-up: " + err.Error()
		fmt.Fprintf(stderr, "%s: %s\n", s.name, r.Error)
		return []result{r}, err
	}
	var runs []result
	for i := range cfg.runs {
		fmt.Fprintf(stderr, "%s: run %d of %d: %v warm-up, %v measured\n", s.name, i+1, cfg.runs, cfg.warmup, cfg.duration)
		t, started := measure(ctx, workers, cfg.warmup, cfg.duration)
		if ctx.Err() != nil {
			return runs, ctx.Err()
		}
		r := base
		r.Run = i + 1
		summarise(&r, t, cfg.duration, started)
		runs = append(runs, r)
	}
	if len(runs) > 1 {
		runs = append(runs, median(runs))
	}
	return runs, nil
}
