package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
)

// TestServeLoginAlone runs the provider and the login app as two processes
// would: "serve provider" sends sign-ins to the login URL, and "serve
// login" answers there, talking to the provider's admin API.
func TestServeLoginAlone(t *testing.T) {
	cleanEnv(t)
	dir := filepath.Join(t.TempDir(), "latchkey-data")
	// The login app's address must be known before the provider starts.
	loginAddr := latchkeytest.FreeAddr(t)
	loginURL := "http://" + loginAddr + "/login"

	prov := startServe(t, "provider", "--data-dir", dir, "--login-url", loginURL)
	token := readFile(t, filepath.Join(dir, "admin-token"))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out, errOut latchkeytest.Output
	go func() {
		done <- run(ctx, []string{"serve", "login", "--data-dir", dir, "--issuer", prov.issuer, "--login-url", loginURL,
			"--login-addr", loginAddr, "--admin-url", prov.admin, "--admin-token", token, "--metrics-addr", "127.0.0.1:0"}, &out, &errOut)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("serve login did not stop")
		}
	})

	file := filepath.Join(t.TempDir(), "client.json")
	writeFile(t, file, `{"client_id":"web","client_name":"Web App","redirect_uris":["http://127.0.0.1:9000/callback"],"grant_types":["authorization_code"],"response_types":["code"],"scope":"openid"}`)
	cli(t, "clients", "create", "--file", file, "--data-dir", dir)

	jar := newJar(t)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	auth := prov.public + "/oauth2/auth?" + url.Values{
		"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid"},
		"redirect_uri": {"http://127.0.0.1:9000/callback"}, "state": {"some-state-value"},
	}.Encode()
	resp, err := c.Get(auth)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, loginURL+"/login?login_challenge=") {
		t.Fatalf("the provider sent the browser to %q, want the login app at %s", loc, loginURL)
	}
	var page string
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := c.Get(loc)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			page = string(body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("the login app answered %d: %s", resp.StatusCode, page)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve login does not answer: %v\n%s", err, errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The page shows the challenge the provider made, read through the
	// admin API: the client's name and the sign-in form.
	if !strings.Contains(page, "Web App") || !strings.Contains(page, `id="password-form"`) {
		t.Fatalf("the login app's sign-in page:\n%s", page)
	}
	if !strings.Contains(out.String(), "login app is serving") {
		t.Errorf("serve login printed %q", out.String())
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newJar(t *testing.T) http.CookieJar {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return jar
}
