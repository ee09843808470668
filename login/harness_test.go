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
	"sync"
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
	t testing.TB
	// replica is the first instance; a test of one instance sees only it.
	*replica
	// replicas are every instance, the first one first: more than one
	// when envOptions.replicas asks, all on the one database.
	replicas []*replica
	outbox   string
	hasher   *password.Hasher
}

// replica is one instance of the provider with the login app mounted on
// it, as one "latchkey serve" process: its own store (connection pool),
// listeners and metrics. Every replica has the first one's issuer, as
// replicas behind one load balancer do; a test reaches replica r at
// r.public.URL (see at).
type replica struct {
	t        testing.TB
	store    *store.Store
	public   *httptest.Server
	admin    *httptest.Server
	app      *login.App
	registry *prometheus.Registry
}

// envOptions change an environment before it starts.
type envOptions struct {
	// host replaces 127.0.0.1 in the issuer (passkeys need a host name).
	host  string
	login func(*login.Config)
	// replicas is how many instances share the database; 0 means one.
	replicas int
}

// withReplicas runs n instances of the provider and the login app on one
// database.
func withReplicas(n int) func(*envOptions) {
	return func(o *envOptions) { o.replicas = n }
}

func newEnv(t testing.TB, opts ...func(*envOptions)) *env {
	t.Helper()
	var o envOptions
	for _, f := range opts {
		f(&o)
	}
	e := &env{t: t, hasher: &password.Hasher{MemoryKiB: 64, Time: 1, Threads: 1}}
	e.outbox = filepath.Join(t.TempDir(), "outbox.jsonl")
	// One mail relay serves every replica, so the outbox holds all mail.
	mailer := &mail.Outbox{Path: e.outbox}
	dbURL := o.database(t)
	e.replica = e.startReplica(&o, dbURL, "", mailer)
	for range o.replicas - 1 {
		e.startReplica(&o, dbURL, e.issuer(), mailer)
	}
	return e
}

// database is a fresh database for the environment: PostgreSQL when the
// tests are asked to use it (LATCHKEY_TEST_PROVIDER_BACKEND=postgres), or
// for several replicas whenever there is one (CI always has); else a
// SQLite file, which several replicas share as several processes would.
func (o *envOptions) database(t testing.TB) string {
	if os.Getenv("LATCHKEY_TEST_PROVIDER_BACKEND") == "postgres" ||
		(o.replicas > 1 && os.Getenv("LATCHKEY_TEST_DATABASE_URL") != "") {
		return storetest.FreshPostgres(t)
	}
	return storetest.FreshSQLite(t)
}

// startReplica starts an instance on dbURL and adds it to e.replicas. An
// empty issuer makes its own public URL the issuer (the first replica).
func (e *env) startReplica(o *envOptions, dbURL, issuer string, mailer mail.Sender) *replica {
	t := e.t
	t.Helper()
	ctx := context.Background()
	r := &replica{t: t, registry: prometheus.NewRegistry()}
	var public, admin http.Handler = http.NotFoundHandler(), http.NotFoundHandler()
	r.public = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { public.ServeHTTP(w, req) }))
	t.Cleanup(r.public.Close)
	r.admin = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { admin.ServeHTTP(w, req) }))
	t.Cleanup(r.admin.Close)
	if issuer == "" {
		issuer = r.public.URL
		if o.host != "" {
			issuer = strings.Replace(issuer, "127.0.0.1", o.host, 1)
		}
	}
	pcfg := provider.Config{
		Issuer:       issuer,
		AdminToken:   adminToken,
		SystemSecret: storetest.TestSecret,
		KeyAlgs:      []string{"RS256"},
	}
	r.store = storetest.OpenURL(t, dbURL, provider.StoreOptions(pcfg))
	p, err := provider.New(ctx, r.store, pcfg)
	if err != nil {
		t.Fatalf("new provider: %v", err)
	}
	lcfg := login.Config{
		PublicURL:  issuer + "/login",
		Issuer:     issuer,
		AdminURL:   r.admin.URL,
		AdminToken: adminToken,
		Secret:     storetest.TestSecret,
		Mail:       mailer,
		Passwords:  e.hasher,
		Registerer: r.registry,
	}
	if o.login != nil {
		o.login(&lcfg)
	}
	if r.app, err = login.New(ctx, r.store, lcfg); err != nil {
		t.Fatalf("new login app: %v", err)
	}
	public = r.app.Mount(p.PublicHandler())
	admin = p.AdminHandler()
	e.replicas = append(e.replicas, r)
	return r
}

// at is u, a URL under the issuer, as served by replica r.
func (r *replica) at(u string) string {
	iss := strings.TrimSuffix(r.app.PublicURL(), "/login")
	if !strings.HasPrefix(u, iss) {
		r.t.Fatalf("%s is not under the issuer %s", u, iss)
	}
	return r.public.URL + strings.TrimPrefix(u, iss)
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

// metric returns a counter's value from the replica's login app registry.
func (r *replica) metric(name string, labels map[string]string) float64 {
	r.t.Helper()
	mfs, err := r.registry.Gather()
	if err != nil {
		r.t.Fatal(err)
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

// metricSum adds a counter up over every replica, as a dashboard does.
func (e *env) metricSum(name string, labels map[string]string) float64 {
	e.t.Helper()
	var sum float64
	for _, r := range e.replicas {
		sum += r.metric(name, labels)
	}
	return sum
}

// browser is a user agent that keeps cookies and follows redirects one
// by one, so a test sees every page and stops at the client.
type browser struct {
	t      testing.TB
	client *http.Client
	// page is the last HTML page: its URL, body, status and headers.
	url    string
	body   string
	code   int
	header http.Header
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
		b.url, b.body, b.code, b.header = req.URL.String(), string(data), resp.StatusCode, resp.Header
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

// answer is what one of several simultaneous requests got.
type answer struct {
	status int
	page   string // the body, HTML unescaped
	err    error
}

// postAtOnce posts n forms with the browser's cookies, released together
// so that they race; form(i) gives the i-th one's action and fields. It
// follows no redirects and returns each answer by index.
func (b *browser) postAtOnce(n int, form func(i int) (string, url.Values)) []answer {
	b.t.Helper()
	answers := make([]answer, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range answers {
		action, fields := form(i)
		req, err := http.NewRequest(http.MethodPost, action, strings.NewReader(fields.Encode()))
		if err != nil {
			b.t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		wg.Go(func() {
			<-start
			resp, err := b.client.Do(req)
			if err != nil {
				answers[i].err = err
				return
			}
			defer resp.Body.Close()
			page, err := io.ReadAll(resp.Body)
			answers[i] = answer{resp.StatusCode, html.UnescapeString(string(page)), err}
		})
	}
	close(start)
	wg.Wait()
	return answers
}

// outcome is a kind of answer: its status and a text its page shows.
type outcome struct {
	status int
	text   string
}

// tally counts the answers of each outcome, the first that matches; an
// answer of none of them fails the test.
func tally(t testing.TB, answers []answer, outcomes ...outcome) map[outcome]int {
	t.Helper()
	got := make(map[outcome]int, len(outcomes))
next:
	for i, a := range answers {
		if a.err != nil {
			t.Errorf("request %d: %v", i, a.err)
			continue
		}
		for _, o := range outcomes {
			if a.status == o.status && strings.Contains(a.page, o.text) {
				got[o]++
				continue next
			}
		}
		t.Errorf("request %d: unexpected answer %d\n%s", i, a.status, a.page)
	}
	return got
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
