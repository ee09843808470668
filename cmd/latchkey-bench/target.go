package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// maxAnswer bounds what is read of one answer; the rest is drained so the
// connection can be reused.
const maxAnswer = 1 << 20

// discovery is what the tool needs of the issuer's metadata.
type discovery struct {
	Issuer                      string `json:"issuer"`
	AuthorizationEndpoint       string `json:"authorization_endpoint"`
	TokenEndpoint               string `json:"token_endpoint"`
	IntrospectionEndpoint       string `json:"introspection_endpoint"`
	DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint"`
}

// target is the Latchkey under load: its endpoints, the HTTP client every
// request goes through, and the admin API that sets up clients.
type target struct {
	http *http.Client
	meta discovery
	// idlePerHost is the transport's MaxIdleConnsPerHost, for the report.
	idlePerHost int

	adminURL, adminToken string

	mu      sync.Mutex
	created []string // client IDs the set-up registered
}

// newTransport returns the one transport of a run: keep-alive, with room
// for an idle connection per worker to every host (provider and login app
// may share one).
func newTransport(idlePerHost int) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 0 // no limit across hosts
	tr.MaxIdleConnsPerHost = idlePerHost
	tr.DisableKeepAlives = false
	return tr
}

// discover reads the issuer's OpenID Provider metadata.
func (t *target) discover(ctx context.Context, issuer string) error {
	u := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	status, body, err := t.do(req)
	if err != nil {
		return fmt.Errorf("discovery at %s: %w", u, err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("discovery at %s: status %d: %s", u, status, snippet(body))
	}
	if err := json.Unmarshal(body, &t.meta); err != nil {
		return fmt.Errorf("discovery at %s: %w", u, err)
	}
	if strings.TrimSuffix(t.meta.Issuer, "/") != strings.TrimSuffix(issuer, "/") {
		return fmt.Errorf("discovery at %s names the issuer %q, not %q: point --issuer at the URL the provider is configured with", u, t.meta.Issuer, issuer)
	}
	if t.meta.TokenEndpoint == "" {
		return fmt.Errorf("discovery at %s has no token_endpoint", u)
	}
	return nil
}

// do sends req and reads the answer, draining it so that the connection
// goes back to the pool.
func (t *target) do(req *http.Request) (int, []byte, error) {
	resp, err := t.http.Do(req)
	if err != nil {
		return 0, nil, transportFailure(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	_, _ = io.Copy(io.Discard, resp.Body)
	if err != nil {
		return 0, nil, transportFailure(err)
	}
	return resp.StatusCode, body, nil
}

// client is the credentials of a registered client; Secret is empty for a
// public client.
type client struct {
	ID, Secret string
}

// postForm posts form to endpoint as c: HTTP Basic for a confidential
// client (with the RFC 6749 §2.3.1 form-encoding), client_id in the body
// for a public one.
func (t *target) postForm(ctx context.Context, endpoint string, c client, form url.Values) (int, []byte, error) {
	if c.Secret == "" && c.ID != "" {
		form.Set("client_id", c.ID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c.Secret != "" {
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	}
	return t.do(req)
}

// tokenAnswer is a token endpoint answer (RFC 6749 §5.1).
type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
}

// token makes one token request as c. Any answer but a 200 with an access
// token is a *failure.
func (t *target) token(ctx context.Context, c client, form url.Values) (*tokenAnswer, error) {
	status, body, err := t.postForm(ctx, t.meta.TokenEndpoint, c, form)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, answerFailure(status, body)
	}
	var ta tokenAnswer
	if err := json.Unmarshal(body, &ta); err != nil {
		return nil, &failure{kind: kindBadAnswer, detail: fmt.Sprintf("token answer is not JSON: %s", snippet(body))}
	}
	if ta.AccessToken == "" {
		return nil, &failure{kind: kindBadAnswer, detail: fmt.Sprintf("token answer has no access_token: %s", snippet(body))}
	}
	return &ta, nil
}

// adminError is a refusal of the admin API.
type adminError struct {
	status      int
	code        string
	description string
	body        string
}

func (e *adminError) Error() string {
	if e.code != "" {
		return fmt.Sprintf("admin API answered %d %s: %s", e.status, e.code, e.description)
	}
	return fmt.Sprintf("admin API answered %d: %s", e.status, e.body)
}

// createClient registers a client through the admin API (POST
// /admin/clients, RFC 7591 metadata) and remembers it for deleteClients.
func (t *target) createClient(ctx context.Context, meta map[string]any) (client, error) {
	if t.adminURL == "" {
		return client{}, errors.New("no --admin-url to create a client with; give --admin-url and --admin-token, or --client-id and --client-secret")
	}
	b, err := json.Marshal(meta)
	if err != nil {
		return client{}, err
	}
	status, body, err := t.admin(ctx, http.MethodPost, "/admin/clients", b)
	if err != nil {
		return client{}, fmt.Errorf("create a client: %w", err)
	}
	if status != http.StatusCreated {
		e := &adminError{status: status, body: snippet(body)}
		var oe oauthError
		if json.Unmarshal(body, &oe) == nil {
			e.code, e.description = oe.Error, oe.Description
		}
		return client{}, fmt.Errorf("create a client: %w", e)
	}
	var out struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.ID == "" {
		return client{}, fmt.Errorf("create a client: the admin API answered without a client_id: %s", snippet(body))
	}
	t.mu.Lock()
	t.created = append(t.created, out.ID)
	t.mu.Unlock()
	return client{ID: out.ID, Secret: out.Secret}, nil
}

// deleteClients removes the clients the set-up registered, with what they
// were issued.
func (t *target) deleteClients(ctx context.Context) []error {
	t.mu.Lock()
	ids := t.created
	t.created = nil
	t.mu.Unlock()
	var errs []error
	for _, id := range ids {
		status, body, err := t.admin(ctx, http.MethodDelete, "/admin/clients/"+url.PathEscape(id), nil)
		if err == nil && status >= 300 {
			err = fmt.Errorf("status %d: %s", status, snippet(body))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("delete client %s: %w", id, err))
		}
	}
	return errs
}

func (t *target) admin(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(t.adminURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+t.adminToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return t.do(req)
}

// Error kinds that are not an HTTP status or an OAuth error code.
const (
	kindTransport = "transport"
	kindTimeout   = "timeout"
	kindBadAnswer = "bad_answer"
)

// failure is a request that did not get the answer the scenario expects.
// kind is what errors_by_kind counts: "oauth:<error>" for an RFC 6749
// error answer, "http_<status>" for any other non-success status,
// "transport" or "timeout" when no answer came, or a scenario's own kind.
type failure struct {
	kind   string
	detail string
}

func (f *failure) Error() string { return f.kind + ": " + f.detail }

// kindOf is the errors_by_kind key of err.
func kindOf(err error) string {
	var f *failure
	if errors.As(err, &f) {
		return f.kind
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return kindTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return kindTimeout
	}
	return kindTransport
}

func transportFailure(err error) error {
	kind := kindTransport
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		kind = kindTimeout
	}
	return &failure{kind: kind, detail: err.Error()}
}

// oauthError is an RFC 6749 §5.2 error answer.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// answerFailure classifies a non-success answer.
func answerFailure(status int, body []byte) *failure {
	var oe oauthError
	if json.Unmarshal(body, &oe) == nil && oe.Error != "" {
		return &failure{kind: "oauth:" + oe.Error, detail: fmt.Sprintf("status %d: %s", status, oe.Description)}
	}
	return &failure{kind: fmt.Sprintf("http_%d", status), detail: snippet(body)}
}

// snippet is the start of an answer, for messages.
func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
