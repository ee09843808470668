package rp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
	"github.com/latchkey-oidc/latchkey/conformance/useragent"
)

// The Node relying parties' addresses. Nothing listens on port 9: the
// browser stops at redirects there and hands them to the relying party.
const (
	nodeRPOrigin    = "http://127.0.0.1:9"
	nodeRedirectURI = nodeRPOrigin + "/node/cb"
	nodeLoggedOut   = nodeRPOrigin + "/node/logged-out"
)

const nodeDeviceGrant = "urn:ietf:params:oauth:grant-type:device_code"

// nodeDir holds rp.mjs and its package.json, relative to this package's
// directory, where go test runs.
const nodeDir = "node"

// requireNode skips the test when the Node relying party cannot run. The
// tests never install anything themselves.
func requireNode(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not found on PATH; .ci/run installs it (Node 20 or later) and runs `npm ci` in conformance/rp/node")
	}
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "openid-client")); err != nil {
		t.Skip("conformance/rp/node/node_modules is missing: run `npm ci` in conformance/rp/node; .ci/run does")
	}
}

// nodeRP is one rp.mjs process: one relying party, spoken to with one
// JSON request per line and one JSON answer per line.
type nodeRP struct {
	t      *testing.T
	in     io.Writer
	out    *bufio.Reader
	stderr *latchkeytest.Output
	// sent counts requests whose answer has not been read yet.
	sent int
}

// nodeError is a failed operation: the library's message, and what it
// said about the failure.
type nodeError struct {
	Message          string `json:"error"`
	Code             string `json:"code"`
	OAuthError       string `json:"oauth_error"`
	OAuthDescription string `json:"oauth_error_description"`
	Status           int    `json:"status"`
}

func (e *nodeError) Error() string {
	s := e.Message
	if e.Code != "" {
		s += " [" + e.Code + "]"
	}
	if e.OAuthError != "" {
		s += fmt.Sprintf(" (OAuth error %s: %s)", e.OAuthError, e.OAuthDescription)
	}
	return s
}

// startNodeRP starts rp.mjs; the process is killed when the test ends.
func startNodeRP(t *testing.T) *nodeRP {
	t.Helper()
	requireNode(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "node", "rp.mjs")
	cmd.Dir = nodeDir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	n := &nodeRP{t: t, in: stdin, out: bufio.NewReader(stdout), stderr: &latchkeytest.Output{}}
	cmd.Stderr = n.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node rp.mjs: %v", err)
	}
	t.Cleanup(func() {
		cancel() // kills node
		_ = cmd.Wait()
		if t.Failed() && n.stderr.Len() > 0 {
			t.Logf("node stderr:\n%s", n.stderr)
		}
	})
	return n
}

// send writes a request without waiting for its answer, so that the test
// can play the person while the relying party works (device polling).
func (n *nodeRP) send(op string, args map[string]any) {
	n.t.Helper()
	req := map[string]any{"op": op}
	for k, v := range args {
		req[k] = v
	}
	line, err := json.Marshal(req)
	if err != nil {
		n.t.Fatal(err)
	}
	if _, err := n.in.Write(append(line, '\n')); err != nil {
		n.t.Fatalf("send %s to node: %v\nnode stderr:\n%s", op, err, n.stderr)
	}
	n.sent++
}

// receive reads the answer to the oldest request not yet answered into
// out. A failed operation is returned as a *nodeError.
func (n *nodeRP) receive(out any) error {
	n.t.Helper()
	if n.sent == 0 {
		n.t.Fatal("receive without a request")
	}
	line, err := n.out.ReadBytes('\n')
	if err != nil {
		n.t.Fatalf("read node's answer: %v\nnode stderr:\n%s", err, n.stderr)
	}
	n.sent--
	var failed nodeError
	if err := json.Unmarshal(line, &failed); err != nil {
		n.t.Fatalf("node's answer is not JSON: %v: %s", err, line)
	}
	if failed.Message != "" {
		return &failed
	}
	if out != nil {
		if err := json.Unmarshal(line, out); err != nil {
			n.t.Fatalf("node's answer: %v: %s", err, line)
		}
	}
	return nil
}

// call runs one operation and returns its error, if any.
func (n *nodeRP) call(op string, args map[string]any, out any) error {
	n.t.Helper()
	n.send(op, args)
	return n.receive(out)
}

// must runs one operation that must succeed.
func (n *nodeRP) must(op string, args map[string]any, out any) {
	n.t.Helper()
	if err := n.call(op, args, out); err != nil {
		n.t.Fatalf("%s: %v", op, err)
	}
}

// mustFail runs one operation that must fail and returns the failure.
func (n *nodeRP) mustFail(op string, args map[string]any) *nodeError {
	n.t.Helper()
	var out map[string]any
	err := n.call(op, args, &out)
	var failed *nodeError
	if !errors.As(err, &failed) {
		n.t.Fatalf("%s succeeded, want a failure: %v", op, out)
	}
	n.t.Logf("%s refused as expected: %v", op, failed)
	return failed
}

// nodeTokens is a token response as the relying party validated it.
type nodeTokens struct {
	AccessToken  string         `json:"access_token"`
	TokenType    string         `json:"token_type"`
	ExpiresIn    int            `json:"expires_in"`
	RefreshToken string         `json:"refresh_token"`
	IDToken      string         `json:"id_token"`
	Scope        string         `json:"scope"`
	Claims       map[string]any `json:"claims"`
}

// nodeEnv is a running Latchkey with one user, and the browser of that
// user.
type nodeEnv struct {
	srv     *latchkeytest.Server
	user    *useragent.User
	subject string
	browser *useragent.Agent
}

// newNodeEnv starts Latchkey with a user who signs in with a password and,
// when totp is set, a TOTP code.
func newNodeEnv(t *testing.T, totp bool, opts latchkeytest.Options) *nodeEnv {
	t.Helper()
	requireNode(t)
	srv := latchkeytest.Start(t, opts)
	user := &useragent.User{Username: "nora", Password: "a long enough passphrase"}
	var seed []byte
	if totp {
		seed = []byte("node-rp-totp-seed-0123")
		user.Authenticator = useragent.NewAuthenticator(seed)
	}
	u := srv.CreateUser(user.Username, user.Password, seed)
	t.Logf("relying parties against %s", srv)
	return &nodeEnv{srv: srv, user: user, subject: u.ID, browser: useragent.New(nil, nodeRPOrigin+"/")}
}

// webClient registers a confidential client of the browser flows.
func (e *nodeEnv) webClient() latchkeytest.Client {
	return e.srv.CreateClient(map[string]any{
		"client_name":                "Node web app",
		"redirect_uris":              []string{nodeRedirectURI},
		"post_logout_redirect_uris":  []string{nodeLoggedOut},
		"grant_types":                []string{"authorization_code", "refresh_token", "implicit"},
		"response_types":             []string{"code", "code id_token", "id_token"},
		"scope":                      "openid profile email offline_access",
		"token_endpoint_auth_method": "client_secret_basic",
	})
}

// rp starts a relying party for client c with the given library and
// response type.
func (e *nodeEnv) rp(t *testing.T, c latchkeytest.Client, lib, responseType string) *nodeRP {
	t.Helper()
	n := startNodeRP(t)
	var meta struct {
		Issuer string `json:"issuer"`
	}
	n.must("discover", map[string]any{
		"issuer": e.srv.Issuer, "client_id": c.ID, "client_secret": c.Secret,
		"redirect_uri": nodeRedirectURI, "lib": lib, "response_type": responseType,
	}, &meta)
	if meta.Issuer != e.srv.Issuer {
		t.Fatalf("discovered issuer %q, want %q", meta.Issuer, e.srv.Issuer)
	}
	return n
}

// signIn sends the browser to u and answers the login app's pages as the
// user; it returns where the browser stopped.
func (e *nodeEnv) signIn(t *testing.T, u string) (*useragent.Page, useragent.Seen) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.browser.Get(ctx, u); err != nil {
		t.Fatal(err)
	}
	p, seen, err := e.browser.Continue(ctx, useragent.Interaction{User: e.user, Remember: true})
	if err != nil {
		t.Fatalf("browser at %s: %v", e.browser.Page.URL.Redacted(), err)
	}
	return p, seen
}

// nodeCallbackArgs is what the browser brings to the relying party's redirect
// URI: the URL it was redirected to, or the fields of the provider's
// form_post page.
func nodeCallbackArgs(t *testing.T, p *useragent.Page) map[string]any {
	t.Helper()
	if p.Redirect {
		if !strings.HasPrefix(p.URL.String(), nodeRedirectURI) {
			t.Fatalf("redirected to %s, want %s", p.URL, nodeRedirectURI)
		}
		return map[string]any{"url": p.URL.String()}
	}
	for _, f := range p.Forms() {
		if f.Method == "POST" && f.Action == nodeRedirectURI {
			form := map[string]string{}
			for k := range f.Fields {
				form[k] = f.Fields.Get(k)
			}
			return map[string]any{"url": f.Action, "form": form}
		}
	}
	t.Fatalf("the browser stopped at %s (status %d), neither a redirect to %s nor a form posting there:\n%.2000s",
		p.URL.Redacted(), p.Status, nodeRedirectURI, p.Body)
	return nil
}

// nodeAuthorizeURL asks the relying party for an authorization request.
func nodeAuthorizeURL(t *testing.T, n *nodeRP, args map[string]any) string {
	t.Helper()
	var out struct {
		URL string `json:"url"`
	}
	n.must("authorize", args, &out)
	return out.URL
}

// codeFlow runs a code flow through the relying party and the browser and
// returns the validated tokens.
func (e *nodeEnv) codeFlow(t *testing.T, n *nodeRP, c latchkeytest.Client, args map[string]any) nodeTokens {
	t.Helper()
	p, _ := e.signIn(t, nodeAuthorizeURL(t, n, args))
	var tok nodeTokens
	n.must("callback", nodeCallbackArgs(t, p), &tok)
	nodeCheckIDToken(t, e, c, tok.Claims)
	return tok
}

// nodeCheckIDToken checks the claims a library validated are nora's ID
// token for client c.
func nodeCheckIDToken(t *testing.T, e *nodeEnv, c latchkeytest.Client, claims map[string]any) {
	t.Helper()
	aud := claims["aud"]
	if list, ok := aud.([]any); ok && len(list) == 1 {
		aud = list[0]
	}
	if claims["sub"] != e.subject || claims["iss"] != e.srv.Issuer || aud != c.ID {
		t.Errorf("ID token claims %v, want sub %s, iss %s and aud %s", claims, e.subject, e.srv.Issuer, c.ID)
	}
	if nonce, _ := claims["nonce"].(string); nonce == "" {
		t.Errorf("ID token claims %v, want the nonce the library checked", claims)
	}
}

func nodeQuery(t *testing.T, u string) url.Values {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return parsed.Query()
}

// nodeResponseParams returns the authorization response parameters of a
// callback: the form_post fields, or the fragment or query of the URL.
func nodeResponseParams(t *testing.T, callback map[string]any) url.Values {
	t.Helper()
	if form, ok := callback["form"].(map[string]string); ok {
		v := url.Values{}
		for k, x := range form {
			v.Set(k, x)
		}
		return v
	}
	u, err := url.Parse(callback["url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if u.Fragment != "" {
		v, err := url.ParseQuery(u.Fragment)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return u.Query()
}

// nodeWithParam returns a copy of a callback with one response parameter
// changed, or removed when value is empty, wherever the response carries
// it.
func nodeWithParam(callback map[string]any, name, value string) map[string]any {
	out := map[string]any{"url": callback["url"]}
	set := func(v url.Values) {
		if value == "" {
			v.Del(name)
		} else {
			v.Set(name, value)
		}
	}
	if form, ok := callback["form"].(map[string]string); ok {
		v := url.Values{}
		for k, x := range form {
			v.Set(k, x)
		}
		set(v)
		copied := map[string]string{}
		for k := range v {
			copied[k] = v.Get(k)
		}
		out["form"] = copied
		return out
	}
	u, _ := url.Parse(callback["url"].(string))
	if u.Fragment == "" {
		v := u.Query()
		set(v)
		u.RawQuery = v.Encode()
		out["url"] = u.String()
		return out
	}
	v, _ := url.ParseQuery(u.Fragment)
	set(v)
	// Set the fragment already encoded; URL.String would escape the
	// percent signs of an encoded Fragment again.
	u.Fragment, u.RawFragment = "", ""
	out["url"] = u.String() + "#" + v.Encode()
	return out
}
