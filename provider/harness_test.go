package provider_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/provider/clientsecret"
	"github.com/latchkey-oidc/latchkey/store"
	"github.com/latchkey-oidc/latchkey/store/storetest"
)

// rpRedirect is the registered redirect URI of test clients. Nothing listens
// there: the test browser stops when a redirect or form post goes to it.
const rpRedirect = "https://rp.example.test/cb"

const adminToken = "test-admin-token-0123456789"

// env is a provider on a fresh SQLite store, served over real HTTP, with a
// login app double in front of its admin API.
type env struct {
	t      testing.TB
	dbURL  string
	store  *store.Store
	p      *provider.Provider
	cfg    provider.Config
	public *httptest.Server
	admin  *httptest.Server
	login  *loginDouble
	// serving holds the handlers public and admin serve: p's, replaced
	// when the provider restarts.
	serving atomic.Pointer[handlers]
}

// handlers are a provider's public and admin handlers.
type handlers struct{ public, admin http.Handler }

func (e *env) issuer() string { return e.public.URL }

// newEnv starts a provider. opts may change the config before it starts.
func newEnv(t testing.TB, opts ...func(*provider.Config)) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t}
	// The public listener's URL is the issuer, so it must exist first;
	// its handler is set once the provider is built.
	e.serving.Store(&handlers{public: http.NotFoundHandler(), admin: http.NotFoundHandler()})
	e.public = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { e.serving.Load().public.ServeHTTP(w, r) }))
	t.Cleanup(e.public.Close)
	e.admin = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { e.serving.Load().admin.ServeHTTP(w, r) }))
	t.Cleanup(e.admin.Close)
	e.login = newLoginDouble(t, e.admin.URL)

	e.cfg = provider.Config{
		Issuer:       e.public.URL,
		LoginURL:     e.login.srv.URL,
		AdminToken:   adminToken,
		SystemSecret: storetest.TestSecret,
		KeyAlgs:      []string{"RS256", "ES256", "EdDSA"},
	}
	for _, o := range opts {
		o(&e.cfg)
	}
	e.dbURL = testDatabase(t)
	e.store = storetest.OpenURL(t, e.dbURL, provider.StoreOptions(e.cfg))
	p, err := provider.New(ctx, e.store, e.cfg)
	if err != nil {
		t.Fatalf("new provider: %v", err)
	}
	e.serve(p)
	return e
}

// serve makes p e's provider, on e's addresses.
func (e *env) serve(p *provider.Provider) {
	e.p = p
	e.serving.Store(&handlers{public: p.PublicHandler(), admin: p.AdminHandler()})
}

// restart closes the store of e's provider, whose background work must
// have stopped, and starts another provider on e's database, as a
// redeployment does, with e's configuration changed by opts. e serves it
// on the same addresses from then on.
func (e *env) restart(opts ...func(*provider.Config)) {
	e.t.Helper()
	if err := e.store.Close(); err != nil {
		e.t.Fatalf("close the store of the provider before the restart: %v", err)
	}
	for _, o := range opts {
		o(&e.cfg)
	}
	e.store = storetest.OpenURL(e.t, e.dbURL, provider.StoreOptions(e.cfg))
	p, err := provider.New(context.Background(), e.store, e.cfg)
	if err != nil {
		e.t.Fatalf("restart the provider: %v", err)
	}
	e.serve(p)
}

// testDatabase is a fresh SQLite file, or a fresh PostgreSQL schema when
// LATCHKEY_TEST_PROVIDER_BACKEND=postgres (.ci/run runs the suite both ways).
func testDatabase(t testing.TB) string {
	if os.Getenv("LATCHKEY_TEST_PROVIDER_BACKEND") == "postgres" {
		return storetest.FreshPostgres(t)
	}
	return storetest.FreshSQLite(t)
}

// createClient stores a client; a non-empty secret is hashed the way the
// admin API hashes generated secrets.
func (e *env) createClient(c *store.Client, secret string) *store.Client {
	e.t.Helper()
	if c.ID == "" {
		c.ID = "client-" + strings.ToLower(strings.ReplaceAll(e.t.Name(), "/", "-"))
	}
	if len(c.RedirectURIs) == 0 {
		c.RedirectURIs = []string{rpRedirect}
	}
	if secret != "" {
		h, err := clientsecret.NewHasher(storetest.TestSecret)
		if err != nil {
			e.t.Fatal(err)
		}
		hash, err := h.HashGenerated([]byte(secret))
		if err != nil {
			e.t.Fatal(err)
		}
		c.SecretHash = string(hash)
	} else if c.TokenEndpointAuthMethod == "" {
		c.TokenEndpointAuthMethod = "none"
	}
	if err := e.store.CreateClient(context.Background(), c); err != nil {
		e.t.Fatalf("create client: %v", err)
	}
	return c
}

// testSecret is a client secret long enough to be a generated one.
const testSecret = "test-client-secret-0123456789-0123456789-abc"

// user is someone the login double signs in.
type user struct {
	subject  string
	password string
	claims   map[string]any
}

var alice = user{
	subject:  "alice-subject",
	password: "correct horse battery staple",
	claims: map[string]any{
		"name": "Alice Liddell", "given_name": "Alice", "family_name": "Liddell",
		"email": "alice@example.test", "email_verified": true,
		"phone_number": "+1 555 0100", "address": map[string]any{"country": "GB"},
	},
}

// loginDouble is a login app that drives the challenge API exactly as a
// real one does, without pages: it reads each challenge from the admin API,
// decides it through the admin API and redirects the browser to where the
// provider says. Tests change its decisions through the hooks.
type loginDouble struct {
	t       testing.TB
	srv     *httptest.Server
	admin   string
	mu      sync.Mutex
	user    user
	login   func(v provider.ChallengeView) any // LoginAccept or Rejection
	consent func(v provider.ChallengeView) any // ConsentAccept or Rejection
	device  func(v provider.ChallengeView) (userCode string, reject bool)
	logout  func(v provider.ChallengeView) any
	seen    []provider.ChallengeView
	users   map[string]user // by username, for the password check
}

func newLoginDouble(t testing.TB, adminURL string) *loginDouble {
	d := &loginDouble{t: t, admin: adminURL, user: alice, users: map[string]user{"alice": alice}}
	d.login = func(v provider.ChallengeView) any {
		return provider.LoginAccept{Subject: d.user.subject, ACR: "1", AMR: []string{"pwd"}, Remember: true}
	}
	d.consent = func(v provider.ChallengeView) any {
		return provider.ConsentAccept{GrantScope: v.RequestedScope, GrantAudience: v.RequestedAudience,
			Session: provider.ConsentSession{Claims: d.user.claims}}
	}
	d.device = func(v provider.ChallengeView) (string, bool) { return v.UserCode, false }
	d.logout = func(v provider.ChallengeView) any { return struct{}{} }
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", d.handle("login", "login_challenge", func(v provider.ChallengeView) any { return d.login(v) }))
	mux.HandleFunc("GET /consent", d.handle("consent", "consent_challenge", func(v provider.ChallengeView) any { return d.consent(v) }))
	mux.HandleFunc("GET /logout", d.handle("logout", "logout_challenge", func(v provider.ChallengeView) any { return d.logout(v) }))
	mux.HandleFunc("GET /device", d.handle("device", "device_challenge", func(v provider.ChallengeView) any {
		if code := v.UserCode; code == "" {
			v.UserCode = "" // the view has none when the user typed it
		}
		code, reject := d.device(v)
		if reject {
			return provider.Rejection{Error: "access_denied"}
		}
		return map[string]string{"user_code": code}
	}))
	mux.HandleFunc("POST /internal/password", d.checkPassword)
	d.srv = httptest.NewServer(mux)
	t.Cleanup(d.srv.Close)
	return d
}

// seenKinds lists the kinds of the challenges the double was shown.
func (d *loginDouble) seenKinds() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, v := range d.seen {
		out = append(out, v.Kind)
	}
	return out
}

func (d *loginDouble) lastSeen(kind string) provider.ChallengeView {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.seen) - 1; i >= 0; i-- {
		if d.seen[i].Kind == kind {
			return d.seen[i]
		}
	}
	d.t.Fatalf("the login app was never shown a %s challenge", kind)
	return provider.ChallengeView{}
}

func (d *loginDouble) handle(kind, param string, decide func(provider.ChallengeView) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get(param)
		var v provider.ChallengeView
		if status := d.call(http.MethodGet, "/admin/"+kind+"?challenge="+url.QueryEscape(id), nil, &v); status != http.StatusOK {
			http.Error(w, fmt.Sprintf("admin GET %s: %d", kind, status), http.StatusBadGateway)
			return
		}
		if kind == "device" && v.UserCode == "" {
			v.UserCode = r.URL.Query().Get("user_code")
		}
		d.mu.Lock()
		d.seen = append(d.seen, v)
		d.mu.Unlock()
		decision := decide(v)
		action := "accept"
		if _, ok := decision.(provider.Rejection); ok {
			action = "reject"
		}
		var next provider.Redirect
		if status := d.call(http.MethodPut, "/admin/"+kind+"/"+action+"?challenge="+url.QueryEscape(id), decision, &next); status != http.StatusOK {
			http.Error(w, fmt.Sprintf("admin PUT %s/%s: %d", kind, action, status), http.StatusBadGateway)
			return
		}
		http.Redirect(w, r, next.RedirectTo, http.StatusSeeOther)
	}
}

// call makes an admin API call and decodes the JSON answer into out.
func (d *loginDouble) call(method, path string, body, out any) int {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			d.t.Errorf("encode %s %s: %v", method, path, err)
			return 0
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, d.admin+path, rd)
	if err != nil {
		d.t.Errorf("%s %s: %v", method, path, err)
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Errorf("%s %s: %v", method, path, err)
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			d.t.Errorf("%s %s: decode %q: %v", method, path, b, err)
		}
	} else if resp.StatusCode != http.StatusOK {
		d.t.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

func (d *loginDouble) checkPassword(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+adminToken {
		http.Error(w, "no", http.StatusUnauthorized)
		return
	}
	var in struct{ Username, Password string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	d.mu.Lock()
	u, ok := d.users[in.Username]
	d.mu.Unlock()
	if !ok || u.password != in.Password {
		http.Error(w, "invalid username or password", http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"subject": u.subject})
}

// browser is a user agent with a cookie jar that follows redirects until
// one goes to the relying party.
type browser struct {
	t      testing.TB
	client *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, client: &http.Client{
		Jar: jar,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host == "rp.example.test" {
				return http.ErrUseLastResponse
			}
			if len(via) > 20 {
				return fmt.Errorf("too many redirects")
			}
			return nil
		},
	}}
}

// authResult is what reached the relying party, or the page the browser
// ended on.
type authResult struct {
	// Params are the response parameters, from the query, the fragment
	// or the form post.
	Params url.Values
	// Mode is how they came: query, fragment or form_post; empty when the
	// browser never reached the relying party.
	Mode   string
	Status int
	Body   string
}

// authorize starts an authorization at the provider with params and
// follows it through the login double to the relying party.
func (b *browser) authorize(issuer string, params url.Values) *authResult {
	b.t.Helper()
	return b.get(issuer + "/oauth2/auth?" + params.Encode())
}

var formInput = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)"`)

func (b *browser) get(u string) *authResult {
	b.t.Helper()
	resp, err := b.client.Get(u)
	if err != nil {
		b.t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	res := &authResult{Status: resp.StatusCode, Body: string(body)}
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && strings.HasPrefix(loc, rpRedirect) {
		lu, err := url.Parse(loc)
		if err != nil {
			b.t.Fatalf("redirect %q: %v", loc, err)
		}
		if lu.Fragment != "" {
			res.Mode = "fragment"
			res.Params, _ = url.ParseQuery(lu.Fragment)
		} else {
			res.Mode = "query"
			res.Params = lu.Query()
		}
		return res
	}
	if resp.StatusCode == http.StatusOK && strings.Contains(res.Body, `action="`+rpRedirect+`"`) {
		res.Mode = "form_post"
		res.Params = url.Values{}
		for _, m := range formInput.FindAllStringSubmatch(res.Body, -1) {
			res.Params.Add(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
		}
	}
	return res
}
