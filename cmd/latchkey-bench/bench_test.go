package main

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
	"github.com/latchkey-oidc/latchkey/provider"
)

const (
	benchUser     = "bench"
	benchPassword = "bench password 123"
)

// bench runs the command against srv with args added and returns its exit
// status, its JSON lines and its stderr.
func bench(t *testing.T, srv *latchkeytest.Server, args ...string) (int, []result, string) {
	t.Helper()
	base := []string{
		"--issuer", srv.Issuer, "--admin-url", srv.AdminURL, "--admin-token", latchkeytest.AdminToken,
		"--concurrency", "2", "--duration", "1s", "--warmup", "200ms",
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append(base, args...), &stdout, &stderr)
	var results []result
	dec := json.NewDecoder(&stdout)
	for dec.More() {
		var r result
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("output is not JSON lines: %v\n%s", err, stdout.String())
		}
		results = append(results, r)
	}
	return code, results, stderr.String()
}

// checkFigures checks a run's line: requests made, none failed, and
// percentiles in order.
func checkFigures(t *testing.T, r result, srv *latchkeytest.Server) {
	t.Helper()
	if r.Error != "" {
		t.Fatalf("%s failed: %s", r.Scenario, r.Error)
	}
	if r.Requests <= 0 || r.Errors != 0 || len(r.ErrorsByKind) != 0 {
		t.Errorf("%s: requests %d, errors %d %v %v; want requests and no errors", r.Scenario, r.Requests, r.Errors, r.ErrorsByKind, r.ErrorExamples)
	}
	if !(0 < r.P50 && r.P50 <= r.P90 && r.P90 <= r.P99 && r.P99 <= r.Max) {
		t.Errorf("%s: p50 %v p90 %v p99 %v max %v, want 0 < p50 ≤ p90 ≤ p99 ≤ max", r.Scenario, r.P50, r.P90, r.P99, r.Max)
	}
	if r.RPS <= 0 || r.Run != 1 || r.Concurrency != 2 || r.DurationS != 1 || r.Issuer != srv.Issuer || !r.KeepAlive || r.Start == "" {
		t.Errorf("%s: line %+v", r.Scenario, r)
	}
}

// TestScenarios runs every scenario for a second against a whole Latchkey
// (provider and login app) in the test process.
func TestScenarios(t *testing.T) {
	// ES256 keys for client_credentials_jwt.
	srv := latchkeytest.Start(t, latchkeytest.Options{Provider: func(c *provider.Config) { c.KeyAlgs = []string{"RS256", "ES256"} }})
	srv.CreateUser(benchUser, benchPassword, nil)
	srv.CreateUser(benchUser+"2", benchPassword, nil)
	// authorization_code's workers take the users in turn.
	user := []string{"--username", benchUser + "," + benchUser + "2", "--password", benchPassword}

	for _, name := range []string{"client_credentials", "introspection", "refresh", "authorization_code"} {
		t.Run(name, func(t *testing.T) {
			code, results, stderr := bench(t, srv, append([]string{"--scenario", name}, user...)...)
			if code != exitOK || len(results) != 1 {
				t.Fatalf("exit %d with %d lines; stderr:\n%s", code, len(results), stderr)
			}
			checkFigures(t, results[0], srv)
		})
	}

	t.Run("device", func(t *testing.T) {
		code, results, stderr := bench(t, srv, "--scenario", "device")
		if code != exitOK || len(results) != 1 {
			t.Fatalf("exit %d with %d lines; stderr:\n%s", code, len(results), stderr)
		}
		r := results[0]
		checkFigures(t, r, srv)
		// Polling faster than the interval: slow_down, after at most
		// one authorization_pending per device code.
		if r.Answers[answerSlowDown]+r.Answers[answerPending] != r.Requests || r.Answers[answerSlowDown] == 0 {
			t.Errorf("answers %v of %d requests, want only slow_down and authorization_pending", r.Answers, r.Requests)
		}
		if !strings.Contains(r.Note, "polling path") || !strings.Contains(stderr, "ignore the poll interval") {
			t.Errorf("the device scenario does not say it measures polling: note %q", r.Note)
		}
	})

	for _, tc := range []struct{ name, alg string }{{"client_credentials_jwt", "ES256"}, {"client_credentials_jwt_rs256", "RS256"}} {
		t.Run(tc.name, func(t *testing.T) {
			code, results, stderr := bench(t, srv, "--scenario", tc.name)
			if code != exitOK || len(results) != 1 {
				t.Fatalf("exit %d with %d lines; stderr:\n%s", code, len(results), stderr)
			}
			// Every answer was checked to be a JWT signed with alg.
			checkFigures(t, results[0], srv)
			if !strings.Contains(results[0].Note, "JWT") {
				t.Errorf("note %q does not say the tokens are JWTs", results[0].Note)
			}
		})
	}

	t.Run("an unsupported JWT client alone does not fail a run", func(t *testing.T) {
		code, results, stderr := bench(t, srv, "--scenario", "client_credentials,client_credentials_jwt", "--duration", "300ms",
			"--jwt-metadata", `{"latchkey_access_token_format":"jwe"}`)
		if code != exitOK || len(results) != 2 {
			t.Fatalf("exit %d with %d lines; stderr:\n%s", code, len(results), stderr)
		}
		if results[0].Scenario != "client_credentials" || results[1].Scenario != "client_credentials_jwt" {
			t.Errorf("scenarios %s, %s in that order", results[0].Scenario, results[1].Scenario)
		}
		if r := results[1]; r.Requests != 0 || !strings.Contains(r.Error, "refused a client with JWT access tokens") {
			t.Errorf("line %+v; want an error saying the provider refused the client", r)
		}
	})

	t.Run("clients are deleted", func(t *testing.T) {
		var clients []struct {
			Name string `json:"client_name"`
		}
		srv.Admin(http.MethodGet, "/admin/clients?limit=500", nil, http.StatusOK, &clients)
		for _, c := range clients {
			if strings.HasPrefix(c.Name, "latchkey-bench") {
				t.Errorf("client %q is left behind", c.Name)
			}
		}
	})
}

// TestRunsAndMedian repeats a scenario and reports the median run again,
// every line with the --label.
func TestRunsAndMedian(t *testing.T) {
	srv := latchkeytest.Start(t, latchkeytest.Options{})
	out := filepath.Join(t.TempDir(), "bench.jsonl")
	code, stdoutLines, stderr := bench(t, srv, "--scenario", "client_credentials", "--runs", "3",
		"--duration", "300ms", "--warmup", "0s", "--out", out, "--label", "sqlite")
	if code != exitOK || len(stdoutLines) != 0 {
		t.Fatalf("exit %d, %d lines on stdout with --out; stderr:\n%s", code, len(stdoutLines), stderr)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 3 runs and the median:\n%s", len(lines), data)
	}
	var last result
	for i, line := range lines {
		if err := json.Unmarshal([]byte(line), &last); err != nil {
			t.Fatal(err)
		}
		if last.Label != "sqlite" || !strings.Contains(line, `"label":"sqlite"`) {
			t.Errorf("line %d has label %q, want the --label sqlite: %s", i+1, last.Label, line)
		}
	}
	if last.MedianOf != 3 || last.Run < 1 || last.Run > 3 {
		t.Errorf("last line %s, want the median of 3 runs", lines[3])
	}
	if !strings.Contains(stderr, "median of 3") {
		t.Errorf("the summary does not show the median:\n%s", stderr)
	}
}

// TestSecondFactor: the authorization_code scenario refuses a user with
// TOTP, and the refresh set-up signs in once with --totp-secret.
func TestSecondFactor(t *testing.T) {
	srv := latchkeytest.Start(t, latchkeytest.Options{})
	seed := []byte("0123456789abcdefghij")
	srv.CreateUser("mfa", benchPassword, seed)
	user := []string{"--username", "mfa", "--password", benchPassword}

	code, results, stderr := bench(t, srv, append([]string{"--scenario", "authorization_code"}, user...)...)
	if code != exitFailed || len(results) != 1 || !strings.Contains(results[0].Error, "second factor") ||
		!strings.Contains(results[0].Error, "without a second factor") {
		t.Fatalf("exit %d, lines %+v; want a refusal naming the second factor; stderr:\n%s", code, results, stderr)
	}

	code, results, stderr = bench(t, srv, append([]string{"--scenario", "refresh"}, user...)...)
	if code != exitFailed || !strings.Contains(results[0].Error, "--totp-secret") {
		t.Fatalf("refresh without --totp-secret: exit %d, lines %+v; stderr:\n%s", code, results, stderr)
	}

	// Three workers, three token families, one sign-in: a TOTP code
	// per flow would have to wait for the clock.
	secret := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(seed))
	code, results, stderr = bench(t, srv, append([]string{"--scenario", "refresh", "--concurrency", "3", "--totp-secret", secret}, user...)...)
	if code != exitOK || len(results) != 1 {
		t.Fatalf("exit %d with %d lines; stderr:\n%s", code, len(results), stderr)
	}
	if r := results[0]; r.Error != "" || r.Requests == 0 || r.Errors != 0 || r.Concurrency != 3 {
		t.Errorf("line %+v", r)
	}
}

// TestWrongPassword is a set-up failure, reported before any load.
func TestWrongPassword(t *testing.T) {
	srv := latchkeytest.Start(t, latchkeytest.Options{})
	srv.CreateUser(benchUser, benchPassword, nil)
	code, results, stderr := bench(t, srv, "--scenario", "authorization_code", "--username", benchUser, "--password", "not the password")
	if code != exitFailed || len(results) != 1 || !strings.Contains(results[0].Error, "sign_in_refused") {
		t.Fatalf("exit %d, lines %+v; stderr:\n%s", code, results, stderr)
	}
}

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no issuer", []string{"--scenario", "device"}, "--issuer is required"},
		{"no scenario", []string{"--issuer", "http://127.0.0.1:1", "--admin-url", "http://127.0.0.1:2", "--admin-token", "t"}, "--scenario is required"},
		{"unknown scenario", []string{"--issuer", "http://127.0.0.1:1", "--admin-url", "http://127.0.0.1:2", "--admin-token", "t", "--scenario", "password"}, `unknown scenario "password"`},
		{"no admin", []string{"--issuer", "http://127.0.0.1:1", "--scenario", "device"}, "--admin-url"},
		{"no user", []string{"--issuer", "http://127.0.0.1:1", "--client-id", "c", "--scenario", "all"}, "refresh and authorization_code sign in"},
		{"bad totp", []string{"--issuer", "http://127.0.0.1:1", "--client-id", "c", "--scenario", "refresh", "--username", "u", "--password", "p", "--totp-secret", "!!"}, "--totp-secret"},
		{"bad concurrency", []string{"--issuer", "http://127.0.0.1:1", "--client-id", "c", "--scenario", "device", "--concurrency", "0"}, "--concurrency"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", code, stderr.String(), tc.want)
			}
		})
	}

	t.Run("defaults", func(t *testing.T) {
		cfg, err := parseFlags([]string{"--issuer", "http://127.0.0.1:1", "--client-id", "c", "--scenario", "device,authorization_code",
			"--scenario", "device", "--username", "u", "--password", "p"}, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.scenarios) != 2 || cfg.scenarios[0].name != "authorization_code" || cfg.scenarios[1].name != "device" {
			t.Errorf("scenarios %v", cfg.scenarios)
		}
		if cfg.workersFor(cfg.scenarios[0]) != 8 || cfg.workersFor(cfg.scenarios[1]) != 64 {
			t.Errorf("default workers %d and %d, want 8 and 64", cfg.workersFor(cfg.scenarios[0]), cfg.workersFor(cfg.scenarios[1]))
		}
		cfg, _ = parseFlags([]string{"--issuer", "http://127.0.0.1:1", "--client-id", "c", "--scenario", "all", "--concurrency", "64",
			"--username", "u", "--password", "p"}, &bytes.Buffer{})
		if len(cfg.scenarios) != len(scenarios) || cfg.workersFor(cfg.scenarios[3]) != 64 {
			t.Errorf("--scenario all --concurrency 64: %d scenarios, refresh with %d workers", len(cfg.scenarios), cfg.workersFor(cfg.scenarios[3]))
		}
	})
}

// TestUnreachableIssuer fails before any scenario.
func TestUnreachableIssuer(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--issuer", "http://127.0.0.1:1", "--client-id", "c", "--scenario", "device"}, &stdout, &stderr)
	if code != exitFailed || !strings.Contains(stderr.String(), "discovery") || stdout.Len() != 0 {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
