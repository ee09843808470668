package conformance_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/latchkey-oidc/latchkey/conformance"
	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
	"github.com/latchkey-oidc/latchkey/provider"
)

var (
	update = flag.Bool("update", false, "rewrite the results table in README.md")
	only   = flag.String("plans", "", "run only these plans (comma-separated), e.g. oidcc-dynamic-certification-test-plan")
)

// TestPlans runs every plan the runner knows against an in-process
// Latchkey served over https, with the clients and users an operator would
// create for the official suite. A FAIL fails the test.
func TestPlans(t *testing.T) {
	srv, cfg, attach := setUp(t, latchkeytest.Options{TLS: true}, 48)
	var out lineWriter
	out.t = t
	r, err := conformance.New(context.Background(), cfg, srv.HTTPClient, &out)
	if err != nil {
		t.Fatal(err)
	}
	attach(r)
	var plans []string
	if *only != "" {
		if *update {
			t.Fatal("-update rewrites the whole table: run every plan")
		}
		plans = strings.Split(*only, ",")
	}
	results, err := r.Run(context.Background(), plans...)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range results {
		if res.Status == conformance.Fail {
			t.Errorf("%s", res)
		}
	}
	passed, failed := conformance.Summary(results)
	t.Logf("%d passed, %d failed (%s)", passed, failed, srv.Backend)
	if *update {
		if err := writeTable("README.md", results); err != nil {
			t.Fatal(err)
		}
	}
}

// registrationToken is the initial access token the provider asks of
// registrants.
const registrationToken = "conformance-initial-access-token"

// setUp starts a Latchkey over https and registers what an operator
// registers for the official suite: clients and users with TOTP. The
// provider takes registrations with an initial access token and may
// rotate its keys through the admin API. attach serves a runner's
// relying-party endpoints on an https server the provider trusts, where
// back-channel logout tokens go and registered clients keep their
// documents.
func setUp(t *testing.T, opts latchkeytest.Options, users int) (*latchkeytest.Server, *conformance.Config, func(*conformance.Runner)) {
	t.Helper()
	var rpHandler atomic.Pointer[http.Handler]
	rp := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := rpHandler.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	}))
	rp.StartTLS()
	t.Cleanup(rp.Close)
	configure := opts.Provider
	opts.Provider = func(c *provider.Config) {
		c.RegistrationPolicy = provider.RegistrationToken
		c.RegistrationTokens = []string{registrationToken}
		// The test servers share httptest's certificate, which this
		// client trusts: the provider reaches the runner's server.
		c.HTTPClient = rp.Client()
		if configure != nil {
			configure(c)
		}
	}
	srv := latchkeytest.Start(t, opts)
	cfg := &conformance.Config{Issuer: srv.Issuer, Parallel: 12, RPURL: rp.URL, RegistrationToken: registrationToken,
		RotateKeys: &conformance.RotateKeys{URL: srv.AdminURL + "/admin/keys/rotate", Token: latchkeytest.AdminToken}}
	attach := func(r *conformance.Runner) {
		h := r.RPHandler()
		rpHandler.Store(&h)
	}
	rpURL := rp.URL
	client := func(name, host, auth string, extra ...map[string]any) conformance.Client {
		redirect, postLogout := "https://"+host+"/callback", "https://"+host+"/post_logout_redirect"
		meta := map[string]any{
			"client_name":                name,
			"redirect_uris":              []string{redirect},
			"post_logout_redirect_uris":  []string{postLogout},
			"response_types":             []string{"code", "id_token", "id_token token", "code id_token", "code token", "code id_token token"},
			"grant_types":                []string{"authorization_code", "implicit", "refresh_token"},
			"scope":                      "openid profile email address phone offline_access",
			"token_endpoint_auth_method": auth,
		}
		for _, e := range extra {
			for k, v := range e {
				meta[k] = v
			}
		}
		c := srv.CreateClient(meta)
		fc, _ := meta["frontchannel_logout_uri"].(string)
		return conformance.Client{ID: c.ID, Secret: c.Secret, RedirectURI: redirect, PostLogoutRedirectURI: postLogout, FrontchannelLogoutURI: fc}
	}
	cfg.Client = client("Conformance", "rp.conformance.test", "client_secret_basic")
	cfg.Client2 = client("Conformance 2", "rp2.conformance.test", "client_secret_basic")
	cfg.ClientSecretPost = client("Conformance post", "rp-post.conformance.test", "client_secret_post")
	bc := client("Conformance back-channel", "rp-bc.conformance.test", "client_secret_basic", map[string]any{
		"backchannel_logout_uri": rpURL + "/backchannel_logout", "backchannel_logout_session_required": true,
	})
	fc := client("Conformance front-channel", "rp-fc.conformance.test", "client_secret_basic", map[string]any{
		"frontchannel_logout_uri": "https://rp-fc.conformance.test/frontchannel_logout", "frontchannel_logout_session_required": true,
	})
	cfg.BackchannelClient, cfg.FrontchannelClient = &bc, &fc
	// One user with TOTP per run of modules, so that no run waits for a
	// fresh time step.
	for i := range users {
		seed := make([]byte, 20)
		rand.Read(seed)
		name := fmt.Sprintf("tester%02d", i)
		srv.CreateUser(name, "conformance password "+name, seed)
		cfg.Users = append(cfg.Users, conformance.UserConfig{
			Username: name, Password: "conformance password " + name,
			TOTPSecret: base32.StdEncoding.EncodeToString(seed),
		})
	}
	return srv, cfg, attach
}

// lineWriter logs the runner's lines as they come.
type lineWriter struct {
	t  *testing.T
	mu sync.Mutex
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

const (
	tableStart = "<!-- results: go test ./conformance/ -run TestPlans -update -->"
	tableEnd   = "<!-- end of results -->"
)

// writeTable replaces the results table in the README.
func writeTable(path string, results []conformance.Result) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(data)
	i, j := strings.Index(s, tableStart), strings.Index(s, tableEnd)
	if i < 0 || j < i {
		return fmt.Errorf("%s lacks the results markers", path)
	}
	var b bytes.Buffer
	b.WriteString(tableStart + "\n\n")
	passed, failed := conformance.Summary(results)
	fmt.Fprintf(&b, "%d passed, %d failed.\n\n", passed, failed)
	plan := ""
	for _, r := range results {
		if r.Plan != plan {
			plan = r.Plan
			fmt.Fprintf(&b, "\n### %s\n\n| module | variant | result | notes |\n|---|---|---|---|\n", plan)
		}
		notes := strings.ReplaceAll(strings.Join(r.Notes, "; "), "|", "\\|")
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.Module, r.Variant, r.Status, notes)
	}
	b.WriteString("\n")
	return os.WriteFile(path, []byte(s[:i]+b.String()+s[j:]), 0o644)
}
