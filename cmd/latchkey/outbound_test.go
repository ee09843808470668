package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// TestOutboundAllowSettings reads --outbound-allow from every source, and
// serve refuses a value that is not a prefix before it opens a database.
func TestOutboundAllowSettings(t *testing.T) {
	cleanEnv(t)
	parse := func(t *testing.T, args ...string) ([]netip.Prefix, error) {
		t.Helper()
		s := newSettings("serve", &bytes.Buffer{}, serveSettings...)
		if _, err := s.parse(args); err != nil {
			t.Fatal(err)
		}
		return s.outboundAllow()
	}
	p := netip.MustParsePrefix
	if got, err := parse(t); err != nil || got != nil {
		t.Errorf("default: %v %v, want none", got, err)
	}
	want := []netip.Prefix{p("10.20.0.0/16"), p("fd00:1::/32"), p("192.0.2.7/32"), p("2001:db8::5/128")}
	if got, err := parse(t, "--outbound-allow", "10.20.0.0/16, fd00:1::/32,192.0.2.7,2001:db8::5"); err != nil || !slices.Equal(got, want) {
		t.Errorf("flag: %v %v, want %v", got, err, want)
	}
	if got, err := parse(t, "--outbound-allow", "10.20.30.40/16"); err != nil || !slices.Equal(got, []netip.Prefix{p("10.20.0.0/16")}) {
		t.Errorf("an unmasked prefix: %v %v, want it masked", got, err)
	}
	t.Setenv("LATCHKEY_OUTBOUND_ALLOW", "127.0.0.0/8")
	if got, err := parse(t); err != nil || !slices.Equal(got, []netip.Prefix{p("127.0.0.0/8")}) {
		t.Errorf("from the environment: %v %v", got, err)
	}
	if got, err := parse(t, "--outbound-allow", "10.0.0.0/8"); err != nil || !slices.Equal(got, []netip.Prefix{p("10.0.0.0/8")}) {
		t.Errorf("the flag beats the environment: %v %v", got, err)
	}
	t.Setenv("LATCHKEY_OUTBOUND_ALLOW", "")
	config := filepath.Join(t.TempDir(), "latchkey.yaml")
	if err := os.WriteFile(config, []byte("outbound-allow: [10.1.0.0/16, \"fc00::/7\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := parse(t, "--config", config); err != nil || !slices.Equal(got, []netip.Prefix{p("10.1.0.0/16"), p("fc00::/7")}) {
		t.Errorf("from a config file: %v %v", got, err)
	}

	for _, bad := range []string{"intranet", "10.0.0.0/33", "10.0.0.0/8/8", "fe80::1%eth0", "http://10.0.0.1/"} {
		var out, errOut bytes.Buffer
		dir := t.TempDir()
		err := run(context.Background(), []string{"serve", "--data-dir", dir, "--public-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--outbound-allow", bad}, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), "--outbound-allow") {
			t.Errorf("serve --outbound-allow %q: %v", bad, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "latchkey.db")); err == nil {
			t.Errorf("serve --outbound-allow %q created a database before refusing", bad)
		}
	}
}

// TestServeOutboundPolicy runs serve as an operator does, without --dev:
// a dynamically registered client's request_uri on loopback is not
// fetched (invalid_request_uri at its redirect URI, no connection), until
// --outbound-allow or --dev allows loopback.
func TestServeOutboundPolicy(t *testing.T) {
	cleanEnv(t)
	var conns atomic.Int64
	rp := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/oauth-authz-req+jwt")
		_, _ = w.Write([]byte("eyJhbGciOiJub25lIn0.e30."))
	}))
	rp.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			conns.Add(1)
		}
	}
	rp.Start()
	t.Cleanup(rp.Close)
	const redirect = "http://127.0.0.1:9000/cb"
	requestURI := rp.URL + "/request.jwt"
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// authorize registers a client with the request_uri at srv and sends
	// an authorization request with it; it returns where the provider
	// sent the browser, and the connections the relying party saw.
	authorize := func(t *testing.T, srv *server) (url.Values, int64) {
		t.Helper()
		body := `{"redirect_uris":["` + redirect + `"],"request_uris":["` + requestURI + `"],"token_endpoint_auth_method":"none"}`
		resp, err := http.Post(srv.public+"/oauth2/register", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var reg struct {
			ClientID string `json:"client_id"`
		}
		err = json.NewDecoder(resp.Body).Decode(&reg)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("register: %d %v", resp.StatusCode, err)
		}
		before := conns.Load()
		q := url.Values{"client_id": {reg.ClientID}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {redirect}, "request_uri": {requestURI}}
		resp, err = noRedirects.Get(srv.public + "/oauth2/auth?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || resp.StatusCode/100 != 3 || !strings.HasPrefix(loc.String(), redirect) {
			t.Fatalf("authorize: %d to %q, want a redirect to %s", resp.StatusCode, resp.Header.Get("Location"), redirect)
		}
		return loc.Query(), conns.Load() - before
	}

	srv := startServe(t, "--data-dir", t.TempDir(), "--registration", "open")
	if params, n := authorize(t, srv); params.Get("error") != "invalid_request_uri" || n != 0 {
		t.Errorf("by default: %v after %d connections, want invalid_request_uri and none", params, n)
	}
	srv.shutdown(t)

	for _, args := range [][]string{{"--outbound-allow", "127.0.0.0/8,::1"}, {"--dev"}} {
		srv := startServe(t, append([]string{"--data-dir", t.TempDir(), "--registration", "open"}, args...)...)
		if params, n := authorize(t, srv); params.Get("error") == "invalid_request_uri" || n == 0 {
			t.Errorf("with %v: %v after %d connections, want the object fetched", args, params, n)
		}
		srv.shutdown(t)
	}
}

// TestClientsCreateOutboundPolicy: "clients create" fetches a
// sector_identifier_uri under the server's policy, widened by the same
// --outbound-allow.
func TestClientsCreateOutboundPolicy(t *testing.T) {
	cleanEnv(t)
	var conns atomic.Int64
	sectors := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`["https://app.example.test/cb"]`))
	}))
	sectors.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			conns.Add(1)
		}
	}
	sectors.StartTLS()
	t.Cleanup(sectors.Close)
	dir := t.TempDir()
	file := filepath.Join(t.TempDir(), "client.json")
	body := `{"redirect_uris":["https://app.example.test/cb"],"subject_type":"pairwise","sector_identifier_uri":"` + sectors.URL + `/sector.json"}`
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	create := func(args ...string) error {
		var out, errOut bytes.Buffer
		return run(context.Background(), append([]string{"clients", "create", "--file", file, "--data-dir", dir}, args...), &out, &errOut)
	}
	if err := create(); err == nil || !strings.Contains(err.Error(), "could not be fetched") || conns.Load() != 0 {
		t.Errorf("by default: %v after %d connections, want a refusal without one", err, conns.Load())
	}
	if err := create("--outbound-allow", "loopback"); err == nil || !strings.Contains(err.Error(), "--outbound-allow") {
		t.Errorf("a bad --outbound-allow: %v", err)
	}
	// Allowed, the provider connects; the test server's certificate is
	// not trusted, so the fetch still fails, after the dial.
	if err := create("--outbound-allow", "127.0.0.1"); err == nil || conns.Load() == 0 {
		t.Errorf("allowed: %v after %d connections, want a connection", err, conns.Load())
	}
}
