package login_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"

	"github.com/latchkey-oidc/latchkey/login"
	"github.com/latchkey-oidc/latchkey/login/mail"
	"github.com/latchkey-oidc/latchkey/login/password"
	"github.com/latchkey-oidc/latchkey/login/totp"
	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
	"github.com/latchkey-oidc/latchkey/store/storetest"
)

// The login app's tests run it as "latchkey serve" does: mounted at /login
// on the provider's public listener, talking to the provider's admin API
// over HTTP. The browser is a cookie-keeping HTTP client that reads and
// submits the pages' forms; browser_test.go drives real Chromium.

const adminToken = "login-test-admin-token-0123456789"

// rpRedirect is the test relying party's redirect URI. Nothing listens
// there: the browser stops at the redirect and the test takes the code.
const rpRedirect = "http://127.0.0.1:9/callback"

type env struct {
	t        testing.TB
	store    *store.Store
	public   *httptest.Server
	admin    *httptest.Server
	app      *login.App
	outbox   string
	registry *prometheus.Registry
	hasher   *password.Hasher
}

// envOptions change an environment before it starts.
type envOptions struct {
	// host replaces 127.0.0.1 in the issuer (passkeys need a host name).
	host  string
	login func(*login.Config)
}

func newEnv(t testing.TB, opts ...func(*envOptions)) *env {
	t.Helper()
	var o envOptions
	for _, f := range opts {
		f(&o)
	}
	ctx := context.Background()
	e := &env{t: t, registry: prometheus.NewRegistry(), hasher: &password.Hasher{MemoryKiB: 64, Time: 1, Threads: 1}}
	var public, admin http.Handler = http.NotFoundHandler(), http.NotFoundHandler()
	e.public = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { public.ServeHTTP(w, r) }))
	t.Cleanup(e.public.Close)
	e.admin = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { admin.ServeHTTP(w, r) }))
	t.Cleanup(e.admin.Close)
	issuer := e.public.URL
	if o.host != "" {
		issuer = strings.Replace(issuer, "127.0.0.1", o.host, 1)
	}
	pcfg := provider.Config{
		Issuer:       issuer,
		AdminToken:   adminToken,
		SystemSecret: storetest.TestSecret,
		KeyAlgs:      []string{"RS256"},
	}
	dbURL := storetest.FreshSQLite(t)
	if os.Getenv("LATCHKEY_TEST_PROVIDER_BACKEND") == "postgres" {
		dbURL = storetest.FreshPostgres(t)
	}
	e.store = storetest.OpenURL(t, dbURL, provider.StoreOptions(pcfg))
	p, err := provider.New(ctx, e.store, pcfg)
	if err != nil {
		t.Fatalf("new provider: %v", err)
	}
	e.outbox = filepath.Join(t.TempDir(), "outbox.jsonl")
	lcfg := login.Config{
		PublicURL:  issuer + "/login",
		Issuer:     issuer,
		AdminURL:   e.admin.URL,
		AdminToken: adminToken,
		Secret:     storetest.TestSecret,
		Mail:       &mail.Outbox{Path: e.outbox},
		Passwords:  e.hasher,
		Registerer: e.registry,
	}
	if o.login != nil {
		o.login(&lcfg)
	}
	if e.app, err = login.New(ctx, e.store, lcfg); err != nil {
		t.Fatalf("new login app: %v", err)
	}
	public = e.app.Mount(p.PublicHandler())
	admin = p.AdminHandler()
	return e
}

func (e *env) issuer() string { return strings.TrimSuffix(e.app.PublicURL(), "/login") }

// createUser stores a user with a password, as "latchkey users create" does.
func (e *env) createUser(username, pw string, edit ...func(*store.User)) *store.User {
	e.t.Helper()
	hash, err := e.hasher.Hash(context.Background(), pw)
	if err != nil {
		e.t.Fatal(err)
	}
	u := &store.User{Username: username, Email: username + "@example.test", EmailVerified: true, PasswordHash: hash,
		Profile: json.RawMessage(`{"name":"` + strings.ToUpper(username[:1]) + username[1:] + ` Example"}`)}
	for _, f := range edit {
		f(u)
	}
	if err := e.store.CreateUser(context.Background(), u); err != nil {
		e.t.Fatalf("create user: %v", err)
	}
	return u
}

// enrolTOTP gives a user a confirmed TOTP seed and returns it.
func (e *env) enrolTOTP(u *store.User) []byte {
	e.t.Helper()
	k, err := totp.Generate("Latchkey", u.Username)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.store.SaveTOTPEnrolment(ctx, u.ID, k.Secret); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.ConfirmTOTP(ctx, u.ID, 0); err != nil {
		e.t.Fatal(err)
	}
	return k.Secret
}

// rp is a registered client with its OAuth and OIDC configuration.
type rp struct {
	ID, Secret string
	oauth      *oauth2.Config
	verifier   *oidc.IDTokenVerifier
}

// createClient registers a client through the admin API, as an operator
// would; meta is merged into a confidential code-flow client.
func (e *env) createClient(meta map[string]any) *rp {
	e.t.Helper()
	body := map[string]any{
		"client_name":    "Test App",
		"redirect_uris":  []string{rpRedirect},
		"grant_types":    []string{"authorization_code", "refresh_token"},
		"response_types": []string{"code"},
		"scope":          "openid profile email offline_access",
	}
	for k, v := range meta {
		body[k] = v
	}
	var out struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	e.adminCall(http.MethodPost, "/admin/clients", body, http.StatusCreated, &out)
	ctx := oidc.ClientContext(context.Background(), http.DefaultClient)
	op, err := oidc.NewProvider(ctx, e.issuer())
	if err != nil {
		e.t.Fatalf("discovery: %v", err)
	}
	return &rp{
		ID: out.ClientID, Secret: out.ClientSecret,
		oauth: &oauth2.Config{
			ClientID: out.ClientID, ClientSecret: out.ClientSecret, Endpoint: op.Endpoint(),
			RedirectURL: rpRedirect, Scopes: []string{"openid", "profile", "email"},
		},
		verifier: op.Verifier(&oidc.Config{ClientID: out.ClientID}),
	}
}

func (e *env) adminCall(method, path string, in any, wantStatus int, out any) {
	e.t.Helper()
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest(method, e.admin.URL+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		e.t.Fatalf("%s %s = %d %s, want %d", method, path, resp.StatusCode, data, wantStatus)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// userinfo fetches the claims an access token gives.
func (e *env) userinfo(accessToken string) map[string]any {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.issuer()+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		e.t.Fatalf("userinfo: %d, %v", resp.StatusCode, err)
	}
	return out
}

// metric returns a counter's value from the login app's registry.
func (e *env) metric(name string, labels map[string]string) float64 {
	e.t.Helper()
	mfs, err := e.registry.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// browser is a user agent that keeps cookies and follows redirects one
// by one, so a test sees every page and stops at the client.
type browser struct {
	t      testing.TB
	client *http.Client
	// page is the last HTML page: its URL and body.
	url  string
	body string
	code int
}

func newBrowser(t testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, client: &http.Client{
		Jar:     jar,
		Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// do sends a request and follows redirects until a page or the client's
// redirect URI; it returns the final URL.
func (b *browser) do(req *http.Request) string {
	b.t.Helper()
	for range 20 {
		// Browsers send these; http.CrossOriginProtection checks them.
		if req.Method == http.MethodPost {
			req.Header.Set("Sec-Fetch-Site", "same-origin")
		}
		resp, err := b.client.Do(req)
		if err != nil {
			b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
			next, err := req.URL.Parse(loc)
			if err != nil {
				b.t.Fatalf("bad Location %q: %v", loc, err)
			}
			if strings.HasPrefix(next.String(), rpRedirect) {
				b.url, b.body, b.code = next.String(), "", resp.StatusCode
				return b.url
			}
			req, _ = http.NewRequest(http.MethodGet, next.String(), nil)
			continue
		}
		b.url, b.body, b.code = req.URL.String(), string(data), resp.StatusCode
		return b.url
	}
	b.t.Fatal("too many redirects")
	return ""
}

func (b *browser) get(u string) string {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

// submit posts the form with id on the current page, with its hidden
// fields and the given values; button adds a submit button's name=value.
func (b *browser) submit(formID string, values map[string]string) string {
	b.t.Helper()
	action, fields := b.form(formID)
	for k, v := range values {
		fields.Set(k, v)
	}
	return b.post(action, fields)
}

func (b *browser) post(action string, fields url.Values) string {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, action, strings.NewReader(fields.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var (
	formRe   = regexp.MustCompile(`(?s)<form[^>]*>.*?</form>`)
	attrRe   = regexp.MustCompile(`([a-z-]+)="([^"]*)"`)
	hiddenRe = regexp.MustCompile(`<input[^>]*type="hidden"[^>]*>`)
)

// form finds the form with id on the page and returns its action and
// hidden fields.
func (b *browser) form(id string) (string, url.Values) {
	b.t.Helper()
	for _, f := range formRe.FindAllString(b.body, -1) {
		open := f[:strings.Index(f, ">")+1]
		attrs := attributes(open)
		if attrs["id"] != id {
			continue
		}
		fields := url.Values{}
		for _, in := range hiddenRe.FindAllString(f, -1) {
			a := attributes(in)
			fields.Set(a["name"], a["value"])
		}
		return attrs["action"], fields
	}
	b.t.Fatalf("no form %q on %s (status %d):\n%s", id, b.url, b.code, b.body)
	return "", nil
}

func attributes(tag string) map[string]string {
	out := map[string]string{}
	for _, m := range attrRe.FindAllStringSubmatch(tag, -1) {
		out[m[1]] = html.UnescapeString(m[2])
	}
	return out
}

// has reports whether the page shows text.
func (b *browser) has(text string) bool { return strings.Contains(html.UnescapeString(b.body), text) }

// authorize starts a code flow with PKCE and returns its state and verifier.
func (b *browser) authorize(c *rp, extra ...oauth2.AuthCodeOption) (state, verifier string) {
	b.t.Helper()
	state, verifier = fmt.Sprint(time.Now().UnixNano()), oauth2.GenerateVerifier()
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oidc.Nonce("n-" + state)}, extra...)
	b.get(c.oauth.AuthCodeURL(state, opts...))
	return state, verifier
}

// signIn fills in the sign-in form.
func (b *browser) signIn(username, pw string) {
	b.t.Helper()
	b.submit("password-form", map[string]string{"username": username, "password": pw})
}

// tokens takes the code from the redirect and redeems it.
func (b *browser) tokens(c *rp, state, verifier string) (*oauth2.Token, *oidc.IDToken) {
	b.t.Helper()
	u, err := url.Parse(b.url)
	if err != nil || !strings.HasPrefix(b.url, rpRedirect) {
		b.t.Fatalf("not at the client: %s (status %d)\n%s", b.url, b.code, b.body)
	}
	q := u.Query()
	if q.Get("error") != "" {
		b.t.Fatalf("the client got error %s: %s", q.Get("error"), q.Get("error_description"))
	}
	if q.Get("state") != state {
		b.t.Fatalf("state = %q, want %q", q.Get("state"), state)
	}
	ctx := context.Background()
	tok, err := c.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		b.t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := c.verifier.Verify(ctx, raw)
	if err != nil {
		b.t.Fatalf("verify ID token: %v", err)
	}
	return tok, idt
}

// claimsOf decodes an ID token's claims.
func claimsOf(t testing.TB, idt *oidc.IDToken) map[string]any {
	t.Helper()
	var c map[string]any
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// currentCode is the TOTP code of a seed now.
func currentCode(t testing.TB, secret []byte, at time.Time) string {
	t.Helper()
	c, err := totp.Code(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var _ = net.JoinHostPort

// storeUser is store.User, for option functions in tests.
type storeUser = store.User

// unescape undoes the HTML escaping of an attribute value.
func unescape(s string) string { return html.UnescapeString(s) }
