package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
	"github.com/latchkey-oidc/latchkey/conformance/useragent"
	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store/storetest"
)

// replicaKeyRefresh is the --key-refresh-interval of the replicas, and
// replicaKeyDeadline how long a rotation on one replica may take to show on
// another: one interval and a margin.
const (
	replicaKeyRefresh  = 2 * time.Second
	replicaKeyDeadline = 5 * time.Second
)

// replicaCallback is the test client's redirect URI. Nothing listens
// there: the browser stops at the redirect.
const replicaCallback = "http://127.0.0.1:9/callback"

// TestReplicas runs Latchkey as production does: three "serve provider"
// processes (A, B, C) and one "serve login" process on one PostgreSQL
// database, behind a round-robin proxy whose URL is the issuer. Each step
// goes to a named replica, so each proves that what one replica did, the
// others see: a flow started on A finishes on B and C, a client created on
// A works on C at once, a key rotated on A is served and used by B within
// the key refresh interval, and the metrics of the replicas add up.
func TestReplicas(t *testing.T) {
	cleanEnv(t)
	// First, so that the schema is dropped after the processes stop.
	dbURL := storetest.FreshPostgres(t)
	bin := buildLatchkey(t)
	start := time.Now()

	secret := rand.Text() + rand.Text() // 52 characters
	adminToken := rand.Text()           // 26 characters

	// The issuer is the proxy: all replicas sign with it, as behind a
	// load balancer.
	lb := &roundRobin{}
	proxy := httptest.NewServer(lb)
	t.Cleanup(proxy.Close)
	issuer := proxy.URL

	// The providers need the login app's URL before it can start (it
	// needs a provider's admin API): reserve its port.
	loginAddr := latchkeytest.FreeAddr(t)
	loginURL := "http://" + loginAddr + "/login"

	common := []string{
		"--database-url", dbURL, "--system-secret", secret, "--admin-token", adminToken,
		"--issuer", issuer, "--login-url", loginURL, "--log-format", "json",
	}
	// The replicas start at once on the empty database, as a Deployment's
	// pods do: they migrate it and create the signing keys together.
	names := []string{"A", "B", "C"}
	reps := make([]*latchkeyProcess, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		reps[i] = launchProcess(t, bin, "provider "+name, append([]string{"serve", "provider",
			"--public-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
			"--key-refresh-interval", replicaKeyRefresh.String(), "--data-dir", t.TempDir()}, common...))
		wg.Add(1)
		go func() { defer wg.Done(); reps[i].waitListening(publicLine, adminLine, metricsLine) }()
	}
	wg.Wait()
	for _, r := range reps {
		if r.startErr != "" {
			t.Fatal(r.startErr)
		}
	}
	a, b, c := reps[0], reps[1], reps[2]
	lb.set(t, a.public, b.public, c.public)

	login := launchProcess(t, bin, "login app", append([]string{"serve", "login",
		"--login-addr", loginAddr, "--admin-url", a.admin, "--metrics-addr", "127.0.0.1:0",
		"--data-dir", t.TempDir()}, common...))
	login.waitListening(regexp.MustCompile(`login app is serving`), metricsLine)
	if login.startErr != "" {
		t.Fatal(login.startErr)
	}
	login.public = "http://" + loginAddr
	all := append(slices.Clone(reps), login)
	// Interrupt them all at once when the test ends (each one's cleanup
	// then waits for it): a race-enabled process lingers a second at exit.
	t.Cleanup(func() {
		for _, p := range all {
			p.interrupt()
		}
	})
	for _, r := range all {
		r.waitHTTP(t)
	}
	t.Logf("started 3 providers and the login app in %v", time.Since(start).Round(time.Millisecond))

	// One person, created with the CLI in the same database.
	password := rand.Text()
	var user struct {
		ID string `json:"id"`
	}
	out := runLatchkey(t, bin, "users", "create", "--username", "alice", "--password", password,
		"--database-url", dbURL, "--system-secret", secret)
	if err := json.Unmarshal([]byte(out), &user); err != nil || user.ID == "" {
		t.Fatalf("users create printed %q (%v)", out, err)
	}
	alice := &useragent.User{Username: "alice", Password: password}

	t.Run("ready", func(t *testing.T) {
		for _, r := range all {
			bases := []string{r.public, strings.TrimSuffix(r.metrics, "/metrics")}
			if r.admin != "" {
				bases = append(bases, r.admin)
			}
			for _, base := range bases {
				resp, err := http.Get(base + "/health/ready")
				if err != nil {
					t.Fatalf("%s: %v", r.name, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("%s %s/health/ready: %d %s", r.name, base, resp.StatusCode, body)
				}
			}
		}
	})

	// A client created through A's admin API gets a token from C at once:
	// C has no stale "no such client" to forget.
	var client struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	t.Run("client created on A works on C at once", func(t *testing.T) {
		status, body := a.adminDo(t, adminToken, http.MethodPost, "/admin/clients", map[string]any{
			"client_name":                "Replicated App",
			"redirect_uris":              []string{replicaCallback},
			"grant_types":                []string{"authorization_code", "refresh_token", "client_credentials"},
			"response_types":             []string{"code"},
			"scope":                      "openid offline_access profile",
			"token_endpoint_auth_method": "client_secret_basic",
		})
		if status != http.StatusCreated {
			t.Fatalf("POST /admin/clients on A: %d %s", status, body)
		}
		if err := json.Unmarshal(body, &client); err != nil || client.ID == "" || client.Secret == "" {
			t.Fatalf("POST /admin/clients on A answered %s (%v)", body, err)
		}
		status, tok := tokenOn(t, c, client.ID, client.Secret, url.Values{"grant_type": {"client_credentials"}})
		if status != http.StatusOK || tok.AccessToken == "" {
			t.Fatalf("client_credentials on C right after the client was created on A: %d %+v", status, tok)
		}
		if in := introspectOn(t, a, client.ID, client.Secret, tok.AccessToken); in["active"] != true || in["client_id"] != client.ID {
			t.Errorf("C's client_credentials token introspected on A: %v", in)
		}
	})
	if client.ID == "" {
		t.FailNow()
	}

	browser := useragent.New(nil, replicaCallback)
	// codeFlow runs the authorization code flow with PKCE: the browser
	// starts at authorizeOn, signs in at the login app (whose redirects
	// back go through the proxy, to any replica) and the code is
	// exchanged at exchangeOn.
	codeFlow := func(t *testing.T, authorizeOn, exchangeOn *latchkeyProcess) tokenAnswer {
		t.Helper()
		verifier := rand.Text() + rand.Text()
		sum := sha256.Sum256([]byte(verifier))
		state, nonce := rand.Text(), rand.Text()
		auth := authorizeOn.public + "/oauth2/auth?" + url.Values{
			"client_id": {client.ID}, "response_type": {"code"}, "scope": {"openid offline_access profile"},
			"redirect_uri": {replicaCallback}, "state": {state}, "nonce": {nonce},
			"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		}.Encode()
		if _, err := browser.Get(t.Context(), auth); err != nil {
			t.Fatal(err)
		}
		page, seen, err := browser.Continue(t.Context(), useragent.Interaction{User: alice, Remember: true})
		if err != nil {
			t.Fatalf("answer the login app's pages: %v", err)
		}
		if !page.Redirect || !strings.HasPrefix(page.URL.String(), replicaCallback+"?") {
			t.Fatalf("the browser stopped at %s (status %d), not at the redirect URI: %.500s", page.URL.Redacted(), page.Status, page.Body)
		}
		params := page.URL.Query()
		if params.Get("error") != "" || params.Get("state") != state || params.Get("code") == "" {
			t.Fatalf("authorization response %v (seen %+v)", params, seen)
		}
		t.Logf("%s: signed in with the login app's pages %+v", authorizeOn.name, seen)
		status, tok := tokenOn(t, exchangeOn, client.ID, client.Secret, url.Values{
			"grant_type": {"authorization_code"}, "code": {params.Get("code")},
			"redirect_uri": {replicaCallback}, "code_verifier": {verifier},
		})
		if status != http.StatusOK || tok.AccessToken == "" || tok.RefreshToken == "" || tok.IDToken == "" {
			t.Fatalf("exchange the code from %s on %s: %d %+v", authorizeOn.name, exchangeOn.name, status, tok)
		}
		if claims := jwtClaims(t, tok.IDToken); claims["nonce"] != nonce || claims["iss"] != issuer || claims["sub"] != user.ID {
			t.Errorf("ID token claims %v, want nonce %s, iss %s, sub %s", claims, nonce, issuer, user.ID)
		}
		return tok
	}

	t.Run("code flow across replicas", func(t *testing.T) {
		proxied := lb.n.Load()
		tok := codeFlow(t, a, b)
		if lb.n.Load() == proxied {
			t.Error("the flow did not come back through the issuer URL (the proxy)")
		}
		in := introspectOn(t, c, client.ID, client.Secret, tok.AccessToken)
		if in["active"] != true || in["client_id"] != client.ID || in["sub"] != user.ID {
			t.Errorf("B's access token introspected on C: %v, want active, client_id %s, sub %s", in, client.ID, user.ID)
		}

		status, refreshed := tokenOn(t, a, client.ID, client.Secret, url.Values{
			"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken},
		})
		if status != http.StatusOK || refreshed.AccessToken == "" || refreshed.RefreshToken == "" {
			t.Fatalf("refresh B's token on A: %d %+v", status, refreshed)
		}
		if refreshed.AccessToken == tok.AccessToken || refreshed.RefreshToken == tok.RefreshToken {
			t.Error("the refresh on A answered the old tokens")
		}
		if in := introspectOn(t, c, client.ID, client.Secret, refreshed.AccessToken); in["active"] != true || in["sub"] != user.ID {
			t.Errorf("A's refreshed access token introspected on C: %v", in)
		}

		// A rotated the refresh token: B refuses the old one, and the
		// reuse revokes the whole family, on every replica.
		status, reused := tokenOn(t, b, client.ID, client.Secret, url.Values{
			"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken},
		})
		if status != http.StatusBadRequest || reused.Error != "invalid_grant" {
			t.Fatalf("the refresh token A rotated, used again on B: %d %+v, want 400 invalid_grant", status, reused)
		}
		status, after := tokenOn(t, c, client.ID, client.Secret, url.Values{
			"grant_type": {"refresh_token"}, "refresh_token": {refreshed.RefreshToken},
		})
		if status != http.StatusBadRequest || after.Error != "invalid_grant" {
			t.Errorf("the new refresh token on C after the old one's reuse on B: %d %+v, want 400 invalid_grant", status, after)
		}
		if in := introspectOn(t, c, client.ID, client.Secret, refreshed.AccessToken); in["active"] != false {
			t.Errorf("the new access token on C after the reuse on B: %v, want inactive", in)
		}
	})

	t.Run("metrics add up over replicas", func(t *testing.T) {
		const n = 30
		issued := `latchkey_tokens_issued_total{grant_type="client_credentials",token_type="access_token"}`
		requests := `latchkey_token_requests_total{grant_type="client_credentials"}`
		before := make([]map[string]float64, len(reps))
		for i, r := range reps {
			before[i] = scrapeCounters(t, r)
		}
		for i := range n {
			r := reps[i%len(reps)]
			if status, tok := tokenOn(t, r, client.ID, client.Secret, url.Values{"grant_type": {"client_credentials"}}); status != http.StatusOK {
				t.Fatalf("client_credentials request %d on %s: %d %+v", i, r.name, status, tok)
			}
		}
		var sumIssued, sumRequests float64
		for i, r := range reps {
			after := scrapeCounters(t, r)
			for _, name := range []string{issued, requests} {
				if _, ok := after[name]; !ok {
					t.Fatalf("%s's /metrics has no %s", r.name, name)
				}
			}
			di, dr := after[issued]-before[i][issued], after[requests]-before[i][requests]
			t.Logf("%s: +%v access tokens issued, +%v token requests", r.name, di, dr)
			if want := float64(n / len(reps)); di != want || dr != want {
				t.Errorf("%s served %v of the round-robin requests but counts +%v issued, +%v requests", r.name, want, di, dr)
			}
			sumIssued += di
			sumRequests += dr
		}
		if sumIssued != n || sumRequests != n {
			t.Errorf("over the replicas: +%v %s and +%v %s, want %d each", sumIssued, issued, sumRequests, requests, n)
		}
	})

	t.Run("key rotated on A is served and used by B", func(t *testing.T) {
		// A live refresh token from before the rotation, for an ID token
		// B signs after it. The browser still has its session.
		tok := codeFlow(t, c, a)
		var before []provider.SigningKeyView
		if status, body := a.adminDo(t, adminToken, http.MethodGet, "/admin/keys", nil); status != http.StatusOK {
			t.Fatalf("GET /admin/keys on A: %d %s", status, body)
		} else if err := json.Unmarshal(body, &before); err != nil {
			t.Fatal(err)
		}
		rotatedAt := time.Now()
		status, body := a.adminDo(t, adminToken, http.MethodPost, "/admin/keys/rotate", nil)
		if status != http.StatusOK {
			t.Fatalf("POST /admin/keys/rotate on A: %d %s", status, body)
		}
		var after []provider.SigningKeyView
		if status, body := a.adminDo(t, adminToken, http.MethodGet, "/admin/keys", nil); status != http.StatusOK {
			t.Fatalf("GET /admin/keys on A: %d %s", status, body)
		} else if err := json.Unmarshal(body, &after); err != nil {
			t.Fatal(err)
		}
		// Rotation promotes each algorithm's next key to current and
		// generates a new next key: that one is new to the JWKS.
		known := map[string]bool{}
		algs := map[string]bool{}
		for _, k := range before {
			known[k.KID] = true
			algs[k.Alg] = true
		}
		var newKIDs []string
		current := map[string]string{}
		for alg := range algs {
			prevCurrent, prevNext := kidIn(before, alg, "current"), kidIn(before, alg, "next")
			cur, next := kidIn(after, alg, "current"), kidIn(after, alg, "next")
			if prevCurrent == "" || prevNext == "" || cur != prevNext || next == "" || known[next] {
				t.Fatalf("%s keys on A: before %+v, after %+v: want the old next key current and a new next key", alg, before, after)
			}
			if !slices.ContainsFunc(after, func(k provider.SigningKeyView) bool { return k.KID == prevCurrent && k.State == "retired" }) {
				t.Errorf("%s: the old current key %s is not retired: %+v", alg, prevCurrent, after)
			}
			newKIDs = append(newKIDs, next)
			current[alg] = cur
		}
		sort.Strings(newKIDs)
		if missing := missingKIDs(t, a, newKIDs); len(missing) > 0 {
			t.Fatalf("A's own JWKS lacks the new keys %v right after the rotation", missing)
		}

		// B and C publish the new keys within the refresh interval.
		for _, r := range []*latchkeyProcess{b, c} {
			for {
				missing := missingKIDs(t, r, newKIDs)
				if len(missing) == 0 {
					t.Logf("%s's JWKS has the new keys %v %v after the rotation on A", r.name, newKIDs, time.Since(rotatedAt).Round(time.Millisecond))
					break
				}
				if time.Since(rotatedAt) > replicaKeyDeadline {
					t.Fatalf("%s's JWKS still lacks %v %v after the rotation on A (key refresh interval %v)", r.name, missing, replicaKeyDeadline, replicaKeyRefresh)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}

		// B signs with the new current key: the ID token of a refresh.
		status, refreshed := tokenOn(t, b, client.ID, client.Secret, url.Values{
			"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken},
		})
		signedAfter := time.Since(rotatedAt)
		if status != http.StatusOK || refreshed.IDToken == "" {
			t.Fatalf("refresh on B after the rotation: %d %+v", status, refreshed)
		}
		sig := verifyWithJWKS(t, b, refreshed.IDToken)
		if want := current[sig.Algorithm]; sig.KeyID != want {
			t.Errorf("B signed an ID token %v after the rotation on A with %s key %s, want the new current key %s", signedAfter.Round(time.Millisecond), sig.Algorithm, sig.KeyID, want)
		}
		if signedAfter > replicaKeyDeadline {
			t.Errorf("B signed with the new key only %v after the rotation, want within %v", signedAfter.Round(time.Millisecond), replicaKeyDeadline)
		}
		if claims := jwtClaims(t, refreshed.IDToken); claims["iss"] != issuer || claims["sub"] != user.ID {
			t.Errorf("ID token from B's refresh: %v", claims)
		}
		t.Logf("B signed with the new current key %s %v after the rotation on A", sig.KeyID, signedAfter.Round(time.Millisecond))
	})
}

// buildLatchkey builds the latchkey binary into a temporary directory.
func buildLatchkey(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build latchkey with (%v); this test runs latchkey as separate processes", err)
	}
	bin := filepath.Join(t.TempDir(), "latchkey")
	args := []string{"build", "-o", bin}
	// Built as the test is: a race-enabled test gets race-enabled
	// processes, whose races fail it, and shares the compiled packages.
	if raceEnabled() {
		args = append(args, "-race")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	if out, err := exec.CommandContext(ctx, goBin, append(args, ".")...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("go build (race detector: %v) took %v", raceEnabled(), time.Since(start).Round(time.Millisecond))
	return bin
}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// runLatchkey runs the binary to completion and returns its stdout.
func runLatchkey(t *testing.T, bin string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("latchkey %s: %v\n%s", args[0], err, stderr.String())
	}
	return stdout.String()
}

// latchkeyProcess is a "latchkey serve …" process and the addresses it
// printed.
type latchkeyProcess struct {
	name                   string
	cmd                    *exec.Cmd
	stdout, stderr         *latchkeytest.Output
	exited                 chan struct{}
	waitErr                error
	public, admin, metrics string
	// startErr says why waitListening gave up.
	startErr string
	// interrupted makes sure the process gets one interrupt only: once
	// serve returned, a second one would kill it before it exits.
	interrupted sync.Once
}

// interrupt asks the process to stop, as Ctrl-C or Kubernetes does.
func (p *latchkeyProcess) interrupt() {
	p.interrupted.Do(func() { _ = p.cmd.Process.Signal(os.Interrupt) })
}

// launchProcess starts a latchkey process that is interrupted, and killed
// if it does not stop within 15s, when the test ends; its output is logged
// if the test failed.
func launchProcess(t *testing.T, bin, name string, args []string) *latchkeyProcess {
	t.Helper()
	p := &latchkeyProcess{name: name, stdout: &latchkeytest.Output{}, stderr: &latchkeytest.Output{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.interrupt()
		select {
		case <-p.exited:
			if p.waitErr != nil {
				t.Errorf("%s did not stop cleanly on an interrupt: %v", name, p.waitErr)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("%s did not stop within 15s of an interrupt; killing it", name)
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s stdout:\n%s\n%s stderr:\n%s", name, p.stdout.String(), name, p.stderr.String())
		}
	})
	return p
}

// waitListening waits until the process printed lines matching each of
// want, taking the addresses from publicLine, adminLine and metricsLine.
// It records a failure in startErr, for use from other goroutines.
func (p *latchkeyProcess) waitListening(want ...*regexp.Regexp) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := p.stdout.String()
		all := true
		for _, re := range want {
			m := re.FindStringSubmatch(out)
			if m == nil {
				all = false
				break
			}
			switch re {
			case publicLine:
				p.public = m[1]
			case adminLine:
				p.admin = m[1]
			case metricsLine:
				p.metrics = m[1]
			}
		}
		if all {
			return
		}
		select {
		case <-p.exited:
			p.startErr = fmt.Sprintf("%s exited before it listened: %v\nstdout: %s\nstderr: %s", p.name, p.waitErr, out, p.stderr.String())
			return
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.startErr = fmt.Sprintf("%s printed no addresses within 30s: %s\nstderr: %s", p.name, out, p.stderr.String())
			return
		}
	}
}

// waitHTTP waits until the process's public (or login) listener answers
// HTTP at all; readiness is checked separately.
func (p *latchkeyProcess) waitHTTP(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get(p.public + "/health/alive")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not answer HTTP: %v\nstderr: %s", p.name, err, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// adminDo sends a request to the process's admin API, with body as JSON
// unless it is nil, and returns the status and the answer.
func (p *latchkeyProcess) adminDo(t *testing.T, token, method, path string, body any) (int, []byte) {
	t.Helper()
	var in io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		in = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, p.admin+path, in)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, p.name, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// tokenAnswer is a token endpoint answer, success or error.
type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
}

// postClientForm posts form to the process's public path with the
// client's credentials in Basic authentication (RFC 6749 §2.3.1).
func postClientForm(t *testing.T, p *latchkeyProcess, path, id, secret string, form url.Values) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, p.public+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s on %s: %v", path, p.name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func tokenOn(t *testing.T, p *latchkeyProcess, id, secret string, form url.Values) (int, tokenAnswer) {
	t.Helper()
	status, body := postClientForm(t, p, "/oauth2/token", id, secret, form)
	var tok tokenAnswer
	if err := json.Unmarshal(body, &tok); err != nil {
		t.Fatalf("token endpoint of %s answered %d %s", p.name, status, body)
	}
	return status, tok
}

func introspectOn(t *testing.T, p *latchkeyProcess, id, secret, token string) map[string]any {
	t.Helper()
	status, body := postClientForm(t, p, "/oauth2/introspect", id, secret, url.Values{"token": {token}})
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil || status != http.StatusOK {
		t.Fatalf("introspection on %s: %d %s", p.name, status, body)
	}
	return out
}

// jwtClaims returns a JWT's claims, unverified.
func jwtClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func jwksOf(t *testing.T, p *latchkeyProcess) jose.JSONWebKeySet {
	t.Helper()
	resp, err := http.Get(p.public + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("JWKS of %s: %d %v", p.name, resp.StatusCode, err)
	}
	return set
}

// missingKIDs returns those of kids the process's JWKS does not publish.
func missingKIDs(t *testing.T, p *latchkeyProcess, kids []string) []string {
	t.Helper()
	set := jwksOf(t, p)
	var missing []string
	for _, kid := range kids {
		if len(set.Key(kid)) == 0 {
			missing = append(missing, kid)
		}
	}
	return missing
}

// verifyWithJWKS verifies a JWT with the process's JWKS and returns its
// signature header.
func verifyWithJWKS(t *testing.T, p *latchkeyProcess, raw string) jose.Header {
	t.Helper()
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
	if err != nil || len(jws.Signatures) != 1 {
		t.Fatalf("parse JWT: %v", err)
	}
	h := jws.Signatures[0].Header
	set := jwksOf(t, p)
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("%s's JWKS has %d keys with the ID token's kid %q", p.name, len(keys), h.KeyID)
	}
	if _, err := jws.Verify(keys[0]); err != nil {
		t.Fatalf("the ID token does not verify with %s's key %s: %v", p.name, h.KeyID, err)
	}
	return h
}

// kidIn returns the kid of alg's key in state, or "".
func kidIn(keys []provider.SigningKeyView, alg, state string) string {
	for _, k := range keys {
		if k.Alg == alg && k.State == state {
			return k.KID
		}
	}
	return ""
}

// scrapeCounters reads the process's /metrics: every counter, gauge and untyped
// sample by name{label="value",…}, labels sorted by name.
func scrapeCounters(t *testing.T, p *latchkeyProcess) map[string]float64 {
	t.Helper()
	resp, err := http.Get(p.metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s /metrics: %d", p.name, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s /metrics: %v", p.name, err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(labels)
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Untyped != nil:
				out[key] = m.GetUntyped().GetValue()
			}
		}
	}
	return out
}

// roundRobin is a load balancer in front of the replicas: each request
// goes to the next replica in turn.
type roundRobin struct {
	proxies atomic.Pointer[[]*httputil.ReverseProxy]
	n       atomic.Uint64
}

func (rr *roundRobin) set(t *testing.T, backends ...string) {
	t.Helper()
	var proxies []*httputil.ReverseProxy
	for _, b := range backends {
		target, err := url.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		proxies = append(proxies, &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.SetXForwarded()
		}})
	}
	rr.proxies.Store(&proxies)
}

func (rr *roundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ps := rr.proxies.Load()
	if ps == nil || len(*ps) == 0 {
		http.Error(w, "no replicas yet", http.StatusServiceUnavailable)
		return
	}
	(*ps)[(rr.n.Add(1)-1)%uint64(len(*ps))].ServeHTTP(w, r)
}
