package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
)

// The case of a request that outlasts the shutdown timeout is not tested:
// shutdownTimeout is a constant 10s, and a test would have to wait that
// long.

var inFlightLine = regexp.MustCompile(`(?m)^latchkey_http_requests_in_flight\{listener="public"\} (\S+)$`)

// publicInFlight reads the public listener's in-flight gauge from /metrics.
func publicInFlight(metricsURL string) (float64, error) {
	resp, err := http.Get(metricsURL)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	m := inFlightLine.FindSubmatch(body)
	if m == nil {
		return 0, nil // no public request yet
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// heldTokenRequest is a client_credentials token request on a raw
// connection whose headers are sent and whose body is not finished.
type heldTokenRequest struct {
	conn net.Conn
	rest string
}

// holdTokenRequest sends a token request's headers and the start of its
// body, and waits until the server is serving it: the public listener's
// in-flight gauge counts it.
func holdTokenRequest(t *testing.T, publicURL, metricsURL, id, secret string) *heldTokenRequest {
	t.Helper()
	u, err := url.Parse(publicURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	body := "grant_type=client_credentials&scope=api%3Aread"
	req, err := http.NewRequest(http.MethodPost, publicURL+"/oauth2/token", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	head := fmt.Sprintf("POST /oauth2/token HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n"+
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
		u.Host, req.Header.Get("Authorization"), len(body), body[:10])
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		n, err := publicInFlight(metricsURL)
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server is not serving the held request after 10s (%v in flight)", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &heldTokenRequest{conn: conn, rest: body[10:]}
}

// finish sends the rest of the body and returns the access token of the
// 200 answer.
func (h *heldTokenRequest) finish(t *testing.T) string {
	t.Helper()
	if _, err := io.WriteString(h.conn, h.rest); err != nil {
		t.Fatalf("finish the body: %v", err)
	}
	_ = h.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(h.conn), nil)
	if err != nil {
		t.Fatalf("the held request got no answer: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("the held request's answer was cut: %v", err)
	}
	var out struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &out) != nil || out.AccessToken == "" {
		t.Fatalf("the held request: %d, want 200 with an access token (%d bytes)", resp.StatusCode, len(raw))
	}
	return out.AccessToken
}

// waitRefused waits until nothing accepts connections at the public URL's
// address any more.
func waitRefused(t *testing.T, publicURL string) {
	t.Helper()
	u, err := url.Parse(publicURL)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err != nil {
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Logf("a new connection failed with %v (want connection refused)", err)
			}
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the public listener still accepts connections 10s after shutdown began")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitFor(t *testing.T, what string, out interface{ String() string }, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), want); {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 10s:\n%s", what, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// createCCClient registers a client_credentials client with the CLI and
// returns its secret.
func createCCClient(t *testing.T, dir, id string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "client.json")
	writeFile(t, file, `{"client_id":"`+id+`","grant_types":["client_credentials"],"scope":"api:read"}`)
	var c struct {
		Secret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(cli(t, "clients", "create", "--file", file, "--data-dir", dir)), &c); err != nil || c.Secret == "" {
		t.Fatalf("clients create: %v", err)
	}
	return c.Secret
}

// TestGracefulShutdownFinishesAcceptedRequests: a token request the server
// accepted before it was told to stop is answered in full, no new
// connection is accepted meanwhile, and run returns nil once it is done.
func TestGracefulShutdownFinishesAcceptedRequests(t *testing.T) {
	cleanEnv(t)
	dir := filepath.Join(t.TempDir(), "latchkey-data")
	srv := startServe(t, "--data-dir", dir, "--log-format", "json")
	secret := createCCClient(t, dir, "drain")

	held := holdTokenRequest(t, srv.public, srv.metrics, "drain", secret)
	srv.stop() // as SIGTERM does
	waitFor(t, `"shutting down" log line`, srv.stderr, `"msg":"shutting down"`)
	waitRefused(t, srv.public)
	select {
	case err := <-srv.done:
		srv.done <- err
		t.Fatalf("serve returned (%v) while a request it accepted was in flight", err)
	default:
	}
	held.finish(t)
	srv.shutdown(t)

	logs := srv.stderr.String()
	if strings.Contains(logs, "cut off") {
		t.Errorf("the shutdown cut requests off:\n%s", logs)
	}
	if !strings.Contains(logs, `"route":"/oauth2/token","path":"/oauth2/token","status":200`) {
		t.Errorf("no access-log line for the held token request:\n%s", logs)
	}
}

// TestGracefulShutdownSIGTERM runs the latchkey binary and stops it with
// SIGTERM while a token request is in flight: the request is answered in
// full, the process exits 0 promptly and says it shut down.
func TestGracefulShutdownSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM on Windows")
	}
	cleanEnv(t)
	bin := buildLatchkey(t)
	dir := filepath.Join(t.TempDir(), "latchkey-data")
	secret := createCCClient(t, dir, "drain")

	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LATCHKEY_") {
			env = append(env, kv)
		}
	}
	stdout, stderr := &latchkeytest.Output{}, &latchkeytest.Output{}
	cmd := exec.Command(bin, "serve", "--data-dir", dir, "--log-format", "json",
		"--public-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0")
	cmd.Env, cmd.Stdout, cmd.Stderr = env, stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	var public, metrics string
	for deadline := time.Now().Add(30 * time.Second); ; {
		out := stdout.String()
		if p, m := publicLine.FindStringSubmatch(out), metricsLine.FindStringSubmatch(out); p != nil && m != nil {
			public, metrics = p[1], m[1]
			break
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("latchkey serve exited before it listened: %v\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("latchkey serve printed no addresses in 30s:\n%s\n%s", out, stderr.String())
		}
	}

	held := holdTokenRequest(t, public, metrics, "drain", secret)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, `"shutting down" log line`, stderr, `"msg":"shutting down"`)
	waitRefused(t, public)
	select {
	case err := <-exited:
		exited <- err
		t.Fatalf("latchkey exited (%v) while a request it accepted was in flight", err)
	default:
	}
	held.finish(t)
	finished := time.Now()
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("latchkey serve after SIGTERM: %v, want exit status 0\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("latchkey serve still runs 10s after its last request ended\n%s", stderr.String())
	}
	t.Logf("exited %v after the last request ended", time.Since(finished).Round(time.Millisecond))
	if strings.Contains(stderr.String(), "cut off") {
		t.Errorf("the shutdown cut requests off:\n%s", stderr.String())
	}
}
