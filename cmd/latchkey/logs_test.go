package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/conformance/useragent"
	"github.com/latchkey-oidc/latchkey/login/mail"
	"github.com/latchkey-oidc/latchkey/login/totp"
)

// Secrets are looked for in the logs in two ways. Values of at least
// minGrepLen characters are grepped as plain substrings of every line, as
// written and in their URL-, JSON- and Base64-encoded forms. Shorter
// values (the six-digit TOTP and email codes) would match unrelated
// numbers, so they are only looked for as a whole word in the string
// fields of a line, not in its time or request_id; values shorter than
// minWordLen are not looked for at all (the flows below use none).
const (
	minGrepLen = 8
	minWordLen = 6
)

// secretSet maps every secret value a test saw to its kind, which is what a
// failure names: never the value.
type secretSet struct {
	mu    sync.Mutex
	kinds map[string]string
	seen  map[string]bool // every kind added, also for values seen before
}

func newSecretSet() *secretSet {
	return &secretSet{kinds: map[string]string{}, seen: map[string]bool{}}
}

func (s *secretSet) add(kind, value string) {
	if value == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen[kind] = true
	if _, ok := s.kinds[value]; !ok {
		s.kinds[value] = kind
	}
}

func (s *secretSet) snapshot() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.kinds)
}

// kindsSeen returns the kinds of secret added, without where they were
// seen ("code (redirect query)" is "code").
func (s *secretSet) kindsSeen() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for kind := range s.seen {
		name, _, _ := strings.Cut(kind, " (")
		out[name] = true
	}
	return out
}

// secretParams are the query, form, fragment and HTML form fields whose
// values are secrets: codes, tokens, passwords, PKCE verifiers, state and
// nonce, CSRF tokens and the challenge IDs (bearer-ish: whoever holds one
// can answer the challenge).
var secretParams = []string{
	"code", "state", "nonce", "code_verifier", "password", "csrf",
	"login_challenge", "consent_challenge", "logout_challenge", "device_challenge",
	"client_secret", "client_assertion", "refresh_token", "access_token", "id_token", "id_token_hint",
	"token", "device_code", "user_code",
}

// secretJSON are the members of JSON answers whose values are secrets.
var secretJSON = []string{
	"access_token", "refresh_token", "id_token", "device_code", "user_code",
	"client_secret", "registration_access_token",
}

func (s *secretSet) addParams(where string, v url.Values) {
	for _, name := range secretParams {
		for _, value := range v[name] {
			s.add(name+" ("+where+")", value)
		}
	}
}

var inputTag = regexp.MustCompile(`(?is)<input\b[^>]*>`)

// recorder is the transport of every request the test makes: it counts
// them and collects every secret that passes by, in either direction.
type recorder struct {
	base    http.RoundTripper
	secrets *secretSet

	mu       sync.Mutex
	requests int
	// challengePages are the pages that were opened with a challenge
	// query parameter, by parameter.
	challengePages map[string][]string
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.requests
}

func (rec *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	rec.mu.Lock()
	rec.requests++
	if req.Method == http.MethodGet {
		for _, name := range []string{"login_challenge", "consent_challenge", "logout_challenge", "device_challenge"} {
			page := req.URL.Scheme + "://" + req.URL.Host + req.URL.Path
			if req.URL.Query().Has(name) && !slices.Contains(rec.challengePages[name], page) {
				if rec.challengePages == nil {
					rec.challengePages = map[string][]string{}
				}
				rec.challengePages[name] = append(rec.challengePages[name], page)
			}
		}
	}
	rec.mu.Unlock()
	s := rec.secrets
	s.addParams("request query", req.URL.Query())
	if req.Body != nil && strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		clone := req.Clone(req.Context())
		clone.Body = io.NopCloser(bytes.NewReader(b))
		req = clone
		form, _ := url.ParseQuery(string(b))
		s.addParams("request form", form)
	}
	if auth := req.Header.Get("Authorization"); auth != "" {
		if tok, ok := strings.CutPrefix(auth, "Bearer "); ok {
			s.add("bearer token (Authorization header)", tok)
		}
		if id, secret, ok := req.BasicAuth(); ok {
			s.add("Basic credentials (Authorization header)", strings.TrimPrefix(auth, "Basic "))
			if v, err := url.QueryUnescape(secret); err == nil {
				secret = v
			}
			s.add("client secret of "+id+" (Basic)", secret)
		}
	}
	for _, c := range req.Cookies() {
		s.add("cookie "+c.Name+" (sent)", c.Value)
	}
	resp, err := rec.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	for _, c := range resp.Cookies() {
		s.add("cookie "+c.Name+" (set)", c.Value)
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		if u, err := url.Parse(loc); err == nil {
			s.addParams("redirect query", u.Query())
			if f, err := url.ParseQuery(u.Fragment); err == nil {
				s.addParams("redirect fragment", f)
			}
		}
	}
	ct := resp.Header.Get("Content-Type")
	if strings.Contains(ct, "json") || strings.Contains(ct, "html") {
		b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		if strings.Contains(ct, "json") {
			var m map[string]any
			if json.Unmarshal(b, &m) == nil {
				for _, name := range secretJSON {
					if v, ok := m[name].(string); ok {
						s.add(name+" (JSON answer)", v)
					}
				}
			}
		} else {
			form := url.Values{}
			for _, tag := range inputTag.FindAllString(string(b), -1) {
				a := useragent.Attributes(tag)
				form.Add(a["name"], a["value"])
			}
			s.addParams("HTML form", form)
		}
	}
	return resp, nil
}

// secretForms returns the ways v may be written into a log line.
func secretForms(v string) []string {
	forms := []string{v, url.QueryEscape(v), url.PathEscape(v),
		base64.StdEncoding.EncodeToString([]byte(v)), base64.RawURLEncoding.EncodeToString([]byte(v))}
	if b, err := json.Marshal(v); err == nil {
		forms = append(forms, strings.Trim(string(b), `"`))
	}
	slices.Sort(forms)
	return slices.Compact(forms)
}

// findSecrets returns one finding for every line of logs holding a secret:
// the secret's kind and the line with every secret in it replaced by
// <redacted>. A finding never holds a secret value.
func findSecrets(logs string, secrets map[string]string) []string {
	type secret struct {
		kind  string
		forms []string
		word  *regexp.Regexp
	}
	var list []secret
	values := make([]string, 0, len(secrets))
	for v := range secrets {
		values = append(values, v)
	}
	// Longest first, so a secret inside a longer one is redacted with it.
	sort.Slice(values, func(i, j int) bool {
		if len(values[i]) != len(values[j]) {
			return len(values[i]) > len(values[j])
		}
		return values[i] < values[j]
	})
	for _, v := range values {
		switch {
		case len(v) >= minGrepLen:
			list = append(list, secret{kind: secrets[v], forms: secretForms(v)})
		case len(v) >= minWordLen:
			list = append(list, secret{kind: secrets[v],
				word: regexp.MustCompile(`(^|[^0-9A-Za-z])` + regexp.QuoteMeta(v) + `($|[^0-9A-Za-z])`)})
		}
	}
	var findings []string
	for _, line := range strings.Split(logs, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		fields := stringFields(line)
		var kinds []string
		redacted := line
		for _, s := range list {
			found := false
			for _, f := range s.forms {
				if strings.Contains(redacted, f) {
					found = true
					redacted = strings.ReplaceAll(redacted, f, "<redacted>")
				}
			}
			if s.word != nil {
				for _, f := range fields {
					if s.word.MatchString(f) {
						found = true
					}
				}
				if found {
					redacted = s.word.ReplaceAllString(redacted, "${1}<redacted>${2}")
				}
			}
			if found && !slices.Contains(kinds, s.kind) {
				kinds = append(kinds, s.kind)
			}
		}
		if len(kinds) > 0 {
			findings = append(findings, fmt.Sprintf("%s in: %s", strings.Join(kinds, ", "), redacted))
		}
	}
	return findings
}

// stringFields returns the string values of a JSON log line, nested ones
// included, but not its time; a line that is not JSON is one field.
func stringFields(line string) []string {
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return []string{line}
	}
	delete(m, "time")
	delete(m, "request_id") // random hex, a client's at most
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case map[string]any:
			for k, x := range v {
				out = append(out, k)
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(m)
	return out
}

// TestNoSecretsInLogsScanner checks the scanner on a made-up log: it finds
// secrets planted as written, URL-encoded, inside a message and as a short
// code, never prints them, and finds nothing in a clean log.
func TestNoSecretsInLogsScanner(t *testing.T) {
	token := "ory_at_planted-secret-value.signature"
	password := "correct horse battery staple"
	secrets := map[string]string{
		token:    "access token",
		password: "user password",
		"493027": "TOTP code",
		"tiny":   "too short to grep",
	}
	clean := `{"time":"2026-01-02T03:04:05.493027Z","level":"INFO","msg":"request","path":"/oauth2/token","status":200,"bytes":493027,"request_id":"abc"}
{"time":"2026-01-02T03:04:05Z","level":"INFO","msg":"tiny details","remote":"127.0.0.1:49302"}`
	if f := findSecrets(clean, secrets); len(f) != 0 {
		t.Errorf("findings in a clean log: %q", f)
	}
	planted := []struct{ line, kind string }{
		{`{"level":"ERROR","msg":"token endpoint","err":"bad token ` + token + `"}`, "access token"},
		{`{"level":"DEBUG","msg":"form","body":"username=alice&password=` + url.QueryEscape(password) + `"}`, "user password"},
		{`{"level":"INFO","msg":"code 493027 refused"}`, "TOTP code"},
		{`{"level":"INFO","msg":"basic","auth":"` + base64.StdEncoding.EncodeToString([]byte(password)) + `"}`, "user password"},
		{`panic: ` + token, "access token"},
	}
	for _, p := range planted {
		f := findSecrets(clean+"\n"+p.line+"\n", secrets)
		if len(f) != 1 || !strings.HasPrefix(f[0], p.kind+" in: ") || !strings.Contains(f[0], "<redacted>") {
			t.Errorf("planted %s: findings %q", p.kind, f)
		}
		for v := range secrets {
			for _, form := range secretForms(v) {
				if len(v) >= minWordLen && len(f) == 1 && strings.Contains(f[0], form) {
					t.Errorf("the finding for %s prints a secret", p.kind)
				}
			}
		}
	}
}

// logEvent is one JSON log line, with the fields the checks read.
type logEvent struct {
	Msg       string  `json:"msg"`
	Level     string  `json:"level"`
	Listener  string  `json:"listener"`
	Method    string  `json:"method"`
	Route     string  `json:"route"`
	Path      string  `json:"path"`
	Status    int     `json:"status"`
	RequestID string  `json:"request_id"`
	Duration  float64 `json:"duration_ms"`
}

// logFlows drives the flows of TestNoSecretsInLogs.
type logFlows struct {
	t       *testing.T
	srv     *server
	dir     string
	secrets *secretSet
	rec     *recorder
	client  *http.Client // does not follow redirects
}

const (
	flowRedirect   = "http://127.0.0.1:9/cb"
	flowSignedOut  = "http://127.0.0.1:9/signed-out"
	deviceGrantURN = "urn:ietf:params:oauth:grant-type:device_code"
)

func randomSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// agent is a browser whose requests go through the recorder.
func (f *logFlows) agent() *useragent.Agent {
	return useragent.New(&http.Client{Transport: f.rec, Timeout: 30 * time.Second}, flowRedirect, flowSignedOut)
}

// jar collects the cookies a browser holds for the server.
func (f *logFlows) jar(a *useragent.Agent) {
	for _, p := range []string{"/", "/login", "/login/", "/oauth2/", "/consent", "/device", "/logout"} {
		u, _ := url.Parse(f.srv.public + p)
		for _, c := range a.Cookies(u) {
			f.secrets.add("cookie "+c.Name+" (browser jar)", c.Value)
		}
	}
}

// createClient registers a client with the CLI and returns its secret.
func (f *logFlows) createClient(metadata string) string {
	f.t.Helper()
	file := filepath.Join(f.t.TempDir(), "client.json")
	writeFile(f.t, file, metadata)
	var c struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(cli(f.t, "clients", "create", "--file", file, "--data-dir", f.dir)), &c); err != nil {
		f.t.Fatal(err)
	}
	f.secrets.add("client secret of "+c.ID, c.Secret)
	return c.Secret
}

type answer struct {
	status    int
	body      map[string]any
	raw       string
	requestID string
}

func (a answer) str(name string) string { s, _ := a.body[name].(string); return s }

// do sends a request through the recorder and reads a JSON or text answer.
func (f *logFlows) do(req *http.Request) answer {
	f.t.Helper()
	resp, err := f.client.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, raw: string(b), requestID: resp.Header.Get("X-Request-Id")}
	_ = json.Unmarshal(b, &a.body)
	if a.requestID == "" {
		f.t.Errorf("%s %s: no X-Request-Id", req.Method, req.URL.Path)
	}
	return a
}

// post posts a form to the public path, with Basic client credentials when
// id is not empty.
func (f *logFlows) post(path string, form url.Values, id, secret string) answer {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.public+path, strings.NewReader(form.Encode()))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	return f.do(req)
}

func (f *logFlows) get(u, bearer string) answer {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return f.do(req)
}

func (f *logFlows) adminJSON(method, path, token string, body any) answer {
	f.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		f.t.Fatal(err)
	}
	req, err := http.NewRequest(method, f.srv.admin+path, bytes.NewReader(b))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	return f.do(req)
}

func expectStatus(t *testing.T, what string, a answer, want int) {
	t.Helper()
	if a.status != want {
		t.Fatalf("%s: status %d, want %d: %.300s", what, a.status, want, a.raw)
	}
}

func expectOAuthError(t *testing.T, what string, a answer, codes ...string) {
	t.Helper()
	if a.status < 400 || a.status >= 500 || !slices.Contains(codes, a.str("error")) {
		t.Fatalf("%s: %d %.300s, want a 4xx %v", what, a.status, a.raw, codes)
	}
}

// pkce returns a new S256 verifier and its challenge.
func pkce(t *testing.T) (verifier, challenge string) {
	verifier = randomSecret(t) + randomSecret(t)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorize starts a code flow in a, walks the login app with in and
// returns the code at the client's redirect.
func (f *logFlows) authorize(a *useragent.Agent, clientID, scope, challenge string, extra url.Values, in useragent.Interaction) string {
	f.t.Helper()
	ctx := context.Background()
	state, nonce := randomSecret(f.t), randomSecret(f.t)
	q := url.Values{"client_id": {clientID}, "response_type": {"code"}, "scope": {scope},
		"redirect_uri": {flowRedirect}, "state": {state}, "nonce": {nonce},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	for k, v := range extra {
		q[k] = v
	}
	if _, err := a.Get(ctx, f.srv.public+"/oauth2/auth?"+q.Encode()); err != nil {
		f.t.Fatal(err)
	}
	f.jar(a)
	p, _, err := a.Continue(ctx, in)
	f.jar(a)
	if err != nil {
		f.t.Fatalf("%s: sign-in: %v", clientID, err)
	}
	if !p.Redirect || p.URL.Query().Get("state") != state || p.URL.Query().Get("code") == "" {
		f.t.Fatalf("%s: stopped at %s (status %d), want a code at the client", clientID, pageAt(p), p.Status)
	}
	return p.URL.Query().Get("code")
}

// TestNoSecretsInLogs runs serve with debug JSON logs through the code
// (PKCE, confidential and public clients), refresh, client credentials,
// password and device grants, introspection, revocation, email and TOTP
// second factors and RP-initiated logout, error paths included, collecting
// every secret that passes by on the wire. None of them may appear in what
// serve wrote; the access log must have a request ID on every line and a
// line for every request.
func TestNoSecretsInLogs(t *testing.T) {
	cleanEnv(t)
	dir := filepath.Join(t.TempDir(), "latchkey-data")
	srv := startServe(t, "--data-dir", dir, "--log-format", "json", "--log-level", "debug")
	secrets := newSecretSet()
	rec := &recorder{base: http.DefaultTransport, secrets: secrets}
	f := &logFlows{t: t, srv: srv, dir: dir, secrets: secrets, rec: rec,
		client: &http.Client{Transport: rec, Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	ctx := context.Background()

	systemSecret := readFile(t, filepath.Join(dir, "system-secret"))
	adminToken := readFile(t, filepath.Join(dir, "admin-token"))
	secrets.add("system secret", systemSecret)
	secrets.add("admin token", adminToken)

	// Users: alice with a password and TOTP, bob with a password and an
	// email address (email codes, the password grant).
	seed := make([]byte, 20)
	if _, err := rand.Read(seed); err != nil {
		t.Fatal(err)
	}
	seedB32 := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(seed)
	alicePassword, bobPassword := "first pass "+randomSecret(t), "second pass "+randomSecret(t)
	secrets.add("TOTP secret (base32)", seedB32)
	secrets.add("TOTP secret (hex)", fmt.Sprintf("%x", seed))
	secrets.add("alice's password", alicePassword)
	secrets.add("bob's password", bobPassword)
	cli(t, "users", "create", "--username", "alice", "--password", alicePassword, "--totp-secret", seedB32, "--data-dir", dir)
	cli(t, "users", "create", "--username", "bob", "--password", bobPassword, "--email", "bob@example.test", "--email-verified", "--data-dir", dir)
	alice := &useragent.User{Username: "alice", Password: alicePassword, Authenticator: useragent.NewAuthenticator(seed)}
	bob := &useragent.User{Username: "bob", Password: bobPassword}

	webSecret := f.createClient(`{"client_id":"web-basic","client_name":"Web","token_endpoint_auth_method":"client_secret_basic",
		"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"scope":"openid profile email offline_access",
		"redirect_uris":["` + flowRedirect + `"],"post_logout_redirect_uris":["` + flowSignedOut + `"]}`)
	svcSecret := f.createClient(`{"client_id":"svc-post","client_name":"Service","token_endpoint_auth_method":"client_secret_post",
		"grant_types":["client_credentials"],"scope":"api:read"}`)
	f.createClient(`{"client_id":"spa","client_name":"SPA","token_endpoint_auth_method":"none",
		"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"scope":"openid offline_access",
		"redirect_uris":["` + flowRedirect + `"],"post_logout_redirect_uris":["` + flowSignedOut + `"]}`)
	pwSecret := f.createClient(`{"client_id":"pw-app","client_name":"Legacy","token_endpoint_auth_method":"client_secret_basic",
		"grant_types":["password","refresh_token"],"response_types":[],"scope":"openid offline_access"}`)
	f.createClient(`{"client_id":"tv","client_name":"TV","token_endpoint_auth_method":"none",
		"grant_types":["` + deviceGrantURN + `","refresh_token"],"response_types":[],"scope":"openid offline_access"}`)

	// The admin API: a client created with the admin token (its secret
	// comes back in the answer), and a wrong admin token.
	created := f.adminJSON(http.MethodPost, "/admin/clients", adminToken, map[string]any{
		"client_id": "admin-made", "grant_types": []string{"client_credentials"}, "scope": "api:read"})
	expectStatus(t, "admin: create a client", created, http.StatusCreated)
	adminMadeSecret := created.str("client_secret")
	if adminMadeSecret == "" {
		t.Fatalf("admin: create a client: no secret in %.300s", created.raw)
	}
	wrongAdmin := "wrong-admin-token-" + randomSecret(t)
	secrets.add("wrong admin token", wrongAdmin)
	expectStatus(t, "admin API with a wrong token", f.adminJSON(http.MethodGet, "/admin/clients", wrongAdmin, nil), http.StatusUnauthorized)

	// A sign-in with a wrong password (a mistyped password is often close
	// to the real one).
	{
		a := f.agent()
		wrong := alicePassword + " typo"
		secrets.add("mistyped password", wrong)
		_, challenge := pkce(t)
		q := url.Values{"client_id": {"web-basic"}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {flowRedirect},
			"state": {randomSecret(t)}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
		if _, err := a.Get(ctx, srv.public+"/oauth2/auth?"+q.Encode()); err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.Continue(ctx, useragent.Interaction{User: &useragent.User{Username: "alice", Password: wrong}}); !errors.Is(err, useragent.ErrSignInRefused) {
			t.Fatalf("a wrong password: %v, want the sign-in refused", err)
		}
		f.jar(a)
	}

	// Authorization code + PKCE for the confidential client (Basic), with
	// a wrong TOTP code first, then the right one.
	ua := f.agent()
	verifier, challenge := pkce(t)
	var code string
	{
		state, nonce := randomSecret(t), randomSecret(t)
		q := url.Values{"client_id": {"web-basic"}, "response_type": {"code"}, "scope": {"openid profile email offline_access"},
			"redirect_uri": {flowRedirect}, "state": {state}, "nonce": {nonce},
			"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
		if _, err := ua.Get(ctx, srv.public+"/oauth2/auth?"+q.Encode()); err != nil {
			t.Fatal(err)
		}
		if _, err := ua.Submit(ctx, "password-form", map[string]string{"username": "alice", "password": alicePassword, "remember": "1"}); err != nil {
			t.Fatal(err)
		}
		f.jar(ua)
		if _, ok := ua.Page.Form("totp-form"); !ok {
			t.Fatalf("no TOTP form after the password: status %d at %s", ua.Page.Status, pageAt(ua.Page))
		}
		if _, err := ua.Submit(ctx, "totp-form", map[string]string{"code": wrongTOTP(t, seed)}); err != nil {
			t.Fatal(err)
		}
		if ua.Page.Status != http.StatusUnauthorized {
			t.Errorf("a wrong TOTP code: status %d, want 401", ua.Page.Status)
		}
		p, seen, err := ua.Continue(ctx, useragent.Interaction{User: alice, Remember: true})
		f.jar(ua)
		if err != nil || !seen.SecondFactor || !p.Redirect || p.URL.Query().Get("state") != state {
			t.Fatalf("code flow: %v %+v, stopped at %s", err, seen, pageAt(p))
		}
		code = p.URL.Query().Get("code")
	}
	tok := f.post("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {flowRedirect}, "code_verifier": {verifier}}, "web-basic", webSecret)
	expectStatus(t, "redeem the code", tok, http.StatusOK)
	if tok.str("access_token") == "" || tok.str("refresh_token") == "" || tok.str("id_token") == "" {
		t.Fatalf("the code gave %.300s", tok.raw)
	}
	// A refresh, the new tokens at userinfo and introspection.
	refreshed := f.post("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.str("refresh_token")}}, "web-basic", webSecret)
	expectStatus(t, "refresh", refreshed, http.StatusOK)
	expectStatus(t, "userinfo", f.get(srv.public+"/userinfo", refreshed.str("access_token")), http.StatusOK)
	for _, name := range []string{"access_token", "refresh_token"} {
		in := f.post("/oauth2/introspect", url.Values{"token": {refreshed.str(name)}}, "web-basic", webSecret)
		if in.status != http.StatusOK || in.body["active"] != true {
			t.Errorf("introspect the %s: %d %.300s", name, in.status, in.raw)
		}
	}
	// Replays: the code again, then the refresh token it rotated away.
	expectOAuthError(t, "a replayed code", f.post("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {flowRedirect}, "code_verifier": {verifier}}, "web-basic", webSecret), "invalid_grant")
	expectOAuthError(t, "a replayed refresh token", f.post("/oauth2/token", url.Values{"grant_type": {"refresh_token"},
		"refresh_token": {tok.str("refresh_token")}}, "web-basic", webSecret), "invalid_grant")
	expectStatus(t, "userinfo with a revoked token", f.get(srv.public+"/userinfo", refreshed.str("access_token")), http.StatusUnauthorized)

	// A wrong client secret, and client assertions that are not valid
	// JWTs: error paths.
	wrongSecret := "wrong-secret-" + randomSecret(t)
	secrets.add("wrong client secret", wrongSecret)
	wrongSecretAnswer := f.post("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshed.str("refresh_token")}}, "web-basic", wrongSecret)
	expectOAuthError(t, "a wrong client secret", wrongSecretAnswer, "invalid_client")
	badAssertion := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"web-basic","sub":"web-basic","aud":"`+srv.public+`/oauth2/token","jti":"`+randomSecret(t)+`","exp":`+strconv.FormatInt(time.Now().Add(time.Minute).Unix(), 10)+`}`)) +
		"." + randomSecret(t)
	for _, assertion := range []string{badAssertion, "not-a-jwt-" + randomSecret(t)} {
		secrets.add("client assertion", assertion)
		expectOAuthError(t, "a malformed client assertion", f.post("/oauth2/token", url.Values{"grant_type": {"client_credentials"},
			"client_id": {"web-basic"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion": {assertion}}, "", ""), "invalid_client", "invalid_request")
	}
	wrongIntrospect := f.post("/oauth2/introspect", url.Values{"token": {refreshed.str("access_token")}}, "web-basic", wrongSecret)
	expectOAuthError(t, "introspection with a wrong secret", wrongIntrospect, "invalid_client")

	// The public client with PKCE, in the same browser (single sign-on),
	// then revocation of its refresh token.
	spaVerifier, spaChallenge := pkce(t)
	spaCode := f.authorize(ua, "spa", "openid offline_access", spaChallenge, nil, useragent.Interaction{User: alice})
	spaTok := f.post("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {spaCode}, "client_id": {"spa"},
		"redirect_uri": {flowRedirect}, "code_verifier": {spaVerifier}}, "", "")
	expectStatus(t, "the public client redeems its code", spaTok, http.StatusOK)
	wrongVerifier := randomSecret(t) + randomSecret(t)
	secrets.add("wrong code_verifier", wrongVerifier)
	expectOAuthError(t, "a replayed code with a wrong verifier", f.post("/oauth2/token", url.Values{"grant_type": {"authorization_code"},
		"code": {spaCode}, "client_id": {"spa"}, "redirect_uri": {flowRedirect}, "code_verifier": {wrongVerifier}}, "", ""), "invalid_grant")
	spa2Verifier, spa2Challenge := pkce(t)
	spa2Code := f.authorize(ua, "spa", "openid offline_access", spa2Challenge, nil, useragent.Interaction{User: alice})
	spaTok = f.post("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {spa2Code}, "client_id": {"spa"},
		"redirect_uri": {flowRedirect}, "code_verifier": {spa2Verifier}}, "", "")
	expectStatus(t, "the public client redeems a second code", spaTok, http.StatusOK)
	expectStatus(t, "revoke the public client's refresh token", f.post("/oauth2/revoke",
		url.Values{"token": {spaTok.str("refresh_token")}, "client_id": {"spa"}}, "", ""), http.StatusOK)
	expectOAuthError(t, "a revoked refresh token", f.post("/oauth2/token", url.Values{"grant_type": {"refresh_token"},
		"refresh_token": {spaTok.str("refresh_token")}, "client_id": {"spa"}}, "", ""), "invalid_grant")

	// client_credentials with client_secret_post, introspected and revoked
	// with the same; and the client the admin API made.
	cc := f.post("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"},
		"client_id": {"svc-post"}, "client_secret": {svcSecret}}, "", "")
	expectStatus(t, "client_credentials (post)", cc, http.StatusOK)
	in := f.post("/oauth2/introspect", url.Values{"token": {cc.str("access_token")}, "client_id": {"svc-post"}, "client_secret": {svcSecret}}, "", "")
	if in.status != http.StatusOK || in.body["active"] != true {
		t.Errorf("introspect the client_credentials token: %d %.300s", in.status, in.raw)
	}
	expectStatus(t, "revoke the client_credentials token", f.post("/oauth2/revoke", url.Values{"token": {cc.str("access_token")},
		"client_id": {"svc-post"}, "client_secret": {svcSecret}}, "", ""), http.StatusOK)
	expectOAuthError(t, "client_secret_post with a wrong secret", f.post("/oauth2/token", url.Values{"grant_type": {"client_credentials"},
		"client_id": {"svc-post"}, "client_secret": {wrongSecret}}, "", ""), "invalid_client")
	expectStatus(t, "client_credentials (admin-made client)", f.post("/oauth2/token", url.Values{"grant_type": {"client_credentials"},
		"scope": {"api:read"}}, "admin-made", adminMadeSecret), http.StatusOK)

	// The password grant: bob has no second factor; a wrong password too.
	pw := f.post("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {bobPassword},
		"scope": {"openid offline_access"}}, "pw-app", pwSecret)
	expectStatus(t, "password grant", pw, http.StatusOK)
	wrongBob := bobPassword + "x"
	secrets.add("mistyped password (password grant)", wrongBob)
	expectOAuthError(t, "password grant with a wrong password", f.post("/oauth2/token", url.Values{"grant_type": {"password"},
		"username": {"bob"}, "password": {wrongBob}, "scope": {"openid"}}, "pw-app", pwSecret), "invalid_grant")

	// The device grant: a poll before approval, the verification page in
	// alice's browser, polls until the tokens come.
	da := f.post("/oauth2/device/auth", url.Values{"client_id": {"tv"}, "scope": {"openid offline_access"}}, "", "")
	expectStatus(t, "device authorization", da, http.StatusOK)
	interval := time.Duration(5) * time.Second
	if n, ok := da.body["interval"].(float64); ok && n > 0 {
		interval = time.Duration(n) * time.Second
	}
	poll := func() answer {
		return f.post("/oauth2/token", url.Values{"grant_type": {deviceGrantURN}, "device_code": {da.str("device_code")}, "client_id": {"tv"}}, "", "")
	}
	firstPoll := time.Now()
	expectOAuthError(t, "a poll before approval", poll(), "authorization_pending")
	if _, err := ua.Get(ctx, da.str("verification_uri_complete")); err != nil {
		t.Fatal(err)
	}
	f.jar(ua)
	p, seen, err := ua.Continue(ctx, useragent.Interaction{User: alice, UserCode: da.str("user_code")})
	f.jar(ua)
	if err != nil || !seen.Device || p.Status != http.StatusOK {
		t.Fatalf("device verification: %v %+v, status %d at %s", err, seen, p.Status, pageAt(p))
	}
	var deviceTok answer
	for deadline := time.Now().Add(30 * time.Second); ; {
		deviceTok = poll()
		if deviceTok.status == http.StatusOK {
			break
		}
		expectOAuthError(t, "a device poll", deviceTok, "slow_down", "authorization_pending")
		if time.Now().After(deadline) {
			t.Fatal("the device got no tokens in 30s")
		}
		// A poll too soon does not count: wait for the interval after the
		// first one.
		time.Sleep(time.Until(firstPoll.Add(interval + 200*time.Millisecond)))
		firstPoll = time.Now()
	}
	expectOAuthError(t, "a used device code", poll(), "invalid_grant", "slow_down")

	// Bob signs in with a one-time code from email (asked for by
	// acr_values), mistyping it first.
	{
		b := f.agent()
		bobVerifier, bobChallenge := pkce(t)
		state := randomSecret(t)
		q := url.Values{"client_id": {"web-basic"}, "response_type": {"code"}, "scope": {"openid email"},
			"redirect_uri": {flowRedirect}, "state": {state}, "nonce": {randomSecret(t)}, "acr_values": {"mfa"},
			"code_challenge": {bobChallenge}, "code_challenge_method": {"S256"}}
		if _, err := b.Get(ctx, srv.public+"/oauth2/auth?"+q.Encode()); err != nil {
			t.Fatal(err)
		}
		p, _, err := b.Continue(ctx, useragent.Interaction{User: bob})
		f.jar(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := p.Form("email-send-form"); !ok {
			t.Fatalf("bob's second factor: no email form, status %d at %s", p.Status, pageAt(p))
		}
		if _, err := b.Submit(ctx, "email-send-form", nil); err != nil {
			t.Fatal(err)
		}
		emailCode := lastEmailCode(t, filepath.Join(dir, "outbox.jsonl"), "bob@example.test")
		secrets.add("email one-time code", emailCode)
		n, _ := strconv.Atoi(emailCode)
		wrongCode := fmt.Sprintf("%06d", (n+500001)%1000000)
		secrets.add("mistyped email code", wrongCode)
		if _, err := b.Submit(ctx, "email-form", map[string]string{"code": wrongCode}); err != nil {
			t.Fatal(err)
		}
		if b.Page.Status != http.StatusUnauthorized {
			t.Errorf("a wrong email code: status %d, want 401", b.Page.Status)
		}
		if _, err := b.Submit(ctx, "email-form", map[string]string{"code": emailCode}); err != nil {
			t.Fatal(err)
		}
		p, _, err = b.Continue(ctx, useragent.Interaction{User: bob})
		f.jar(b)
		if err != nil || !p.Redirect || p.URL.Query().Get("state") != state {
			t.Fatalf("bob's email-code sign-in: %v, stopped at %s (status %d)", err, pageAt(p), p.Status)
		}
		expectStatus(t, "redeem bob's code", f.post("/oauth2/token", url.Values{"grant_type": {"authorization_code"},
			"code": {p.URL.Query().Get("code")}, "redirect_uri": {flowRedirect}, "code_verifier": {bobVerifier}}, "web-basic", webSecret), http.StatusOK)
	}

	// RP-initiated logout: a malformed id_token_hint is refused; without a
	// hint the login app asks (a logout challenge) and alice stays; with a
	// real hint she is signed out.
	badHint := badAssertion[:strings.LastIndex(badAssertion, ".")] + "." + randomSecret(t)
	secrets.add("malformed id_token_hint", badHint)
	if a := f.get(srv.public+"/oauth2/logout?"+url.Values{"id_token_hint": {badHint}, "post_logout_redirect_uri": {flowSignedOut},
		"state": {randomSecret(t)}}.Encode(), ""); a.status < 400 || a.status >= 500 {
		t.Errorf("logout with a malformed id_token_hint: %d", a.status)
	}
	if _, err := ua.Get(ctx, srv.public+"/oauth2/logout"); err != nil {
		t.Fatal(err)
	}
	f.jar(ua)
	p, seen, err = ua.Continue(ctx, useragent.Interaction{User: alice, Stay: true})
	f.jar(ua)
	if err != nil || !seen.Logout {
		t.Fatalf("logout without a hint: %v %+v, stopped at %s (status %d)", err, seen, pageAt(p), p.Status)
	}
	logoutState := randomSecret(t)
	if _, err := ua.Get(ctx, srv.public+"/oauth2/logout?"+url.Values{"id_token_hint": {spaTok.str("id_token")},
		"post_logout_redirect_uri": {flowSignedOut}, "state": {logoutState}}.Encode()); err != nil {
		t.Fatal(err)
	}
	f.jar(ua)
	p, seen, err = ua.Continue(ctx, useragent.Interaction{User: alice})
	f.jar(ua)
	if err != nil || !p.Redirect || !strings.HasPrefix(p.URL.String(), flowSignedOut) || p.URL.Query().Get("state") != logoutState {
		t.Fatalf("logout: %v %+v, stopped at %s", err, seen, pageAt(p))
	}

	// Challenges that were used already, opened again where the browser
	// opened them and at the admin API: error paths that hold a challenge
	// ID.
	rec.mu.Lock()
	pages := maps.Clone(rec.challengePages)
	rec.mu.Unlock()
	replayed := 0
	for v, kind := range secrets.snapshot() {
		name, _, _ := strings.Cut(kind, " (")
		for _, page := range pages[name] {
			f.get(page+"?"+url.Values{name: {v}}.Encode(), "")
			replayed++
		}
		if kind, ok := strings.CutSuffix(name, "_challenge"); ok {
			f.get(srv.admin+"/admin/"+kind+"?"+url.Values{name: {v}}.Encode(), adminToken)
		}
	}
	if replayed == 0 {
		t.Error("no used challenge was opened again")
	}

	// What the secrets are, in kinds: a flow that collected nothing would
	// make the scan pointless.
	kinds := secrets.kindsSeen()
	for _, want := range []string{"system secret", "admin token", "alice's password", "TOTP secret", "email one-time code",
		"code", "state", "nonce", "code_verifier", "login_challenge", "consent_challenge", "logout_challenge", "device_challenge",
		"access_token", "refresh_token", "id_token", "id_token_hint", "device_code", "user_code", "csrf", "token",
		"client secret of web-basic", "client secret of svc-post", "client secret of pw-app", "client_secret", "client_assertion"} {
		if !kinds[want] {
			t.Errorf("the flows collected no %s", want)
		}
	}
	cookies := 0
	for k := range kinds {
		if strings.HasPrefix(k, "cookie ") {
			cookies++
		}
	}
	if cookies == 0 {
		t.Error("the flows collected no cookie")
	}

	// Every request is answered and logged by now; stopping the server
	// also logs the shutdown.
	requests := rec.count()
	srv.shutdown(t)
	logs := srv.stderr.String()
	all := secrets.snapshot()
	short := 0
	for v := range all {
		if len(v) < minGrepLen {
			short++
		}
	}
	t.Logf("%d requests; %d secrets of %d kinds (%d short ones, looked for as words); %d log lines",
		requests, len(all), len(kinds), short, strings.Count(logs, "\n"))
	scanned := logs + "\n" + srv.stdout.String()
	findings := findSecrets(scanned, all)
	for _, finding := range findings {
		t.Errorf("a secret reached the log: %s", finding)
	}
	// The scan would see a secret of this run written by serve: a
	// refresh token and a six-digit code planted in a copy of the log.
	var code6 string
	for v := range all {
		if len(v) >= minWordLen && len(v) < minGrepLen {
			code6 = v
		}
	}
	for kind, v := range map[string]string{"a refresh token": refreshed.str("refresh_token"), "a one-time code": code6} {
		line := `{"time":"2026-01-02T03:04:05Z","level":"ERROR","msg":"planted","err":"invalid ` + v + `"}`
		if got := findSecrets(scanned+"\n"+line+"\n", all); len(got) != len(findings)+1 {
			t.Errorf("the scan does not see %s planted in the log", kind)
		}
	}

	// The access log: a request ID on every line, a line for every request.
	var access []logEvent
	nonJSON := 0
	for _, line := range strings.Split(logs, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var e logEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			nonJSON++
			continue
		}
		if e.Msg == "request" {
			if e.RequestID == "" {
				t.Errorf("an access-log line without request_id: %s", redactLine(line, all))
			}
			access = append(access, e)
		}
	}
	if nonJSON > 0 {
		t.Errorf("%d lines of serve's stderr are not JSON with --log-format json", nonJSON)
	}
	logged := 0
	for _, e := range access {
		if e.Listener == "public" || e.Listener == "admin" {
			logged++
		}
	}
	if logged < requests {
		t.Errorf("%d access-log lines on the public and admin listeners for the %d requests the test made", logged, requests)
	}
	// The refused token request is in the access log under the ID it was
	// answered with.
	if !slices.ContainsFunc(access, func(e logEvent) bool {
		return e.RequestID == wrongSecretAnswer.requestID && e.Route == "/oauth2/token" && e.Status == http.StatusUnauthorized
	}) {
		t.Errorf("no access-log line for the refused token request %s", wrongSecretAnswer.requestID)
	}
	// A line logged while serving a request carries its request_id: the
	// outbox's line for the email code, matched with its access-log line.
	sent := false
	for _, line := range strings.Split(logs, "\n") {
		var e logEvent
		if json.Unmarshal([]byte(line), &e) != nil || e.Msg != "mail written to outbox" {
			continue
		}
		if e.RequestID == "" {
			t.Errorf("a line logged while serving a request has no request_id: %s", redactLine(line, all))
			continue
		}
		sent = sent || slices.ContainsFunc(access, func(a logEvent) bool {
			return a.RequestID == e.RequestID && strings.HasSuffix(a.Route, "/email/send")
		})
	}
	if !sent {
		t.Error("no outbox log line with the request_id of the email code request")
	}
}

// redactLine returns line with every secret in it replaced.
func redactLine(line string, secrets map[string]string) string {
	if f := findSecrets(line, secrets); len(f) == 1 {
		return f[0]
	}
	return line
}

// wrongTOTP returns a six-digit code the login app accepts at no time step
// near now.
func wrongTOTP(t *testing.T, seed []byte) string {
	t.Helper()
	now := time.Now()
	valid := map[string]bool{}
	for d := -3; d <= 3; d++ {
		c, err := totp.Code(seed, now.Add(time.Duration(d)*totp.Period))
		if err != nil {
			t.Fatal(err)
		}
		valid[c] = true
	}
	for i := 0; ; i++ {
		if c := fmt.Sprintf("%06d", (271828+i*7919)%1000000); !valid[c] {
			return c
		}
	}
}

var sixDigits = regexp.MustCompile(`\b\d{6}\b`)

// lastEmailCode reads the code of the newest email to to from the outbox.
func lastEmailCode(t *testing.T, path, to string) string {
	t.Helper()
	msgs, err := mail.ReadOutbox(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(msgs) - 1; i >= 0; i-- {
		if strings.Contains(msgs[i].To, to) {
			if c := sixDigits.FindString(msgs[i].Text); c != "" {
				return c
			}
		}
	}
	t.Fatalf("no email with a code to %s in the outbox (%d messages)", to, len(msgs))
	return ""
}

// pageAt says where a browser stopped without the query, which holds
// secrets.
func pageAt(p *useragent.Page) string {
	if p == nil || p.URL == nil {
		return "nowhere"
	}
	return p.URL.Scheme + "://" + p.URL.Host + p.URL.Path
}
