package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store/storetest"
)

// cleanEnv unsets every LATCHKEY_* variable the commands read, so the
// developer's environment does not leak into a test.
func cleanEnv(t *testing.T) {
	t.Helper()
	t.Setenv("LATCHKEY_CONFIG", "")
	for _, def := range settingDefs {
		t.Setenv(def.env, "")
	}
}

// server is a "latchkey serve" running in the test.
type server struct {
	public, admin, issuer string
	metrics               string // the /metrics URL
	stdout, stderr        *latchkeytest.Output
	stop                  context.CancelFunc
	done                  chan error
}

var (
	publicLine  = regexp.MustCompile(`(?m)^\s+public\s+(https?://\S+)$`)
	adminLine   = regexp.MustCompile(`(?m)^\s+admin API\s+(http://\S+)$`)
	metricsLine = regexp.MustCompile(`(?m)^\s+metrics\s+(http://\S+)$`)
	issuerLine  = regexp.MustCompile(`(?m)^\s+issuer\s+(\S+)$`)
)

// startServe runs serve with args on ephemeral ports and waits until it
// answers HTTP. It stops the server when the test ends.
func startServe(t *testing.T, args ...string) *server {
	t.Helper()
	return startServeWith(t, http.DefaultClient, args...)
}

// startServeWith is startServe asking with client whether serve answers
// (one that trusts its certificate when it serves https).
func startServeWith(t *testing.T, client *http.Client, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{stdout: &latchkeytest.Output{}, stderr: &latchkeytest.Output{}, stop: cancel, done: make(chan error, 1)}
	args = append([]string{"serve", "--public-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"}, args...)
	go func() { s.done <- run(ctx, args, s.stdout, s.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			t.Error("serve did not stop")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := s.stdout.String()
		if p, a, i, m := publicLine.FindStringSubmatch(out), adminLine.FindStringSubmatch(out), issuerLine.FindStringSubmatch(out), metricsLine.FindStringSubmatch(out); p != nil && a != nil && i != nil && m != nil {
			s.public, s.admin, s.issuer, s.metrics = p[1], a[1], i[1], m[1]
			break
		}
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("serve ended before it listened: %v\nstdout: %s\nstderr: %s", err, out, s.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve printed no addresses: %s\nstderr: %s", out, s.stderr.String())
		}
	}
	// Any HTTP answer will do: the endpoint's owner may not have written it.
	for {
		resp, err := client.Get(s.public + "/.well-known/openid-configuration")
		if err == nil {
			resp.Body.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve does not answer HTTP: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shutdown stops the server and checks that run returns nil promptly.
func (s *server) shutdown(t *testing.T) {
	t.Helper()
	s.stop()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("serve returned %v after the context ended\nstderr: %s", err, s.stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not return within 15s of the context ending")
	}
}

// cli runs a latchkey command to completion and returns its stdout.
func cli(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("latchkey %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", filepath.Base(path), fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func adminGet(t *testing.T, s *server, token, path string, out any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.admin+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func currentKID(t *testing.T, keys []provider.SigningKeyView, alg string) string {
	t.Helper()
	for _, k := range keys {
		if k.Alg == alg && k.State == "current" {
			return k.KID
		}
	}
	t.Fatalf("no current %s key in %+v", alg, keys)
	return ""
}

func clientCredentials(id, secret, tokenURL string) error {
	conf := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInHeader}
	_, err := conf.Token(context.Background())
	return err
}

// TestServeEmbeddedDefault runs the server as a newcomer does, with only a
// data directory, and administers it with the CLI while it runs.
func TestServeEmbeddedDefault(t *testing.T) {
	cleanEnv(t)
	dir := filepath.Join(t.TempDir(), "latchkey-data")
	srv := startServe(t, "--data-dir", dir)
	if srv.issuer != srv.public {
		t.Errorf("issuer %s, want the public address %s", srv.issuer, srv.public)
	}
	secret := readFile(t, filepath.Join(dir, "system-secret"))
	token := readFile(t, filepath.Join(dir, "admin-token"))
	if len(secret) < 32 || len(token) < 16 {
		t.Fatalf("generated secret %d bytes, token %d", len(secret), len(token))
	}
	for _, out := range []string{srv.stdout.String(), srv.stderr.String()} {
		if strings.Contains(out, secret) || strings.Contains(out, token) {
			t.Fatal("serve printed the system secret or the admin token")
		}
	}
	if !strings.Contains(srv.stdout.String(), filepath.Join(dir, "admin-token")) {
		t.Errorf("serve does not say where the admin token is: %s", srv.stdout.String())
	}
	if status := adminGet(t, srv, "wrong-token-0123456789", "/admin/keys", nil); status != http.StatusUnauthorized {
		t.Errorf("admin API with a wrong token: %d", status)
	}

	// A client registered with the CLI while the server runs works there.
	file := filepath.Join(t.TempDir(), "client.json")
	if err := os.WriteFile(file, []byte(`{"client_id":"backend","client_name":"Backend","grant_types":["client_credentials"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var created struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	out := cli(t, "clients", "create", "--file", file, "--data-dir", dir)
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.ID != "backend" || created.Secret == "" {
		t.Fatalf("clients create printed %q (%v)", out, err)
	}
	if err := clientCredentials("backend", created.Secret, srv.public+"/oauth2/token"); err != nil {
		t.Fatalf("client_credentials with the CLI's client: %v", err)
	}
	if out := cli(t, "clients", "get", "backend", "--data-dir", dir); strings.Contains(out, `"client_secret"`) || !strings.Contains(out, `"Backend"`) {
		t.Errorf("clients get printed %s", out)
	}
	var listed []map[string]any
	if err := json.Unmarshal([]byte(cli(t, "clients", "list", "--data-dir", dir)), &listed); err != nil || len(listed) != 1 {
		t.Errorf("clients list: %v %v", listed, err)
	}

	// A rotation with the CLI shows in the running server's admin API.
	var before, after []provider.SigningKeyView
	if status := adminGet(t, srv, token, "/admin/keys", &before); status != http.StatusOK {
		t.Fatalf("admin keys: %d", status)
	}
	if err := json.Unmarshal([]byte(cli(t, "keys", "rotate", "--alg", "RS256", "--json", "--data-dir", dir)), &after); err != nil {
		t.Fatal(err)
	}
	if currentKID(t, after, "RS256") == currentKID(t, before, "RS256") {
		t.Fatal("keys rotate kept the current RS256 key")
	}
	var served []provider.SigningKeyView
	adminGet(t, srv, token, "/admin/keys", &served)
	if currentKID(t, served, "RS256") != currentKID(t, after, "RS256") {
		t.Errorf("the server did not pick up the rotation: %+v", served)
	}
	if out := cli(t, "keys", "list", "--data-dir", dir); !strings.Contains(out, "KID") || !strings.Contains(out, currentKID(t, after, "RS256")) {
		t.Errorf("keys list printed %s", out)
	}

	srv.shutdown(t)

	// A restart reuses the generated secrets: the client's secret still
	// verifies and the admin token is the same.
	srv = startServe(t, "--data-dir", dir)
	if readFile(t, filepath.Join(dir, "system-secret")) != secret || readFile(t, filepath.Join(dir, "admin-token")) != token {
		t.Fatal("a restart generated new secrets")
	}
	if err := clientCredentials("backend", created.Secret, srv.public+"/oauth2/token"); err != nil {
		t.Errorf("client_credentials after a restart: %v", err)
	}
	if status := adminGet(t, srv, token, "/admin/clients/backend", nil); status != http.StatusOK {
		t.Errorf("admin API after a restart: %d", status)
	}
	if out := cli(t, "clients", "delete", "backend", "--data-dir", dir); !strings.Contains(out, "deleted client backend") {
		t.Errorf("clients delete printed %q", out)
	}
	// The server's client cache follows changes other processes make
	// within seconds (provider.Run watches the store).
	for deadline := time.Now().Add(20 * time.Second); clientCredentials("backend", created.Secret, srv.public+"/oauth2/token") == nil; {
		if time.Now().After(deadline) {
			t.Fatal("a client deleted with the CLI still gets tokens after 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	srv.shutdown(t)
}

func TestServeRefusesPlainHTTPIssuer(t *testing.T) {
	cleanEnv(t)
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"serve", "--data-dir", dir, "--issuer", "http://example.com",
		"--public-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "plain http") || !strings.Contains(err.Error(), "--dev") {
		t.Fatalf("serve with an http issuer: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "latchkey.db")); err == nil {
		t.Error("the refused serve created a database")
	}
	// --dev allows it.
	srv := startServe(t, "--data-dir", dir, "--issuer", "http://example.com", "--dev")
	if srv.issuer != "http://example.com" {
		t.Errorf("issuer %q", srv.issuer)
	}
	srv.shutdown(t)
}

func TestServeArguments(t *testing.T) {
	cleanEnv(t)
	for _, args := range [][]string{
		{"serve", "login"},
		{"serve", "provider", "extra"},
		{"serve", "--log-format", "xml", "--data-dir", t.TempDir()},
		{"serve", "--admin-token", "short", "--data-dir", t.TempDir()},
		{"serve", "--system-secret", "short", "--data-dir", t.TempDir()},
		{"serve", "--database-max-conns", "0", "--data-dir", t.TempDir()},
		{"serve", "--key-rotation-period", "soon", "--data-dir", t.TempDir()},
		{"serve", "--key-refresh-interval", "-1s", "--data-dir", t.TempDir()},
	} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, &out, &errOut); err == nil {
			t.Errorf("%v succeeded", args)
		}
	}
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"serve", "--database-url", "postgres://127.0.0.1:1/none"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "--system-secret") {
		t.Errorf("PostgreSQL without a system secret: %v", err)
	}
}

// TestConfigPrecedence checks flag > environment > config file > default,
// and that serve takes its settings from a config file.
func TestConfigPrecedence(t *testing.T) {
	cleanEnv(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "latchkey.yaml")
	yaml := "issuer: http://127.0.0.1:9999/file\nlogin-url: https://login.example.test/file\npublic-addr: 127.0.0.1:0\nadmin-addr: 127.0.0.1:0\ndev: true\ndata-dir: " + filepath.Join(dir, "from-file") + "\n"
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LATCHKEY_LOGIN_URL", "https://login.example.test/env")
	t.Setenv("LATCHKEY_ADMIN_ADDR", "127.0.0.1:1")

	s := newSettings("serve", &bytes.Buffer{}, serveSettings...)
	if _, err := s.parse([]string{"--config", config, "--admin-addr", "127.0.0.1:2"}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"admin-addr":  "127.0.0.1:2",                    // flag over env
		"login-url":   "https://login.example.test/env", // env over file
		"issuer":      "http://127.0.0.1:9999/file",     // file over default
		"log-format":  "auto",                           // default
		"public-addr": "127.0.0.1:0",
	} {
		if got := s.get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if dev, err := s.bool("dev"); err != nil || !dev {
		t.Errorf("dev from the file: %v %v", dev, err)
	}

	// The config file from the environment, overridden by a flag.
	t.Setenv("LATCHKEY_ADMIN_ADDR", "")
	t.Setenv("LATCHKEY_CONFIG", config)
	srv := startServe(t, "--issuer", "http://127.0.0.1:9999/flag")
	if srv.issuer != "http://127.0.0.1:9999/flag" {
		t.Errorf("issuer %q, want the flag's", srv.issuer)
	}
	if _, err := os.Stat(filepath.Join(dir, "from-file", "admin-token")); err != nil {
		t.Errorf("data-dir from the config file was not used: %v", err)
	}
	srv.shutdown(t)

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("isuer: https://typo.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"migrate", "--config", bad}, &out, &errOut); err == nil || !strings.Contains(err.Error(), `"isuer"`) {
		t.Errorf("config file with an unknown key: %v", err)
	}
}

// TestServeMetricsAndHealth: serve answers the health checks on every
// listener and serves the metrics of the provider, the login app, the
// database pool, Go and the process on the metrics listener.
func TestServeMetricsAndHealth(t *testing.T) {
	cleanEnv(t)
	s := startServe(t, "--data-dir", filepath.Join(t.TempDir(), "latchkey-data"),
		"--key-rotation-period", "48h", "--database-max-conns", "3")
	metricsBase := strings.TrimSuffix(s.metrics, "/metrics")
	for _, base := range []string{s.public, s.admin, metricsBase} {
		for _, path := range []string{"/health/alive", "/health/ready"} {
			resp, err := http.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ok"`) {
				t.Errorf("%s%s: %d %s", base, path, resp.StatusCode, body)
			}
		}
	}
	resp, err := http.Get(s.metrics)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, body)
	}
	for _, family := range []string{
		`latchkey_build_info{version="dev"} 1`,
		"latchkey_tokens_issued_total{",
		"latchkey_login_signins_total{",
		"latchkey_database_up 1",
		"latchkey_signing_key_rotation_period_seconds 172800",
		`go_sql_max_open_connections{db_name="latchkey"} 3`,
		`latchkey_http_requests_total{code="200",listener="public",method="GET",route="/health/ready"} 1`,
		`latchkey_http_requests_total{code="200",listener="admin",method="GET",route="/health/ready"} 1`,
		`go_sql_open_connections{db_name="latchkey"}`,
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(string(body), family) {
			t.Errorf("/metrics lacks %q", family)
		}
	}
	// Scrapes and the metrics listener's health checks are not counted.
	if strings.Contains(string(body), `listener="metrics"`) {
		t.Error("the metrics listener counts its own requests")
	}
	if strings.Contains(string(body), "latchkey_client_tokens_issued_total") {
		t.Error("per-client metrics without --metrics-per-client")
	}
	resp, err = http.Get(metricsBase + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("profiles without --pprof: %d, want 404", resp.StatusCode)
	}
}

// TestServePprof: --pprof serves Go's profiles on the metrics listener.
func TestServePprof(t *testing.T) {
	cleanEnv(t)
	s := startServe(t, "--data-dir", filepath.Join(t.TempDir(), "latchkey-data"), "--pprof")
	metricsBase := strings.TrimSuffix(s.metrics, "/metrics")
	for path, want := range map[string]string{
		"/debug/pprof/":                  "goroutine",
		"/debug/pprof/heap?debug=1":      "heap profile",
		"/debug/pprof/profile?seconds=1": "",
	} {
		resp, err := http.Get(metricsBase + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(body) == 0 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d, %d bytes, want 200 with %q", path, resp.StatusCode, len(body), want)
		}
	}
}

// TestServeRequestLimits: --max-body-bytes and --max-header-bytes hold on
// every listener: 413 in the OAuth error shape for a body over the bound,
// 431 for headers over it, and requests within them are served.
func TestServeRequestLimits(t *testing.T) {
	cleanEnv(t)
	s := startServe(t, "--data-dir", filepath.Join(t.TempDir(), "latchkey-data"),
		"--max-body-bytes", "2048", "--max-header-bytes", "4096")
	for _, base := range []string{s.public + "/oauth2/token", s.admin + "/admin/clients"} {
		resp, err := http.Post(base, "application/x-www-form-urlencoded", strings.NewReader("grant_type=client_credentials&x="+strings.Repeat("a", 4096)))
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || out["error"] != "invalid_request" {
			t.Errorf("%s with a 4 KiB body: %d %v, want 413 invalid_request", base, resp.StatusCode, out)
		}
	}
	req, err := http.NewRequest(http.MethodGet, s.public+"/.well-known/openid-configuration", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Padding", strings.Repeat("a", 8192))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("8 KiB of headers: %d, want 431", resp.StatusCode)
	}
	resp, err = http.Get(s.public + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a request within the limits: %d", resp.StatusCode)
	}
	for _, bad := range [][]string{{"--max-body-bytes", "0"}, {"--max-header-bytes", "lots"}} {
		var stderr bytes.Buffer
		args := append([]string{"serve", "--data-dir", filepath.Join(t.TempDir(), "d"), "--public-addr", "127.0.0.1:0",
			"--admin-addr", "127.0.0.1:0", "--metrics-addr", "off"}, bad...)
		if err := run(context.Background(), args, io.Discard, &stderr); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%v: %v, want an error naming the flag", bad, err)
		}
	}
}

// TestServeTokenRateLimit: --token-rate-limit limits each client's token
// requests (one per 1000 s here, so the second is refused however slow the
// machine), and a bad value is refused at start.
func TestServeTokenRateLimit(t *testing.T) {
	cleanEnv(t)
	dir := filepath.Join(t.TempDir(), "latchkey-data")
	s := startServe(t, "--data-dir", dir, "--token-rate-limit", "0.001")
	secret := createCCClient(t, dir, "rated")
	for i, want := range []int{http.StatusOK, http.StatusTooManyRequests} {
		req, err := http.NewRequest(http.MethodPost, s.public+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("rated", secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("request %d: %d %v, want %d", i+1, resp.StatusCode, out, want)
		}
		if want == http.StatusTooManyRequests && (out["error"] != "too_many_requests" || resp.Header.Get("Retry-After") == "") {
			t.Errorf("over the rate: %v, Retry-After %q", out, resp.Header.Get("Retry-After"))
		}
	}
	for _, bad := range []string{"-1", "fast", "NaN"} {
		args := []string{"serve", "--data-dir", filepath.Join(t.TempDir(), "d"), "--public-addr", "127.0.0.1:0",
			"--admin-addr", "127.0.0.1:0", "--metrics-addr", "off", "--token-rate-limit", bad}
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "--token-rate-limit") {
			t.Errorf("--token-rate-limit %s: %v, want an error naming the flag", bad, err)
		}
	}
}

// TestServeRequestTimeout: a token request whose database write waits past
// --request-timeout (here behind a table lock) is answered 503
// temporarily_unavailable, not left hanging, and the next one after the
// lock is gone succeeds.
func TestServeRequestTimeout(t *testing.T) {
	cleanEnv(t)
	dbURL := storetest.FreshPostgres(t)
	secret := rand.Text() + rand.Text()
	s := startServe(t, "--data-dir", t.TempDir(), "--database-url", dbURL, "--system-secret", secret,
		"--request-timeout", "300ms")
	file := filepath.Join(t.TempDir(), "client.json")
	writeFile(t, file, `{"client_id":"patient","grant_types":["client_credentials"]}`)
	var c struct {
		Secret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(cli(t, "clients", "create", "--file", file, "--database-url", dbURL, "--system-secret", secret)), &c); err != nil {
		t.Fatal(err)
	}
	token := func() (int, map[string]any) {
		req, err := http.NewRequest(http.MethodPost, s.public+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("patient", c.Secret)
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if status, out := token(); status != http.StatusOK {
		t.Fatalf("before the lock: %d %v", status, out)
	}

	db, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`LOCK TABLE oauth2_tokens IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	status, out := token()
	_ = tx.Rollback()
	if status != http.StatusServiceUnavailable || out["error"] != "temporarily_unavailable" {
		t.Errorf("while the table is locked past the deadline: %d %v, want 503 temporarily_unavailable", status, out)
	}
	if status, out := token(); status != http.StatusOK {
		t.Errorf("after the lock: %d %v", status, out)
	}
}
