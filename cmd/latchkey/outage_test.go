package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/store/storetest"
)

// The outage test stops and starts a PostgreSQL cluster of its own, so that
// the other tests' database stays up. .ci/run creates it.
const (
	envFaultCluster = "LATCHKEY_TEST_FAULT_CLUSTER"      // as pg_lsclusters names it: "15/faults"
	envFaultURL     = "LATCHKEY_TEST_FAULT_DATABASE_URL" // a database on that cluster
)

// outageCallback is the redirect URI of the load's code flow client; it is
// never fetched, the code is read from the redirect.
const outageCallback = "https://app.example.test/callback"

// TestDatabaseOutageUnderLoad runs a mixed load (client credentials, the
// authorization code flow with the login and consent decided through the
// admin API, refresh and introspection) against "latchkey serve" on
// PostgreSQL, and stops and restarts the database underneath it.
//
// While the database is down every failure is a prompt 503
// temporarily_unavailable with Retry-After, never a 500 or a dropped
// connection, and /health/ready says 503. Once it is back Latchkey recovers
// without a restart. Afterwards every code was redeemed at most once, even
// by clients that retried an exchange answered 503, and every token a
// client was given is introspectable: none was issued without being stored.
func TestDatabaseOutageUnderLoad(t *testing.T) {
	cluster, base := faultCluster(t)
	l := serveForOutage(t, base)
	l.code = l.createClient(t, map[string]any{
		"redirect_uris": []string{outageCallback}, "grant_types": []string{"authorization_code", "refresh_token"},
		"response_types": []string{"code"}, "scope": "openid offline_access", "token_endpoint_auth_method": "client_secret_basic",
	})

	// The flows in flight when the load stops are finished, so that
	// the client knows every token it was given.
	ctx := t.Context()
	var stop atomic.Bool
	var workers sync.WaitGroup
	for i := range 8 {
		workers.Go(func() {
			for round := 0; !stop.Load(); round++ {
				l.round(ctx, i, round)
			}
		})
	}

	time.Sleep(2 * time.Second)
	l.phase.Store(int32(phaseDown))
	pgCluster(t, cluster, "stop")
	wentDown := time.Now()
	// Readiness follows the database within a few seconds.
	if !waitUntil(10*time.Second, func() bool { return l.readiness() == http.StatusServiceUnavailable }) {
		t.Errorf("/health/ready did not say 503 within 10s of the database stopping")
	}
	time.Sleep(3 * time.Second)
	pgCluster(t, cluster, "start")
	l.phase.Store(int32(phaseRecovering))
	if !waitUntil(30*time.Second, func() bool { return l.readiness() == http.StatusOK }) {
		t.Fatalf("/health/ready did not recover within 30s of the database starting")
	}
	t.Logf("database down for %v", time.Since(wentDown).Round(time.Millisecond))
	// Ready again: from now on nothing may fail.
	l.phase.Store(int32(phaseRecovered))
	time.Sleep(3 * time.Second)
	stop.Store(true)
	workers.Wait()
	l.retryPending(t.Context())

	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range l.violations {
		t.Error(v)
	}
	t.Logf("answers by phase and kind: %v", l.counts)
	t.Logf("slowest answer while the database was down: %v", l.slowestDown)
	if l.counts[countKey{phaseDown, "token", http.StatusServiceUnavailable}] == 0 {
		t.Errorf("no token request was answered 503 while the database was down: the outage was not exercised")
	}
	for _, kind := range []string{"client_credentials", "exchange", "refresh"} {
		if l.counts[countKey{phaseRecovered, kind, http.StatusOK}] == 0 {
			t.Errorf("no %s succeeded after the database came back", kind)
		}
	}
	for code, n := range l.redeemed {
		if n > 1 {
			t.Errorf("code %s… was redeemed %d times", code[:8], n)
		}
	}

	// Every token a client holds is in the database.
	var inactive int
	for token, tok := range l.issued {
		status, body, err := l.post(t.Context(), "/oauth2/introspect", tok.client, url.Values{"token": {token}})
		var in struct {
			Active bool `json:"active"`
		}
		if err != nil || status != http.StatusOK || json.Unmarshal(body, &in) != nil {
			t.Fatalf("introspection after the outage: %d %s %v", status, body, err)
		}
		if !in.Active {
			inactive++
			t.Errorf("a %s token the client was given is not active: it was not stored", tok.kind)
		}
	}
	t.Logf("introspected %d tokens issued before, during and after the outage; %d inactive", len(l.issued), inactive)
}

// serveForOutage runs "latchkey serve" on a fresh schema of the database
// at base, and returns a load against it with a client_credentials client.
func serveForOutage(t *testing.T, base string) *outageLoad {
	t.Helper()
	cleanEnv(t)
	dbURL := storetest.FreshPostgresAt(t, base)
	bin := buildLatchkey(t)
	srv := launchProcess(t, bin, "latchkey serve", []string{"serve",
		"--database-url", dbURL, "--system-secret", rand.Text() + rand.Text(), "--data-dir", t.TempDir(),
		"--public-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
		"--log-format", "json", "--log-level", "warn"})
	srv.waitListening(publicLine, adminLine, metricsLine)
	if srv.startErr != "" {
		t.Fatal(srv.startErr)
	}
	srv.waitHTTP(t)
	l := newOutageLoad(srv, readAdminToken(t, srv))
	l.cc = l.createClient(t, map[string]any{
		"grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "client_secret_basic",
	})
	return l
}

func newOutageLoad(srv *latchkeyProcess, adminToken string) *outageLoad {
	return &outageLoad{srv: srv, adminToken: adminToken, http: noRedirectClient(15 * time.Second),
		counts: map[countKey]int{}, issued: map[string]issuedToken{}, redeemed: map[string]int{}}
}

// faultCluster returns the cluster the test may stop and a database URL on
// it, or skips the test.
func faultCluster(t *testing.T) (cluster, dbURL string) {
	cluster, dbURL = os.Getenv(envFaultCluster), os.Getenv(envFaultURL)
	if cluster == "" || dbURL == "" {
		t.Skipf("%s and %s are not set: this test stops and starts a PostgreSQL cluster of its own (.ci/run creates one)", envFaultCluster, envFaultURL)
	}
	if _, err := exec.LookPath("pg_ctlcluster"); err != nil {
		t.Skipf("no pg_ctlcluster to stop and start %s with: %v", cluster, err)
	}
	// Whatever happens, the cluster is left running.
	t.Cleanup(func() { _ = exec.Command("pg_ctlcluster", pgCtlArgs(cluster, "start")...).Run() })
	return cluster, dbURL
}

func pgCtlArgs(cluster, action string) []string {
	version, name, _ := strings.Cut(cluster, "/")
	args := []string{"--skip-systemctl-redirect", version, name, action}
	if action == "stop" {
		// Fast: connections are cut at once, as in a crash or failover.
		args = append(args, "--mode", "fast")
	}
	return args
}

// pgCluster stops or starts the cluster.
func pgCluster(t *testing.T, cluster, action string) {
	t.Helper()
	if out, err := exec.Command("pg_ctlcluster", pgCtlArgs(cluster, action)...).CombinedOutput(); err != nil {
		t.Fatalf("pg_ctlcluster %s %s: %v\n%s", cluster, action, err, out)
	}
}

func waitUntil(d time.Duration, ok func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if ok() {
			return true
		}
	}
	return false
}

// readAdminToken reads the admin token serve wrote into its data dir.
func readAdminToken(t *testing.T, p *latchkeyProcess) string {
	t.Helper()
	for i, arg := range p.cmd.Args {
		if arg == "--data-dir" {
			b, err := os.ReadFile(p.cmd.Args[i+1] + "/admin-token")
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(b))
		}
	}
	t.Fatal("serve was started without --data-dir")
	return ""
}

func noRedirectClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// phase is where the outage stands when a request starts.
type phase int32

const (
	phaseUp phase = iota
	phaseDown
	phaseRecovering
	phaseRecovered
)

func (p phase) String() string {
	return [...]string{"up", "down", "recovering", "recovered"}[p]
}

type countKey struct {
	phase  phase
	kind   string
	status int
}

func (k countKey) String() string { return fmt.Sprintf("%s/%s/%d", k.phase, k.kind, k.status) }

type oauthClient struct{ id, secret string }

type issuedToken struct {
	kind   string
	client oauthClient
}

// pendingGrant is a code or refresh token to exchange; one answered 503
// is tried again once the database is back, as the client was told.
type pendingGrant struct {
	form url.Values
	code string // the code, when form exchanges one
	// replaces is the access token a refresh supersedes: rotation revokes
	// it.
	replaces string
	retry    int
}

// outageLoad is the load and what it saw.
type outageLoad struct {
	srv        *latchkeyProcess
	adminToken string
	http       *http.Client
	cc, code   oauthClient
	phase      atomic.Int32

	mu          sync.Mutex
	counts      map[countKey]int
	violations  []string
	slowestDown time.Duration
	issued      map[string]issuedToken // access token → how it was issued
	redeemed    map[string]int         // code → successful exchanges
	pending     []pendingGrant
}

func (l *outageLoad) createClient(t *testing.T, metadata map[string]any) oauthClient {
	t.Helper()
	status, body := l.srv.adminDo(t, l.adminToken, http.MethodPost, "/admin/clients", metadata)
	var c struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if status != http.StatusCreated || json.Unmarshal(body, &c) != nil {
		t.Fatalf("create client: %d %s", status, body)
	}
	return oauthClient{c.ID, c.Secret}
}

func (l *outageLoad) readiness() int {
	resp, err := http.Get(l.srv.public + "/health/ready")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// round is one round of a worker's load: mostly client credentials, and
// every third round a code flow with a refresh.
func (l *outageLoad) round(ctx context.Context, worker, round int) {
	if round%3 != worker%3 {
		l.clientCredentials(ctx)
		return
	}
	l.codeFlow(ctx, fmt.Sprintf("user-%d-%d", worker, round))
}

func (l *outageLoad) clientCredentials(ctx context.Context) {
	tok, ok := l.grant(ctx, "client_credentials", l.cc, url.Values{"grant_type": {"client_credentials"}})
	if ok {
		l.introspect(ctx, tok)
	}
}

// codeFlow signs subject in through the admin API, as a login app would,
// exchanges the code and refreshes once. A step answered 503 ends the flow,
// except an exchange or refresh, which is retried after the outage.
func (l *outageLoad) codeFlow(ctx context.Context, subject string) {
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: l.http.Timeout, CheckRedirect: l.http.CheckRedirect}
	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type": {"code"}, "client_id": {l.code.id}, "redirect_uri": {outageCallback},
		"scope": {"openid offline_access"}, "state": {rand.Text()}, "nonce": {rand.Text()},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	loc, ok := l.browse(ctx, browser, "authorize", l.srv.public+"/oauth2/auth?"+q.Encode())
	if !ok {
		return
	}
	if loc, ok = l.decide(ctx, browser, "login", loc, "login_challenge", map[string]any{"subject": subject}); !ok {
		return
	}
	if loc, ok = l.decide(ctx, browser, "consent", loc, "consent_challenge", map[string]any{"grant_scope": []string{"openid", "offline_access"}}); !ok {
		return
	}
	u, err := url.Parse(loc)
	if err != nil || !strings.HasPrefix(loc, outageCallback) || u.Query().Get("code") == "" {
		l.violation("the flow ended at %q, not at the callback with a code", loc)
		return
	}
	code := u.Query().Get("code")
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {outageCallback}, "code_verifier": {verifier}}
	tok, ok := l.exchange(ctx, pendingGrant{form: form, code: code})
	if !ok || tok.RefreshToken == "" {
		return
	}
	l.exchange(ctx, pendingGrant{form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}},
		replaces: tok.AccessToken})
}

// decide accepts the challenge that loc (the login app's page) carries in
// param through the admin API, and returns where the provider then sends
// the browser.
func (l *outageLoad) decide(ctx context.Context, browser *http.Client, kind, loc, param string, body map[string]any) (string, bool) {
	u, err := url.Parse(loc)
	if err != nil || u.Query().Get(param) == "" {
		l.violation("%s: expected a redirect with %s, got %q", kind, param, loc)
		return "", false
	}
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut,
		l.srv.admin+"/admin/"+kind+"/accept?challenge="+url.QueryEscape(u.Query().Get(param)), strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer "+l.adminToken)
	req.Header.Set("Content-Type", "application/json")
	a := l.do(l.http, req, "admin accept")
	if !a.ok || a.status != http.StatusOK {
		return "", false
	}
	var out struct {
		RedirectTo string `json:"redirect_to"`
	}
	if json.Unmarshal(a.body, &out) != nil || out.RedirectTo == "" {
		l.violation("%s accept answered %s", kind, a.body)
		return "", false
	}
	return l.browse(ctx, browser, kind+" continue", out.RedirectTo)
}

// browse GETs target and returns the redirect's Location.
func (l *outageLoad) browse(ctx context.Context, browser *http.Client, kind, target string) (string, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		l.violation("%s: %v", kind, err)
		return "", false
	}
	a := l.do(browser, req, kind)
	if !a.ok {
		return "", false
	}
	if a.status != http.StatusFound && a.status != http.StatusSeeOther {
		l.violation("%s answered %d, want a redirect: %.200s", kind, a.status, a.body)
		return "", false
	}
	loc := a.header.Get("Location")
	if u, err := url.Parse(loc); err == nil && strings.HasPrefix(loc, outageCallback) && u.Query().Has("error") {
		// The error went back to the client (RFC 6749 §4.1.2.1).
		if e := u.Query().Get("error"); e != "temporarily_unavailable" || a.start.phase == phaseRecovered {
			l.violation("%s (started %s) sent the client error %q: %s", kind, a.start.phase, e, u.Query().Get("error_description"))
		}
		return "", false
	}
	return loc, true
}

// exchange redeems a code or refresh token; one answered 503 is kept for a
// retry after the outage.
func (l *outageLoad) exchange(ctx context.Context, g pendingGrant) (tokenAnswer, bool) {
	kind := "exchange"
	if g.code == "" {
		kind = "refresh"
	}
	status, tok, ok := l.token(ctx, kind, l.code, g.form)
	switch {
	case ok:
		l.mu.Lock()
		if g.code != "" {
			l.redeemed[g.code]++
		}
		delete(l.issued, g.replaces)
		l.mu.Unlock()
		return tok, true
	case status == http.StatusServiceUnavailable:
		l.mu.Lock()
		l.pending = append(l.pending, g)
		l.mu.Unlock()
	case g.retry > 0 && status == http.StatusBadRequest && tok.Error == "invalid_grant":
		// The first attempt was answered 503 but its commit went
		// through: the retry is a replay, refused, and what the grant
		// issued is revoked.
		l.mu.Lock()
		delete(l.issued, g.replaces)
		l.mu.Unlock()
	case status != 0:
		l.violation("%s answered %d %s: %s", kind, status, tok.Error, tok.Description)
	}
	return tok, false
}

// retryPending retries the exchanges answered 503, as a client told to
// try again does.
func (l *outageLoad) retryPending(ctx context.Context) {
	l.mu.Lock()
	pending := l.pending
	l.pending = nil
	l.mu.Unlock()
	for _, g := range pending {
		g.retry++
		l.exchange(ctx, g)
	}
}

func (l *outageLoad) grant(ctx context.Context, kind string, c oauthClient, form url.Values) (string, bool) {
	_, tok, ok := l.token(ctx, kind, c, form)
	return tok.AccessToken, ok
}

// token posts form to the token endpoint; a success is recorded as issued.
func (l *outageLoad) token(ctx context.Context, kind string, c oauthClient, form url.Values) (int, tokenAnswer, bool) {
	var tok tokenAnswer
	req, err := l.formRequest(ctx, "/oauth2/token", c, form)
	if err != nil {
		l.violation("%s: %v", kind, err)
		return 0, tok, false
	}
	a := l.do(l.http, req, kind, "token")
	_ = json.Unmarshal(a.body, &tok)
	if !a.ok || a.status != http.StatusOK {
		return a.status, tok, false
	}
	if tok.AccessToken == "" {
		l.violation("%s answered 200 without an access token: %s", kind, a.body)
		return a.status, tok, false
	}
	l.mu.Lock()
	l.issued[tok.AccessToken] = issuedToken{kind, c}
	l.mu.Unlock()
	return a.status, tok, true
}

func (l *outageLoad) introspect(ctx context.Context, token string) {
	req, err := l.formRequest(ctx, "/oauth2/introspect", l.cc, url.Values{"token": {token}})
	if err != nil {
		l.violation("introspect: %v", err)
		return
	}
	l.do(l.http, req, "introspect")
}

// formRequest is a POST of form to the provider's path, with c's
// credentials in HTTP Basic authentication.
func (l *outageLoad) formRequest(ctx context.Context, path string, c oauthClient, form url.Values) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.srv.public+path, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	return req, nil
}

// post sends a formRequest and returns the answer, outside the load's
// accounting: for the checks made once the load is over.
func (l *outageLoad) post(ctx context.Context, path string, c oauthClient, form url.Values) (int, []byte, error) {
	req, err := l.formRequest(ctx, path, c, form)
	if err != nil {
		return 0, nil, err
	}
	resp, err := l.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// httpAnswer is an answer do checked; ok when a client can act on it.
type httpAnswer struct {
	start  started
	status int
	header http.Header
	body   []byte
	ok     bool
}

// do sends req with client, reads the answer and checks it under each of
// kinds (check).
func (l *outageLoad) do(client *http.Client, req *http.Request, kinds ...string) httpAnswer {
	a := httpAnswer{start: l.start(), header: http.Header{}}
	resp, err := client.Do(req)
	if err == nil {
		a.body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		a.status, a.header = resp.StatusCode, resp.Header
	}
	a.ok = l.check(a, err, kinds)
	return a
}

type started struct {
	phase phase
	at    time.Time
}

func (l *outageLoad) start() started { return started{phase(l.phase.Load()), time.Now()} }

// check records an answer under each of kinds and reports whether it is
// one a client can act on: not a transport error, no 5xx, and no violation:
// a 5xx other than 503 temporarily_unavailable with Retry-After, or (once
// the database is back) any 503, is one.
func (l *outageLoad) check(a httpAnswer, err error, kinds []string) bool {
	s := a.start
	elapsed := time.Since(s.at)
	l.mu.Lock()
	for _, k := range kinds {
		l.counts[countKey{s.phase, k, a.status}]++
	}
	if s.phase == phaseDown {
		l.slowestDown = max(l.slowestDown, elapsed)
	}
	l.mu.Unlock()
	unavailable := a.status == http.StatusServiceUnavailable
	switch {
	case err != nil:
		l.violation("%s (started %s): no answer after %v: %v", kinds[0], s.phase, elapsed.Round(time.Millisecond), err)
	case unavailable && s.phase == phaseRecovered:
		l.violation("%s answered 503 after the database was back: %.200s", kinds[0], a.body)
	case unavailable && !strings.Contains(string(a.body), "temporarily_unavailable"):
		l.violation("%s answered 503 without temporarily_unavailable: %.200s", kinds[0], a.body)
	case unavailable && a.header.Get("Retry-After") == "":
		l.violation("%s answered 503 without Retry-After", kinds[0])
	case a.status >= 500 && !unavailable:
		l.violation("%s (started %s) answered %d: %.300s", kinds[0], s.phase, a.status, a.body)
	}
	return err == nil && a.status < 500
}

func (l *outageLoad) violation(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.violations) < 50 {
		l.violations = append(l.violations, fmt.Sprintf(format, args...))
	}
}

// TestDatabaseRestartWhileIdle restarts PostgreSQL while Latchkey holds
// idle pooled connections and no request runs: every one of them is broken
// by the restart. Once /health/ready says 200 again, no request may fail
// on one of them (the driver finds them broken before they are used, and
// the pool dials anew).
func TestDatabaseRestartWhileIdle(t *testing.T) {
	cluster, base := faultCluster(t)
	l := serveForOutage(t, base)
	token, ok := l.grant(t.Context(), "client_credentials", l.cc, url.Values{"grant_type": {"client_credentials"}})
	if !ok {
		t.Fatalf("no token before the restart: %v", l.violations)
	}
	// Fill the pool: introspections at once each hold a connection, and
	// return it to the pool's idle list.
	var wg sync.WaitGroup
	for range 24 {
		wg.Go(func() { l.introspect(t.Context(), token) })
	}
	wg.Wait()

	pgCluster(t, cluster, "stop")
	pgCluster(t, cluster, "start")
	if !waitUntil(30*time.Second, func() bool { return l.readiness() == http.StatusOK }) {
		t.Fatal("/health/ready did not recover within 30s of the database starting")
	}
	l.phase.Store(int32(phaseRecovered)) // any 503 from now on is a violation
	for range 40 {
		if tok, ok := l.grant(t.Context(), "client_credentials", l.cc, url.Values{"grant_type": {"client_credentials"}}); ok {
			l.introspect(t.Context(), tok)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range l.violations {
		t.Error(v)
	}
}
